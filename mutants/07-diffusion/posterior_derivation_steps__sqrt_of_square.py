"""Mistake: writes sqrt(abar) * x_0 as sqrt(abar * x_0**2), which SymPy reads as sqrt(abar) * |x_0|: every step is right for x_0 > 0 only.

grade_id: posterior_derivation_steps
"""
x, x_t, x_0, beta, abar = posterior_symbols()

P = (1 - beta) / beta + 1 / (1 - abar)
L = sp.sqrt(1 - beta) * x_t / beta + sp.sqrt(abar * x_0**2) / (1 - abar)   # "sqrt(abar) x_0"
C = -x_t**2 / (2 * beta) - abar * x_0**2 / (2 * (1 - abar))
POSTERIOR_STEPS = [
    posterior_derivation_start(),
    -P / 2 * x**2 + L * x + C,
    -P / 2 * (x - L / P) ** 2 + L**2 / (2 * P) + C,
]
derivation_report(POSTERIOR_STEPS, POSTERIOR_REPORT_POINT)
