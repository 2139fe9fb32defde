"""Mistake: picks (a), eps* -> 0; the correct answer is (b), eps*(x, t) -> x.

grade_id: concept_large_t
"""
ANSWER_LARGE_T = "a"
