"""Mistake: picks (a) (the posterior is only approximately Gaussian); the correct answer is (b), it needs x_0.

grade_id: concept_reverse_learned
"""
ANSWER_REVERSE_LEARNED = "a"
