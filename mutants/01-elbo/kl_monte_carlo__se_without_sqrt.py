"""Mistake: the standard error divides the standard deviation by S instead of sqrt(S).

grade_id: kl_monte_carlo
"""
def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    shape = torch.broadcast_shapes(mean_q.shape, logvar_q.shape)
    eps = torch.randn((num_samples, *shape), generator=generator, dtype=mean_q.dtype, device=mean_q.device)
    z = mean_q + torch.exp(0.5 * logvar_q) * eps
    log_ratio = gaussian_log_prob(z, mean_q, logvar_q) - gaussian_log_prob(z, mean_p, logvar_p)
    return log_ratio.mean(0), log_ratio.std(0) / num_samples
