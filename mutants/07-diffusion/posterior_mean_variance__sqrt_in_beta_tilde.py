"""Mistake: the posterior variance with square roots on abar, (1 - sqrt(abar_(t-1))) / (1 - sqrt(abar_t)) * beta_t.

grade_id: posterior_mean_variance
"""
def posterior_mean_variance(x0, xt, t, betas):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=betas.dtype, device=betas.device), abar[:-1]])
    shape = (-1,) + (1,) * (x0.dim() - 1)
    a, b, ab, ab_prev = (v[t - 1].to(x0.dtype).reshape(shape) for v in (alphas, betas, abar, abar_prev))
    mean = torch.sqrt(ab_prev) * b / (1 - ab) * x0 + torch.sqrt(a) * (1 - ab_prev) / (1 - ab) * xt
    variance = ((1 - torch.sqrt(ab_prev)) / (1 - torch.sqrt(ab)) * b).expand(x0.shape)
    return mean, variance
