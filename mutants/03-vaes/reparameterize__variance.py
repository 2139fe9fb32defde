"""Mistake: multiplies ε by the variance e^ℓ instead of the standard deviation.

grade_id: reparameterize
"""
def reparameterize(mean, logvar, eps):
    return mean + torch.exp(logvar) * eps
