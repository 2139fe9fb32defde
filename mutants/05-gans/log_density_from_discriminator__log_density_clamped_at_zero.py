"""Mistake: clamps log f0 at 0, as if a density could not exceed 1 (it can: log f0 > 0 is valid).

grade_id: log_density_from_discriminator
"""
def log_density_from_discriminator(log_p0, d_logits):
    return log_p0.clamp(max=0.0) + d_logits   # "a density is at most 1"
