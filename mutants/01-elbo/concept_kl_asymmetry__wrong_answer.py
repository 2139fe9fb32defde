"""Mistake: picks (a) for the KL-asymmetry concept check (the correct answer is (b)).

grade_id: concept_kl_asymmetry
"""
ANSWER_KL_ASYMMETRY = "a"
