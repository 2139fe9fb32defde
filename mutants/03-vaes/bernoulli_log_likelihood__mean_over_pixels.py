"""Mistake: averages over pixels (F.binary_cross_entropy's default reduction style) instead of summing.

grade_id: bernoulli_log_likelihood
"""
def bernoulli_log_likelihood(x, logits):
    return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).mean(-1)
