"""Mistake: picks (a) — shifts an average over N images by N·D log 127.5.

grade_id: concept_rescaled_likelihood
"""
ANSWER_RESCALED_LIKELIHOOD = "a"
