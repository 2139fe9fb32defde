"""Mistake: completes the square around μ + σ² instead of μ − σ²: the last step is not equal to the one before.

grade_id: lognormal_derivation_steps
"""
x, mu, sigma = lognormal_symbols()
LOGNORMAL_STEPS = [
    lognormal_derivation_start(),
    sp.exp(-((sp.log(x) - mu) ** 2 + 2 * sigma**2 * sp.log(x)) / (2 * sigma**2)) / (sp.sqrt(2 * sp.pi) * sigma),
    sp.exp(-(sp.log(x) - mu - sigma**2) ** 2 / (2 * sigma**2) + sigma**2 / 2 - mu) / (sp.sqrt(2 * sp.pi) * sigma),
]
derivation_report(LOGNORMAL_STEPS, LOGNORMAL_REPORT_POINT)
