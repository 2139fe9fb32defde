"""Mistake: D* = p_G / (p_data + p_G) — the densities swapped (this is 1 - D*).

grade_id: optimal_discriminator
"""
def optimal_discriminator(log_p_data, log_p_model):
    return torch.sigmoid(log_p_model - log_p_data)
