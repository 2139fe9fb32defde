"""Mistake: forgets the ½ of ½‖·‖²: every term of J doubled.

grade_id: simsiam_objective
"""
def simsiam_objective(W, Wp, C1, C2, C12):
    A = Wp @ W
    return torch.trace(A @ C1 @ A.T) - 2 * torch.trace(A @ C12 @ W.T) + torch.trace(W @ C2 @ W.T)
