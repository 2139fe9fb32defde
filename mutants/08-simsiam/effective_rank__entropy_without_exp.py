"""Mistake: returns the entropy of the normalised singular values, not its exp.

grade_id: effective_rank
"""
def effective_rank(Z):
    s = torch.linalg.svdvals(Z)
    p = s / s.sum()
    return -torch.special.xlogy(p, p).sum()
