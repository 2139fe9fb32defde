"""Mistake: picks (b), the denoising terms, for the parameter-free term (the correct answer is (c), L_T).

grade_id: concept_prior_term
"""
ANSWER_PRIOR_TERM = "b"
