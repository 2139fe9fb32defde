"""Mistake: expands mean and σ to ε's shape: fails when ε is the smaller operand.

grade_id: reparameterize
"""
def reparameterize(mean, logvar, eps):
    return mean.expand_as(eps) + torch.exp(0.5 * logvar).expand_as(eps) * eps
