"""Mistake: takes log p(x) as the largest log pi_k N_k (max_z log p(x, z) instead of log sum_z p(x, z)).

grade_id: gmm_e_step
"""
def gmm_e_step(x, weights, means, variances):
    D = x.shape[1]
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    log_joint = torch.log(weights) - 0.5 * D * torch.log(2 * math.pi * variances) - 0.5 * sq / variances
    log_lik = log_joint.max(dim=1).values
    return log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True), log_lik
