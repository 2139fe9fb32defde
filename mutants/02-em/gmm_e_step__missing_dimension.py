"""Mistake: the normaliser is -1/2 log(2 pi sigma^2) instead of -D/2 log(2 pi sigma^2).

grade_id: gmm_e_step
"""
def gmm_e_step(x, weights, means, variances):
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    log_joint = torch.log(weights) - 0.5 * torch.log(2 * math.pi * variances) - 0.5 * sq / variances
    log_lik = torch.logsumexp(log_joint, dim=1)
    return log_joint - log_lik[:, None], log_lik
