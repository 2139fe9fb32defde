"""Mistake: stops before the baseline cancels: the last step still contains c.

grade_id: score_function_steps
"""
a, f0, f1, c = score_symbols()
sig = 1 / (1 + sp.exp(-a))
SCORE_STEPS = [
    score_derivation_start(),
    sp.factor(score_derivation_start()),
    sig * (f1 - c) * (1 - sig) - (1 - sig) * (f0 - c) * sig,
]
derivation_report(SCORE_STEPS, SCORE_REPORT_POINT)
