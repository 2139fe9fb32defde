"""Mistake: the Gaussian log-densities are detached (``.detach()`` to "save memory"); the values are
right, but the responsibilities no longer depend differentiably on x, the means or the
log-variances. The gradient of their sum is 0 either way (each row sums to 1), so only a weighted
gradient check sees it.

grade_id: mixture_responsibilities
"""
def mixture_responsibilities(x, weights, means, logvars):
    log_joint = torch.log(weights) + gaussian_log_prob(x.unsqueeze(-2), means, logvars).detach()
    return torch.exp(log_joint - torch.logsumexp(log_joint, -1, keepdim=True))
