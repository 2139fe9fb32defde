"""Mistake: cancels the normalisers but stops with the squares unexpanded in separate exponentials; not the logistic form with a linear exponent.

grade_id: resp_derivation_steps
"""
x1, x2, a1, a2, b1, b2, v, w = resp_symbols()
na = sp.exp(-((x1 - a1) ** 2 + (x2 - a2) ** 2) / (2 * v))
nb = sp.exp(-((x1 - b1) ** 2 + (x2 - b2) ** 2) / (2 * v))
RESP_STEPS = [
    resp_derivation_start(),
    w * na / (w * na + (1 - w) * nb),
    1 / (1 + (1 - w) * nb / (w * na)),
]
derivation_report(RESP_STEPS, RESP_REPORT_POINT)
