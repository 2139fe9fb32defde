"""Mistake: ends at 4v²/(4v − h): right value, but not written as v times the bias factor.

grade_id: ula_variance_steps
"""
h, v = ula_symbols()
ULA_STEPS = [
    ula_derivation_start(),
    h / (h / v - h**2 / (4 * v**2)),
    4 * v**2 / (4 * v - h),
]
derivation_report(ULA_STEPS, ULA_REPORT_POINT)
