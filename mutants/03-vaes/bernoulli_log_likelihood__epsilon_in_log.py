"""Mistake: adds 1e-7 inside the logs to avoid log 0: finite but wrong for large |a|.

grade_id: bernoulli_log_likelihood
"""
def bernoulli_log_likelihood(x, logits):
    p = torch.sigmoid(logits)
    return (x * torch.log(p + 1e-7) + (1 - x) * torch.log(1 - p + 1e-7)).sum(-1)
