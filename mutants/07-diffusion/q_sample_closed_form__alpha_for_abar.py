"""Mistake: uses alpha_t (one step) where abar_t (the cumulative product) belongs.

grade_id: q_sample_closed_form
"""
def q_sample(x0, t, noise, betas):
    alpha = (1 - betas)[t - 1].to(x0.dtype)
    alpha = alpha.reshape((-1,) + (1,) * (x0.dim() - 1))
    return torch.sqrt(alpha) * x0 + torch.sqrt(1 - alpha) * noise
