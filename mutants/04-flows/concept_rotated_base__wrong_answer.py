"""Mistake: picks (a) — det R = 1 alone (the base's spherical symmetry is not needed).

grade_id: concept_rotated_base
"""
ANSWER_ROTATED_BASE = "a"
