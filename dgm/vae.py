r"""Variational autoencoders: the ELBO, the reparameterisation trick, IWAE and discrete latents (Chapter 3).

A VAE is a latent-variable model p_θ(x, z) = p(z) p_θ(x | z) with p(z) = N(0, I_K) and a decoder
network giving p_θ(x | z), fitted together with an *encoder* q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x))
(an MLP that outputs the mean and the log-variance). For every x and every q,

.. math::
    \log p_\theta(x) = \underbrace{\mathbb E_{q}[\log p_\theta(x \mid z)]
    - \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))}_{\mathrm{ELBO}(x;\,\theta,\phi)}
    + \mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x)),

so the ELBO is a lower bound on log p_θ(x), tight exactly when q is the posterior. The first term
(the *reconstruction* term) is estimated by Monte Carlo; the second has a closed form for a
Gaussian q and the standard-normal prior (:func:`gaussian_kl_standard`):
KL = ½ Σ_k (μ_k² + σ_k² − 1 − log σ_k²).

**Reparameterisation.** With z = g(ε, φ, x) = μ_φ(x) + σ_φ(x) ⊙ ε, ε ~ N(0, I) (:func:`reparameterize`),
the expectation over q becomes one over ε, which does not depend on φ, so both gradients are
expectations of ordinary gradients:

.. math::
    \nabla_\theta\,\mathrm{ELBO} = \mathbb E_\varepsilon\big[\nabla_\theta \log p_\theta(x \mid z)\big|_{z=g(\varepsilon,\phi,x)}\big],
    \qquad
    \nabla_\phi\,\mathrm{ELBO} = \mathbb E_\varepsilon\big[\nabla_\phi \log p_\theta(x, g(\varepsilon,\phi,x))
    - \nabla_\phi \log q_\phi(g(\varepsilon,\phi,x) \mid x)\big].

The θ-gradient is the decoder's gradient *at the sampled z* (not at x); the φ-gradient has a path
through the decoder: ∇_z log p_θ(x | z) · ∂z/∂φ, which a score-function (REINFORCE) estimator would
replace by f · ∇_φ log q. Autograd through :func:`reparameterize` gives both at once.

**IWAE.** With k samples z_i ~ q(z | x) and importance weights w_i = p_θ(x, z_i) / q(z_i | x),

.. math::
    \mathcal L_k(x) = \mathbb E\Big[\log \frac1k \sum_{i=1}^k w_i\Big], \qquad
    \mathrm{ELBO} = \mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p_\theta(x),
    \quad \mathcal L_k \to \log p_\theta(x)\ (k\to\infty)

(:func:`iwae_from_log_weights`, :meth:`VAE.iwae_bound`; Burda et al. 2016). With k in the thousands
it is the usual held-out log-likelihood estimate (:meth:`VAE.log_marginal_estimate`).

**Discrete latents.** A Bernoulli or categorical z cannot be written as a differentiable g(ε, φ).
Two estimators of ∇_θ E_{b ~ p_θ}[f(b)], with θ the logits: the *score function* (REINFORCE)
f(b) ∇_θ log p_θ(b), unbiased but noisy (a baseline c with E[c ∇ log p] = 0 lowers the variance;
:func:`score_function_gradient`), and the *Gumbel-softmax* (Concrete) relaxation
y = softmax((θ + g)/τ), g_k i.i.d. Gumbel, differentiated pathwise: low variance, biased, the bias
vanishing as the temperature τ → 0 while the variance grows (:func:`gumbel_softmax_sample`,
:func:`relaxed_bernoulli_sample`, :func:`gumbel_softmax_gradient`). Both return *per-sample*
estimates, so the page measures their mean and variance against :func:`exact_discrete_gradient`.

**Amortisation gap.** The encoder gives one q per x from a shared network; optimising a separate
(μ, log σ²) for each x with the decoder frozen (:func:`fit_local_posterior`) reaches a higher ELBO.
log p(x) − ELBO(encoder) = [log p(x) − ELBO(best q)] + [ELBO(best q) − ELBO(encoder)]: the
approximation gap plus the amortisation gap.

**Posterior collapse.** A latent dimension whose KL term (:func:`gaussian_kl_standard_per_dim`) is ≈ 0 for
every x carries no information: q(z_k | x) = p(z_k). :func:`active_units` counts the others
(Burda et al.'s activity Cov_x(E_q[z_k]) > 0.01).

Shapes: data ``(B, D)``, latents ``(B, K)``; Monte Carlo samples add a leading dimension ``(S, B, K)``
and results keep the batch shape ``(B,)``. Decoders map z ``(..., K)`` to parameters ``(..., D)``.
Log-densities are in nats. Randomness comes only from a ``generator=`` argument
(``torch.Generator``; draws are made on the generator's device, then moved to the tensors' one, so a
CPU generator gives the same numbers on every device; ``None`` uses torch's default generator).
Networks are initialised from a ``generator=`` of their constructor (:func:`dgm.nets.mlp`).

The model of Chapter 1, p(z) = N(0, I), p(x | z) = N(Wz + b, σ² I), is a VAE with a linear decoder
(:class:`LinearGaussianDecoder`) and an affine encoder (:class:`AffineGaussianEncoder`; the exact
posterior is :func:`exact_posterior_encoder`): every function here applies to it, and its closed
forms (:mod:`dgm.linear_gaussian`) check them.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm  # text bars: they render on the static pages too (tqdm.auto would freeze a widget there)

from dgm._validate import (
    as_float_tensor,
    broadcast_batch,
    check_float_dtype,
    check_generator,
    check_int,
    check_last_dim,
    check_min_ndim,
    check_number,
    check_positive,
    check_same_device,
    diagonal_gaussian_args,
)
from dgm.nets import ACTIVATIONS, mlp

__all__ = [
    "ElboTerms",
    "MarginalEstimate",
    "LocalPosterior",
    "ActiveUnits",
    "VaeHistory",
    "Samples",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "reparameterize",
    "gaussian_kl_standard",
    "gaussian_kl_standard_per_dim",
    "elbo_terms",
    "importance_log_weights",
    "iwae_from_log_weights",
    "active_units",
    "GaussianEncoder",
    "AffineGaussianEncoder",
    "BernoulliDecoder",
    "GaussianDecoder",
    "LinearGaussianDecoder",
    "exact_posterior_encoder",
    "VAE",
    "make_vae",
    "train_vae",
    "fit_local_posterior",
    "score_function_gradient",
    "gumbel_softmax_sample",
    "relaxed_bernoulli_sample",
    "gumbel_softmax_gradient",
    "exact_discrete_gradient",
]

_LOG_2PI = math.log(2 * math.pi)
#: Rows (samples × batch) of z sent through the decoder at once by :meth:`VAE.log_weights`: bounds
#: the memory of the hidden activations (2¹⁷ rows × 128 units × 4 bytes = 64 MiB per layer).
_CHUNK_ROWS = 1 << 17
#: The two discrete latents the estimators handle.
DISTRIBUTIONS = ("bernoulli", "categorical")


# --------------------------------------------------------------------------------------------
# result types
# --------------------------------------------------------------------------------------------


class ElboTerms(NamedTuple):
    """The ELBO of each example and its two parts, each of shape ``(B,)``.

    ``elbo = reconstruction − beta · kl``: ``reconstruction`` is the Monte Carlo estimate of
    E_q[log p(x | z)], ``kl`` is KL(q(z | x) ‖ p(z)) (analytic, or its estimate).
    """

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


class MarginalEstimate(NamedTuple):
    """``log_px`` ``(B,)``: log (1/k Σ w_i), an estimate of log p(x) (biased low, the IWAE-k bound);
    ``std_error`` ``(B,)``: its delta-method standard error sd(w) / (√k · mean(w))."""

    log_px: torch.Tensor
    std_error: torch.Tensor


class LocalPosterior(NamedTuple):
    """Per-example variational parameters ``mean``, ``logvar`` ``(B, K)`` and their ``elbo`` ``(B,)``."""

    mean: torch.Tensor
    logvar: torch.Tensor
    elbo: torch.Tensor


class ActiveUnits(NamedTuple):
    """``active`` ``(K,)`` bool: activity above the threshold; ``activity`` ``(K,)``: Cov_x(E_q[z_k])."""

    active: torch.Tensor
    activity: torch.Tensor


class Samples(NamedTuple):
    """Ancestral samples: ``x`` ``(n, D)`` (draws or decoder means) and the latents ``z`` ``(n, K)``."""

    x: torch.Tensor
    z: torch.Tensor


class VaeHistory(NamedTuple):
    """What :func:`train_vae` records.

    ``elbo``, ``reconstruction``, ``kl``, ``beta``: ``(steps,)`` minibatch means at every step (the
    ELBO with β = 1, whatever β weighted the loss); ``eval_steps`` ``(E,)`` int64 and ``eval_elbo``
    ``(E,)``: the mean held-out ELBO before training (step 0), every ``eval_every`` steps and at the
    end (empty without ``eval_data``).
    """

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    beta: torch.Tensor
    eval_steps: torch.Tensor
    eval_elbo: torch.Tensor


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _draw(kind: str, shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """randn / rand of ``shape`` in ``like``'s dtype, drawn on the generator's device, moved to ``like``'s."""
    device = generator.device if generator is not None else like.device
    fn = torch.randn if kind == "normal" else torch.rand
    return fn(tuple(shape), dtype=like.dtype, device=device, generator=generator).to(like.device)


