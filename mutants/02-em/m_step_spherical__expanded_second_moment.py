"""Mistake: computes the variance as E_r[x^2] - mu^2, which cancels catastrophically far from the origin.

grade_id: m_step_spherical
"""
def m_step_spherical(x, resp, reg_covar):
    N, D = x.shape
    nk = resp.sum(0)
    means = resp.T @ x / nk[:, None]
    second = (resp.T @ (x * x)).sum(1) / nk
    return nk / N, means, (second - (means * means).sum(1)) / D + reg_covar
