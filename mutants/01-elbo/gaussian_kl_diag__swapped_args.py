"""Mistake: computes KL(p || q) instead of KL(q || p) — the roles of q and p are swapped.

grade_id: gaussian_kl_diag
"""
def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    log_ratio = logvar_p - logvar_q
    mahalanobis = (mean_p - mean_q) ** 2 * torch.exp(-logvar_q)
    return 0.5 * (torch.exp(log_ratio) + mahalanobis - 1.0 - log_ratio).sum(-1)
