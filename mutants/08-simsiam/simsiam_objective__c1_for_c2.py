"""Mistake: uses C₁ for the target's second moment (equal to C₂ only for symmetric views).

grade_id: simsiam_objective
"""
def simsiam_objective(W, Wp, C1, C2, C12):
    A = Wp @ W
    return 0.5 * torch.trace(A @ C1 @ A.T) - torch.trace(A @ C12 @ W.T) + 0.5 * torch.trace(W @ C1 @ W.T)
