"""Mistake: forgets the log 2 in JSD = log 2 + (E[log D] + E[log(1 - D)]) / 2.

grade_id: jsd_from_discriminator
"""
def jsd_from_discriminator(real_logits, fake_logits):
    log_d = -F.softplus(-real_logits.reshape(-1))
    log_1m_d = -F.softplus(fake_logits.reshape(-1))
    estimate = 0.5 * (log_d.mean() + log_1m_d.mean())
    se_real = log_d.std() / math.sqrt(log_d.numel())
    se_fake = log_1m_d.std() / math.sqrt(log_1m_d.numel())
    return estimate, 0.5 * torch.sqrt(se_real**2 + se_fake**2)
