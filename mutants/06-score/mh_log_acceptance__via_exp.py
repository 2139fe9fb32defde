"""Mistake: computes the ratio with exp and takes the log of the min: overflows to inf/NaN for large log-densities.

grade_id: mh_log_acceptance
"""
def mh_log_acceptance(log_p_x, log_p_y, log_q_y_given_x, log_q_x_given_y):
    ratio = torch.exp(log_p_y + log_q_x_given_y) / torch.exp(log_p_x + log_q_y_given_x)
    return torch.log(torch.clamp(ratio, max=1.0))
