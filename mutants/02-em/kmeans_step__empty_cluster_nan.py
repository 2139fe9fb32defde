"""Mistake: divides by the cluster's count even when it is 0 (an empty cluster's centre becomes NaN).

grade_id: kmeans_step
"""
def kmeans_step(x, centres):
    K = centres.shape[0]
    dist = (x[:, None, :] - centres[None, :, :]).pow(2).sum(-1)
    best, labels = dist.min(dim=1)
    onehot = F.one_hot(labels, K).to(x.dtype)
    return onehot.T @ x / onehot.sum(0)[:, None], labels, best.sum()
