r"""The linear-Gaussian latent model, where every quantity of Chapter 1 is tractable.

.. math::
    p(z) = \mathcal N(0, I_K), \qquad p_\theta(x \mid z) = \mathcal N(Wz + b, \sigma^2 I_D)

with parameters θ = (W, b, σ²): ``W`` of shape ``(D, K)``, ``b`` of shape ``(D,)`` and a
positive scalar ``sigma2``. The marginal, the exact posterior and the ELBO of any Gaussian q
have closed forms (derived in Chapter 1; Chapter 2 meets the same model as probabilistic PCA):

* p(x) = N(b, WWᵀ + σ² I_D)
* p(z | x) = N(S Wᵀ(x - b)/σ², S) with S = (I_K + WᵀW/σ²)⁻¹
* ELBO(q) = E_q[log p(x | z)] - KL(q ‖ p(z)) = log p(x) - KL(q ‖ p(z | x))
"""

from __future__ import annotations

import math

import torch

from dgm._validate import (
    as_float_tensor,
    broadcast_batch_shapes,
    check_int,
    check_last_dim,
    check_min_ndim,
    check_positive,
    check_same_device,
    check_square,
    check_symmetric,
    promote_float,
)
from dgm.distributions import gaussian_log_prob, mvn_log_prob
from dgm.divergences import gaussian_kl_full

__all__ = ["marginal", "log_marginal", "log_joint", "posterior", "elbo", "sample"]


def _params(W, b, sigma2):
    W = as_float_tensor(W, "W")
    if W.dim() != 2:
        raise ValueError(f"W must have shape (D, K); got shape {tuple(W.shape)}")
    D, K = W.shape
    b = as_float_tensor(b, "b", like=W)
    if b.shape != (D,):
        raise ValueError(f"b must have shape ({D},) to match W of shape ({D}, {K}); got shape {tuple(b.shape)}")
    sigma2 = as_float_tensor(sigma2, "sigma2", like=W)
    if sigma2.dim() != 0:
        raise ValueError(f"sigma2 must be a scalar (one noise variance); got shape {tuple(sigma2.shape)}")
    check_positive(sigma2, "sigma2")
    check_same_device(W=W, b=b, sigma2=sigma2)
    return promote_float(W, b, sigma2)


def _data(x, W):
    x = as_float_tensor(x, "x", like=W)
    check_min_ndim(x, "x", 1, "(..., D)")
    check_last_dim(x, "x", W.shape[0], f"(..., {W.shape[0]})")
    check_same_device(x=x, W=W)
    return x


