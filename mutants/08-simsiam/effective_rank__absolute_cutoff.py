"""Mistake: drops the singular values below 1e-6 (an absolute cut-off): the rank then depends on the scale of
Z, and small but real directions vanish.

grade_id: effective_rank
"""
def effective_rank(Z):
    s = torch.linalg.svdvals(Z)
    s = s[s > 1e-6]
    p = s / s.sum()
    return torch.exp(-torch.special.xlogy(p, p).sum())
