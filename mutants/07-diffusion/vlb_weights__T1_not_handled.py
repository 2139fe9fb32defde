"""Mistake: replaces beta~_1 by beta~_2 without the case T = 1 that the task defines (use beta_1 there): with one step the weights come out empty.

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
        sigma2 = torch.cat([sigma2[1:2], sigma2[1:]])            # beta~_1 = 0 -> beta~_2
    return betas**2 / (2 * sigma2 * alphas * (1 - abar))
