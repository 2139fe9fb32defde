"""Mistake: forgets to normalise the weights.

grade_id: discrete_inverse_cdf
"""
def discrete_inverse_cdf(u, weights):
    cdf = torch.cumsum(weights, dim=0)
    return torch.searchsorted(cdf, u.contiguous()).clamp(max=weights.shape[0] - 1)
