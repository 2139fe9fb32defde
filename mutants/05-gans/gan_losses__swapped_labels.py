"""Mistake: D and 1 - D are swapped — data points get log(1 - D), generated points log D.

grade_id: gan_losses
"""
def gan_losses(real_logits, fake_logits):
    real, fake = real_logits.reshape(-1), fake_logits.reshape(-1)
    discriminator_loss = F.softplus(real).mean() + F.softplus(-fake).mean()
    generator_loss = F.softplus(-fake).mean()
    return discriminator_loss, generator_loss
