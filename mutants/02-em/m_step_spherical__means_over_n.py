"""Mistake: the M-step divides the means by N instead of by the responsibilities' sum N_k.

grade_id: m_step_spherical
"""
def m_step_spherical(x, resp, reg_covar):
    N, D = x.shape
    nk = resp.sum(0)
    means = resp.T @ x / N
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    return nk / N, means, (resp * sq).sum(0) / (D * nk) + reg_covar
