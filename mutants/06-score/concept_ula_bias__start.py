"""Mistake: picks (c) — believes starting from p suffices.

grade_id: concept_ula_bias
"""
ANSWER_ULA_BIAS = "c"
