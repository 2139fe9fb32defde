"""Mistake: recovers the noise as (x̃ − x)/σ²: in float32 with data near 1e3 and a small σ it loses its digits.

grade_id: dsm_loss
"""
def dsm_loss(score, x, sigma, eps):
    x_tilde = x + sigma * eps
    return 0.5 * (score(x_tilde) + (x_tilde - x) / sigma ** 2).pow(2).sum(-1).mean()
