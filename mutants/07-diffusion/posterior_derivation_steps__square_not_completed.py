"""Mistake: stops after expanding and collecting powers of x; the last step is not a completed square, so no
mean and variance can be read off it.

grade_id: posterior_derivation_steps
"""
x, x_t, x_0, beta, abar = posterior_symbols()

P = (1 - beta) / beta + 1 / (1 - abar)
L = sp.sqrt(1 - beta) * x_t / beta + sp.sqrt(abar) * x_0 / (1 - abar)
C = -x_t**2 / (2 * beta) - abar * x_0**2 / (2 * (1 - abar))
POSTERIOR_STEPS = [
    posterior_derivation_start(),
    -(1 - beta) * x**2 / (2 * beta) - x**2 / (2 * (1 - abar)) + L * x + C,
    -P / 2 * x**2 + L * x + C,
]
derivation_report(POSTERIOR_STEPS, POSTERIOR_REPORT_POINT)
