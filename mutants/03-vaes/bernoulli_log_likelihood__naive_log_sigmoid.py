"""Mistake: takes log(sigmoid(a)) directly: −inf for large |a|.

grade_id: bernoulli_log_likelihood
"""
def bernoulli_log_likelihood(x, logits):
    p = torch.sigmoid(logits)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)
