"""Mistake: picks (a) — detailed balance taken for convergence.

grade_id: concept_periodic_chain
"""
ANSWER_PERIODIC_CHAIN = "a"
