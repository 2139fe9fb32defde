"""Mistake: forgets the mixture weights (the prior p(z = k)); uses only the likelihoods.

grade_id: mixture_responsibilities
"""
def mixture_responsibilities(x, weights, means, logvars):
    log_lik = gaussian_log_prob(x.unsqueeze(-2), means, logvars)
    return torch.softmax(log_lik, dim=-1)
