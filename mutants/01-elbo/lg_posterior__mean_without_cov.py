"""Mistake: the posterior mean is W^T (x - b) / sigma2, without multiplying by the covariance.

grade_id: lg_posterior
"""
def linear_gaussian_posterior(x, W, b, sigma2):
    K = W.shape[1]
    cov = torch.linalg.inv(torch.eye(K, dtype=W.dtype, device=W.device) + W.T @ W / sigma2)
    mean = (x - b) @ W / sigma2
    return mean, cov
