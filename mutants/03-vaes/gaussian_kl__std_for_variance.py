"""Mistake: uses the standard deviation e^{ℓ/2} where the variance e^ℓ belongs.

grade_id: gaussian_kl
"""
def gaussian_kl(mean, logvar):
    return 0.5 * (mean ** 2 + torch.exp(0.5 * logvar) - 1.0 - logvar).sum(-1)
