"""Mistake: adds the weight decay with a + sign (it should pull towards 0).

grade_id: stopgrad_flow
"""
def stopgrad_flow(W, Wp, C1, C12, weight_decay):
    G = Wp @ W @ C1 - W @ C12.T
    return -Wp.T @ G + weight_decay * W, -G @ W.T + weight_decay * Wp
