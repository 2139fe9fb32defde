"""Mistake: picks (c) — blames the log-probability's differentiability (it is smooth in a).

grade_id: concept_discrete_latent
"""
ANSWER_DISCRETE_LATENT = "c"
