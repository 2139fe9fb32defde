"""Mistake: computes the log-determinant as log(prod(exp(s))): it overflows when many log-scales add up.

grade_id: affine_coupling_forward
"""
def affine_coupling_forward(x, mask, scale_shift):
    s, t = scale_shift(x * mask)
    y = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return y, torch.log(torch.prod(torch.exp((1 - mask) * s), dim=-1))
