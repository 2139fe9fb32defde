"""Mistake: factors the baseline wrongly, keeping c in the result: the step is not equal to the one before.

grade_id: score_function_steps
"""
a, f0, f1, c = score_symbols()
sig = 1 / (1 + sp.exp(-a))
SCORE_STEPS = [
    score_derivation_start(),
    sig * (f1 - c) * (1 - sig) - (1 - sig) * (f0 - c) * sig,
    sig * (1 - sig) * (f1 - f0 - c),
]
derivation_report(SCORE_STEPS, SCORE_REPORT_POINT)
