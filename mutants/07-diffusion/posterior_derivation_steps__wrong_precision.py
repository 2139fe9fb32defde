"""Mistake: collects the x^2 coefficient with sqrt(alpha_t) instead of alpha_t (the precision (1 - beta)/beta is
written sqrt(1 - beta)/beta); the chain of steps breaks at step 1.

grade_id: posterior_derivation_steps
"""
x, x_t, x_0, beta, abar = posterior_symbols()

P = sp.sqrt(1 - beta) / beta + 1 / (1 - abar)
L = sp.sqrt(1 - beta) * x_t / beta + sp.sqrt(abar) * x_0 / (1 - abar)
C = -x_t**2 / (2 * beta) - abar * x_0**2 / (2 * (1 - abar))
POSTERIOR_STEPS = [
    posterior_derivation_start(),
    -P / 2 * x**2 + L * x + C,
    -P / 2 * (x - L / P) ** 2 + L**2 / (2 * P) + C,
]
derivation_report(POSTERIOR_STEPS, POSTERIOR_REPORT_POINT)
