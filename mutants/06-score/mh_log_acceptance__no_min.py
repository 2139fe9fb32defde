"""Mistake: forgets the min with 1: log α can exceed 0.

grade_id: mh_log_acceptance
"""
def mh_log_acceptance(log_p_x, log_p_y, log_q_y_given_x, log_q_x_given_y):
    return log_p_y - log_p_x + log_q_x_given_y - log_q_y_given_x
