"""Mistake: assumes mean and logvar have the same shape (stacks them), so a shared logvar fails.

grade_id: gaussian_kl
"""
def gaussian_kl(mean, logvar):
    both = torch.stack([mean, logvar])
    m, lv = both[0], both[1]
    return 0.5 * (m ** 2 + torch.exp(lv) - 1.0 - lv).sum(-1)
