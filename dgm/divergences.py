"""Entropy, cross-entropy and KL divergence, in closed form and by Monte Carlo (Chapter 1).

Conventions (see the book's notation page):

* natural logarithms throughout, so every quantity is in nats (divide by ``log 2`` for bits);
* diagonal Gaussians are given by a mean and a **log-variance** of shape ``(..., D)``; full
  Gaussians by a mean ``(..., D)`` and a covariance ``(..., D, D)``;
* batch dimensions ``...`` broadcast; the event dimension ``D`` is summed over, so results
  have the batch shape ``(...)``;
* Monte Carlo estimators take the sample dimension first, ``(S, ...)``, and return the pair
  ``(estimate, standard_error)``.
"""

from __future__ import annotations

import math

import torch

from dgm._validate import (
    as_float_tensor,
    broadcast_batch,
    broadcast_batch_shapes,
    check_last_dim,
    check_min_ndim,
    check_probabilities,
    check_same_device,
    check_square,
    check_symmetric,
    probability_pair,
    promote_float,
)

__all__ = [
    "gaussian_kl",
    "gaussian_kl_full",
    "gaussian_entropy",
    "gaussian_entropy_full",
    "categorical_entropy",
    "categorical_cross_entropy",
    "categorical_kl",
    "monte_carlo_mean",
    "kl_monte_carlo",
]

_LOG_2PI_E = math.log(2 * math.pi) + 1.0


def _diag_args(**named):
    """Validate diagonal-Gaussian arguments: floating tensors, at least 1-D, one device."""
    first = None
    out = {}
    for name, value in named.items():
        t = as_float_tensor(value, name, like=first)
        check_min_ndim(t, name, 1, "(..., D)")
        first = t if first is None else first
        out[name] = t
    check_same_device(**out)
    shape = broadcast_batch(**out)
    return out, shape


def gaussian_kl(mean_q, logvar_q, mean_p, logvar_p) -> torch.Tensor:
    r"""KL(q ‖ p) between diagonal Gaussians q = N(mean_q, diag e^{logvar_q}), p = N(mean_p, diag e^{logvar_p}).

    .. math::
        \mathrm{KL}(q\|p) = \tfrac12 \sum_{d=1}^{D} \Big[\log\frac{\sigma_{p,d}^2}{\sigma_{q,d}^2}
        + \frac{\sigma_{q,d}^2 + (\mu_{q,d}-\mu_{p,d})^2}{\sigma_{p,d}^2} - 1\Big]

    Derived in Chapter 1, section "KL between Gaussians". Not symmetric: swapping q and p
    changes the value.

    Args:
        mean_q, logvar_q: ``(..., D)`` mean and log-variance of q.
        mean_p, logvar_p: ``(..., D)`` mean and log-variance of p (broadcast against q's).

    Returns:
        ``(...)`` the KL divergence in nats, summed over ``D``; always ``>= 0``.
    """
    t, _ = _diag_args(mean_q=mean_q, logvar_q=logvar_q, mean_p=mean_p, logvar_p=logvar_p)
    for name in ("logvar_q", "logvar_p"):
        if not bool(torch.isfinite(t[name]).all()):
            raise ValueError(f"{name} must be finite (it is a log-variance); it contains NaN or infinity")
    diff = t["mean_q"] - t["mean_p"]
    log_ratio = t["logvar_p"] - t["logvar_q"]
    terms = log_ratio + torch.exp(-log_ratio) + diff.pow(2) * torch.exp(-t["logvar_p"]) - 1.0
    return 0.5 * terms.sum(-1)


def _cholesky(cov: torch.Tensor, name: str) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError(f"{name} must be symmetric positive definite; its Cholesky factorisation failed")
    return chol


def _full_args(mean, cov, mean_name, cov_name, like=None):
    mean = as_float_tensor(mean, mean_name, like=like)
    cov = as_float_tensor(cov, cov_name, like=mean)
    check_min_ndim(mean, mean_name, 1, "(..., D)")
    check_square(cov, cov_name)
    check_last_dim(cov, cov_name, mean.shape[-1], f"(..., {mean.shape[-1]}, {mean.shape[-1]})")
    return mean, cov


