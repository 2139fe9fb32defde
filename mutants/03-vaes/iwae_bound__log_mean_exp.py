"""Mistake: computes log(mean(exp(log w))): underflows to −inf for log-weights near −1000.

grade_id: iwae_bound
"""
def iwae_bound(log_px_given_z, z, mean, logvar):
    log_2pi = math.log(2 * math.pi)
    log_prior = -0.5 * (z ** 2 + log_2pi).sum(-1)
    log_q = -0.5 * ((z - mean) ** 2 * torch.exp(-logvar) + logvar + log_2pi).sum(-1)
    return torch.log(torch.exp(log_px_given_z + log_prior - log_q).mean(0))
