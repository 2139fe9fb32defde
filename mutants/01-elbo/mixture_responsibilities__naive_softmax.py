"""Mistake: normalises exp(log-joint) directly instead of in log space; for a point far from every
component all the exponentials underflow to 0 and the result is 0/0 = NaN.

grade_id: mixture_responsibilities
"""
def mixture_responsibilities(x, weights, means, logvars):
    joint = weights * torch.exp(gaussian_log_prob(x.unsqueeze(-2), means, logvars))
    return joint / joint.sum(-1, keepdim=True)
