"""Mistake: evaluates the score at the clean x.

grade_id: dsm_loss
"""
def dsm_loss(score, x, sigma, eps):
    return 0.5 * (score(x) + eps / sigma).pow(2).sum(-1).mean()
