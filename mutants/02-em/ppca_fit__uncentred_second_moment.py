"""Mistake: forms the covariance as E[x x^T] - mean mean^T, which cancels catastrophically far from the origin.

grade_id: ppca_fit
"""
def ppca_fit(x, latent_dim):
    N = x.shape[0]
    mean = x.mean(0)
    cov = x.T @ x / N - mean[:, None] * mean[None, :]
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    sigma2 = evals[latent_dim:].mean()
    return mean, evecs[:, :latent_dim] * torch.sqrt((evals[:latent_dim] - sigma2).clamp(min=0)), sigma2
