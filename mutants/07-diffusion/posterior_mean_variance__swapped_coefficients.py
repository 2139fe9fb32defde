"""Mistake: swaps the coefficients of x_0 and x_t in the posterior mean.

grade_id: posterior_mean_variance
"""
def posterior_mean_variance(x0, xt, t, betas):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=betas.dtype, device=betas.device), abar[:-1]])
    shape = (-1,) + (1,) * (x0.dim() - 1)
    a, b, ab, ab_prev = (v[t - 1].to(x0.dtype).reshape(shape) for v in (alphas, betas, abar, abar_prev))
    mean = torch.sqrt(ab_prev) * b / (1 - ab) * xt + torch.sqrt(a) * (1 - ab_prev) / (1 - ab) * x0
    variance = ((1 - ab_prev) / (1 - ab) * b).expand(x0.shape)
    return mean, variance
