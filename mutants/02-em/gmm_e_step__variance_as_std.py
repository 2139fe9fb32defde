"""Mistake: treats the variances as standard deviations and squares them again.

grade_id: gmm_e_step
"""
def gmm_e_step(x, weights, means, variances):
    D = x.shape[1]
    var = variances ** 2
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    log_joint = torch.log(weights) - 0.5 * D * torch.log(2 * math.pi * var) - 0.5 * sq / var
    log_lik = torch.logsumexp(log_joint, dim=1)
    return log_joint - log_lik[:, None], log_lik
