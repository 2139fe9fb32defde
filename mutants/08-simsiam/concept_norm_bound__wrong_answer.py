"""Mistake: picks (a) — takes the Grönwall bound for an equality.

grade_id: concept_norm_bound
"""
ANSWER_NORM_BOUND = "a"
