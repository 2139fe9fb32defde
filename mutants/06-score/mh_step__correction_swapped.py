"""Mistake: swaps the arguments of proposal_log_prob: the correction is upside down.

grade_id: mh_step
"""
def mh_step(x, log_target, propose, proposal_log_prob, generator):
    y = propose(x, generator)
    la = log_target(y) - log_target(x) + proposal_log_prob(y, x) - proposal_log_prob(x, y)
    u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
    return torch.where((torch.log(u) < la)[:, None], y, x)
