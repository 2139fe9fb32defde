"""Mistake: returns the forward log-determinant +Σ (1 − m) s for the inverse.

grade_id: affine_coupling_inverse
"""
def affine_coupling_inverse(y, mask, scale_shift):
    s, t = scale_shift(y * mask)
    x = mask * y + (1 - mask) * (y - t) * torch.exp(-s)
    return x, ((1 - mask) * s).sum(-1)
