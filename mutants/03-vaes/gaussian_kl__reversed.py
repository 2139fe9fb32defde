"""Mistake: computes KL(p ‖ q), the other direction.

grade_id: gaussian_kl
"""
def gaussian_kl(mean, logvar):
    return 0.5 * (logvar + (1 + mean ** 2) * torch.exp(-logvar) - 1.0).sum(-1)