def gaussian_kl_full(mean_q, cov_q, mean_p, cov_p) -> torch.Tensor:
    r"""KL(q ‖ p) between full-covariance Gaussians q = N(mean_q, cov_q) and p = N(mean_p, cov_p).

    .. math::
        \mathrm{KL}(q\|p) = \tfrac12\Big[\operatorname{tr}(\Sigma_p^{-1}\Sigma_q)
        + (\mu_p-\mu_q)^\top\Sigma_p^{-1}(\mu_p-\mu_q) - D + \log\frac{\det\Sigma_p}{\det\Sigma_q}\Big]

    Computed with Cholesky factors (no explicit inverse). Chapter 1, "KL between Gaussians".

    Args:
        mean_q: ``(..., D)``; cov_q: ``(..., D, D)`` symmetric positive definite.
        mean_p: ``(..., D)``; cov_p: ``(..., D, D)`` symmetric positive definite.

    Returns:
        ``(...)`` the KL divergence in nats.
    """
    mean_q, cov_q = _full_args(mean_q, cov_q, "mean_q", "cov_q")
    mean_p, cov_p = _full_args(mean_p, cov_p, "mean_p", "cov_p", like=mean_q)
    check_same_device(mean_q=mean_q, cov_q=cov_q, mean_p=mean_p, cov_p=cov_p)
    check_symmetric(cov_q, "cov_q")
    check_symmetric(cov_p, "cov_p")
    if mean_q.shape[-1] != mean_p.shape[-1]:
        raise ValueError(
            f"mean_q and mean_p must have the same event size D; got {mean_q.shape[-1]} and {mean_p.shape[-1]}"
        )
    broadcast_batch_shapes(
        mean_q=mean_q.shape[:-1], cov_q=cov_q.shape[:-2], mean_p=mean_p.shape[:-1], cov_p=cov_p.shape[:-2]
    )
    mean_q, cov_q, mean_p, cov_p = promote_float(mean_q, cov_q, mean_p, cov_p)
    L_q = _cholesky(cov_q, "cov_q")
    L_p = _cholesky(cov_p, "cov_p")
    D = mean_q.shape[-1]
    batch = torch.broadcast_shapes(L_q.shape, L_p.shape)
    # tr(Σp⁻¹ Σq) = ‖Lp⁻¹ Lq‖_F²
    M = torch.linalg.solve_triangular(L_p.expand(batch), L_q.expand(batch), upper=False)
    trace = M.pow(2).sum((-2, -1))
    diff = (mean_p - mean_q).unsqueeze(-1)
    vec_batch = torch.broadcast_shapes(L_p.shape[:-2], diff.shape[:-2])
    y = torch.linalg.solve_triangular(
        L_p.expand(*vec_batch, D, D), diff.expand(*vec_batch, D, 1), upper=False
    )
    maha = y.pow(2).sum((-2, -1))
    logdet_p = 2 * torch.log(torch.diagonal(L_p, dim1=-2, dim2=-1)).sum(-1)
    logdet_q = 2 * torch.log(torch.diagonal(L_q, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + maha - D + logdet_p - logdet_q)


def gaussian_entropy(logvar) -> torch.Tensor:
    r"""Differential entropy H(N(μ, diag e^{logvar})) = ½ Σ_d (log 2πe + logvar_d).

    Args:
        logvar: ``(..., D)`` log-variances.

    Returns:
        ``(...)`` entropy in nats (can be negative for small variances: it is a density's entropy).
    """
    logvar = as_float_tensor(logvar, "logvar")
    check_min_ndim(logvar, "logvar", 1, "(..., D)")
    if not bool(torch.isfinite(logvar).all()):
        raise ValueError("logvar must be finite (it is a log-variance); it contains NaN or infinity")
    return 0.5 * (_LOG_2PI_E + logvar).sum(-1)


def gaussian_entropy_full(cov) -> torch.Tensor:
    r"""Differential entropy H(N(μ, Σ)) = ½ (D log 2πe + log det Σ).

    Args:
        cov: ``(..., D, D)`` symmetric positive definite covariance.

    Returns:
        ``(...)`` entropy in nats.
    """
    cov = as_float_tensor(cov, "cov")
    check_square(cov, "cov")
    check_symmetric(cov, "cov")
    L = _cholesky(cov, "cov")
    D = cov.shape[-1]
    return 0.5 * (D * _LOG_2PI_E + 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1))


