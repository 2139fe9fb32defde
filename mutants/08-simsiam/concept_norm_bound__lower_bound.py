"""Mistake: picks (c) — reads the Grönwall inequality the wrong way round (a lower bound).

grade_id: concept_norm_bound
"""
ANSWER_NORM_BOUND = "c"
