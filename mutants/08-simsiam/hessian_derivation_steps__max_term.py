"""Mistake (hostile): hides a term Max(0, p − 10)·t in a step, zero at ordinary points and wrong for p > 10.

grade_id: hessian_derivation_steps
"""
p, s, t = hess_symbols()
HESS_STEPS = [
    hess_derivation_start(),
    s * (p**2 - 2 * p + 1) + t * (p**2 + 1) + sp.Max(0, p - 10) * t,
    s * (p - 1) ** 2 + t * (p**2 + 1),
]
derivation_report(HESS_STEPS, HESS_REPORT_POINT)
