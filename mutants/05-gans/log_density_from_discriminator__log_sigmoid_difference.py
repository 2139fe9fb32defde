"""Mistake: log(D / (1 - D)) as log(sigmoid(a)) - log(sigmoid(-a)); fine up to |a| of about 700 (float64) or 100 (float32), -inf/inf beyond.

grade_id: log_density_from_discriminator
"""
def log_density_from_discriminator(log_p0, d_logits):
    return log_p0 + torch.log(torch.sigmoid(d_logits)) - torch.log(torch.sigmoid(-d_logits))
