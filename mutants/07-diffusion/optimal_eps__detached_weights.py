"""Mistake: computes the posterior weights under torch.no_grad(), as constants: eps* is right, its gradient with respect to xt and the data is not.

grade_id: optimal_eps
"""
def optimal_eps(xt, t, data, betas):
    B, N = xt.shape[0], data.shape[0]
    x, d = xt.reshape(B, -1), data.reshape(N, -1)
    abar = torch.cumprod(1 - betas, 0)[t - 1].to(xt.dtype)[:, None]
    with torch.no_grad():                                        # the weights are "just a softmax"
        sq_dist = (x[:, None, :] - torch.sqrt(abar)[:, :, None] * d[None]).pow(2).sum(-1)
        w = torch.softmax(-sq_dist / (2 * (1 - abar)), dim=1)
    eps = (x - torch.sqrt(abar) * (w @ d)) / torch.sqrt(1 - abar)
    return eps.reshape(xt.shape)
