"""Mistake: picks (a) — believes more samples loosen the bound.

grade_id: concept_iwae_k
"""
ANSWER_IWAE_K = "a"
