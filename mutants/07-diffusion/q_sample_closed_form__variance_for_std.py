"""Mistake: scales the noise by the variance 1 - abar_t instead of the standard deviation sqrt(1 - abar_t).

grade_id: q_sample_closed_form
"""
def q_sample(x0, t, noise, betas):
    abar = torch.cumprod(1 - betas, 0)[t - 1].to(x0.dtype)
    abar = abar.reshape((-1,) + (1,) * (x0.dim() - 1))
    return torch.sqrt(abar) * x0 + (1 - abar) * noise
