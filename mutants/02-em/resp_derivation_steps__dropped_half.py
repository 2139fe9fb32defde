"""Mistake: drops the 2 of 2v in the exponent when cancelling the normalisers; the step is not equal to the start.

grade_id: resp_derivation_steps
"""
x1, x2, a1, a2, b1, b2, v, w = resp_symbols()
sq_a = (x1 - a1) ** 2 + (x2 - a2) ** 2
sq_b = (x1 - b1) ** 2 + (x2 - b2) ** 2
RESP_STEPS = [
    resp_derivation_start(),
    1 / (1 + (1 - w) / w * sp.exp((sq_a - sq_b) / v)),
    1 / (1 + sp.exp(sp.expand((sq_a - sq_b) / v) + sp.log((1 - w) / w))),
]
derivation_report(RESP_STEPS, RESP_REPORT_POINT)
