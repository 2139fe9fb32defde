"""Mistake: picks (a) for the two-image ELBO concept check (the correct answer is (d)).

grade_id: concept_two_image_elbo
"""
ANSWER_TWO_IMAGE_ELBO = "a"
