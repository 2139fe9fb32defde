"""Mistake: types π as 3.1415927 instead of sp.pi (within the numerical tolerance, but not the exact derivation).

grade_id: lognormal_derivation_steps
"""
x, mu, sigma = lognormal_symbols()
L = sp.log(x)
LOGNORMAL_STEPS = [
    lognormal_derivation_start(),
    sp.exp(-((L - mu) ** 2 + 2 * sigma**2 * L) / (2 * sigma**2)) / (sp.sqrt(2 * 3.1415927) * sigma),
    sp.exp(-(L - mu + sigma**2) ** 2 / (2 * sigma**2) + sigma**2 / 2 - mu) / (sp.sqrt(2 * 3.1415927) * sigma),
]
derivation_report(LOGNORMAL_STEPS, LOGNORMAL_REPORT_POINT)
