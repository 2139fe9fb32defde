"""Mistake: turns sigma2 into a Python float (`float(sigma2)`, `math.log`): the ELBO is right, its gradient with respect to sigma2 is lost.

grade_id: lg_elbo
"""
def linear_gaussian_elbo(x, q_mean, q_cov, W, b, sigma2):
    s2 = float(sigma2)
    D, K = W.shape
    residual = x - q_mean @ W.T - b
    trace = torch.einsum("dk,...kl,dl->...", W, q_cov, W)
    expected_log_lik = -0.5 * D * math.log(2 * math.pi * s2) - (residual.pow(2).sum(-1) + trace) / (2 * s2)
    kl_to_prior = 0.5 * (torch.diagonal(q_cov, dim1=-2, dim2=-1).sum(-1) + q_mean.pow(2).sum(-1)
                         - K - torch.logdet(q_cov))
    return expected_log_lik - kl_to_prior
