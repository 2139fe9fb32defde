"""Mistake: writes the model mean with sqrt(1 - alpha_t) where sqrt(1 - abar_t) belongs (a slip of a common problem set).

grade_id: p_sample_step
"""
def p_sample_step(eps_model, xt, t, betas, noise, variance):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=betas.dtype, device=betas.device), abar[:-1]])
    beta_tilde = (1 - abar_prev) / (1 - abar) * betas
    sigma2_all = betas if variance == "beta" else beta_tilde
    shape = (-1,) + (1,) * (xt.dim() - 1)
    a, b, sigma2 = (v[t - 1].to(xt.dtype).reshape(shape) for v in (alphas, betas, sigma2_all))
    mean = (xt - b / torch.sqrt(1 - a) * eps_model(xt, t)) / torch.sqrt(a)
    keep = (t > 1).to(xt.dtype).reshape(shape)
    return mean + keep * torch.sqrt(sigma2) * noise
