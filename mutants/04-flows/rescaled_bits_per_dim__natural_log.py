"""Mistake: divides by D but stays in nats (no ln 2).

grade_id: rescaled_bits_per_dim
"""
def rescaled_bits_per_dim(log_prob, num_dims, scale):
    return -(log_prob + num_dims * math.log(abs(scale))) / num_dims
