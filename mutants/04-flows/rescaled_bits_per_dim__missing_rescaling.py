"""Mistake: forgets the Jacobian of the rescaling, D log|a|: bits/dim on the rescaled scale.

grade_id: rescaled_bits_per_dim
"""
def rescaled_bits_per_dim(log_prob, num_dims, scale):
    return -log_prob / (num_dims * math.log(2))
