"""Mistake: writes 1/4 as 0.25: the value is right but the derivation is no longer exact.

grade_id: ula_variance_steps
"""
h, v = ula_symbols()
ULA_STEPS = [
    ula_derivation_start(),
    h / (h / v - h**2 / (4 * v**2)),
    v / (1 - 0.25 * h / v),
]
derivation_report(ULA_STEPS, ULA_REPORT_POINT)
