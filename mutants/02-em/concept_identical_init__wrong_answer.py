"""Mistake: picks (a) — believes different weights alone separate identical components (they never do).

grade_id: concept_identical_init
"""
ANSWER_IDENTICAL_INIT = "a"
