"""Mistake: does not differentiate the target branch: returns the stop-gradient operator C₁ ⊗ W_pᵀW_p − C₁₂ ⊗ W_pᵀ.

grade_id: hessian_no_stopgrad
"""
def hessian_no_stopgrad(Wp, C1, C2, C12):
    WpT = Wp.T.contiguous()
    return torch.kron(C1, WpT @ Wp) - torch.kron(C12, WpT)
