"""Mistake: the posterior precision forgets the prior's identity: inverts W^T W / sigma2 alone.

grade_id: lg_posterior
"""
def linear_gaussian_posterior(x, W, b, sigma2):
    cov = torch.linalg.inv(W.T @ W / sigma2)
    mean = (x - b) @ W @ cov / sigma2
    return mean, cov
