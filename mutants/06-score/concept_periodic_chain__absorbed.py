"""Mistake: picks (b).

grade_id: concept_periodic_chain
"""
ANSWER_PERIODIC_CHAIN = "b"
