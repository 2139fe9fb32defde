"""Mistake: puts the proposal correction upside down: q(y | x) / q(x | y).

grade_id: mh_log_acceptance
"""
def mh_log_acceptance(log_p_x, log_p_y, log_q_y_given_x, log_q_x_given_y):
    return torch.clamp(log_p_y - log_p_x + log_q_y_given_x - log_q_x_given_y, max=0.0)
