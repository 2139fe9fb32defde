"""Mistake: exponentiates the joint densities and divides (0/0 where every density underflows).

grade_id: gmm_e_step
"""
def gmm_e_step(x, weights, means, variances):
    D = x.shape[1]
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    dens = weights * torch.exp(-0.5 * sq / variances) / (2 * math.pi * variances) ** (D / 2)
    total = dens.sum(1)
    return torch.log(dens / total[:, None]), torch.log(total)