def marginal(W, b, sigma2) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The marginal p(x) = N(b, WWᵀ + σ² I): returns ``(mean (D,), cov (D, D))``."""
    W, b, sigma2 = _params(W, b, sigma2)
    eye = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    return b, W @ W.T + sigma2 * eye


def log_marginal(x, W, b, sigma2) -> torch.Tensor:
    r"""log p(x) = log N(x; b, WWᵀ + σ² I), the exact log-likelihood.

    Args:
        x: ``(..., D)`` observations.
        W: ``(D, K)``; b: ``(D,)``; sigma2: positive scalar.

    Returns:
        ``(...)`` log-likelihood in nats.
    """
    W, b, sigma2 = _params(W, b, sigma2)
    x = _data(x, W)
    x, W, b, sigma2 = promote_float(x, W, b, sigma2)
    mean, cov = marginal(W, b, sigma2)
    return mvn_log_prob(x, mean, cov)


def log_joint(x, z, W, b, sigma2) -> torch.Tensor:
    r"""log p(x, z) = log N(z; 0, I) + log N(x; Wz + b, σ² I).

    Args:
        x: ``(..., D)`` observations; z: ``(..., K)`` latents (broadcast against x's batch).
        W: ``(D, K)``; b: ``(D,)``; sigma2: positive scalar.

    Returns:
        ``(...)`` log joint density in nats.
    """
    W, b, sigma2 = _params(W, b, sigma2)
    x = _data(x, W)
    z = as_float_tensor(z, "z", like=W)
    check_min_ndim(z, "z", 1, "(..., K)")
    check_last_dim(z, "z", W.shape[1], f"(..., {W.shape[1]})")
    check_same_device(z=z, W=W)
    broadcast_batch_shapes(x=x.shape[:-1], z=z.shape[:-1])
    x, z, W, b, sigma2 = promote_float(x, z, W, b, sigma2)
    zeros = torch.zeros((), dtype=W.dtype, device=W.device)
    log_prior = gaussian_log_prob(z, zeros.expand(z.shape[-1:]), zeros.expand(z.shape[-1:]))
    mean_x = z @ W.T + b
    log_lik = gaussian_log_prob(x, mean_x, torch.log(sigma2).expand(x.shape[-1:]))
    return log_prior + log_lik


def posterior(x, W, b, sigma2) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact posterior p(z | x) = N(m(x), S), S = (I + WᵀW/σ²)⁻¹, m(x) = S Wᵀ (x - b) / σ².

    Derived in Chapter 1 by completing the square in z. S does not depend on x.

    Args:
        x: ``(..., D)`` observations.
        W: ``(D, K)``; b: ``(D,)``; sigma2: positive scalar.

    Returns:
        ``(mean, cov)`` with ``mean`` of shape ``(..., K)`` and ``cov`` of shape ``(K, K)``.
    """
    W, b, sigma2 = _params(W, b, sigma2)
    x = _data(x, W)
    x, W, b, sigma2 = promote_float(x, W, b, sigma2)
    K = W.shape[1]
    precision = torch.eye(K, dtype=W.dtype, device=W.device) + W.T @ W / sigma2
    cov = torch.cholesky_inverse(torch.linalg.cholesky(precision))
    cov = 0.5 * (cov + cov.T)
    mean = (x - b) @ W @ cov / sigma2  # cov is symmetric, so (S Wᵀ (x-b))ᵀ = (x-b)ᵀ W S
    return mean, cov


def elbo(x, q_mean, q_cov, W, b, sigma2) -> torch.Tensor:
    r"""ELBO(q) = E_q[log p(x | z)] - KL(q(z) ‖ p(z)) for a Gaussian q(z) = N(q_mean, q_cov).

    In closed form, with m = q_mean and S = q_cov:

    .. math::
        \mathbb E_q[\log p(x\mid z)] = -\tfrac D2 \log(2\pi\sigma^2)
        - \frac{\|x - Wm - b\|^2 + \operatorname{tr}(W S W^\top)}{2\sigma^2}

    It equals log p(x) - KL(q ‖ p(z | x)), so it is at most log p(x), with equality exactly
    when q is the posterior.

    Args:
        x: ``(..., D)`` observations.
        q_mean: ``(..., K)`` means of q (broadcast against x's batch).
        q_cov: ``(..., K, K)`` covariances of q, symmetric positive definite.
        W: ``(D, K)``; b: ``(D,)``; sigma2: positive scalar.

    Returns:
        ``(...)`` ELBO in nats.
    """
    W, b, sigma2 = _params(W, b, sigma2)
    x = _data(x, W)
    D, K = W.shape
    q_mean = as_float_tensor(q_mean, "q_mean", like=W)
    q_cov = as_float_tensor(q_cov, "q_cov", like=W)
    check_min_ndim(q_mean, "q_mean", 1, "(..., K)")
    check_last_dim(q_mean, "q_mean", K, f"(..., {K})")
    check_square(q_cov, "q_cov")
    check_last_dim(q_cov, "q_cov", K, f"(..., {K}, {K})")
    check_same_device(q_mean=q_mean, q_cov=q_cov, W=W)
    broadcast_batch_shapes(x=x.shape[:-1], q_mean=q_mean.shape[:-1], q_cov=q_cov.shape[:-2])
    check_symmetric(q_cov, "q_cov")
    if bool((torch.linalg.cholesky_ex(q_cov).info != 0).any()):
        raise ValueError("q_cov must be symmetric positive definite; its Cholesky factorisation failed")
    x, q_mean, q_cov, W, b, sigma2 = promote_float(x, q_mean, q_cov, W, b, sigma2)
    residual = x - q_mean @ W.T - b
    trace = torch.einsum("dk,...kl,dl->...", W, q_cov, W)
    expected_log_lik = -0.5 * D * torch.log(2 * math.pi * sigma2) - (residual.pow(2).sum(-1) + trace) / (2 * sigma2)
    zeros = torch.zeros(K, dtype=W.dtype, device=W.device)
    eye = torch.eye(K, dtype=W.dtype, device=W.device)
    return expected_log_lik - gaussian_kl_full(q_mean, q_cov, zeros, eye)


def sample(num_samples: int, W, b, sigma2, *, generator: torch.Generator | None = None):
    r"""Ancestral sampling: z ~ N(0, I), then x ~ N(Wz + b, σ² I).

    Args:
        num_samples: N, a positive integer.
        W: ``(D, K)``; b: ``(D,)``; sigma2: positive scalar.
        generator: optional ``torch.Generator`` on W's device, for reproducible draws.

    Returns:
        ``(x, z)`` of shapes ``(N, D)`` and ``(N, K)``.
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    W, b, sigma2 = _params(W, b, sigma2)
    D, K = W.shape
    z = torch.randn(num_samples, K, dtype=W.dtype, device=W.device, generator=generator)
    noise = torch.randn(num_samples, D, dtype=W.dtype, device=W.device, generator=generator)
    x = z @ W.T + b + torch.sqrt(sigma2) * noise
    return x, z
