"""Mistake: the inertia adds Euclidean distances instead of squared distances.

grade_id: kmeans_step
"""
def kmeans_step(x, centres):
    K = centres.shape[0]
    dist = (x[:, None, :] - centres[None, :, :]).pow(2).sum(-1)
    best, labels = dist.min(dim=1)
    onehot = F.one_hot(labels, K).to(x.dtype)
    counts = onehot.sum(0)
    new = torch.where(counts[:, None] > 0, onehot.T @ x / counts.clamp(min=1)[:, None], centres)
    return new, labels, best.sqrt().sum()
