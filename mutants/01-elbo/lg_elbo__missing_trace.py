"""Mistake: E_q[log p(x|z)] evaluated at the mean of q only — the trace term tr(W S W^T) is missing.

grade_id: lg_elbo
"""
def linear_gaussian_elbo(x, q_mean, q_cov, W, b, sigma2):
    D, K = W.shape
    residual = x - q_mean @ W.T - b
    expected_log_lik = -0.5 * D * torch.log(2 * math.pi * sigma2) - residual.pow(2).sum(-1) / (2 * sigma2)
    kl_to_prior = 0.5 * (torch.diagonal(q_cov, dim1=-2, dim2=-1).sum(-1) + q_mean.pow(2).sum(-1)
                         - K - torch.logdet(q_cov))
    return expected_log_lik - kl_to_prior
