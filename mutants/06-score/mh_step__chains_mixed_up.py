"""Mistake: returns the new states in a shuffled order (row n is no longer chain n).

grade_id: mh_step
"""
def mh_step(x, log_target, propose, proposal_log_prob, generator):
    y = propose(x, generator)
    la = log_target(y) - log_target(x) + proposal_log_prob(x, y) - proposal_log_prob(y, x)
    u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
    new = torch.where((torch.log(u) < la)[:, None], y, x)
    return new[torch.randperm(x.shape[0], generator=generator)]
