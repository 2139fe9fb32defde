"""Mistake: swaps C₁₂ and C₁₂ᵀ in the two cross terms.

grade_id: hessian_no_stopgrad
"""
def hessian_no_stopgrad(Wp, C1, C2, C12):
    K = Wp.shape[0]
    eye = torch.eye(K, dtype=Wp.dtype)
    WpT = Wp.T.contiguous()
    return (torch.kron(C1, WpT @ Wp) - torch.kron(C12.T.contiguous(), WpT) - torch.kron(C12, Wp)
            + torch.kron(C2, eye))
