"""Mistake: averages the squared residual over coordinates instead of summing.

grade_id: dsm_loss
"""
def dsm_loss(score, x, sigma, eps):
    return 0.5 * (score(x + sigma * eps) + eps / sigma).pow(2).mean()
