"""Mistake: the spherical variance misses the 1/D (sums the D coordinates' variances).

grade_id: m_step_spherical
"""
def m_step_spherical(x, resp, reg_covar):
    N, D = x.shape
    nk = resp.sum(0)
    means = resp.T @ x / nk[:, None]
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    return nk / N, means, (resp * sq).sum(0) / nk + reg_covar
