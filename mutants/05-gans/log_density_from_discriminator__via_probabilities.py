"""Mistake: forms D = sigmoid(a) and takes log(D / (1 - D)), infinite for confident discriminators.

grade_id: log_density_from_discriminator
"""
def log_density_from_discriminator(log_p0, d_logits):
    d = torch.sigmoid(d_logits)
    return log_p0 + torch.log(d / (1 - d))
