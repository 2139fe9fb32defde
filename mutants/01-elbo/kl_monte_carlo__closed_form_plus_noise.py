"""Mistake: returns the exact KL plus one seeded normal draw times the exact standard error — no sampling of z at all.

It is unbiased, seed-dependent and reproducible, with the right standard error, so only replaying the
task's sampling (the same generator, the same eps) shows that it is not the Monte Carlo estimate.

grade_id: kl_monte_carlo
"""
def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    var_q, var_p = torch.exp(logvar_q), torch.exp(logvar_p)
    diff = mean_q - mean_p
    exact = 0.5 * (logvar_p - logvar_q + (var_q + diff**2) / var_p - 1).sum(-1)
    # log q - log p per dimension is a (eps² - 1) / 2 + b eps + const with eps ~ N(0, 1)
    a = var_q / var_p - 1
    b = diff * torch.exp(0.5 * logvar_q) / var_p
    sd = torch.sqrt((0.5 * a**2 + b**2).sum(-1))
    standard_error = sd / math.sqrt(num_samples)
    noise = torch.randn(exact.shape, generator=generator, dtype=exact.dtype, device=exact.device)
    return exact + standard_error * noise, standard_error
