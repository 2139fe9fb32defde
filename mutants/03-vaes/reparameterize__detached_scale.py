"""Mistake: detaches the scale (treats σ as a constant): no gradient reaches logvar.

grade_id: reparameterize
"""
def reparameterize(mean, logvar, eps):
    return mean + torch.exp(0.5 * logvar).detach() * eps
