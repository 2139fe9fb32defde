"""Mistake: picks (d).

grade_id: concept_rejection_rate
"""
ANSWER_REJECTION_RATE = "d"
