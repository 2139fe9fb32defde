"""Mistake: forgets the factor 1/2 in front of the closed form.

grade_id: gaussian_kl_diag
"""
def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    log_ratio = logvar_q - logvar_p
    mahalanobis = (mean_q - mean_p) ** 2 * torch.exp(-logvar_p)
    return (torch.exp(log_ratio) + mahalanobis - 1.0 - log_ratio).sum(-1)
