"""Mistake: answers False to the VAE-sampling concept check (the correct answer is True).

grade_id: concept_vae_sampling
"""
ANSWER_VAE_SAMPLING = False
