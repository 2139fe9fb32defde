"""Mistake: inserts the input degrees into the caller's hidden_degrees list (modifies an input).

grade_id: made_masks
"""
def made_masks(order, hidden_degrees):
    in_degrees = order + 1
    layers = hidden_degrees
    layers.insert(0, in_degrees)
    masks = []
    for i in range(1, len(layers)):
        masks.append((layers[i][:, None] >= layers[i - 1][None, :]).to(torch.float64))
    masks.append((in_degrees[:, None] > layers[-1][None, :]).to(torch.float64))
    return masks
