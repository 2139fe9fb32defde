"""Mistake: keeps the first columns of torch.linalg.eigh, whose eigenvalues are in ascending order (the smallest).

grade_id: ppca_fit
"""
def ppca_fit(x, latent_dim):
    N = x.shape[0]
    mean = x.mean(0)
    xc = x - mean
    evals, evecs = torch.linalg.eigh(xc.T @ xc / N)
    sigma2 = evals[latent_dim:].mean()
    W = evecs[:, :latent_dim] * torch.sqrt((evals[:latent_dim] - sigma2).clamp(min=0))
    return mean, W, sigma2
