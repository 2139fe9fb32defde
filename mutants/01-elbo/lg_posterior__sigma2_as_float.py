"""Mistake: turns sigma2 into a Python float (`float(sigma2)`): the values are right, the gradient with respect to sigma2 is lost.

grade_id: lg_posterior
"""
def linear_gaussian_posterior(x, W, b, sigma2):
    s2 = float(sigma2)                                  # a plain number is simpler to divide by
    K = W.shape[1]
    precision = torch.eye(K, dtype=W.dtype, device=W.device) + W.T @ W / s2
    cov = torch.linalg.inv(precision)
    mean = (x - b) @ W @ cov / s2
    return mean, cov
