"""Mistake: sums the entries of the matrix products instead of taking their traces.

grade_id: simsiam_objective
"""
def simsiam_objective(W, Wp, C1, C2, C12):
    A = Wp @ W
    return 0.5 * (A @ C1 @ A.T).sum() - (A @ C12 @ W.T).sum() + 0.5 * (W @ C2 @ W.T).sum()
