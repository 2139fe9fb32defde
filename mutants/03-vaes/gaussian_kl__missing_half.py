"""Mistake: forgets the ½: the KL doubled (as if the KL weight were 2).

grade_id: gaussian_kl
"""
def gaussian_kl(mean, logvar):
    return (mean ** 2 + torch.exp(logvar) - 1.0 - logvar).sum(-1)
