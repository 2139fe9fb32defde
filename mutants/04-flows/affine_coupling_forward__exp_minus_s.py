"""Mistake: scales by e^{−s} (the inverse's factor) while keeping log-det +Σ s.

grade_id: affine_coupling_forward
"""
def affine_coupling_forward(x, mask, scale_shift):
    s, t = scale_shift(x * mask)
    y = mask * x + (1 - mask) * (x * torch.exp(-s) + t)
    return y, ((1 - mask) * s).sum(-1)
