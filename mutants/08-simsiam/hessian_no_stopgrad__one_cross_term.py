"""Mistake: keeps only one of the two cross terms, −C₁₂ ⊗ W_pᵀ (the quadratic form's matrix not symmetrised).

grade_id: hessian_no_stopgrad
"""
def hessian_no_stopgrad(Wp, C1, C2, C12):
    K = Wp.shape[0]
    eye = torch.eye(K, dtype=Wp.dtype)
    return torch.kron(C1, Wp.T @ Wp) - torch.kron(C12, Wp.T) + torch.kron(C2, eye)
