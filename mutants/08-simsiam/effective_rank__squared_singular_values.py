"""Mistake: normalises the eigenvalues of ZᵀZ (squared singular values) instead of the singular values.

grade_id: effective_rank
"""
def effective_rank(Z):
    s = torch.linalg.svdvals(Z) ** 2
    p = s / s.sum()
    return torch.exp(-torch.special.xlogy(p, p).sum())
