"""Mistake: puts C₁₂ᵀ in the cross term (E[x₂x₁ᵀ] instead of E[x₁x₂ᵀ]); right only when C₁₂ is symmetric.

grade_id: simsiam_objective
"""
def simsiam_objective(W, Wp, C1, C2, C12):
    A = Wp @ W
    return 0.5 * torch.trace(A @ C1 @ A.T) - torch.trace(A @ C12.T @ W.T) + 0.5 * torch.trace(W @ C2 @ W.T)
