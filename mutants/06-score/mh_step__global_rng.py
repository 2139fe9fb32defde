"""Mistake: draws the uniforms from torch's global generator: not reproducible from the seed.

grade_id: mh_step
"""
def mh_step(x, log_target, propose, proposal_log_prob, generator):
    y = propose(x, generator)
    la = log_target(y) - log_target(x) + proposal_log_prob(x, y) - proposal_log_prob(y, x)
    u = torch.rand(x.shape[0], dtype=x.dtype)
    return torch.where((torch.log(u) < la)[:, None], y, x)
