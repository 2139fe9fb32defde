"""Mistake: undoes the scale by multiplying by e^{s} instead of e^{−s}.

grade_id: affine_coupling_inverse
"""
def affine_coupling_inverse(y, mask, scale_shift):
    s, t = scale_shift(y * mask)
    x = mask * y + (1 - mask) * (y - t) * torch.exp(s)
    return x, -((1 - mask) * s).sum(-1)
