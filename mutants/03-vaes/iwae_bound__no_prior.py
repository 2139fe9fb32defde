"""Mistake: leaves the prior out of the weights (w = p(x | z) / q(z | x)).

grade_id: iwae_bound
"""
def iwae_bound(log_px_given_z, z, mean, logvar):
    log_q = -0.5 * ((z - mean) ** 2 * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)
    return torch.logsumexp(log_px_given_z - log_q, dim=0) - math.log(z.shape[0])
