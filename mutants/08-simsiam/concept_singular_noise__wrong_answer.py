"""Mistake: picks (a) — believes a positive semi-definite noise suffices for W → 0.

grade_id: concept_singular_noise
"""
ANSWER_SINGULAR_NOISE = "a"
