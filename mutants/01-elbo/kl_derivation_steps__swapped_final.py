"""Mistake: the last step is KL(p || q) — the arguments of the final closed form are swapped.

grade_id: kl_derivation_steps
"""
z, mu_q, mu_p, sigma_q, sigma_p = kl_symbols()
q = sp.exp(-(z - mu_q) ** 2 / (2 * sigma_q ** 2)) / sp.sqrt(2 * sp.pi * sigma_q ** 2)   # the density of q

KL_STEPS = [
    kl_derivation_start(),
    sp.Integral(q * (sp.log(sigma_p / sigma_q) - (z - mu_q) ** 2 / (2 * sigma_q ** 2)
                     + (z - mu_p) ** 2 / (2 * sigma_p ** 2)), (z, -sp.oo, sp.oo)),
    sp.log(sigma_p / sigma_q) - sp.Rational(1, 2)
    + sp.Integral(q * (z - mu_p) ** 2, (z, -sp.oo, sp.oo)) / (2 * sigma_p ** 2),
    sp.log(sigma_q / sigma_p) + (sigma_p ** 2 + (mu_p - mu_q) ** 2) / (2 * sigma_q ** 2) - sp.Rational(1, 2),
]
derivation_report(KL_STEPS)
