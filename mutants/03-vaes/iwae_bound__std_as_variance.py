"""Mistake: divides by e^{ℓ/2} in q's exponent (the standard deviation where the variance belongs).

grade_id: iwae_bound
"""
def iwae_bound(log_px_given_z, z, mean, logvar):
    log_2pi = math.log(2 * math.pi)
    log_prior = -0.5 * (z ** 2 + log_2pi).sum(-1)
    log_q = -0.5 * ((z - mean) ** 2 * torch.exp(-0.5 * logvar) + 0.5 * logvar + log_2pi).sum(-1)
    return torch.logsumexp(log_px_given_z + log_prior - log_q, dim=0) - math.log(z.shape[0])
