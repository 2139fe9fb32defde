"""Mistake: picks (b) — reads a zero KL to the prior as an exact posterior.

grade_id: concept_posterior_collapse
"""
ANSWER_POSTERIOR_COLLAPSE = "b"
