"""Mistake: computes p·log p directly: NaN (0·log 0) when a singular value is exactly 0.

grade_id: effective_rank
"""
def effective_rank(Z):
    s = torch.linalg.svdvals(Z)
    p = s / s.sum()
    return torch.exp(-(p * torch.log(p)).sum())
