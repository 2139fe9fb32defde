"""Mistake: writes the Hessian for a row-major vec (torch's reshape): every Kronecker product the other way round.

grade_id: hessian_no_stopgrad
"""
def hessian_no_stopgrad(Wp, C1, C2, C12):
    K = Wp.shape[0]
    eye = torch.eye(K, dtype=Wp.dtype)
    WpT = Wp.T.contiguous()
    return (torch.kron(WpT @ Wp, C1) - torch.kron(WpT, C12) - torch.kron(Wp, C12.T.contiguous())
            + torch.kron(eye, C2))
