"""Mistake: the closed form drops the 1/s that multiplies log(1/(s + 1)); the chain breaks there.

grade_id: cg_derivation_steps
"""
x, s = cg_symbols()

CG_STEPS = [
    cg_derivation_start(),
    sp.Integral(sp.log(s / (s + 1)) + sp.log(1 / (s + 1)) / s, (x, 0, 1)),
    sp.log(s / (s + 1)) - sp.log(s + 1),
]
derivation_report(CG_STEPS, CG_REPORT_POINT)
