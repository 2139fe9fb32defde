"""Mistake: picks (b) — believes the minimax loss keeps its gradient when D(G(z)) is small (it is (c)).

grade_id: concept_gan_saturation
"""
ANSWER_GAN_SATURATION = "b"
