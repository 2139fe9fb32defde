"""Mistake: a step is off by s·t/10⁹, far below any numerical comparison but not equal to the step before.

grade_id: hessian_derivation_steps
"""
p, s, t = hess_symbols()
HESS_STEPS = [
    hess_derivation_start(),
    s * (p**2 - 2 * p + 1) + t * (p**2 + 1) + s * t / 10**9,
    s * (p - 1) ** 2 + t * (p**2 + 1),
]
derivation_report(HESS_STEPS, HESS_REPORT_POINT)
