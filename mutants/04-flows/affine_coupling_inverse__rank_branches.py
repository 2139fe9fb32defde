"""Mistake: sums the log-scales over dim 0, 1 or 2 by the input's rank: wrong for a 4-d batch.

grade_id: affine_coupling_inverse
"""
def affine_coupling_inverse(y, mask, scale_shift):
    s, t = scale_shift(y * mask)
    x = mask * y + (1 - mask) * (y - t) * torch.exp(-s)
    a = (1 - mask) * s
    return x, -(a.sum(dim=0) if y.dim() == 1 else (a.sum(dim=1) if y.dim() == 2 else a.sum(dim=2)))
