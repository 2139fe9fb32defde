"""Mistake: picks (c) — believes the bound's expectation does not depend on K.

grade_id: concept_iwae_k
"""
ANSWER_IWAE_K = "c"
