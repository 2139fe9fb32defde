"""Mistake: picks (a) — believes ULA samples p exactly.

grade_id: concept_ula_bias
"""
ANSWER_ULA_BIAS = "a"
