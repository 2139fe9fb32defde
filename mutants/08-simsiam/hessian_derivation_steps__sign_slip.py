"""Mistake: completes the square as (p + 1)², a sign slip: the step is not equal to the one before.

grade_id: hessian_derivation_steps
"""
p, s, t = hess_symbols()
HESS_STEPS = [
    hess_derivation_start(),
    s * (p**2 - 2 * p + 1) + t * (p**2 + 1),
    s * (p + 1) ** 2 + t * (p**2 + 1),
]
derivation_report(HESS_STEPS, HESS_REPORT_POINT)