def _xlogy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x · log y with the convention 0 · log 0 = 0 (and x > 0, y = 0 gives -inf)."""
    return torch.special.xlogy(x, y)


def categorical_entropy(p) -> torch.Tensor:
    r"""Entropy H(p) = -Σ_k p_k log p_k of categorical distributions (0 log 0 = 0).

    Args:
        p: ``(..., K)`` probability vectors (non-negative, summing to 1).

    Returns:
        ``(...)`` entropy in nats, between 0 and log K.
    """
    p = as_float_tensor(p, "p")
    check_probabilities(p, "p")
    return -_xlogy(p, p).sum(-1)


def categorical_cross_entropy(p, q) -> torch.Tensor:
    r"""Cross-entropy H(p, q) = -Σ_k p_k log q_k (infinite where q_k = 0 < p_k).

    H(p, q) = H(p) + KL(p ‖ q): minimising it over q is minimising the KL.

    Args:
        p, q: ``(..., K)`` probability vectors (broadcast).

    Returns:
        ``(...)`` cross-entropy in nats.
    """
    p, q = probability_pair(p, q)
    return -_xlogy(p, q).sum(-1)


def categorical_kl(p, q) -> torch.Tensor:
    r"""KL(p ‖ q) = Σ_k p_k log(p_k / q_k) for categorical distributions.

    Terms with p_k = 0 contribute 0; a term with p_k > 0 = q_k makes the KL ``+inf``.

    Args:
        p, q: ``(..., K)`` probability vectors (broadcast).

    Returns:
        ``(...)`` KL divergence in nats, ``>= 0``.
    """
    p, q = probability_pair(p, q)
    return (_xlogy(p, p) - _xlogy(p, q)).sum(-1)


def monte_carlo_mean(values) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sample mean of i.i.d. draws and its standard error, along the first dimension.

    For draws f_1..f_S the estimate is f̄ = (1/S) Σ f_s and the standard error is
    sqrt(s² / S) with the unbiased sample variance s². An interval f̄ ± 3·SE covers the true
    mean with probability about 99.7 % once S is large (central limit theorem).

    Args:
        values: ``(S, ...)`` draws, ``S >= 2``.

    Returns:
        ``(estimate, standard_error)``, both of shape ``(...)``.
    """
    values = as_float_tensor(values, "values")
    check_min_ndim(values, "values", 1, "(S, ...)")
    S = values.shape[0]
    if S < 2:
        raise ValueError(f"values needs at least 2 samples along dim 0 to estimate a standard error; got {S}")
    estimate = values.mean(0)
    standard_error = values.std(0, unbiased=True) / math.sqrt(S)
    return estimate, standard_error


def kl_monte_carlo(log_q, log_p) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo estimate of KL(q ‖ p) = E_q[log q(z) - log p(z)] with its standard error.

    Args:
        log_q: ``(S, ...)`` log q(z_s) at samples z_s ~ q (draw them from q, not p).
        log_p: ``(S, ...)`` log p(z_s) at the same samples.

    Returns:
        ``(estimate, standard_error)``, both of shape ``(...)``. Single estimates can be
        negative; the expectation cannot.
    """
    log_q = as_float_tensor(log_q, "log_q")
    log_p = as_float_tensor(log_p, "log_p", like=log_q)
    check_same_device(log_q=log_q, log_p=log_p)
    if log_q.shape != log_p.shape:
        raise ValueError(
            f"log_q and log_p must have the same shape (S, ...); got {tuple(log_q.shape)} and {tuple(log_p.shape)}"
        )
    return monte_carlo_mean(log_q - log_p)
