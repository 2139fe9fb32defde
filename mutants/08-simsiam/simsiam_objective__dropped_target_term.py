"""Mistake: drops ½ tr(W C₂ Wᵀ), the target's square (it does not depend on W_p, but J does contain it).

grade_id: simsiam_objective
"""
def simsiam_objective(W, Wp, C1, C2, C12):
    A = Wp @ W
    return 0.5 * torch.trace(A @ C1 @ A.T) - torch.trace(A @ C12 @ W.T)