def _uniform_open(shape, like: torch.Tensor, generator) -> torch.Tensor:
    """U(0, 1) draws kept off 0 and 1, so log U and log(1 − U) are finite."""
    tiny = torch.finfo(like.dtype).tiny
    return _draw("uniform", shape, like, generator).clamp(tiny, 1 - torch.finfo(like.dtype).eps)


def _std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z * z + _LOG_2PI).sum(-1)


def _diag_normal_log_prob(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (_LOG_2PI + logvar + (z - mean).pow(2) * torch.exp(-logvar)).sum(-1)


def _kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    # σ² − 1 − log σ² as expm1(logvar) − logvar: no cancellation when σ² ≈ 1
    return 0.5 * (mean * mean + torch.expm1(logvar) - logvar)


def _bernoulli_ll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    # x log σ(a) + (1 − x) log(1 − σ(a)) = x a − softplus(a)
    return (x * logits - F.softplus(logits)).sum(-1)


def _gaussian_ll(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    # −½ [Σ_d (x_d − m_d)² e^{−logvar_d} + Σ_d logvar_d + D log 2π]; a shared logvar (D,) is summed once
    D = torch.broadcast_shapes(x.shape[-1:], mean.shape[-1:], logvar.shape[-1:])[0]
    quad = ((x - mean).pow(2) * torch.exp(-logvar)).sum(-1)
    log_det = logvar.sum(-1) if logvar.shape[-1] == D else D * logvar[..., 0]
    return -0.5 * (quad + log_det + D * _LOG_2PI)


def _gaussian_params(mean, logvar, name_mean="mean", name_logvar="logvar"):
    mean = as_float_tensor(mean, name_mean)
    logvar = as_float_tensor(logvar, name_logvar, like=mean)
    check_min_ndim(mean, name_mean, 1, "(..., K)")
    check_min_ndim(logvar, name_logvar, 1, "(..., K)")
    check_same_device(**{name_mean: mean, name_logvar: logvar})
    shape = broadcast_batch(**{name_mean: mean, name_logvar: logvar})
    if not bool(torch.isfinite(logvar).all()):
        raise ValueError(f"{name_logvar} must be finite (it is a log-variance); it contains NaN or infinity")
    if not bool(torch.isfinite(mean).all()):
        raise ValueError(f"{name_mean} must be finite; it contains NaN or infinity")
    return mean, logvar, shape


def _one_hot(condition, num_classes: int, like: torch.Tensor, name: str = "condition") -> torch.Tensor | None:
    """``condition`` as float one-hot vectors ``(..., C)`` in ``like``'s dtype; None for an unconditional model.

    Accepts integer labels ``(...)`` in [0, C) or floating (one-hot or soft) vectors ``(..., C)``.
    """
    if num_classes == 0:
        if condition is not None:
            raise ValueError(f"{name} must be None: this model is unconditional (num_classes=0); got "
                             f"{type(condition).__name__}")
        return None
    if condition is None:
        raise ValueError(f"{name} is required: this model is conditional on num_classes={num_classes} classes; "
                         f"pass integer labels (B,) or one-hot vectors (B, {num_classes})")
    if not isinstance(condition, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of integer labels (B,) or one-hot vectors (B, {num_classes}); "
                        f"got {type(condition).__name__}")
    check_same_device(**{name: condition, "x": like})
    if condition.dtype == torch.bool or condition.is_complex():
        raise TypeError(f"{name} must hold integer labels or floating one-hot vectors; got dtype {condition.dtype}")
    if torch.is_floating_point(condition):
        check_min_ndim(condition, name, 1, f"(..., {num_classes})")
        check_last_dim(condition, name, num_classes, f"(..., {num_classes})")
        return condition.to(like.dtype)
    if condition.numel() and (int(condition.min()) < 0 or int(condition.max()) >= num_classes):
        raise ValueError(f"{name} must hold labels in [0, {num_classes - 1}]; got values from "
                         f"{int(condition.min())} to {int(condition.max())}")
    return F.one_hot(condition.long(), num_classes).to(like.dtype)


def _with_condition(inputs: torch.Tensor, onehot: torch.Tensor | None, name: str = "condition") -> torch.Tensor:
    """[inputs, onehot] along the last dimension, the one-hot broadcast over the inputs' batch shape."""
    if onehot is None:
        return inputs
    try:
        batch = torch.broadcast_shapes(inputs.shape[:-1], onehot.shape[:-1])
    except RuntimeError:
        batch = None
    if batch != inputs.shape[:-1]:
        raise ValueError(f"{name} of batch shape {tuple(onehot.shape[:-1])} does not broadcast to the inputs' "
                         f"batch shape {tuple(inputs.shape[:-1])}")
    return torch.cat([inputs, onehot.expand(*inputs.shape[:-1], onehot.shape[-1])], dim=-1)


# --------------------------------------------------------------------------------------------
# log-likelihoods, the reparameterisation trick, the KL term
# --------------------------------------------------------------------------------------------


def bernoulli_log_likelihood(x, logits) -> torch.Tensor:
    r"""log p(x | z) = Σ_d [x_d log σ(a_d) + (1 − x_d) log(1 − σ(a_d))] = Σ_d [x_d a_d − softplus(a_d)].

    The Bernoulli decoder's log-likelihood from the logits a (never log σ(a), which is −∞ in
    float32 for a < −104). ``x`` may be any value in [0, 1] (grey levels, as for the digits): the
    formula is then the negative binary cross-entropy, which is not a normalised density of a
    continuous x (the *continuous Bernoulli* adds a normaliser) but is what VAEs on grey-level
    images maximise.

    Args:
        x: ``(..., D)`` data in [0, 1].
        logits: ``(..., D)`` logits a (broadcast against ``x``).

    Returns:
        ``(...)`` the log-likelihood summed over the last dimension, in nats.
    """
    logits = as_float_tensor(logits, "logits")
    x = as_float_tensor(x, "x", like=logits)
    check_min_ndim(x, "x", 1, "(..., D)")
    check_min_ndim(logits, "logits", 1, "(..., D)")
    check_same_device(x=x, logits=logits)
    broadcast_batch(x=x, logits=logits)
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError(f"x must lie in [0, 1] (pixel intensities or binary data); got values from "
                         f"{float(x.min()):g} to {float(x.max()):g}")
    return _bernoulli_ll(x, logits)


def gaussian_log_likelihood(x, mean, logvar) -> torch.Tensor:
    r"""log N(x; mean, diag e^{logvar}) = −½ Σ_d [log 2π + logvar_d + (x_d − mean_d)² e^{−logvar_d}].

    The Gaussian decoder's log-likelihood. ``logvar`` may be a number (one fixed variance for every
    coordinate, e.g. log σ² of the linear-Gaussian model).

    Args:
        x: ``(..., D)`` data.
        mean: ``(..., D)`` decoder means (broadcast against ``x``).
        logvar: ``(..., D)`` log-variances, or a number / 0-dim tensor (broadcast).

    Returns:
        ``(...)`` the log-density summed over the last dimension, in nats.
    """
    mean = as_float_tensor(mean, "mean")
    logvar = as_float_tensor(logvar, "logvar", like=mean)
    if logvar.dim() == 0:
        logvar = logvar.reshape(1)
    x, mean, logvar = diagonal_gaussian_args(x, mean, logvar)
    return _gaussian_ll(x, mean, logvar)


def reparameterize(mean, logvar, generator: torch.Generator | None = None, n_samples: int | None = None, *,
                   noise=None) -> torch.Tensor:
    r"""z = g(ε, φ) = mean + exp(½ logvar) ⊙ ε with ε ~ N(0, I): a draw from N(mean, diag e^{logvar}).

    Gradients flow to ``mean`` and ``logvar``: ∂z/∂mean = 1, ∂z/∂logvar = ½ σ ε.

    Args:
        mean, logvar: ``(..., K)`` (broadcast).
        generator: ``torch.Generator`` for ε (draws on its device, then moved to mean's).
        n_samples: S; when given, the result has a leading sample dimension ``(S, ..., K)``.
        noise: ε itself, of the result's shape, instead of drawing it (common random numbers).

    Returns:
        ``(..., K)``, or ``(S, ..., K)`` when ``n_samples`` is given.
    """
    mean, logvar, shape = _gaussian_params(mean, logvar)
    check_generator(generator)
    if n_samples is not None:
        shape = (check_int(n_samples, "n_samples", low=1), *shape)
    if noise is None:
        noise = _draw("normal", shape, mean, generator)
    else:
        noise = as_float_tensor(noise, "noise", like=mean)
        check_same_device(mean=mean, noise=noise)
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise must have shape {tuple(shape)}; got {tuple(noise.shape)}")
    return mean + torch.exp(0.5 * logvar) * noise


def gaussian_kl_standard(mean, logvar) -> torch.Tensor:
    r"""KL(N(mean, diag e^{logvar}) ‖ N(0, I)) = ½ Σ_k (μ_k² + σ_k² − 1 − log σ_k²).

    The ELBO's regulariser for a Gaussian encoder and the standard-normal prior.

    Args:
        mean, logvar: ``(..., K)`` (broadcast).

    Returns:
        ``(...)`` KL in nats, ≥ 0, summed over the K latent dimensions.
    """
    mean, logvar, _ = _gaussian_params(mean, logvar)
    return _kl_per_dim(mean, logvar).sum(-1)


def gaussian_kl_standard_per_dim(mean, logvar) -> torch.Tensor:
    r"""The KL of each latent dimension, ½ (μ_k² + σ_k² − 1 − log σ_k²), not summed.

    A dimension whose KL is ≈ 0 for every x has collapsed: q(z_k | x) = p(z_k) carries no
    information about x (posterior collapse).

    Args:
        mean, logvar: ``(..., K)`` (broadcast).

    Returns:
        ``(..., K)`` KL per dimension in nats, each ≥ 0; they sum to :func:`gaussian_kl_standard`.
    """
    mean, logvar, shape = _gaussian_params(mean, logvar)
    return _kl_per_dim(mean, logvar).expand(shape)


def _check_beta(beta) -> float:
    return check_number(beta, "beta", low=0)


def elbo_terms(log_px_given_z, mean, logvar, beta: float = 1.0) -> ElboTerms:
    r"""ELBO = E_q[log p(x | z)] − β · KL(q(z | x) ‖ N(0, I)) from Monte Carlo log-likelihoods.

    The functional form of :meth:`VAE.elbo`: ``log_px_given_z`` holds log p_θ(x | z_s) at samples
    z_s ~ q = N(mean, diag e^{logvar}) (drawn by the caller, e.g. with :func:`reparameterize`); the
    reconstruction term is their mean over the samples, the KL is analytic. β = 1 gives the ELBO;
    β ≠ 1 the β-VAE objective.

    Args:
        log_px_given_z: ``(S, ...)`` with a leading sample dimension, or ``(...)`` for one sample,
            where ``(...)`` is the batch shape of ``mean``.
        mean, logvar: ``(..., K)`` the parameters of q (broadcast).
        beta: the weight β ≥ 0 of the KL term.

    Returns:
        :class:`ElboTerms` ``(elbo, reconstruction, kl)``, each of shape ``(...)``.
    """
    mean, logvar, shape = _gaussian_params(mean, logvar)
    log_px = as_float_tensor(log_px_given_z, "log_px_given_z", like=mean)
    check_same_device(log_px_given_z=log_px, mean=mean)
    beta = _check_beta(beta)
    batch = tuple(shape[:-1])
    if tuple(log_px.shape) == batch:
        reconstruction = log_px
    elif log_px.dim() == len(batch) + 1 and tuple(log_px.shape[1:]) == batch and log_px.shape[0] >= 1:
        reconstruction = log_px.mean(0)
    else:
        raise ValueError(f"log_px_given_z must have shape (S, *{batch}) or {batch} (the batch shape of mean and "
                         f"logvar, with an optional leading sample dimension); got {tuple(log_px.shape)}")
    kl = _kl_per_dim(mean, logvar).sum(-1).expand(batch)
    return ElboTerms(reconstruction - beta * kl, reconstruction, kl)


def importance_log_weights(log_px_given_z, z, mean, logvar) -> torch.Tensor:
    r"""log w = log p(x | z) + log N(z; 0, I) − log N(z; mean, diag e^{logvar}) = log p(x, z) − log q(z | x).

    The log importance weights of samples z ~ q; their mean is the single-sample ELBO estimate with
    a sampled KL, their log-mean-exp the IWAE bound (:func:`iwae_from_log_weights`).

    Args:
        log_px_given_z: ``(S, ...)`` log p(x | z_s).
        z: ``(S, ..., K)`` the samples.
        mean, logvar: ``(..., K)`` the parameters of q (broadcast against z).

    Returns:
        ``(S, ...)`` log weights.
    """
    z = as_float_tensor(z, "z")
    check_min_ndim(z, "z", 2, "(S, ..., K)")
    mean, logvar, _ = _gaussian_params(mean, logvar)
    log_px = as_float_tensor(log_px_given_z, "log_px_given_z", like=z)
    check_same_device(z=z, mean=mean, logvar=logvar, log_px_given_z=log_px)
    check_last_dim(mean, "mean", z.shape[-1], f"(..., {z.shape[-1]})")
    check_last_dim(logvar, "logvar", z.shape[-1], f"(..., {z.shape[-1]})")
    broadcast_batch(z=z, mean=mean, logvar=logvar)
    if tuple(log_px.shape) != tuple(z.shape[:-1]):
        raise ValueError(f"log_px_given_z must have shape {tuple(z.shape[:-1])} (z's without its last dimension); "
                         f"got {tuple(log_px.shape)}")
    return log_px + _std_normal_log_prob(z) - _diag_normal_log_prob(z, mean, logvar)


def iwae_from_log_weights(log_w, dim: int = 0) -> torch.Tensor:
    r"""The IWAE estimate log (1/k Σ_i w_i) = logsumexp_i(log w_i) − log k, along ``dim``.

    Its expectation is the IWAE bound L_k: L_1 = ELBO ≤ L_k ≤ L_{k+1} ≤ log p(x). Computed with
    ``logsumexp`` (the weights themselves under- or overflow: log w is −100 for an image).

    Args:
        log_w: ``(k, ...)`` log importance weights log p(x, z_i) − log q(z_i | x) (sample
            dimension ``dim``, default 0).
        dim: the sample dimension.

    Returns:
        ``(...)`` the estimate, ``log_w`` without the sample dimension.
    """
    log_w = as_float_tensor(log_w, "log_w")
    check_min_ndim(log_w, "log_w", 1, "(k, ...)")
    dim = check_int(dim, "dim", low=-log_w.dim(), high=log_w.dim() - 1,
                    expected=f"a dimension of log_w (an integer in [{-log_w.dim()}, {log_w.dim() - 1}])")
    k = log_w.shape[dim]
    if k < 1:
        raise ValueError(f"log_w must hold at least one sample along dim {dim}; got shape {tuple(log_w.shape)}")
    if bool(torch.isnan(log_w).any()):
        raise ValueError("log_w must not contain NaN")
    return torch.logsumexp(log_w, dim=dim) - math.log(k)


def active_units(mean, threshold: float = 1e-2) -> ActiveUnits:
    r"""Active latent units: activity A_k = Cov_x(E_q[z_k | x]) > threshold (Burda et al. 2016).

    A collapsed dimension has the same posterior for every x, so its posterior mean does not vary
    across the data set: A_k ≈ 0 (and its KL per dimension ≈ 0).

    Args:
        mean: ``(N, K)`` encoder means μ_φ(x) over a data set, N ≥ 2.
        threshold: the activity above which a unit counts as active (default 0.01).

    Returns:
        :class:`ActiveUnits` ``(active (K,) bool, activity (K,))``, activity the variance over the
        N rows (divisor N − 1).
    """
    mean = as_float_tensor(mean, "mean")
    if mean.dim() != 2 or mean.shape[0] < 2:
        raise ValueError(f"mean must have shape (N, K) with N >= 2 (posterior means over a data set); "
                         f"got shape {tuple(mean.shape)}")
    threshold = check_number(threshold, "threshold", low=0)
    activity = mean.var(0, unbiased=True)
    return ActiveUnits(activity > threshold, activity)


# --------------------------------------------------------------------------------------------
# encoders and decoders
# --------------------------------------------------------------------------------------------


def _check_input(t: torch.Tensor, name: str, size: int, module: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor (..., {size}); got {type(t).__name__}")
    if t.dim() == 0 or t.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}) for this {module}; got {tuple(t.shape)}")


class GaussianEncoder(nn.Module):
    r"""q_φ(z | x) = N(μ_φ(x), diag exp(logvar_φ(x))): an MLP [x, onehot(y)] ↦ (μ, log σ²).

    One :func:`dgm.nets.mlp` with ``2K`` outputs, split into the mean and the log-variance. For a
    conditional VAE (``num_classes`` = C > 0) the one-hot class is concatenated to x.

    Args:
        data_dim: D; latent_dim: K.
        hidden: width of the hidden layers; depth: their number.
        num_classes: C > 0 for a conditional encoder q(z | x, y), 0 otherwise.
        activation: one of :data:`dgm.nets.ACTIVATIONS`.
        generator: CPU ``torch.Generator`` for the initial weights (global RNG when None).
        dtype, device: of the parameters.

    Call ``encoder(x, condition=None)`` with x ``(..., D)`` → ``(mean, logvar)``, each ``(..., K)``.
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden: int = 128, depth: int = 1, *, num_classes: int = 0,
                 activation: str = "relu", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.data_dim = check_int(data_dim, "data_dim", low=1)
        self.latent_dim = check_int(latent_dim, "latent_dim", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=0)
        self.net = mlp(self.data_dim + self.num_classes, hidden, 2 * self.latent_dim, depth, activation,
                       generator=generator, dtype=check_float_dtype(dtype), device=device)

    def forward(self, x: torch.Tensor, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(x, "x", self.data_dim, "encoder")
        h = self.net(_with_condition(x, _one_hot(condition, self.num_classes, x)))
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar


class AffineGaussianEncoder(nn.Module):
    r"""q_φ(z | x) = N(A x + c, diag exp(ℓ)) with parameters φ = (A ``(K, D)``, c ``(K,)``, ℓ ``(K,)``).

    The encoder of the linear-Gaussian model: its exact posterior has this form (a mean affine in x,
    a covariance independent of x; diagonal when WᵀW is, see :func:`exact_posterior_encoder`).
    φ are ``nn.Parameter``\ s, so autograd gives ∇_φ. ``num_classes`` is 0.

    Args:
        weight: ``(K, D)`` A; bias: ``(K,)`` c; logvar: ``(K,)`` ℓ (finite).

    Call ``encoder(x)`` with x ``(..., D)`` → ``(mean (..., K), logvar (..., K))``.
    """

    num_classes = 0

    def __init__(self, weight, bias, logvar) -> None:
        super().__init__()
        weight = as_float_tensor(weight, "weight")
        if weight.dim() != 2:
            raise ValueError(f"weight must have shape (K, D); got shape {tuple(weight.shape)}")
        K, D = weight.shape
        bias = as_float_tensor(bias, "bias", like=weight)
        logvar = as_float_tensor(logvar, "logvar", like=weight)
        for name, t in (("bias", bias), ("logvar", logvar)):
            if tuple(t.shape) != (K,):
                raise ValueError(f"{name} must have shape ({K},) to match weight of shape ({K}, {D}); "
                                 f"got shape {tuple(t.shape)}")
        check_same_device(weight=weight, bias=bias, logvar=logvar)
        if not bool(torch.isfinite(logvar).all()):
            raise ValueError("logvar must be finite (it is a log-variance); it contains NaN or infinity")
        dtype = torch.promote_types(torch.promote_types(weight.dtype, bias.dtype), logvar.dtype)
        self.data_dim, self.latent_dim = D, K
        self.weight = nn.Parameter(weight.detach().to(dtype).clone())
        self.bias = nn.Parameter(bias.detach().to(dtype).clone())
        self.logvar = nn.Parameter(logvar.detach().to(dtype).clone())

    def forward(self, x: torch.Tensor, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(x, "x", self.data_dim, "encoder")
        _one_hot(condition, 0, x)
        mean = x @ self.weight.T + self.bias
        return mean, self.logvar.expand_as(mean)


class _Decoder(nn.Module):
    """The decoder interface :class:`VAE` relies on: ``latent_dim``, ``data_dim``, ``num_classes``,
    ``_log_likelihood(x, z, onehot)`` (no checks), ``log_likelihood``, ``mean`` and ``sample``."""

    latent_dim: int
    data_dim: int
    num_classes: int = 0

    def _params(self, z: torch.Tensor, onehot: torch.Tensor | None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _log_likelihood(self, x: torch.Tensor, z: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def _mean(self, params) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def _sample(self, params, generator) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def _inputs(self, z, condition):
        _check_input(z, "z", self.latent_dim, "decoder")
        return _one_hot(condition, self.num_classes, z)

    def log_likelihood(self, x, z, condition=None) -> torch.Tensor:
        r"""log p_θ(x | z) ``(...)`` for x ``(..., D)`` and z ``(..., K)`` (batch shapes broadcast, e.g.
        z ``(S, B, K)`` against x ``(B, D)``), summed over the D coordinates."""
        onehot = self._inputs(z, condition)
        x = as_float_tensor(x, "x", like=z)
        _check_input(x, "x", self.data_dim, "decoder")
        check_same_device(x=x, z=z)
        broadcast_batch(x=x[..., :1], z=z[..., :1])
        self._check_data(x)
        return self._log_likelihood(x, z, onehot)

    def _check_data(self, x: torch.Tensor) -> None:
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x must be finite; it contains NaN or infinity")

    def mean(self, z, condition=None) -> torch.Tensor:
        """E_θ[x | z] ``(..., D)`` for z ``(..., K)``."""
        return self._mean(self._params(z, self._inputs(z, condition)))

    def sample(self, z, condition=None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw x ~ p_θ(x | z) ``(..., D)`` for z ``(..., K)``."""
        check_generator(generator)
        return self._sample(self._params(z, self._inputs(z, condition)), generator)


class BernoulliDecoder(_Decoder):
    r"""p_θ(x | z) = Π_d Ber(x_d; σ(a_d(z))): an MLP [z, onehot(y)] ↦ logits a ``(..., D)``.

    Calling it returns the logits; :meth:`log_likelihood` is :func:`bernoulli_log_likelihood` (x in
    [0, 1]); :meth:`mean` is σ(a); :meth:`sample` draws 0/1 pixels.

    Args:
        latent_dim: K; data_dim: D; hidden, depth, num_classes, activation, generator, dtype,
        device: as in :class:`GaussianEncoder`.
    """

    def __init__(self, latent_dim: int, data_dim: int, hidden: int = 128, depth: int = 1, *, num_classes: int = 0,
                 activation: str = "relu", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.latent_dim = check_int(latent_dim, "latent_dim", low=1)
        self.data_dim = check_int(data_dim, "data_dim", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=0)
        self.net = mlp(self.latent_dim + self.num_classes, hidden, self.data_dim, depth, activation,
                       generator=generator, dtype=check_float_dtype(dtype), device=device)

    def forward(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        return self._params(z, self._inputs(z, condition))

    def _params(self, z, onehot):
        return self.net(_with_condition(z, onehot))

    def _log_likelihood(self, x, z, onehot):
        return _bernoulli_ll(x, self._params(z, onehot))

    def _check_data(self, x):
        if not bool(((x >= 0) & (x <= 1)).all()):
            raise ValueError(f"x must lie in [0, 1] for a Bernoulli decoder; got values from {float(x.min()):g} "
                             f"to {float(x.max()):g}")

    def _mean(self, logits):
        return torch.sigmoid(logits)

    def _sample(self, logits, generator):
        return (_draw("uniform", logits.shape, logits, generator) < torch.sigmoid(logits)).to(logits.dtype)


class GaussianDecoder(_Decoder):
    r"""p_θ(x | z) = N(x; m_θ(z), diag σ²): an MLP [z, onehot(y)] ↦ the mean m ``(..., D)``, and either
    a fixed log-variance (a number) or a learned one per coordinate and per z.

    A learned log-variance is the network's second half of outputs h, bounded below softly,
    logvar = min_logvar + softplus(h − min_logvar): on data with constant pixels (the digits'
    borders) an unbounded variance shrinks to 0 and the likelihood diverges.

    Args:
        latent_dim: K; data_dim: D; hidden, depth, num_classes, activation, generator, dtype,
        device: as in :class:`GaussianEncoder`.
        logvar: a fixed log σ² (a finite number), or None to learn it.
        min_logvar: the soft floor of a learned log-variance.

    Calling it returns ``(mean, logvar)``, each ``(..., D)``.
    """

    def __init__(self, latent_dim: int, data_dim: int, hidden: int = 128, depth: int = 1, *, num_classes: int = 0,
                 logvar: float | None = 0.0, min_logvar: float = -6.0, activation: str = "relu",
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.latent_dim = check_int(latent_dim, "latent_dim", low=1)
        self.data_dim = check_int(data_dim, "data_dim", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=0)
        self.fixed_logvar = None if logvar is None else check_number(logvar, "logvar")
        self.min_logvar = check_number(min_logvar, "min_logvar")
        outputs = self.data_dim * (1 if self.fixed_logvar is not None else 2)
        self.net = mlp(self.latent_dim + self.num_classes, hidden, outputs, depth, activation,
                       generator=generator, dtype=check_float_dtype(dtype), device=device)

    def forward(self, z: torch.Tensor, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._params(z, self._inputs(z, condition))

    def _params(self, z, onehot):
        h = self.net(_with_condition(z, onehot))
        if self.fixed_logvar is not None:
            return h, torch.full_like(h, self.fixed_logvar)
        mean, raw = h.chunk(2, dim=-1)
        return mean, self.min_logvar + F.softplus(raw - self.min_logvar)

    def _log_likelihood(self, x, z, onehot):
        mean, logvar = self._params(z, onehot)
        return _gaussian_ll(x, mean, logvar)

    def _mean(self, params):
        return params[0]

    def _sample(self, params, generator):
        mean, logvar = params
        return mean + torch.exp(0.5 * logvar) * _draw("normal", mean.shape, mean, generator)


class LinearGaussianDecoder(_Decoder):
    r"""Chapter 1's decoder p_θ(x | z) = N(Wz + b, σ² I_D), with θ = (W ``(D, K)``, b ``(D,)``, log σ²).

    W, b and log σ² are ``nn.Parameter``\ s (autograd gives ∇_θ). With the prior N(0, I) the
    marginal is p(x) = N(b, WWᵀ + σ² I) (:func:`dgm.linear_gaussian.log_marginal`).

    Args:
        W: ``(D, K)``; b: ``(D,)``; sigma2: a positive scalar.

    Calling it returns the mean Wz + b ``(..., D)``.
    """

    def __init__(self, W, b, sigma2) -> None:
        super().__init__()
        W = as_float_tensor(W, "W")
        if W.dim() != 2:
            raise ValueError(f"W must have shape (D, K); got shape {tuple(W.shape)}")
        D, K = W.shape
        b = as_float_tensor(b, "b", like=W)
        if tuple(b.shape) != (D,):
            raise ValueError(f"b must have shape ({D},) to match W of shape ({D}, {K}); got shape {tuple(b.shape)}")
        sigma2 = as_float_tensor(sigma2, "sigma2", like=W)
        if sigma2.dim() != 0:
            raise ValueError(f"sigma2 must be a scalar (one noise variance); got shape {tuple(sigma2.shape)}")
        check_positive(sigma2, "sigma2")
        check_same_device(W=W, b=b, sigma2=sigma2)
        dtype = torch.promote_types(torch.promote_types(W.dtype, b.dtype), sigma2.dtype)
        self.data_dim, self.latent_dim = D, K
        self.W = nn.Parameter(W.detach().to(dtype).clone())
        self.b = nn.Parameter(b.detach().to(dtype).clone())
        self.log_sigma2 = nn.Parameter(torch.log(sigma2.detach().to(dtype)).clone())

    def forward(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        return self._params(z, self._inputs(z, condition))[0]

    def _params(self, z, onehot):
        mean = z @ self.W.T + self.b
        return mean, self.log_sigma2.expand(mean.shape[-1:])

    def _log_likelihood(self, x, z, onehot):
        mean, logvar = self._params(z, onehot)
        return _gaussian_ll(x, mean, logvar)

    def _mean(self, params):
        return params[0]

    def _sample(self, params, generator):
        mean, logvar = params
        return mean + torch.exp(0.5 * logvar) * _draw("normal", mean.shape, mean, generator)


def exact_posterior_encoder(W, b, sigma2) -> AffineGaussianEncoder:
    r"""The exact posterior of the linear-Gaussian model as an :class:`AffineGaussianEncoder`.

    p(z | x) = N(S Wᵀ(x − b)/σ², S), S = (I + WᵀW/σ²)⁻¹ (Chapter 1): the encoder has A = S Wᵀ/σ²,
    c = −A b and ℓ = log diag S. A diagonal q can be exact only when S is diagonal, i.e. when the
    columns of W are orthogonal; otherwise this raises ``ValueError``.

    Args:
        W: ``(D, K)``; b: ``(D,)``; sigma2: a positive scalar.

    Returns:
        :class:`AffineGaussianEncoder` with ELBO(x) = log p(x) for every x.
    """
    decoder = LinearGaussianDecoder(W, b, sigma2)
    W, b = decoder.W.detach(), decoder.b.detach()
    sigma2 = torch.exp(decoder.log_sigma2.detach())
    gram = W.T @ W
    off = gram - torch.diag_embed(torch.diagonal(gram))
    scale = float(torch.diagonal(gram).abs().max().clamp(min=1e-300))
    if float(off.abs().max()) > 1e3 * torch.finfo(W.dtype).eps * scale:
        raise ValueError(f"W's columns must be orthogonal (WᵀW diagonal) for the posterior covariance to be "
                         f"diagonal; the largest off-diagonal entry of WᵀW is {float(off.abs().max()):.3g}")
    s = 1.0 / (1.0 + torch.diagonal(gram) / sigma2)
    A = s[:, None] * W.T / sigma2
    return AffineGaussianEncoder(A, -(A @ b), torch.log(s))


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


class VAE(nn.Module):
    r"""A VAE: the prior N(0, I_K), a decoder p_θ(x | z) and an encoder q_φ(z | x) (optionally
    conditioned on a class y: p_θ(x | z, y), q_φ(z | x, y)).

    ``encoder(x, condition)`` must return ``(mean, logvar)`` ``(..., K)`` (:class:`GaussianEncoder`,
    :class:`AffineGaussianEncoder`); ``decoder`` is a :class:`BernoulliDecoder`,
    :class:`GaussianDecoder` or :class:`LinearGaussianDecoder`. Both must agree on K and on the
    number of classes C (0: unconditional). A ``condition`` is integer labels ``(B,)`` or one-hot
    vectors ``(B, C)``.

    Methods: :meth:`elbo` (also ``model(x)``), :meth:`log_weights`, :meth:`iwae_bound`,
    :meth:`log_marginal_estimate`, :meth:`sample`, :meth:`kl_per_dimension`.
    """

    def __init__(self, encoder: nn.Module, decoder: _Decoder) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be a torch.nn.Module returning (mean, logvar); got {type(encoder).__name__}")
        if not isinstance(decoder, _Decoder):
            raise TypeError("decoder must be a BernoulliDecoder, GaussianDecoder or LinearGaussianDecoder; got "
                            f"{type(decoder).__name__}")
        enc_k = getattr(encoder, "latent_dim", decoder.latent_dim)
        if enc_k != decoder.latent_dim:
            raise ValueError(f"encoder and decoder must share the latent size K; got encoder latent_dim={enc_k} and "
                             f"decoder latent_dim={decoder.latent_dim}")
        enc_c = getattr(encoder, "num_classes", 0)
        if enc_c != decoder.num_classes:
            raise ValueError(f"encoder and decoder must be conditioned on the same number of classes; got encoder "
                             f"num_classes={enc_c} and decoder num_classes={decoder.num_classes}")
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim, self.data_dim, self.num_classes = decoder.latent_dim, decoder.data_dim, decoder.num_classes

    # ---- checks -------------------------------------------------------------------------------

    def _reference(self) -> torch.Tensor:
        return next(self.decoder.parameters())

    def _data(self, x, name: str = "x") -> torch.Tensor:
        ref = self._reference()
        x = as_float_tensor(x, name, like=ref)
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"{name} must have shape (B, {self.data_dim}); got shape {tuple(x.shape)}")
        if x.dtype != ref.dtype:
            raise TypeError(f"{name} must have the model's dtype {ref.dtype}; got {x.dtype} (convert it, or the model "
                            "with .to(dtype))")
        check_same_device(**{name: x, "model": ref})
        self.decoder._check_data(x)
        return x

    def _q(self, x, onehot, q):
        if q is None:
            return self.encoder(x, onehot)
        if not isinstance(q, (tuple, list)) or len(q) != 2:
            raise TypeError(f"q must be a pair (mean, logvar) of tensors (B, {self.latent_dim}); got "
                            f"{type(q).__name__}")
        mean, logvar, _ = _gaussian_params(q[0], q[1], "q mean", "q logvar")
        for name, t in (("q mean", mean), ("q logvar", logvar)):
            if tuple(t.shape) != (x.shape[0], self.latent_dim):
                raise ValueError(f"{name} must have shape ({x.shape[0]}, {self.latent_dim}); got {tuple(t.shape)}")
        check_same_device(x=x, q_mean=mean)
        return mean, logvar

    def _noise(self, noise, n_samples, B: int, like, generator):
        """ε ``(S, B, K)``: drawn (S = n_samples, default 1), or ``noise`` ``(S, B, K)`` / ``(B, K)`` checked."""
        K = self.latent_dim
        if n_samples is not None:
            n_samples = check_int(n_samples, "n_samples", low=1)
        if noise is None:
            return _draw("normal", (n_samples or 1, B, K), like, generator)
        noise = as_float_tensor(noise, "noise", like=like)
        check_same_device(noise=noise, x=like)
        if noise.dim() == 2:
            noise = noise.unsqueeze(0)
        if noise.dim() != 3 or tuple(noise.shape[1:]) != (B, K) or noise.shape[0] < 1:
            raise ValueError(f"noise must have shape (S, {B}, {K}) or ({B}, {K}); got {tuple(noise.shape)}")
        if n_samples is not None and noise.shape[0] != n_samples:
            raise ValueError(f"n_samples={n_samples} disagrees with noise of shape {tuple(noise.shape)}; "
                             "give one or make them agree")
        return noise.to(like.dtype)

    # ---- the bounds ---------------------------------------------------------------------------

    def _elbo(self, x, onehot, mean, logvar, eps, beta: float, kl: str) -> ElboTerms:
        """No checks: x ``(B, D)``, mean/logvar ``(B, K)``, eps ``(S, B, K)``."""
        z = mean + torch.exp(0.5 * logvar) * eps
        reconstruction = self.decoder._log_likelihood(x, z, onehot).mean(0)
        if kl == "analytic":
            kl_term = _kl_per_dim(mean, logvar).sum(-1)
        else:
            kl_term = (_diag_normal_log_prob(z, mean, logvar) - _std_normal_log_prob(z)).mean(0)
        return ElboTerms(reconstruction - beta * kl_term, reconstruction, kl_term)

    def elbo(self, x, *, generator: torch.Generator | None = None, n_samples: int | None = None, beta: float = 1.0,
             condition=None, kl: str = "analytic", q=None, noise=None) -> ElboTerms:
        r"""The reparameterised ELBO estimate of each example, and its parts.

        With z_s = μ + σ ⊙ ε_s, ε_s ~ N(0, I), s = 1..S:

        .. math::
            \widehat{\mathrm{ELBO}}(x) = \frac1S\sum_s \log p_\theta(x \mid z_s) - \beta\,\mathrm{KL}(q \,\|\, p(z))

        with the analytic KL (``kl="analytic"``) or its estimate (1/S) Σ_s [log q(z_s | x) − log p(z_s)]
        (``kl="sample"``; then each term is log p(x, z_s) − log q(z_s | x), whose variance is 0 when
        q is the exact posterior). Differentiable in θ and φ: −elbo.mean() is the training loss.

        Args:
            x: ``(B, D)`` data (in [0, 1] for a Bernoulli decoder), the model's dtype and device.
            generator: for ε; n_samples: S ≥ 1 (default 1, or the first size of ``noise``);
            beta: the KL weight β ≥ 0 (1: the ELBO).
            condition: labels ``(B,)`` or one-hot ``(B, C)`` for a conditional model, else None.
            kl: ``"analytic"`` or ``"sample"``.
            q: optional ``(mean, logvar)`` ``(B, K)`` to use instead of the encoder's q(z | x).
            noise: optional ε ``(S, B, K)`` or ``(B, K)`` instead of drawing it (common random numbers).

        Returns:
            :class:`ElboTerms` ``(elbo, reconstruction, kl)``, each ``(B,)``.
        """
        x = self._data(x)
        beta = _check_beta(beta)
        check_generator(generator)
        if kl not in ("analytic", "sample"):
            raise ValueError(f"kl must be 'analytic' or 'sample'; got {kl!r}")
        onehot = _one_hot(condition, self.num_classes, x)
        mean, logvar = self._q(x, onehot, q)
        eps = self._noise(noise, n_samples, x.shape[0], mean, generator)
        return self._elbo(x, onehot, mean, logvar, eps, beta, kl)

    def forward(self, x, condition=None, **kwargs) -> ElboTerms:
        """The same as :meth:`elbo` (so that ``torch.func.functional_call`` can evaluate it)."""
        return self.elbo(x, condition=condition, **kwargs)

    def _log_weights(self, x, onehot, mean, logvar, k: int, generator, chunk_size: int | None,
                     noise=None) -> torch.Tensor:
        B = x.shape[0]
        chunk = chunk_size or max(1, _CHUNK_ROWS // max(B, 1))
        pieces = []
        std = torch.exp(0.5 * logvar)
        half_log_det = 0.5 * logvar.sum(-1)
        # every ε drawn at once (k·B·K numbers, few next to the activations): the chunk size does not change them
        eps_all = self._noise(noise, k, B, mean, generator)
        for start in range(0, k, chunk):
            eps = eps_all[start:start + chunk]
            z = mean + std * eps
            log_px = self.decoder._log_likelihood(x, z, onehot)
            # log p(z) − log q(z | x) at z = μ + σε: −½ Σ z² + ½ Σ (log σ² + ε²)  (the log 2π cancel)
            pieces.append(log_px + 0.5 * (eps * eps - z * z).sum(-1) + half_log_det)
        return torch.cat(pieces, dim=0)

    def log_weights(self, x, k: int, *, generator: torch.Generator | None = None, condition=None, q=None,
                    chunk_size: int | None = None, noise=None) -> torch.Tensor:
        r"""k log importance weights per example, log w_i = log p_θ(x, z_i) − log q_φ(z_i | x), z_i ~ q.

        The samples go through the decoder in chunks of ``chunk_size`` (default: about 2¹⁷ / B
        samples at a time), so that k = 5000 fits in memory under ``torch.no_grad()``; with
        gradients on, autograd keeps every chunk's activations anyway.

        Args:
            x: ``(B, D)``; k: the number of samples ≥ 1; generator, condition, q: as in :meth:`elbo`.
            chunk_size: samples per chunk (a positive integer), or None.
            noise: optional ε ``(k, B, K)`` instead of drawing it (the same ε for two models or dtypes;
                nested prefixes ``noise[:k]`` give an IWAE curve over k from common draws).

        Returns:
            ``(k, B)`` log weights.
        """
        x = self._data(x)
        k = check_int(k, "k", low=1)
        if chunk_size is not None:
            chunk_size = check_int(chunk_size, "chunk_size", low=1)
        check_generator(generator)
        onehot = _one_hot(condition, self.num_classes, x)
        mean, logvar = self._q(x, onehot, q)
        return self._log_weights(x, onehot, mean, logvar, k, generator, chunk_size, noise)

    def iwae_bound(self, x, k: int, *, generator: torch.Generator | None = None, condition=None, q=None,
                   chunk_size: int | None = None, noise=None) -> torch.Tensor:
        r"""The IWAE-k estimate log (1/k) Σ_i w_i of each example (its expectation is the bound L_k).

        k = 1 gives the single-sample ELBO estimate with a sampled KL; L_k increases with k towards
        log p_θ(x). Differentiable (the IWAE objective); see :meth:`log_weights` for the chunks.

        Args:
            x: ``(B, D)``; k: ≥ 1; generator, condition, q, chunk_size, noise: as in :meth:`log_weights`.

        Returns:
            ``(B,)`` the estimates.
        """
        return torch.logsumexp(self.log_weights(x, k, generator=generator, condition=condition, q=q,
                                                chunk_size=chunk_size, noise=noise),
                               dim=0) - math.log(check_int(k, "k", low=1))

    def log_marginal_estimate(self, x, k: int = 5000, *, generator: torch.Generator | None = None, condition=None,
                              chunk_size: int | None = None) -> MarginalEstimate:
        r"""A held-out log-likelihood estimate: the IWAE-k value with its standard error, without gradients.

        log p̂(x) = log (1/k Σ w_i) (a lower bound in expectation, its bias O(1/k)); by the delta
        method its standard error is sd(w) / (√k · mean(w)) (computed from w / max w, which is
        finite). A standard error near 1 or above means q misses most of the posterior's mass.

        Args:
            x: ``(B, D)``; k: samples per example (default 5000), ≥ 2; generator, condition,
            chunk_size: as in :meth:`log_weights`.

        Returns:
            :class:`MarginalEstimate` ``(log_px (B,), std_error (B,))``.
        """
        k = check_int(k, "k", low=2)
        with torch.no_grad():
            log_w = self.log_weights(x, k, generator=generator, condition=condition, chunk_size=chunk_size)
            log_px = torch.logsumexp(log_w, dim=0) - math.log(k)
            w = torch.exp(log_w - log_w.max(0).values)
            se = w.std(0, unbiased=True) / (math.sqrt(k) * w.mean(0))
        return MarginalEstimate(log_px, se)

    # ---- generation and diagnostics -------------------------------------------------------------

    def sample(self, n: int, *, generator: torch.Generator | None = None, condition=None,
               mean: bool = False) -> Samples:
        r"""Ancestral sampling: z ~ p(z) = N(0, I), then x ~ p_θ(x | z) (the encoder is not used).

        Args:
            n: number of samples ≥ 1.
            generator: for z and x.
            condition: for a conditional model, labels ``(n,)`` or one-hot ``(n, C)`` (every sample
                of the class asked).
            mean: return the decoder's mean E[x | z] (σ(logits) for a Bernoulli decoder) instead of a draw.

        Returns:
            :class:`Samples` ``(x (n, D), z (n, K))``.
        """
        n = check_int(n, "n", low=1)
        check_generator(generator)
        ref = self._reference()
        z = _draw("normal", (n, self.latent_dim), ref, generator)
        onehot = _one_hot(condition, self.num_classes, z)
        if onehot is not None and tuple(onehot.shape[:-1]) not in ((n,), ()):
            raise ValueError(f"condition must have {n} rows, one per sample; got shape {tuple(onehot.shape[:-1])}")
        with torch.no_grad():
            params = self.decoder._params(z, onehot)
            x = self.decoder._mean(params) if mean else self.decoder._sample(params, generator)
        return Samples(x, z)

    def kl_per_dimension(self, x, condition=None) -> torch.Tensor:
        r"""The mean over the batch of KL(q(z_k | x) ‖ N(0, 1)) for each latent dimension k: ``(K,)``.

        Dimensions with ≈ 0 have collapsed (posterior collapse); the sum is the mean KL term.
        """
        x = self._data(x)
        onehot = _one_hot(condition, self.num_classes, x)
        mean, logvar = self.encoder(x, onehot)
        return _kl_per_dim(mean, logvar).mean(0)


def make_vae(data_dim: int, latent_dim: int, hidden: int = 128, depth: int = 1, *, likelihood: str = "bernoulli",
             num_classes: int = 0, activation: str = "relu", decoder_logvar: float | None = 0.0,
             generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device=None) -> VAE:
    r"""A VAE with MLP encoder and decoder: D → hidden (×depth) → 2K and K → hidden (×depth) → D.

    Args:
        data_dim: D; latent_dim: K; hidden, depth: of both MLPs.
        likelihood: ``"bernoulli"`` (:class:`BernoulliDecoder`) or ``"gaussian"`` (:class:`GaussianDecoder`
            with log-variance ``decoder_logvar``, None to learn it).
        num_classes: C > 0 for a conditional VAE.
        activation: of both MLPs.
        generator: CPU ``torch.Generator`` for the initial weights (the encoder's drawn first).
        dtype, device: of the parameters.

    Returns:
        :class:`VAE`.
    """
    if likelihood not in ("bernoulli", "gaussian"):
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian'; got {likelihood!r}")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    opts = dict(num_classes=num_classes, activation=activation, generator=generator, dtype=dtype, device=device)
    encoder = GaussianEncoder(data_dim, latent_dim, hidden, depth, **opts)
    if likelihood == "bernoulli":
        decoder = BernoulliDecoder(latent_dim, data_dim, hidden, depth, **opts)
    else:
        decoder = GaussianDecoder(latent_dim, data_dim, hidden, depth, logvar=decoder_logvar, **opts)
    return VAE(encoder, decoder)


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam, fused where torch offers it for these parameters (4 times faster per step on a CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.Adam(params, lr=lr)


def _check_model(model) -> VAE:
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a dgm.vae.VAE (build one with make_vae); got {type(model).__name__}")
    return model


# --------------------------------------------------------------------------------------------
# training, and per-datapoint inference
# --------------------------------------------------------------------------------------------


def train_vae(model: VAE, data, *, steps: int, batch_size: int = 128, lr: float = 1e-3,
              generator: torch.Generator | None = None, beta: float | Callable[[int], float] = 1.0,
              condition=None, n_samples: int = 1, eval_data=None, eval_condition=None,
              eval_every: int | None = None, eval_samples: int = 1, progress: bool = False) -> VaeHistory:
    r"""Maximise the ELBO (or the β-weighted objective) with Adam on minibatches; returns the history.

    Each step takes the next ``batch_size`` examples of a random permutation of the data (a new
    permutation each epoch; the last, incomplete minibatch of an epoch is skipped), draws ε, and
    takes one Adam step on
    −(1/B) Σ_b [(1/S) Σ_s log p_θ(x_b | z_bs) − β_t KL(q_φ(z | x_b) ‖ p(z))].
    Every random number (the permutations, ε, the held-out evaluation's ε) comes from ``generator``,
    so with seeded initial weights a run is reproducible. The model is trained in place.

    Args:
        model: a :class:`VAE`.
        data: ``(N, D)`` training data (in [0, 1] for a Bernoulli decoder), the model's dtype/device.
        steps: number of Adam steps ≥ 1; batch_size: ≤ N; lr: Adam's learning rate.
        generator: ``torch.Generator`` for all randomness.
        beta: the KL weight β ≥ 0, or a function ``step ↦ β`` (steps 1..steps; e.g. a warm-up
            ``lambda t: min(1, t / 500)``).
        condition: labels ``(N,)`` or one-hot ``(N, C)`` of the training data (conditional model).
        n_samples: ε draws per example and step.
        eval_data, eval_condition: held-out data ``(M, D)`` (and labels) whose mean ELBO (β = 1) is
            recorded at step 0, every ``eval_every`` steps (default steps // 20) and at the end.
        eval_samples: ε draws per held-out example.
        progress: show a text tqdm bar.

    Returns:
        :class:`VaeHistory`.
    """
    model = _check_model(model)
    x = model._data(data, "data")
    N = x.shape[0]
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1, high=N,
                           expected=f"an integer in [1, {N}] (at most the number of examples)")
    lr = check_number(lr, "lr", low=0, closed_low=False)
    n_samples = check_int(n_samples, "n_samples", low=1)
    eval_samples = check_int(eval_samples, "eval_samples", low=1)
    check_generator(generator)
    if callable(beta):
        beta_fn = beta
    else:
        beta_value = _check_beta(beta)

        def beta_fn(step):
            return beta_value
    onehot = _one_hot(condition, model.num_classes, x)
    if onehot is not None and tuple(onehot.shape) != (N, model.num_classes):
        raise ValueError(f"condition must hold one label per example of data, shape ({N},) or ({N}, "
                         f"{model.num_classes}); got {tuple(condition.shape)}")
    x_eval = onehot_eval = None
    if eval_data is not None:
        x_eval = model._data(eval_data, "eval_data")
        onehot_eval = _one_hot(eval_condition, model.num_classes, x_eval, "eval_condition")
        if onehot_eval is not None and tuple(onehot_eval.shape) != (x_eval.shape[0], model.num_classes):
            raise ValueError(f"eval_condition must hold one label per example of eval_data; got shape "
                             f"{tuple(eval_condition.shape)}")
    elif eval_condition is not None:
        raise ValueError("eval_condition was given without eval_data")
    eval_every = max(1, steps // 20) if eval_every is None else check_int(eval_every, "eval_every", low=1)

    K = model.latent_dim
    ref = model._reference()
    optimizer = _adam(model.parameters(), lr)
    history = torch.empty(4, steps, dtype=ref.dtype, device=ref.device)
    eval_steps: list[int] = []
    eval_values: list[torch.Tensor] = []

    def evaluate(step):
        with torch.no_grad():
            mean, logvar = model.encoder(x_eval, onehot_eval)
            eps = _draw("normal", (eval_samples, x_eval.shape[0], K), mean, generator)
            value = model._elbo(x_eval, onehot_eval, mean, logvar, eps, 1.0, "analytic").elbo.mean()
        eval_steps.append(step)
        eval_values.append(value.detach().cpu())

    if x_eval is not None:
        evaluate(0)
    order = torch.empty(0, dtype=torch.long)
    position = 0
    bar = tqdm(range(1, steps + 1), disable=not progress, desc="VAE", leave=False)
    for step in bar:
        if position + batch_size > order.numel():
            order = torch.randperm(N, generator=generator, device=generator.device if generator is not None else "cpu")
            position = 0
        idx = order[position:position + batch_size].to(x.device)
        position += batch_size
        xb = x[idx]
        cb = onehot[idx] if onehot is not None else None
        b = check_number(beta_fn(step), "beta(step)", low=0)
        mean, logvar = model.encoder(xb, cb)
        eps = _draw("normal", (n_samples, batch_size, K), mean, generator)
        terms = model._elbo(xb, cb, mean, logvar, eps, 1.0, "analytic")
        loss = -(terms.reconstruction - b * terms.kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            history[:3, step - 1] = torch.stack([terms.elbo.mean(), terms.reconstruction.mean(), terms.kl.mean()])
            history[3, step - 1] = b
        if x_eval is not None and (step % eval_every == 0 or step == steps):
            evaluate(step)
        if progress and (step % 50 == 0 or step == steps):
            bar.set_postfix(elbo=f"{float(history[0, max(0, step - 50):step].mean()):.2f}")
    bar.close()
    optimizer.zero_grad(set_to_none=True)   # no stale gradients left on the model
    eval_elbo = torch.stack(eval_values) if eval_values else torch.empty(0, dtype=ref.dtype)
    history = history.cpu()
    return VaeHistory(history[0], history[1], history[2], history[3],
                      torch.tensor(eval_steps, dtype=torch.int64), eval_elbo)


def fit_local_posterior(model: VAE, x, *, steps: int = 300, lr: float = 0.05, n_samples: int = 8,
                        generator: torch.Generator | None = None, condition=None, init=None,
                        eval_samples: int = 256) -> LocalPosterior:
    r"""Per-datapoint (non-amortised) variational inference: the best q_b = N(m_b, diag e^{ℓ_b}) for each x_b.

    Maximises Σ_b ELBO(x_b; m_b, ℓ_b) over free parameters (m_b, ℓ_b) by Adam with reparameterised
    gradients (S = ``n_samples`` fresh ε per step), the decoder frozen (its parameters are neither
    changed nor given gradients). Started from the encoder's q (``init=None``), the gain
    ELBO(local) − ELBO(encoder) ≥ 0 measures the *amortisation gap* at each x.

    Args:
        model: a trained :class:`VAE`.
        x: ``(B, D)`` examples; condition: their labels for a conditional model.
        steps: Adam steps ≥ 1; lr: Adam's learning rate; n_samples: ε draws per step.
        generator: ``torch.Generator`` for every ε.
        init: None (the encoder's q) or a pair ``(mean, logvar)`` ``(B, K)``.
        eval_samples: ε draws for the returned ELBO.

    Returns:
        :class:`LocalPosterior` ``(mean (B, K), logvar (B, K), elbo (B,))``, detached; the ELBO
        estimated with ``eval_samples`` fresh draws (analytic KL).
    """
    model = _check_model(model)
    x = model._data(x)
    steps = check_int(steps, "steps", low=1)
    lr = check_number(lr, "lr", low=0, closed_low=False)
    n_samples = check_int(n_samples, "n_samples", low=1)
    eval_samples = check_int(eval_samples, "eval_samples", low=1)
    check_generator(generator)
    onehot = _one_hot(condition, model.num_classes, x)
    with torch.no_grad():
        mean0, logvar0 = model._q(x, onehot, init)
    mean = mean0.detach().clone().requires_grad_(True)
    logvar = logvar0.detach().clone().requires_grad_(True)
    optimizer = _adam([mean, logvar], lr)
    B, K = mean.shape
    for t in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * (1 - t / steps)
        eps = _draw("normal", (n_samples, B, K), mean, generator)
        loss = -model._elbo(x, onehot, mean, logvar, eps, 1.0, "analytic").elbo.sum()
        mean.grad, logvar.grad = torch.autograd.grad(loss, [mean, logvar])
        optimizer.step()
    with torch.no_grad():
        eps = _draw("normal", (eval_samples, B, K), mean, generator)
        elbo = model._elbo(x, onehot, mean, logvar, eps, 1.0, "analytic").elbo
    return LocalPosterior(mean.detach(), logvar.detach(), elbo)


# --------------------------------------------------------------------------------------------
# discrete latents: score function (REINFORCE) and Gumbel-softmax
# --------------------------------------------------------------------------------------------


def _check_distribution(distribution) -> str:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be 'bernoulli' or 'categorical'; got {distribution!r}")
    return distribution


def _logits(logits, distribution: str) -> torch.Tensor:
    logits = as_float_tensor(logits, "logits")
    if distribution == "categorical":
        check_min_ndim(logits, "logits", 1, "(..., K)")
        if logits.shape[-1] < 2:
            raise ValueError(f"logits must have at least 2 categories in the last dimension; got shape "
                             f"{tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits must be finite; they contain NaN or infinity")
    return logits


def _temperature(temperature) -> float:
    return check_number(temperature, "temperature", low=0, closed_low=False)


def _call_f(f, samples: torch.Tensor, expected: tuple, what: str) -> torch.Tensor:
    if not callable(f):
        raise TypeError(f"f must be callable (samples ↦ values); got {type(f).__name__}")
    values = f(samples)
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"f must return a tensor; got {type(values).__name__}")
    if tuple(values.shape) != expected:
        raise ValueError(f"f must map {what} of shape {tuple(samples.shape)} to values of shape {expected}; "
                         f"got {tuple(values.shape)}")
    return values


def score_function_gradient(f: Callable[[torch.Tensor], torch.Tensor], logits, n_samples: int, *,
                            generator: torch.Generator | None = None, distribution: str = "bernoulli",
                            baseline=None) -> torch.Tensor:
    r"""Per-sample score-function (REINFORCE) estimates of ∇_θ E_{b ~ p_θ}[f(b)], θ the logits.

    .. math::
        \hat g_s = \big(f(b_s) - c\big)\,\nabla_\theta \log p_\theta(b_s), \qquad b_s \sim p_\theta,

    with ∇_θ log p_θ(b) = b − σ(θ) for b ~ Ber(σ(θ)), and onehot(b) − softmax(θ) for a categorical
    b. Unbiased for any baseline c independent of b_s (E[∇ log p] = 0). ``baseline="leave-one-out"``
    uses c_s = mean of f over the other samples (independent of b_s, so still unbiased). The
    mean of the S estimates is the usual estimator; their variance is the estimator's variance.

    Args:
        f: maps samples ``(S, ...)`` (Bernoulli: floats 0/1) or one-hot ``(S, ..., K)``
            (categorical) to values ``(S, ...)``; must not need gradients.
        logits: θ, ``(...)`` (Bernoulli) or ``(..., K)`` (categorical).
        n_samples: S ≥ 1 (≥ 2 for the leave-one-out baseline).
        generator: for the draws; distribution: ``"bernoulli"`` or ``"categorical"``.
        baseline: None (c = 0), a number or a tensor broadcasting to ``(...)``, or ``"leave-one-out"``.

    Returns:
        ``(S, *logits.shape)`` one gradient estimate per sample (detached).
    """
    distribution = _check_distribution(distribution)
    logits = _logits(logits, distribution).detach()
    S = check_int(n_samples, "n_samples", low=1)
    check_generator(generator)
    if distribution == "bernoulli":
        batch = tuple(logits.shape)
        p = torch.sigmoid(logits)
        b = (_draw("uniform", (S, *batch), logits, generator) < p).to(logits.dtype)
        score = b - p
        samples = b
    else:
        batch = tuple(logits.shape[:-1])
        probs = torch.softmax(logits, dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        u = _draw("uniform", (S, flat.shape[0], 1), logits, generator)
        # inverse-CDF draw: the first k whose cumulative probability exceeds u
        cdf = flat.cumsum(-1)
        index = (u > cdf).sum(-1).clamp(max=flat.shape[-1] - 1)
        samples = F.one_hot(index, flat.shape[-1]).to(logits.dtype).reshape(S, *logits.shape)
        score = samples - probs
    with torch.no_grad():
        values = _call_f(f, samples, (S, *batch), "samples").to(logits.dtype)
    if isinstance(baseline, str):
        if baseline != "leave-one-out":
            raise ValueError(f"baseline must be None, a number, a tensor or 'leave-one-out'; got {baseline!r}")
        if S < 2:
            raise ValueError(f"n_samples must be at least 2 for the leave-one-out baseline; got {S}")
        c = (values.sum(0, keepdim=True) - values) / (S - 1)
    elif baseline is None:
        c = torch.zeros((), dtype=logits.dtype, device=logits.device)
    else:
        c = as_float_tensor(baseline, "baseline", like=logits)
        check_same_device(baseline=c, logits=logits)
        try:
            torch.broadcast_shapes(c.shape, batch)
        except RuntimeError:
            raise ValueError(f"baseline must broadcast to the batch shape {batch}; got shape {tuple(c.shape)}") from None
    centred = values - c
    if distribution == "categorical":
        centred = centred.unsqueeze(-1)
    return centred * score


def gumbel_softmax_sample(logits, temperature: float, generator: torch.Generator | None = None, hard: bool = False,
                          n_samples: int | None = None) -> torch.Tensor:
    r"""A Gumbel-softmax (Concrete) sample y = softmax((θ + g) / τ), g_k = −log(−log U_k), U_k ~ U(0, 1).

    argmax_k (θ_k + g_k) is an exact draw from Categorical(softmax(θ)) (the Gumbel-max trick); the
    softmax at temperature τ relaxes it into the simplex, differentiably in θ. As τ → 0, y → the
    one-hot of that draw. ``hard=True`` returns the one-hot argmax in the forward pass with the
    relaxed sample's gradient (straight-through: onehot − y.detach() + y).

    Args:
        logits: θ ``(..., K)``, K ≥ 2.
        temperature: τ > 0.
        generator: for U; hard: straight-through one-hot; n_samples: S, adds a leading dimension.

    Returns:
        ``(..., K)`` or ``(S, ..., K)`` points of the simplex (one-hot when ``hard``).
    """
    logits = _logits(logits, "categorical")
    tau = _temperature(temperature)
    check_generator(generator)
    shape = tuple(logits.shape) if n_samples is None else (check_int(n_samples, "n_samples", low=1), *logits.shape)
    gumbel = -torch.log(-torch.log(_uniform_open(shape, logits, generator)))
    y = torch.softmax((logits + gumbel) / tau, dim=-1)
    if not hard:
        return y
    onehot = F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return onehot - y.detach() + y


def relaxed_bernoulli_sample(logits, temperature: float, generator: torch.Generator | None = None,
                             hard: bool = False, n_samples: int | None = None) -> torch.Tensor:
    r"""A relaxed Bernoulli (binary Concrete) sample y = σ((θ + L) / τ), L = log U − log(1 − U) logistic.

    1[θ + L > 0] is an exact draw from Ber(σ(θ)); the sigmoid at temperature τ relaxes it into
    (0, 1) (the two-category Gumbel-softmax: the difference of two Gumbels is logistic).
    ``hard=True`` returns the 0/1 value with the relaxed gradient (straight-through).

    Args:
        logits: θ ``(...)``.
        temperature: τ > 0.
        generator, hard, n_samples: as in :func:`gumbel_softmax_sample`.

    Returns:
        ``(...)`` or ``(S, ...)`` values in (0, 1) (0/1 when ``hard``).
    """
    logits = _logits(logits, "bernoulli")
    tau = _temperature(temperature)
    check_generator(generator)
    shape = tuple(logits.shape) if n_samples is None else (check_int(n_samples, "n_samples", low=1), *logits.shape)
    u = _uniform_open(shape, logits, generator)
    y = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau)
    if not hard:
        return y
    return (y > 0.5).to(y.dtype) - y.detach() + y


def gumbel_softmax_gradient(f: Callable[[torch.Tensor], torch.Tensor], logits, temperature: float,
                            n_samples: int, *, generator: torch.Generator | None = None,
                            distribution: str = "categorical", hard: bool = False) -> torch.Tensor:
    r"""Per-sample relaxed (pathwise) estimates ĝ_s = ∇_θ f(y_s(θ)) of ∇_θ E_{b ~ p_θ}[f(b)].

    y_s is :func:`gumbel_softmax_sample` (categorical) or :func:`relaxed_bernoulli_sample`
    (Bernoulli) at temperature τ, with its noise held fixed while differentiating. The estimates
    are unbiased for ∇_θ E[f(y)], the gradient of the *relaxed* objective, not of E[f(b)]: the
    bias vanishes as τ → 0 while the variance grows (≈ 1/τ). ``hard=True`` gives the
    straight-through estimator (f sees the discrete b; biased at every τ).

    Args:
        f: a differentiable function mapping relaxed samples ``(S, ...)`` (Bernoulli) or
            ``(S, ..., K)`` (categorical) to values ``(S, ...)``, each value depending on its own
            sample only (so that one backward pass gives every per-sample gradient).
        logits: θ, ``(...)`` or ``(..., K)``; temperature: τ > 0; n_samples: S ≥ 1.
        generator, distribution, hard: as above.

    Returns:
        ``(S, *logits.shape)`` one gradient estimate per sample (detached).
    """
    distribution = _check_distribution(distribution)
    logits = _logits(logits, distribution)
    tau = _temperature(temperature)
    S = check_int(n_samples, "n_samples", low=1)
    check_generator(generator)
    theta = logits.detach().expand(S, *logits.shape).clone().requires_grad_(True)
    sampler = gumbel_softmax_sample if distribution == "categorical" else relaxed_bernoulli_sample
    with torch.enable_grad():
        y = sampler(theta, tau, generator, hard)
        batch = tuple(theta.shape[:-1]) if distribution == "categorical" else tuple(theta.shape)
        values = _call_f(f, y, batch, "relaxed samples")
        if not values.requires_grad:
            raise ValueError("f must be differentiable in its input (its output does not depend on the samples "
                             "through autograd)")
        (grad,) = torch.autograd.grad(values.sum(), theta, allow_unused=True)
    return torch.zeros_like(theta).detach() if grad is None else grad.detach()


def exact_discrete_gradient(f: Callable[[torch.Tensor], torch.Tensor], logits, *,
                            distribution: str = "bernoulli") -> torch.Tensor:
    r"""The exact ∇_θ E_{b ~ p_θ}[f(b)] by enumerating the outcomes.

    Bernoulli: d/dθ [σ(θ) f(1) + (1 − σ(θ)) f(0)] = σ(θ)(1 − σ(θ)) (f(1) − f(0)).
    Categorical, p = softmax(θ): ∂/∂θ_j Σ_k p_k f(e_k) = p_j (f(e_j) − Σ_k p_k f(e_k)).

    Args:
        f: as in :func:`score_function_gradient`; called with ``(1, ...)`` (Bernoulli, once with
            zeros and once with ones) or ``(K, ..., K)`` (every one-hot e_k).
        logits: θ ``(...)`` or ``(..., K)``; distribution: ``"bernoulli"`` or ``"categorical"``.

    Returns:
        ``(*logits.shape)`` the gradient.
    """
    distribution = _check_distribution(distribution)
    logits = _logits(logits, distribution).detach()
    with torch.no_grad():
        if distribution == "bernoulli":
            batch = tuple(logits.shape)
            ones = torch.ones((1, *batch), dtype=logits.dtype, device=logits.device)
            f1 = _call_f(f, ones, (1, *batch), "samples")[0]
            f0 = _call_f(f, torch.zeros_like(ones), (1, *batch), "samples")[0]
            p = torch.sigmoid(logits)
            return p * (1 - p) * (f1 - f0)
        K = logits.shape[-1]
        batch = tuple(logits.shape[:-1])
        eye = torch.eye(K, dtype=logits.dtype, device=logits.device)
        outcomes = eye.reshape(K, *([1] * len(batch)), K).expand(K, *batch, K)
        values = _call_f(f, outcomes, (K, *batch), "one-hot outcomes").to(logits.dtype)
        values = values.movedim(0, -1)
        p = torch.softmax(logits, dim=-1)
        return p * (values - (p * values).sum(-1, keepdim=True))
