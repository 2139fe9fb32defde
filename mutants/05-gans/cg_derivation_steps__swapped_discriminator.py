"""Mistake: starts from D* = q/(p + q) (the densities swapped); step 0 is then not C(G).

grade_id: cg_derivation_steps
"""
x, s = cg_symbols()

CG_STEPS = [
    sp.Integral(sp.log((1 / s) / (1 + 1 / s)) + sp.log(1 / (1 + 1 / s)) / s, (x, 0, 1)),
    sp.Integral(sp.log(1 / (s + 1)) + sp.log(s / (s + 1)) / s, (x, 0, 1)),
    sp.log(1 / (s + 1)) + sp.log(s / (s + 1)) / s,
]
derivation_report(CG_STEPS, CG_REPORT_POINT)
