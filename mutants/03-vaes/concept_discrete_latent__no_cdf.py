"""Mistake: picks (a) — believes a Bernoulli has no CDF.

grade_id: concept_discrete_latent
"""
ANSWER_DISCRETE_LATENT = "a"
