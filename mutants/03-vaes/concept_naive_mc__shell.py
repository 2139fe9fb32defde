"""Mistake: picks (d) — believes concentration on a shell helps.

grade_id: concept_naive_mc
"""
ANSWER_NAIVE_MC = "d"
