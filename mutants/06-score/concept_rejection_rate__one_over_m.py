"""Mistake: picks (a) — the acceptance rate 1/M, true only for a normalised target.

grade_id: concept_rejection_rate
"""
ANSWER_REJECTION_RATE = "a"
