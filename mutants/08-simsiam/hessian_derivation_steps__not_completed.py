"""Mistake: collects the terms but never completes the square: the last step does not show the bound.

grade_id: hessian_derivation_steps
"""
p, s, t = hess_symbols()
HESS_STEPS = [
    hess_derivation_start(),
    p**2 * s + p**2 * t - 2 * p * s + s + t,
    s * (p**2 - 2 * p + 1) + t * (p**2 + 1),
]
derivation_report(HESS_STEPS, HESS_REPORT_POINT)
