"""Mistake: an empty cluster's centre is moved to the origin (zeros) instead of staying where it is.

grade_id: kmeans_step
"""
def kmeans_step(x, centres):
    K = centres.shape[0]
    dist = (x[:, None, :] - centres[None, :, :]).pow(2).sum(-1)
    best, labels = dist.min(dim=1)
    onehot = F.one_hot(labels, K).to(x.dtype)
    return onehot.T @ x / onehot.sum(0).clamp(min=1)[:, None], labels, best.sum()
