"""Mistake: subtracts D log|a| instead of adding it (the Jacobian of the inverse map).

grade_id: rescaled_bits_per_dim
"""
def rescaled_bits_per_dim(log_prob, num_dims, scale):
    return -(log_prob - num_dims * math.log(abs(scale))) / (num_dims * math.log(2))
