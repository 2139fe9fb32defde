"""Mistake: starts the chain at the answer instead of the change of variables.

grade_id: lognormal_derivation_steps
"""
x, mu, sigma = lognormal_symbols()
LOGNORMAL_STEPS = [
    sp.exp(-(sp.log(x) - mu + sigma**2) ** 2 / (2 * sigma**2) + sigma**2 / 2 - mu) / (sp.sqrt(2 * sp.pi) * sigma),
    sp.exp(-(sp.log(x) ** 2 - 2 * (mu - sigma**2) * sp.log(x) + mu**2) / (2 * sigma**2)) / (sp.sqrt(2 * sp.pi) * sigma),
    sp.exp(-(sp.log(x) - mu + sigma**2) ** 2 / (2 * sigma**2) + sigma**2 / 2 - mu) / (sp.sqrt(2 * sp.pi) * sigma),
]
derivation_report(LOGNORMAL_STEPS, LOGNORMAL_REPORT_POINT)
