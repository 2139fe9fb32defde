"""Mistake: starts at the completed square instead of the given log-posterior; every step is equal (so is step 0's value), but nothing is derived.

grade_id: posterior_derivation_steps
"""
x, x_t, x_0, beta, abar = posterior_symbols()

abar_t = (1 - beta) * abar
beta_tilde = (1 - abar) / (1 - abar_t) * beta
mu_tilde = sp.sqrt(abar) * beta / (1 - abar_t) * x_0 + sp.sqrt(1 - beta) * (1 - abar) / (1 - abar_t) * x_t
P = (1 - beta) / beta + 1 / (1 - abar)
L = sp.sqrt(1 - beta) * x_t / beta + sp.sqrt(abar) * x_0 / (1 - abar)
C = -x_t**2 / (2 * beta) - abar * x_0**2 / (2 * (1 - abar))
ANSWER = -(x - mu_tilde) ** 2 / (2 * beta_tilde) + L**2 / (2 * P) + C
POSTERIOR_STEPS = [ANSWER, sp.expand(ANSWER), ANSWER]
derivation_report(POSTERIOR_STEPS, POSTERIOR_REPORT_POINT)
