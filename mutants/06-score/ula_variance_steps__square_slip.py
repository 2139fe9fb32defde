"""Mistake: expands 1 − (1 − a)² as 2a + a²: the chain breaks.

grade_id: ula_variance_steps
"""
h, v = ula_symbols()
ULA_STEPS = [
    ula_derivation_start(),
    h / (h / v + h**2 / (4 * v**2)),
    v / (1 + h / (4 * v)),
]
derivation_report(ULA_STEPS, ULA_REPORT_POINT)
