r"""Mixtures of diagonal Gaussians: the discrete-latent model of Chapter 1 (and of EM in Chapter 2).

.. math::
    p(z = k) = \pi_k, \qquad p(x \mid z = k) = \mathcal N\big(x;\ \mu_k,\ \operatorname{diag} e^{\lambda_k}\big),
    \qquad p(x) = \sum_{k} \pi_k\, p(x \mid z = k)

Parameters, in every function of this module:

* ``weights`` ``(K,)`` — the mixing proportions π (non-negative, summing to 1);
* ``means`` ``(K, D)`` — the component means μ_k;
* ``logvars`` ``(K, D)`` — the component log-variances λ_k (one per coordinate: diagonal covariances).

The latent z is a single integer in {0, ..., K-1}; a distribution q over it is a probability vector
``(..., K)``. Everything is computed in log space (``logsumexp``), so points far from every
component do not underflow. Chapter 1 uses the exact posterior and the ELBO of a categorical q;
Chapter 2 adds EM on top of the same functions.
"""

from __future__ import annotations

import torch

from dgm._validate import (
    as_float_tensor,
    check_int,
    check_last_dim,
    check_min_ndim,
    check_probabilities,
    check_same_device,
)
from dgm.distributions import gaussian_rsample, gaussian_log_prob
from dgm.divergences import categorical_entropy

__all__ = ["log_joint", "log_marginal", "log_posterior", "posterior", "elbo", "sample"]


def _weights_and_means(weights, means) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a mixture's weights (K,) (a probability vector) and means (K, D); return them as
    tensors of one dtype (:mod:`dgm.em` validates its mixtures with this too)."""
    means = as_float_tensor(means, "means")
    if means.dim() != 2:
        raise ValueError(f"means must have shape (K, D); got shape {tuple(means.shape)}")
    K, D = means.shape
    weights = as_float_tensor(weights, "weights", like=means)
    if weights.shape != (K,):
        raise ValueError(
            f"weights must have shape ({K},) to match means of shape ({K}, {D}); got shape {tuple(weights.shape)}"
        )
    check_probabilities(weights, "weights")
    return weights, means


def _params(weights, means, logvars):
    """Validate (weights (K,), means (K, D), logvars (K, D)) and return them as tensors."""
    weights, means = _weights_and_means(weights, means)
    K, D = means.shape
    logvars = as_float_tensor(logvars, "logvars", like=means)
    if logvars.shape != (K, D):
        raise ValueError(
            f"logvars must have shape ({K}, {D}) (log-variances, like means); got shape {tuple(logvars.shape)}"
        )
    if not bool(torch.isfinite(logvars).all()):
        raise ValueError("logvars must be finite (they are log-variances); they contain NaN or infinity")
    check_same_device(weights=weights, means=means, logvars=logvars)
    return weights, means, logvars


def _data(x, means):
    x = as_float_tensor(x, "x", like=means)
    check_min_ndim(x, "x", 1, "(..., D)")
    check_last_dim(x, "x", means.shape[1], f"(..., {means.shape[1]})")
    check_same_device(x=x, means=means)
    return x


def log_joint(x, weights, means, logvars) -> torch.Tensor:
    r"""log p(x, z=k) = log π_k + log N(x; μ_k, diag e^{λ_k}), for every component k.

    A component with π_k = 0 gives ``-inf`` (it can never have produced x).

    Args:
        x: ``(..., D)`` observations.
        weights: ``(K,)``; means: ``(K, D)``; logvars: ``(K, D)``.

    Returns:
        ``(..., K)`` log joint probabilities (a density in x, a mass in z), in nats.
    """
    weights, means, logvars = _params(weights, means, logvars)
    x = _data(x, means)
    return torch.log(weights) + gaussian_log_prob(x.unsqueeze(-2), means, logvars)


def log_marginal(x, weights, means, logvars) -> torch.Tensor:
    r"""log p(x) = log Σ_k π_k N(x; μ_k, diag e^{λ_k}), computed with ``logsumexp``.

    Args:
        x: ``(..., D)`` observations.
        weights: ``(K,)``; means: ``(K, D)``; logvars: ``(K, D)``.

    Returns:
        ``(...)`` log-likelihood in nats.
    """
    return torch.logsumexp(log_joint(x, weights, means, logvars), dim=-1)


def log_posterior(x, weights, means, logvars) -> torch.Tensor:
    r"""log p(z=k | x) = log p(x, z=k) - log p(x) (Bayes' rule in log space).

    Args:
        x: ``(..., D)`` observations.
        weights: ``(K,)``; means: ``(K, D)``; logvars: ``(K, D)``.

    Returns:
        ``(..., K)`` log responsibilities; ``exp`` of them sums to 1 over the last dimension.
    """
    joint = log_joint(x, weights, means, logvars)
    return joint - torch.logsumexp(joint, dim=-1, keepdim=True)


def posterior(x, weights, means, logvars) -> torch.Tensor:
    r"""The exact posterior p(z | x), the "responsibilities" r_k(x) = π_k N(x; μ_k, ·) / p(x).

    Args:
        x: ``(..., D)`` observations.
        weights: ``(K,)``; means: ``(K, D)``; logvars: ``(K, D)``.

    Returns:
        ``(..., K)`` probability vectors.
    """
    return torch.exp(log_posterior(x, weights, means, logvars))


def elbo(x, q, weights, means, logvars) -> torch.Tensor:
    r"""ELBO(q) = Σ_k q_k [log p(x, z=k) - log q_k] for a categorical q over the component index.

    Equivalently E_q[log p(x, z)] + H(q). It equals log p(x) - KL(q ‖ p(z | x)) (Chapter 1), so it
    is at most log p(x), with equality exactly when q is the posterior. Terms with q_k = 0
    contribute 0 (the convention 0 · log 0 = 0), even where π_k = 0.

    Args:
        x: ``(..., D)`` observations.
        q: ``(..., K)`` probability vectors (broadcast against x's batch shape).
        weights: ``(K,)``; means: ``(K, D)``; logvars: ``(K, D)``.

    Returns:
        ``(...)`` the ELBO in nats.
    """
    weights, means, logvars = _params(weights, means, logvars)
    x = _data(x, means)
    q = as_float_tensor(q, "q", like=means)
    check_min_ndim(q, "q", 1, "(..., K)")
    check_last_dim(q, "q", means.shape[0], f"(..., {means.shape[0]})")
    check_probabilities(q, "q")
    check_same_device(q=q, means=means)
    joint = log_joint(x, weights, means, logvars)
    # 0 · log p(x, z=k) = 0 even where log p(x, z=k) = -inf; mask before multiplying so gradients stay finite.
    safe_joint = torch.where(q > 0, joint, torch.zeros((), dtype=joint.dtype, device=joint.device))
    return (q * safe_joint).sum(-1) + categorical_entropy(q)


def sample(num_samples: int, weights, means, logvars, *, generator: torch.Generator | None = None):
    r"""Ancestral sampling: z ~ Categorical(π), then x ~ N(μ_z, diag e^{λ_z}).

    Args:
        num_samples: N, a positive integer.
        weights: ``(K,)``; means: ``(K, D)``; logvars: ``(K, D)``.
        generator: optional ``torch.Generator`` on the parameters' device, for reproducible draws.

    Returns:
        ``(x, z)``: samples ``(N, D)`` and their component indices ``(N,)`` (int64).
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    weights, means, logvars = _params(weights, means, logvars)
    z = torch.multinomial(weights, num_samples, replacement=True, generator=generator)
    x = gaussian_rsample(means[z], logvars[z], generator=generator)
    return x, z
