"""Mistake: expands ||x - mu||^2 = ||x||^2 - 2 x.mu + ||mu||^2, whose rounding a tiny variance amplifies.

grade_id: gmm_e_step
"""
def gmm_e_step(x, weights, means, variances):
    D = x.shape[1]
    sq = (x * x).sum(1, keepdim=True) - 2 * x @ means.T + (means * means).sum(1)
    log_joint = torch.log(weights) - 0.5 * D * torch.log(2 * math.pi * variances) - 0.5 * sq / variances
    log_lik = torch.logsumexp(log_joint, dim=1)
    return log_joint - log_lik[:, None], log_lik
