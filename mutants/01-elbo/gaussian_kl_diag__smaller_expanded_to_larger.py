"""Mistake: expands the parameters with fewer dimensions to the other's shape instead of broadcasting both; q (3, 1, D) against p (4, D) fails.

grade_id: gaussian_kl_diag
"""
def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    if mean_p.dim() <= mean_q.dim():                      # p is the "smaller" one: bring it to q's shape
        mean_p, logvar_p = mean_p.expand_as(mean_q), logvar_p.expand_as(mean_q)
    else:                                                 # otherwise bring q to p's shape
        mean_q, logvar_q = mean_q.expand_as(mean_p), logvar_q.expand_as(mean_p)
    log_ratio = logvar_q - logvar_p
    mahalanobis = (mean_q - mean_p) ** 2 * torch.exp(-logvar_p)
    return 0.5 * (torch.exp(log_ratio) + mahalanobis - 1.0 - log_ratio).sum(-1)
