"""Mistake: feeds the whole x to the conditioner instead of the passive part x ⊙ m (the Jacobian is no longer triangular).

grade_id: affine_coupling_forward
"""
def affine_coupling_forward(x, mask, scale_shift):
    s, t = scale_shift(x)
    y = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return y, ((1 - mask) * s).sum(-1)
