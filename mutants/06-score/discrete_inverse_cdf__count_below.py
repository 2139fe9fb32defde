"""Mistake: counts the k with F(k) <= u (an off-by-one at the steps).

grade_id: discrete_inverse_cdf
"""
def discrete_inverse_cdf(u, weights):
    cdf = torch.cumsum(weights / weights.sum(), dim=0)
    return (cdf <= u[..., None]).sum(-1).clamp(max=weights.shape[0] - 1)
