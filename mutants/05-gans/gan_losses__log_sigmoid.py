"""Mistake: computes log D as torch.log(torch.sigmoid(a)), which is -inf for very negative logits.

grade_id: gan_losses
"""
def gan_losses(real_logits, fake_logits):
    real, fake = real_logits.reshape(-1), fake_logits.reshape(-1)
    discriminator_loss = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    generator_loss = -torch.log(torch.sigmoid(fake)).mean()
    return discriminator_loss, generator_loss
