"""Mistake: rewrites the density but leaves the Jacobian 1/x outside the exponent (the square is never completed).

grade_id: lognormal_derivation_steps
"""
x, mu, sigma = lognormal_symbols()
LOGNORMAL_STEPS = [
    lognormal_derivation_start(),
    sp.exp(-(sp.log(x) ** 2 - 2 * mu * sp.log(x) + mu**2) / (2 * sigma**2)) / (sp.sqrt(2 * sp.pi) * sigma * x),
    sp.exp(-(mu - sp.log(x)) ** 2 / (2 * sigma**2)) / (sp.sqrt(2 * sp.pi) * sigma * x),
]
derivation_report(LOGNORMAL_STEPS, LOGNORMAL_REPORT_POINT)
