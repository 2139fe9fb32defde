"""Mistake: divides by sigma_t^4 (a "squared norm of Sigma") instead of the variance sigma_t^2.

grade_id: vlb_weights
"""
def vlb_weights(betas, variance):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    if variance == "beta":
        sigma2 = betas
    else:
        abar_prev = torch.cat([torch.ones(1, dtype=betas.dtype), abar[:-1]])
        sigma2 = (1 - abar_prev) / (1 - abar) * betas
        sigma2 = torch.cat([sigma2[1:2], sigma2[1:]]) if len(betas) > 1 else betas.clone()
    return betas**2 / (2 * sigma2**2 * alphas * (1 - abar))
