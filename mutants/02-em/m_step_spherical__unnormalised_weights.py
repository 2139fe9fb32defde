"""Mistake: returns the sums N_k as the weights (the Lagrange multiplier N is forgotten).

grade_id: m_step_spherical
"""
def m_step_spherical(x, resp, reg_covar):
    N, D = x.shape
    nk = resp.sum(0)
    means = resp.T @ x / nk[:, None]
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    return nk, means, (resp * sq).sum(0) / (D * nk) + reg_covar
