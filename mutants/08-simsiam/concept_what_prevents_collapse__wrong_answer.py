"""Mistake: picks (a) — believes stop-gradient alone prevents collapse (without a predictor Ẇ = −WX' still collapses).

grade_id: concept_what_prevents_collapse
"""
ANSWER_PREVENTS_COLLAPSE = "a"
