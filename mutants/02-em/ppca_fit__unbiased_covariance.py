"""Mistake: the covariance divides by N - 1 (torch.cov's default); maximum likelihood divides by N.

grade_id: ppca_fit
"""
def ppca_fit(x, latent_dim):
    mean = x.mean(0)
    evals, evecs = torch.linalg.eigh(torch.cov(x.T))
    evals, evecs = evals.flip(0), evecs.flip(1)
    sigma2 = evals[latent_dim:].mean()
    return mean, evecs[:, :latent_dim] * torch.sqrt(evals[:latent_dim] - sigma2), sigma2
