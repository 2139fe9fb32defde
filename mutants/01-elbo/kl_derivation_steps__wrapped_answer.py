"""Mistake: no derivation — the known result wrapped in an integral of q (∫ q·RESULT dz = RESULT since ∫ q = 1) serves as the "intermediate step".

grade_id: kl_derivation_steps
"""
z, mu_q, mu_p, sigma_q, sigma_p = kl_symbols()
q = sp.exp(-(z - mu_q) ** 2 / (2 * sigma_q ** 2)) / sp.sqrt(2 * sp.pi * sigma_q ** 2)   # the density of q

RESULT = sp.log(sigma_p / sigma_q) + (sigma_q ** 2 + (mu_q - mu_p) ** 2) / (2 * sigma_p ** 2) - sp.Rational(1, 2)
KL_STEPS = [
    kl_derivation_start(),
    sp.Integral(q * RESULT, (z, -sp.oo, sp.oo)),
    RESULT,
]
derivation_report(KL_STEPS)
