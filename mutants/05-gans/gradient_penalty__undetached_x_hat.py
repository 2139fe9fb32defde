"""Mistake: the interpolated points are not detached from real and fake, so the penalty's gradient flows back into the generator's output.

grade_id: gradient_penalty
"""
def gradient_penalty(critic, real, fake, epsilon):
    eps = epsilon.reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = grad.reshape(grad.shape[0], -1).norm(dim=1)
    return (norms - 1).pow(2).mean()
