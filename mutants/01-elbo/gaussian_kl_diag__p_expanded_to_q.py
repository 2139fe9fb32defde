"""Mistake: broadcasts p to q's shape (`expand_as`), as if q always carried the batch; one q against a batch of p fails.

grade_id: gaussian_kl_diag
"""
def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    mean_p, logvar_p = mean_p.expand_as(mean_q), logvar_p.expand_as(logvar_q)   # p broadcast to q's shape
    log_ratio = logvar_q - logvar_p
    mahalanobis = (mean_q - mean_p) ** 2 * torch.exp(-logvar_p)
    return 0.5 * (torch.exp(log_ratio) + mahalanobis - 1.0 - log_ratio).sum(-1)
