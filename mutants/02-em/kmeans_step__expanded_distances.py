"""Mistake: computes squared distances as ||x||^2 - 2 x.c + ||c||^2, which cancels and mislabels points far from the origin.

grade_id: kmeans_step
"""
def kmeans_step(x, centres):
    K = centres.shape[0]
    dist = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None, :]
    best, labels = dist.min(dim=1)
    onehot = F.one_hot(labels, K).to(x.dtype)
    counts = onehot.sum(0)
    new = torch.where(counts[:, None] > 0, onehot.T @ x / counts.clamp(min=1)[:, None], centres)
    return new, labels, best.sum()
