"""Mistake: computes the standard error from detached values ("it is only for reporting"): its value is right, its gradient is lost.

grade_id: jsd_from_discriminator
"""
def jsd_from_discriminator(real_logits, fake_logits):
    log_d = -F.softplus(-real_logits.reshape(-1))
    log_1m_d = -F.softplus(fake_logits.reshape(-1))
    estimate = math.log(2.0) + 0.5 * (log_d.mean() + log_1m_d.mean())
    with torch.no_grad():
        se_real = log_d.std() / math.sqrt(log_d.numel())
        se_fake = log_1m_d.std() / math.sqrt(log_1m_d.numel())
        standard_error = 0.5 * torch.sqrt(se_real**2 + se_fake**2)
    return estimate, standard_error
