"""Mistake: compares strictly (searchsorted right=True): at u = F(k) exactly it returns k + 1.

grade_id: discrete_inverse_cdf
"""
def discrete_inverse_cdf(u, weights):
    cdf = torch.cumsum(weights / weights.sum(), dim=0)
    return torch.searchsorted(cdf, u.contiguous(), right=True).clamp(max=weights.shape[0] - 1)
