"""Mistake: multiplies by W_p instead of W_pᵀ in Ẇ.

grade_id: stopgrad_flow
"""
def stopgrad_flow(W, Wp, C1, C12, weight_decay):
    G = Wp @ W @ C1 - W @ C12.T
    return -Wp @ G - weight_decay * W, -G @ W.T - weight_decay * Wp
