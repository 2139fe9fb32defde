"""Mistake: differentiates the target branch too (no stop-gradient), taking C₂ as C₁.

grade_id: stopgrad_flow
"""
def stopgrad_flow(W, Wp, C1, C12, weight_decay):
    G = Wp @ W @ C1 - W @ C12.T
    dW = -Wp.T @ G + (Wp @ W @ C12 - W @ C1) - weight_decay * W
    return dW, -G @ W.T - weight_decay * Wp
