"""Mistake: replaces the given start by an already simplified integral; every step is equal, but the derivation does not start from C(G).

grade_id: cg_derivation_steps
"""
x, s = cg_symbols()

CG_STEPS = [
    sp.Integral(sp.log(s / (s + 1)) + sp.log(1 / (s + 1)) / s, (x, 0, 1)),
    sp.Integral(sp.log(s / (s + 1)) - sp.log(s + 1) / s, (x, 0, 1)),
    sp.log(s / (s + 1)) - sp.log(s + 1) / s,
]
derivation_report(CG_STEPS, CG_REPORT_POINT)
