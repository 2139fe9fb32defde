"""Mistake: switches to the stable formula only when the whole batch is far in the tails; a batch mixing tail points with ordinary ones gets the naive ratio (0/0 in the tails).

grade_id: optimal_discriminator
"""
def optimal_discriminator(log_p_data, log_p_model):
    if bool((torch.maximum(log_p_data, log_p_model) < -300).all()):   # far in the tails: use the difference
        return torch.sigmoid(log_p_data - log_p_model)
    p_data, p_model = torch.exp(log_p_data), torch.exp(log_p_model)
    return p_data / (p_data + p_model)
