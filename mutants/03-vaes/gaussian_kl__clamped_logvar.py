"""Mistake: clamps the log-variance to (−690, 700) 'for stability': wrong value and zero gradient below −690.

grade_id: gaussian_kl
"""
def gaussian_kl(mean, logvar):
    lv = logvar.clamp(-690.0, 700.0)
    return 0.5 * (mean ** 2 + torch.exp(lv) - 1.0 - lv).sum(-1)
