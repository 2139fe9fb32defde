"""Mistake: accepts with Barker's probability r/(1 + r): a valid kernel for p, but not the Metropolis–Hastings rule.

grade_id: mh_step
"""
def mh_step(x, log_target, propose, proposal_log_prob, generator):
    y = propose(x, generator)
    la = log_target(y) - log_target(x) + proposal_log_prob(x, y) - proposal_log_prob(y, x)
    u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
    return torch.where((u < torch.sigmoid(la))[:, None], y, x)
