"""Mistake: picks (c) — believes W grows along the untouched direction (the flow leaves Wu constant).

grade_id: concept_singular_noise
"""
ANSWER_SINGULAR_NOISE = "c"
