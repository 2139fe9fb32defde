"""Mistake: multiplies the squared residual by the noise variance sigma2 instead of dividing by it.

grade_id: lg_elbo
"""
def linear_gaussian_elbo(x, q_mean, q_cov, W, b, sigma2):
    D, K = W.shape
    residual = x - q_mean @ W.T - b
    trace = torch.einsum("dk,...kl,dl->...", W, q_cov, W)
    expected_log_lik = -0.5 * D * torch.log(2 * math.pi * sigma2) - (residual.pow(2).sum(-1) + trace) * sigma2 / 2
    kl_to_prior = 0.5 * (torch.diagonal(q_cov, dim1=-2, dim2=-1).sum(-1) + q_mean.pow(2).sum(-1)
                         - K - torch.logdet(q_cov))
    return expected_log_lik - kl_to_prior
