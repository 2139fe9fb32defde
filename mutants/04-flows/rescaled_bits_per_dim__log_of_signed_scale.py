"""Mistake: takes log(a) instead of log|a|: fails for a negative scale.

grade_id: rescaled_bits_per_dim
"""
def rescaled_bits_per_dim(log_prob, num_dims, scale):
    return -(log_prob + num_dims * torch.log(torch.tensor(scale, dtype=log_prob.dtype))) / (num_dims * math.log(2))
