"""Mistake: picks (c) — reads a small KL as a well-used latent space.

grade_id: concept_posterior_collapse
"""
ANSWER_POSTERIOR_COLLAPSE = "c"
