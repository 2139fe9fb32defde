"""Mistake: W = U_K Lambda_K^(1/2), without subtracting sigma^2 from the kept eigenvalues.

grade_id: ppca_fit
"""
def ppca_fit(x, latent_dim):
    N = x.shape[0]
    mean = x.mean(0)
    xc = x - mean
    evals, evecs = torch.linalg.eigh(xc.T @ xc / N)
    evals, evecs = evals.flip(0), evecs.flip(1)
    return mean, evecs[:, :latent_dim] * torch.sqrt(evals[:latent_dim]), evals[latent_dim:].mean()
