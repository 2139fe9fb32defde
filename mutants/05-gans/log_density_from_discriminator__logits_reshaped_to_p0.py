"""Mistake: reshapes the logits to log f0's shape (for a (B, 1) discriminator output) instead of broadcasting the two.

grade_id: log_density_from_discriminator
"""
def log_density_from_discriminator(log_p0, d_logits):
    return log_p0 + d_logits.reshape(log_p0.shape)   # the discriminator gives (B, 1); log f0 is (B,)
