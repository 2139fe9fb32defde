"""Mistake: answers True — believes G must be invertible for the derivation (it need not be).

grade_id: concept_generator_invertible
"""
ANSWER_GENERATOR_INVERTIBLE = True
