"""Mistake: takes ∂_a log(1 − σ(a)) = +σ(a) (a sign slip): the chain breaks.

grade_id: score_function_steps
"""
a, f0, f1, c = score_symbols()
sig = 1 / (1 + sp.exp(-a))
SCORE_STEPS = [
    score_derivation_start(),
    sig * (f1 - c) * (1 - sig) + (1 - sig) * (f0 - c) * sig,
    sig * (1 - sig) * (f1 + f0 - 2 * c),
]
derivation_report(SCORE_STEPS, SCORE_REPORT_POINT)
