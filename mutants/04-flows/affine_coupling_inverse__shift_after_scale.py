"""Mistake: inverts in the wrong order: y e^{−s} − t instead of (y − t) e^{−s}.

grade_id: affine_coupling_inverse
"""
def affine_coupling_inverse(y, mask, scale_shift):
    s, t = scale_shift(y * mask)
    x = mask * y + (1 - mask) * (y * torch.exp(-s) - t)
    return x, -((1 - mask) * s).sum(-1)
