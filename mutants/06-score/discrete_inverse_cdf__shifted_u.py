"""Mistake: shifts u down by 1e-12 to dodge the ties: a tiny u returns a zero-weight first category.

grade_id: discrete_inverse_cdf
"""
def discrete_inverse_cdf(u, weights):
    cdf = torch.cumsum(weights / weights.sum(), dim=0)
    last = torch.nonzero(weights > 0).max()
    return torch.searchsorted(cdf, (u - 1e-12).contiguous()).clamp(max=last)
