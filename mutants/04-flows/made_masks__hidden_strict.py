"""Mistake: uses > in the hidden layers (a unit of degree k then misses the inputs of degree k).

grade_id: made_masks
"""
def made_masks(order, hidden_degrees):
    degrees = [order + 1] + list(hidden_degrees)
    masks = [(b[:, None] > a[None, :]).to(torch.float64) for a, b in zip(degrees[:-1], degrees[1:])]
    masks.append((degrees[0][:, None] > degrees[-1][None, :]).to(torch.float64))
    return masks
