"""Mistake: copies Task 4's replacement of beta~_1 by beta~_2 without its T = 1 case: with a single step the variances are empty and the step fails.

grade_id: p_sample_step
"""
def p_sample_step(eps_model, xt, t, betas, noise, variance):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=betas.dtype, device=betas.device), abar[:-1]])
    beta_tilde = (1 - abar_prev) / (1 - abar) * betas
    beta_tilde = torch.cat([beta_tilde[1:2], beta_tilde[1:]])     # beta~_1 = 0 -> beta~_2
    sigma2_all = betas if variance == "beta" else beta_tilde
    shape = (-1,) + (1,) * (xt.dim() - 1)
    a, b, ab, sigma2 = (v[t - 1].to(xt.dtype).reshape(shape) for v in (alphas, betas, abar, sigma2_all))
    mean = (xt - b / torch.sqrt(1 - ab) * eps_model(xt, t)) / torch.sqrt(a)
    keep = (t > 1).to(xt.dtype).reshape(shape)
    return mean + keep * torch.sqrt(sigma2) * noise
