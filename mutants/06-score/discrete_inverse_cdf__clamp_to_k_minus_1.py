"""Mistake: clamps to K − 1, which returns a zero-weight last category at u = 1 when the CDF rounds below 1.

grade_id: discrete_inverse_cdf
"""
def discrete_inverse_cdf(u, weights):
    cdf = torch.cumsum(weights / weights.sum(), dim=0)
    return torch.searchsorted(cdf, u.contiguous()).clamp(max=weights.shape[0] - 1)
