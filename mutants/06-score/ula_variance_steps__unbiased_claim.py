"""Mistake: ends at v, the target's variance (ULA's bias dropped).

grade_id: ula_variance_steps
"""
h, v = ula_symbols()
ULA_STEPS = [
    ula_derivation_start(),
    h / (h / v - h**2 / (4 * v**2)),
    v,
]
derivation_report(ULA_STEPS, ULA_REPORT_POINT)
