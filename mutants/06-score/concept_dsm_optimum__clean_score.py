"""Mistake: picks (b) — the clean data's score, whatever σ.

grade_id: concept_dsm_optimum
"""
ANSWER_DSM_OPTIMUM = "b"
