"""Mistake: treats the log-variance arguments as variances (no exp, log taken of them).

grade_id: gaussian_kl_diag
"""
def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    var_q, var_p = logvar_q, logvar_p
    return 0.5 * (var_q / var_p + (mean_q - mean_p) ** 2 / var_p - 1.0
                  - torch.log(var_q / var_p)).sum(-1)
