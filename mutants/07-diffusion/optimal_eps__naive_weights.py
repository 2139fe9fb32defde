"""Mistake: normalises the Gaussian densities directly instead of in log space; far from the data they underflow to 0/0.

grade_id: optimal_eps
"""
def optimal_eps(xt, t, data, betas):
    B, N = xt.shape[0], data.shape[0]
    x, d = xt.reshape(B, -1), data.reshape(N, -1)
    abar = torch.cumprod(1 - betas, 0)[t - 1].to(xt.dtype)[:, None]
    sq_dist = (x[:, None, :] - torch.sqrt(abar)[:, :, None] * d[None]).pow(2).sum(-1)
    dens = torch.exp(-sq_dist / (2 * (1 - abar)))
    w = dens / dens.sum(1, keepdim=True)
    eps = (x - torch.sqrt(abar) * (w @ d)) / torch.sqrt(1 - abar)
    return eps.reshape(xt.shape)
