"""Mistake: writes G = W_pWC₁ − WC₁₂ (the chain rule gives C₁₂ᵀ).

grade_id: stopgrad_flow
"""
def stopgrad_flow(W, Wp, C1, C12, weight_decay):
    G = Wp @ W @ C1 - W @ C12
    return -Wp.T @ G - weight_decay * W, -G @ W.T - weight_decay * Wp
