"""Mistake: picks (a) — believes a collapsing component sends the likelihood to minus infinity (it goes to plus infinity).

grade_id: concept_collapse
"""
ANSWER_COLLAPSE = "a"
