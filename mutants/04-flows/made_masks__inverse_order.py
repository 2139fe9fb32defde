"""Mistake: takes the degrees from the inverse permutation argsort(order) instead of order.

grade_id: made_masks
"""
def made_masks(order, hidden_degrees):
    m_in = torch.argsort(order) + 1
    degrees = [m_in] + list(hidden_degrees)
    masks = [(b[:, None] >= a[None, :]).to(torch.float64) for a, b in zip(degrees[:-1], degrees[1:])]
    masks.append((m_in[:, None] > degrees[-1][None, :]).to(torch.float64))
    return masks
