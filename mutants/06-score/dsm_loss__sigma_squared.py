"""Mistake: divides ε by σ² instead of σ.

grade_id: dsm_loss
"""
def dsm_loss(score, x, sigma, eps):
    return 0.5 * (score(x + sigma * eps) + eps / sigma ** 2).pow(2).sum(-1).mean()
