"""Mistake: accepts with min(1, p(y)/p(x)) only: the drifting proposal drags the chains.

grade_id: mh_step
"""
def mh_step(x, log_target, propose, proposal_log_prob, generator):
    y = propose(x, generator)
    u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
    return torch.where((torch.log(u) < log_target(y) - log_target(x))[:, None], y, x)
