"""Mistake: sums the log-scale s over every coordinate, the passive (copied) ones too.

grade_id: affine_coupling_forward
"""
def affine_coupling_forward(x, mask, scale_shift):
    s, t = scale_shift(x * mask)
    y = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return y, s.sum(-1)
