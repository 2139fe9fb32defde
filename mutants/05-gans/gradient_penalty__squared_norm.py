"""Mistake: penalises (||grad||² - 1)² instead of (||grad|| - 1)².

grade_id: gradient_penalty
"""
def gradient_penalty(critic, real, fake, epsilon):
    eps = epsilon.reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    sq = grad.reshape(grad.shape[0], -1).pow(2).sum(1)
    return (sq - 1).pow(2).mean()
