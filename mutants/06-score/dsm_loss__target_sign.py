"""Mistake: gives the denoising target the wrong sign: s − ε/σ.

grade_id: dsm_loss
"""
def dsm_loss(score, x, sigma, eps):
    return 0.5 * (score(x + sigma * eps) - eps / sigma).pow(2).sum(-1).mean()
