"""Mistake: sums over each batch instead of averaging (the batches then weigh by their sizes).

grade_id: gan_losses
"""
def gan_losses(real_logits, fake_logits):
    real, fake = real_logits.reshape(-1), fake_logits.reshape(-1)
    discriminator_loss = F.softplus(-real).sum() + F.softplus(fake).sum()
    generator_loss = F.softplus(-fake).sum()
    return discriminator_loss, generator_loss
