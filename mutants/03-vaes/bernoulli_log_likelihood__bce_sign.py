"""Mistake: returns the binary cross-entropy loss, −log p(x | z).

grade_id: bernoulli_log_likelihood
"""
def bernoulli_log_likelihood(x, logits):
    return F.binary_cross_entropy_with_logits(logits, x.expand_as(logits) if x.dim() < logits.dim() else x,
                                              reduction="none").sum(-1)
