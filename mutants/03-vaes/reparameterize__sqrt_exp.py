"""Mistake: computes σ as sqrt(exp(ℓ)), which overflows where e^{ℓ/2} does not.

grade_id: reparameterize
"""
def reparameterize(mean, logvar, eps):
    return mean + torch.sqrt(torch.exp(logvar)) * eps
