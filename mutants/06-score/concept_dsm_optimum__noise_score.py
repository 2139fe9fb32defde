"""Mistake: picks (c) — the noise's own score.

grade_id: concept_dsm_optimum
"""
ANSWER_DSM_OPTIMUM = "c"
