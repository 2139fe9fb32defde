"""Mistake: writes a number as a decimal (0.5) instead of exactly.

grade_id: hessian_derivation_steps
"""
p, s, t = hess_symbols()
HESS_STEPS = [
    hess_derivation_start(),
    0.5 * (2 * s * (p**2 - 2 * p + 1) + 2 * t * (p**2 + 1)),
    s * (p - 1) ** 2 + t * (p**2 + 1),
]
derivation_report(HESS_STEPS, HESS_REPORT_POINT)
