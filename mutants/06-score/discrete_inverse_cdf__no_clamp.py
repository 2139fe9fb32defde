"""Mistake: does not clamp: u = 1 past a CDF that rounds below 1 gives the index K.

grade_id: discrete_inverse_cdf
"""
def discrete_inverse_cdf(u, weights):
    cdf = torch.cumsum(weights / weights.sum(), dim=0)
    return torch.searchsorted(cdf, u.contiguous())
