"""Mistake: picks (a) — the uniform density 1/5 carried over unchanged (the Jacobian 1/x dropped).

grade_id: concept_exp_uniform
"""
ANSWER_EXP_UNIFORM = "a"
