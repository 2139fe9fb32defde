"""Mistake: picks (d) — believes EM's local maxima are within log K of the global one (they can be arbitrarily bad).

grade_id: concept_em_monotone
"""
ANSWER_EM_MONOTONE = "d"
