"""Mistake: sigma^2 is the sum of the discarded eigenvalues instead of their mean.

grade_id: ppca_fit
"""
def ppca_fit(x, latent_dim):
    N = x.shape[0]
    mean = x.mean(0)
    xc = x - mean
    evals, evecs = torch.linalg.eigh(xc.T @ xc / N)
    evals, evecs = evals.flip(0), evecs.flip(1)
    sigma2 = evals[latent_dim:].sum()
    return mean, evecs[:, :latent_dim] * torch.sqrt((evals[:latent_dim] - sigma2).clamp(min=0)), sigma2
