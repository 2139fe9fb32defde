"""Mistake: uses (1 - D) / D, i.e. the labels of f0 and f1 swapped (gives f0²/f1).

grade_id: log_density_from_discriminator
"""
def log_density_from_discriminator(log_p0, d_logits):
    return log_p0 - d_logits
