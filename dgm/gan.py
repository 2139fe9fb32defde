r"""Generative adversarial networks and the divergences a discriminator measures (Chapter 5).

Notation (see the book's notation page): p_data is the data density, p_G the density of
x = G(z) with z ~ p(z) (G need not be invertible: E_z[h(G(z))] = E_{x~p_G}[h(x)] is all the
derivation uses), D(x) ∈ (0, 1) the discriminator's probability that x is real. Networks output
**logits** a(x) with D(x) = σ(a(x)), and every log-probability is computed from the logit:

    log D = log σ(a) = -softplus(-a),        log(1 - D) = log σ(-a) = -softplus(a),

which never evaluates log 0 (log(sigmoid(a)) is -inf in float32 already for a < -104).

Shapes: scores and logits are ``(B,)`` or ``(B, 1)`` (one per sample; real and fake batches may
differ in size); samples are ``(B, ...)``; log-densities evaluated at points have the points'
batch shape. Logarithms are natural, so divergences are in nats. Monte Carlo estimators return
the pair ``(estimate, standard_error)`` like :mod:`dgm.divergences`.

Contents, in the order of the chapter:

* the value function V(G, D) and its losses: :func:`discriminator_loss`,
  :func:`generator_loss_minimax` (saturating), :func:`generator_loss_nonsaturating`;
* the optimal discriminator D* = p_data / (p_data + p_G) and the Jensen–Shannon divergence it
  measures, C(G) = max_D V(G, D) = -log 4 + 2·JSD(p_data ‖ p_G): :func:`optimal_discriminator`,
  :func:`optimal_discriminator_logits`, :func:`jsd_from_discriminator`, :func:`jsd_monte_carlo`,
  :func:`jensen_shannon_categorical`, :func:`density_from_discriminator`,
  :func:`train_discriminator`;
* f-GAN: :class:`FDivergence`, the registry ``F_DIVERGENCES`` and :func:`fgan_lower_bound`;
* disjoint supports and the Wasserstein distance: :func:`point_masses_divergences`,
  :func:`wasserstein1_1d`, :func:`wasserstein_critic_loss`, :func:`wasserstein_generator_loss`,
  :func:`clip_weights_`, :func:`gradient_penalty`;
* InfoGAN: :func:`mutual_information_lower_bound`;
* mode collapse on a ring of Gaussians: :func:`train_gan`, :func:`ring_centres`,
  :func:`mode_coverage`.

Networks: build them with :func:`dgm.nets.mlp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dgm._validate import (
    as_float_tensor,
    broadcast_batch,
    check_int,
    check_min_ndim,
    check_number,
    check_probabilities,
    check_same_device,
)
from dgm.divergences import categorical_entropy, categorical_kl, monte_carlo_mean

__all__ = [
    "discriminator_loss",
    "generator_loss_minimax",
    "generator_loss_nonsaturating",
    "optimal_discriminator",
    "optimal_discriminator_logits",
    "jsd_from_discriminator",
    "jsd_monte_carlo",
    "jensen_shannon_categorical",
    "density_from_discriminator",
    "train_discriminator",
    "FDivergence",
    "F_DIVERGENCES",
    "fgan_lower_bound",
    "wasserstein1_1d",
    "PointMassDivergences",
    "point_masses_divergences",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
    "clip_weights_",
    "gradient_penalty",
    "mutual_information_lower_bound",
    "GanRun",
    "ring_centres",
    "mode_coverage",
    "train_gan",
]

_LOG_2 = math.log(2.0)


# --------------------------------------------------------------------------------------------
# Input checks specific to this module (built on dgm._validate)
# --------------------------------------------------------------------------------------------


def _scores(
    value, name: str, *, like: torch.Tensor | None = None, like_name: str = "", min_count: int = 1
) -> torch.Tensor:
    """A ``(B,)`` or ``(B, 1)`` tensor of per-sample scores/logits, returned as ``(B,)``.

    ±inf is allowed (a logit of +inf is D = 1 exactly); NaN is not. With ``like`` (named
    ``like_name``) the two must share a device, checked before any value is read.
    """
    t = as_float_tensor(value, name, like=like)
    if like is not None:
        check_same_device(**{like_name: like, name: t})
    check_min_ndim(t, name, 1, "(B,) or (B, 1)")
    if t.dim() > 2 or (t.dim() == 2 and t.shape[1] != 1):
        raise ValueError(f"{name} must have shape (B,) or (B, 1) (one score per sample); got shape {tuple(t.shape)}")
    t = t.reshape(-1)
    if t.shape[0] < min_count:
        raise ValueError(f"{name} must hold at least {min_count} score(s); got shape {tuple(t.shape)}")
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} must not contain NaN")
    return t


def _log_density(value, name: str, *, like: torch.Tensor | None = None, like_name: str = "") -> torch.Tensor:
    """Log-density values: floating, no NaN, no +inf (-inf, a zero density, is allowed)."""
    t = as_float_tensor(value, name, like=like)
    if like is not None:
        check_same_device(**{like_name: like, name: t})
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} must not contain NaN")
    if bool((t == math.inf).any()):
        raise ValueError(f"{name} must be < +inf (it is a log-density); it contains +inf")
    return t


def _samples(value, name: str, *, like: torch.Tensor | None = None, like_name: str = "") -> torch.Tensor:
    t = as_float_tensor(value, name, like=like)
    if like is not None:
        check_same_device(**{like_name: like, name: t})
    check_min_ndim(t, name, 2, "(B, ...)")
    if t.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample; got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    return t


# --------------------------------------------------------------------------------------------
# The value function and its losses (Chapter 5, "The minimax game")
# --------------------------------------------------------------------------------------------


def discriminator_loss(real_logits, fake_logits) -> torch.Tensor:
    r"""-V(G, D) = -E_{x~p_data}[log D(x)] - E_{x~p_G}[log(1 - D(x))], from logits, to minimise over D.

    The binary cross-entropy of a classifier that labels data 1 and generated samples 0; each
    expectation is a mean over its own batch, so the two batches may differ in size (a sum over
    both, as in some notes, would weight the larger batch more). Computed as
    mean softplus(-a_real) + mean softplus(a_fake). Chapter 5, "The minimax game".

    Args:
        real_logits: ``(B,)`` or ``(B, 1)`` logits a(x) at data points, D = σ(a).
        fake_logits: ``(B',)`` or ``(B', 1)`` logits at generated points G(z).

    Returns:
        ``()`` the loss in nats; its minimum over all D is log 4 - 2·JSD(p_data ‖ p_G).
    """
    real = _scores(real_logits, "real_logits")
    fake = _scores(fake_logits, "fake_logits", like=real, like_name="real_logits")
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss_minimax(fake_logits) -> torch.Tensor:
    r"""E_{z~p(z)}[log(1 - D(G(z)))], the generator's term of V(G, D), to minimise over G (saturating).

    Its gradient with respect to the logit a is -σ(a) = -D: when the discriminator confidently
    rejects the samples (D ≈ 0, early in training) the gradient vanishes, so the generator
    learns slowly. Computed as -mean softplus(a). Chapter 5, "Non-saturating loss".

    Args:
        fake_logits: ``(B,)`` or ``(B, 1)`` logits at generated points.

    Returns:
        ``()`` the loss in nats (always ≤ 0).
    """
    fake = _scores(fake_logits, "fake_logits")
    return -F.softplus(fake).mean()


def generator_loss_nonsaturating(fake_logits) -> torch.Tensor:
    r"""-E_{z~p(z)}[log D(G(z))], the non-saturating generator loss, to minimise over G.

    Same fixed point as the minimax loss (both push D(G(z)) up) but its gradient with respect to
    the logit, -(1 - D), is close to -1 exactly where the minimax loss saturates. Computed as
    mean softplus(-a). Chapter 5, "Non-saturating loss".

    Args:
        fake_logits: ``(B,)`` or ``(B, 1)`` logits at generated points.

    Returns:
        ``()`` the loss in nats (always ≥ 0).
    """
    fake = _scores(fake_logits, "fake_logits")
    return F.softplus(-fake).mean()


# --------------------------------------------------------------------------------------------
# The optimal discriminator and the Jensen–Shannon divergence (Chapter 5, "The optimal discriminator")
# --------------------------------------------------------------------------------------------


def optimal_discriminator_logits(log_p_data, log_p_model) -> torch.Tensor:
    r"""The logit of the optimal discriminator, log D*/(1 - D*) = log p_data(x) - log p_G(x).

    Args:
        log_p_data: ``(...)`` log p_data at the points (−inf where p_data = 0).
        log_p_model: ``(...)`` log p_G at the same points (broadcast).

    Returns:
        ``(...)`` the log density ratio; ±inf where exactly one density vanishes, NaN where both
        do (there every D maximises V pointwise, so D* is undefined).
    """
    log_p_data = _log_density(log_p_data, "log_p_data")
    log_p_model = _log_density(log_p_model, "log_p_model", like=log_p_data, like_name="log_p_data")
    broadcast_batch(log_p_data=log_p_data, log_p_model=log_p_model)
    return log_p_data - log_p_model


def optimal_discriminator(log_p_data, log_p_model) -> torch.Tensor:
    r"""D*(x) = p_data(x) / (p_data(x) + p_G(x)) = σ(log p_data(x) - log p_G(x)).

    Derivation (Chapter 5, "The optimal discriminator"): V(G, D) = ∫ [p_data log D + p_G log(1-D)] dx,
    and for a, b ≥ 0 with a + b > 0 the function y ↦ a log y + b log(1 - y) on [0, 1] is maximised
    at y = a / (a + b) (strictly concave; a and b are densities, so they need not be below 1).
    Computed from log-densities, so it neither underflows nor divides 0 by 0 in the tails.

    Args:
        log_p_data: ``(...)`` log p_data at the points.
        log_p_model: ``(...)`` log p_G at the same points (broadcast).

    Returns:
        ``(...)`` D*(x) in [0, 1] (NaN where both densities vanish).
    """
    return torch.sigmoid(optimal_discriminator_logits(log_p_data, log_p_model))


def jsd_from_discriminator(real_logits, fake_logits) -> tuple[torch.Tensor, torch.Tensor]:
    r"""JSD(p_data ‖ p_G) ≈ log 2 + ½ (E_{p_data}[log D] + E_{p_G}[log(1 - D)]), with its standard error.

    From C(G) = max_D V(G, D) = -log 4 + 2·JSD(p_data ‖ p_G) (Chapter 5, "C(G) and the
    Jensen–Shannon divergence"; 004 Q3.1). With D = D* the estimate is unbiased. With any other D,
    V(G, D) ≤ C(G), so on fresh samples (not the ones D was trained on) the estimate is a lower
    bound on the JSD in expectation; on training samples an overfitted D can overshoot.

    Args:
        real_logits: ``(B,)`` or ``(B, 1)`` logits at samples from p_data, ``B >= 2``.
        fake_logits: ``(B',)`` or ``(B', 1)`` logits at samples from p_G, ``B' >= 2``.

    Returns:
        ``(estimate, standard_error)``, both ``()``, in nats; the JSD lies in [0, log 2].
        The two batches are independent, so SE = ½ √(SE_real² + SE_fake²).
    """
    real = _scores(real_logits, "real_logits", min_count=2)
    fake = _scores(fake_logits, "fake_logits", like=real, like_name="real_logits", min_count=2)
    mean_real, se_real = monte_carlo_mean(-F.softplus(-real))  # log D at data
    mean_fake, se_fake = monte_carlo_mean(-F.softplus(fake))  # log(1 - D) at generated points
    estimate = _LOG_2 + 0.5 * (mean_real + mean_fake)
    return estimate, 0.5 * torch.sqrt(se_real**2 + se_fake**2)


def _call_log_density(fn, x: torch.Tensor, fn_name: str, x_name: str) -> torch.Tensor:
    if not callable(fn):
        raise TypeError(f"{fn_name} must be a callable mapping samples (S, ...) to log-densities (S,); got {type(fn).__name__}")
    out = _log_density(fn(x), f"{fn_name}({x_name})", like=x)
    if out.shape != (x.shape[0],):
        raise ValueError(f"{fn_name}({x_name}) must have shape ({x.shape[0]},) (one log-density per sample); got shape {tuple(out.shape)}")
    return out


def jsd_monte_carlo(log_p, log_q, samples_p, samples_q) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo JSD(p ‖ q) for two known densities, with its standard error.

    Plugs the optimal discriminator's logit log p(x) - log q(x) into
    :func:`jsd_from_discriminator`, i.e. averages log 2 + log(p/(p+q)) over x ~ p and
    log 2 + log(q/(p+q)) over x ~ q (each term is ≤ log 2, so the estimate is too).

    Args:
        log_p, log_q: callables mapping samples ``(S, ...)`` to log-densities ``(S,)``.
        samples_p: ``(S, ...)`` draws from p, ``S >= 2``; samples_q: ``(S', ...)`` draws from q.

    Returns:
        ``(estimate, standard_error)``, both ``()``, in nats.
    """
    xp = _samples(samples_p, "samples_p")
    xq = _samples(samples_q, "samples_q", like=xp, like_name="samples_p")
    lp_p = _call_log_density(log_p, xp, "log_p", "samples_p")
    lq_p = _call_log_density(log_q, xp, "log_q", "samples_p")
    lp_q = _call_log_density(log_p, xq, "log_p", "samples_q")
    lq_q = _call_log_density(log_q, xq, "log_q", "samples_q")
    if bool((lp_p == -math.inf).any()):
        raise ValueError("log_p is -inf at some of samples_p: those points cannot be draws from p")
    if bool((lq_q == -math.inf).any()):
        raise ValueError("log_q is -inf at some of samples_q: those points cannot be draws from q")
    return jsd_from_discriminator(lp_p - lq_p, lp_q - lq_q)


def jensen_shannon_categorical(p, q) -> torch.Tensor:
    r"""JSD(p ‖ q) = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = ½(p + q), for categorical distributions.

    Finite even when the supports are disjoint (then it equals log 2), unlike KL(p ‖ q).

    Args:
        p, q: ``(..., K)`` probability vectors (broadcast).

    Returns:
        ``(...)`` the JSD in nats, in [0, log 2]; symmetric in p and q.
    """
    p = as_float_tensor(p, "p")
    q = as_float_tensor(q, "q", like=p)
    check_same_device(p=p, q=q)
    check_probabilities(p, "p")
    check_probabilities(q, "q")
    broadcast_batch(p=p, q=q)
    m = 0.5 * (p + q)
    return 0.5 * (categorical_kl(p, m) + categorical_kl(q, m))


def density_from_discriminator(log_p0, d_logits) -> torch.Tensor:
    r"""log f₁(x) = log f₀(x) + log D*(x)/(1 - D*(x)), i.e. f₁ = f₀·D*/(1 - D*) (004 Q3.2).

    Convention: D is trained to say 1 on samples of p₁ and 0 on samples of p₀, so
    D* = f₁/(f₀ + f₁) and D*/(1 - D*) = f₁/f₀ wherever f₀ > 0. The ratio is the exponential of
    the logit, so the whole computation is one addition in log space. With a trained D in place
    of D* this is an estimate of f₁, accurate where both densities have many samples.

    Args:
        log_p0: ``(...)`` log f₀ at the points (the known density, labelled 0).
        d_logits: ``(...)`` the discriminator's logits at the same points (broadcast).

    Returns:
        ``(...)`` log f₁ at the points.
    """
    log_p0 = _log_density(log_p0, "log_p0")
    d_logits = as_float_tensor(d_logits, "d_logits", like=log_p0)
    check_same_device(log_p0=log_p0, d_logits=d_logits)
    if bool(torch.isnan(d_logits).any()):
        raise ValueError("d_logits must not contain NaN")
    broadcast_batch(log_p0=log_p0, d_logits=d_logits)
    return log_p0 + d_logits


def train_discriminator(
    disc: nn.Module,
    real,
    fake,
    *,
    steps: int = 500,
    lr: float = 1e-2,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> list[float]:
    r"""Fit D = σ(disc(x)) to two fixed sample sets by minimising :func:`discriminator_loss` with Adam.

    The check of Chapter 5, "Training a discriminator": with samples of two known densities,
    compare σ(disc) with :func:`optimal_discriminator`, its JSD estimate with the exact JSD, and
    :func:`density_from_discriminator` with the true density, as the sample size grows.
    ``disc`` is updated in place; its initial weights are the caller's (seed them, e.g. with
    :func:`dgm.nets.mlp`'s ``generator``). Full-batch by default, so the run is deterministic;
    with ``batch_size`` each step draws a minibatch of each set (with replacement) from
    ``generator``.

    Args:
        disc: module mapping ``(B, ...)`` to logits ``(B,)`` or ``(B, 1)``.
        real: ``(N, ...)`` samples labelled 1 (p_data, or p₁ in 004 Q3).
        fake: ``(M, ...)`` samples labelled 0 (p_G, or p₀), same trailing shape.
        steps: number of Adam steps; lr: its learning rate.
        batch_size: minibatch size per set, or None for full batches.
        generator: ``torch.Generator`` on the CPU for the minibatch indices.
        progress: show a tqdm progress bar.

    Returns:
        the loss after each step's forward pass, a plain ``list`` of ``steps`` floats (nats).
    """
    if not isinstance(disc, nn.Module):
        raise TypeError(f"disc must be a torch.nn.Module; got {type(disc).__name__}")
    real = _samples(real, "real")
    fake = _samples(fake, "fake", like=real, like_name="real")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"real and fake must have the same shape per sample; got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    steps = check_int(steps, "steps", low=1)
    lr = check_number(lr, "lr", low=0, closed_low=False)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", low=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    params = [p for p in disc.parameters() if p.requires_grad]
    if not params:
        raise ValueError("disc has no trainable parameters")
    optimiser = torch.optim.Adam(params, lr=lr)
    iterator = range(steps)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="discriminator")
    history: list[float] = []
    disc.train()
    for _ in iterator:
        if batch_size is None:
            xr, xf = real, fake
        else:
            idx_r = torch.randint(real.shape[0], (batch_size,), generator=generator).to(real.device)
            idx_f = torch.randint(fake.shape[0], (batch_size,), generator=generator).to(fake.device)
            xr, xf = real[idx_r], fake[idx_f]
        loss = discriminator_loss(disc(xr), disc(xf))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    return history


# --------------------------------------------------------------------------------------------
# f-GAN (Chapter 5, "f-divergences and the Fenchel conjugate")
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FDivergence:
    r"""An f-divergence D_f(P ‖ Q) = E_Q[f(p(x)/q(x))] with what f-GAN needs to bound it.

    f is convex on u ≥ 0 (and +∞ for u < 0); the Fenchel conjugate f*(t) = sup_{u≥0} (u t - f(u))
    gives, for every critic T, the lower bound

        D_f(P ‖ Q) ≥ E_P[T(x)] - E_Q[f*(T(x))],

    with equality at T*(x) = f'(p(x)/q(x)). A network outputs an unconstrained V(x) and
    T = g_f(V) maps it into the region where f* is finite (Nowozin et al. 2016, Table 2).

    Attributes:
        name: the registry key.
        f: u ↦ f(u), element-wise on tensors u ≥ 0.
        f_prime: u ↦ f'(u), the optimal critic as a function of the density ratio u = p/q.
        conjugate: t ↦ f*(t), element-wise, +inf where the supremum is infinite.
        activation: v ↦ g_f(v), the output activation.
        domain: ``(lo, hi)``, the interval where f* is finite (hi itself included only for
            total variation); g_f maps the real line into it.
        divergence: what D_f equals, in words.
    """

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    f_prime: Callable[[torch.Tensor], torch.Tensor]
    conjugate: Callable[[torch.Tensor], torch.Tensor]
    activation: Callable[[torch.Tensor], torch.Tensor]
    domain: tuple[float, float]
    divergence: str


def _outside(t: torch.Tensor, inside: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` where ``inside``, +inf elsewhere (value must already be NaN-free there)."""
    return torch.where(inside, value, torch.full_like(t, math.inf))


def _safe(t: torch.Tensor, inside: torch.Tensor, fill: float) -> torch.Tensor:
    """``t`` where ``inside``, ``fill`` elsewhere: keeps the unused branch of a where NaN-free."""
    return torch.where(inside, t, torch.full_like(t, fill))


# KL: f(u) = u log u, f* (t) = e^{t-1}, g(v) = v.
def _kl_f(u):
    return torch.special.xlogy(u, u)


def _kl_fp(u):
    return 1 + torch.log(u)


def _kl_conj(t):
    return torch.exp(t - 1)


def _identity(v):
    return v


# reverse KL: f(u) = -log u, f*(t) = -1 - log(-t) for t < 0, g(v) = -e^{-v}.
def _rkl_f(u):
    return -torch.log(u)


def _rkl_fp(u):
    return -1 / u


def _rkl_conj(t):
    inside = t < 0
    return _outside(t, inside, -1 - torch.log(-_safe(t, inside, -1.0)))


def _rkl_act(v):
    return -torch.exp(-v)


# Pearson χ²: f(u) = (u - 1)², f*(t) = t + t²/4 for t ≥ -2 and -1 below (sup at u = 0), g(v) = v.
def _chi2_f(u):
    return (u - 1) ** 2


def _chi2_fp(u):
    return 2 * (u - 1)


def _chi2_conj(t):
    return torch.where(t >= -2, t + 0.25 * t**2, torch.full_like(t, -1.0))


# squared Hellinger: f(u) = (√u - 1)², f*(t) = t/(1 - t) for t < 1, g(v) = 1 - e^{-v}.
def _hel_f(u):
    return (torch.sqrt(u) - 1) ** 2


def _hel_fp(u):
    return 1 - 1 / torch.sqrt(u)


def _hel_conj(t):
    inside = t < 1
    ts = _safe(t, inside, 0.0)
    return _outside(t, inside, ts / (1 - ts))


def _hel_act(v):
    return -torch.expm1(-v)


# Jensen–Shannon, scaled so that D_f = JSD exactly:
# f(u) = ½[u log u - (u + 1) log((u + 1)/2)], f*(t) = -½ log(2 - e^{2t}) for t < ½ log 2,
# g(v) = ½(log 2 - softplus(-v)) = ½ log(2σ(v)).
def _js_f(u):
    return 0.5 * (torch.special.xlogy(u, u) - (u + 1) * torch.log((u + 1) / 2))


def _js_fp(u):
    return 0.5 * torch.log(2 * u / (1 + u))


def _js_conj(t):
    inside = t < 0.5 * _LOG_2
    ts = _safe(t, inside, 0.0)
    # 2 - e^{2t} = -expm1(2t - log 2)·2, accurate as t → ½ log 2
    return _outside(t, inside, -0.5 * (_LOG_2 + torch.log(-torch.expm1(2 * ts - _LOG_2))))


def _js_act(v):
    return 0.5 * (_LOG_2 - F.softplus(-v))


# total variation: f(u) = ½|u - 1|, f*(t) = max(t, -½) for t ≤ ½, g(v) = ½ tanh v.
def _tv_f(u):
    return 0.5 * torch.abs(u - 1)


def _tv_fp(u):
    return 0.5 * torch.sign(u - 1)


def _tv_conj(t):
    return _outside(t, t <= 0.5, torch.clamp(t, min=-0.5))


def _tv_act(v):
    return 0.5 * torch.tanh(v)


# the original GAN: f(u) = u log u - (u + 1) log(u + 1), f*(t) = -log(1 - e^t) for t < 0,
# g(v) = log σ(v) = -softplus(-v). Here f(1) = -log 4 ≠ 0: D_f = 2·JSD - log 4 = C(G).
def _gan_f(u):
    return torch.special.xlogy(u, u) - (u + 1) * torch.log1p(u)


def _gan_fp(u):
    return torch.log(u / (u + 1))


def _gan_conj(t):
    inside = t < 0
    ts = _safe(t, inside, -1.0)
    return _outside(t, inside, -torch.log(-torch.expm1(ts)))


def _gan_act(v):
    return -F.softplus(-v)


#: The f-divergences of Chapter 5, by name (read-only). D_f(P ‖ Q) = E_Q[f(p/q)].
F_DIVERGENCES: Mapping[str, FDivergence] = MappingProxyType({
    d.name: d
    for d in (
        FDivergence("kl", _kl_f, _kl_fp, _kl_conj, _identity, (-math.inf, math.inf), "KL(P ‖ Q)"),
        FDivergence("reverse_kl", _rkl_f, _rkl_fp, _rkl_conj, _rkl_act, (-math.inf, 0.0), "KL(Q ‖ P)"),
        FDivergence("pearson_chi2", _chi2_f, _chi2_fp, _chi2_conj, _identity, (-math.inf, math.inf), "χ²(P ‖ Q) = ∫ (p - q)²/q"),
        FDivergence("squared_hellinger", _hel_f, _hel_fp, _hel_conj, _hel_act, (-math.inf, 1.0), "∫ (√p - √q)²"),
        FDivergence("jensen_shannon", _js_f, _js_fp, _js_conj, _js_act, (-math.inf, 0.5 * _LOG_2), "JSD(P ‖ Q)"),
        FDivergence("total_variation", _tv_f, _tv_fp, _tv_conj, _tv_act, (-math.inf, 0.5), "½ ∫ |p - q|"),
        FDivergence("gan", _gan_f, _gan_fp, _gan_conj, _gan_act, (-math.inf, 0.0), "2·JSD(P ‖ Q) - log 4 (not 0 at P = Q)"),
    )
})


def _f_divergence(name) -> FDivergence:
    if not isinstance(name, str) or name not in F_DIVERGENCES:
        raise ValueError(f"name must be one of {sorted(F_DIVERGENCES)}; got {name!r}")
    return F_DIVERGENCES[name]


def fgan_lower_bound(real_v, fake_v, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    r"""E_P[g_f(V(x))] - E_Q[f*(g_f(V(x)))], the f-GAN variational lower bound on D_f(P ‖ Q).

    Fenchel: f(u) = sup_t (t u - f*(t)) ≥ T u - f*(T) for any T, so
    D_f = ∫ q f(p/q) ≥ ∫ [p T - q f*(T)] for every critic T(x) = g_f(V(x)); the critic maximises it,
    the generator minimises it (Nowozin et al. 2016; Chapter 5, "f-GAN"). With "gan" this is
    V(G, D) with D = σ(V); with "jensen_shannon" it equals :func:`jsd_from_discriminator`.

    Args:
        real_v: ``(B,)`` or ``(B, 1)`` critic outputs V at samples of P (the data), ``B >= 2``.
        fake_v: ``(B',)`` or ``(B', 1)`` critic outputs at samples of Q (the generator).
        name: a key of ``F_DIVERGENCES``.

    Returns:
        ``(estimate, standard_error)``, both ``()``. The estimate is differentiable: maximise it
        over the critic, minimise it over the generator.
    """
    div = _f_divergence(name)
    real = _scores(real_v, "real_v", min_count=2)
    fake = _scores(fake_v, "fake_v", like=real, like_name="real_v", min_count=2)
    mean_p, se_p = monte_carlo_mean(div.activation(real))
    mean_q, se_q = monte_carlo_mean(div.conjugate(div.activation(fake)))
    return mean_p - mean_q, torch.sqrt(se_p**2 + se_q**2)


# --------------------------------------------------------------------------------------------
# Disjoint supports and the Wasserstein distance (Chapter 5, "When the JSD is stuck")
# --------------------------------------------------------------------------------------------


def wasserstein1_1d(samples_a, samples_b) -> torch.Tensor:
    r"""W₁ between the empirical distributions of two equal-size 1-D samples: (1/N) Σ_i |a_(i) - b_(i)|.

    In one dimension the optimal transport plan matches order statistics (the quantile
    functions), so W₁ = ∫₀¹ |F_a⁻¹(s) - F_b⁻¹(s)| ds becomes a mean over sorted samples.
    Differentiable almost everywhere with respect to both samples.

    Args:
        samples_a: ``(N,)`` samples; samples_b: ``(N,)`` samples (the same N).

    Returns:
        ``()`` the distance, ≥ 0, in the samples' units.
    """
    a = as_float_tensor(samples_a, "samples_a")
    b = as_float_tensor(samples_b, "samples_b", like=a)
    check_same_device(samples_a=a, samples_b=b)
    for name, t in (("samples_a", a), ("samples_b", b)):
        if t.dim() != 1 or t.shape[0] == 0:
            raise ValueError(f"{name} must have shape (N,) with N >= 1; got shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    if a.shape != b.shape:
        raise ValueError(f"samples_a and samples_b must have the same size N; got {a.shape[0]} and {b.shape[0]}")
    return (torch.sort(a).values - torch.sort(b).values).abs().mean()


class PointMassDivergences(NamedTuple):
    """KL, reverse KL, JSD and W₁ between P = δ₀ and Q = δ_θ (all ``()`` tensors)."""

    kl: torch.Tensor
    reverse_kl: torch.Tensor
    jsd: torch.Tensor
    w1: torch.Tensor


def point_masses_divergences(theta) -> PointMassDivergences:
    r"""The disjoint-support example: P = δ₀, Q = δ_θ (or P = δ₀ × U(0,1), Q = δ_θ × U(0,1) in 2-D).

    For θ ≠ 0 the supports are disjoint: KL(P ‖ Q) = KL(Q ‖ P) = +∞ and JSD = log 2 whatever
    the distance |θ|, so neither gives a gradient that pulls Q towards P; W₁(P, Q) = |θ| does.
    At θ = 0 all four are 0. The uniform second coordinate of the 2-D version changes nothing
    (it is shared, so it adds 0 to each divergence, and the plan y' = y moves mass only along x).
    Computed with the library's own routes: :func:`dgm.divergences.categorical_kl` and
    :func:`jensen_shannon_categorical` on the support {0, θ}, and :func:`wasserstein1_1d`.

    Args:
        theta: a number or ``()`` tensor; pass a tensor with ``requires_grad=True`` to see
            d W₁/dθ = sign θ (the KL and JSD do not depend on θ away from 0).

    Returns:
        :class:`PointMassDivergences` ``(kl, reverse_kl, jsd, w1)``, each a ``()`` tensor.
    """
    theta = as_float_tensor(theta, "theta", like=torch.zeros((), dtype=torch.float64))
    if theta.dim() != 0:
        raise ValueError(f"theta must be a scalar (shape ()); got shape {tuple(theta.shape)}")
    if not bool(torch.isfinite(theta)):
        raise ValueError("theta must be finite")
    opts = {"dtype": theta.dtype, "device": theta.device}
    if bool(theta == 0):
        p = q = torch.ones(1, **opts)
    else:  # probability vectors on the support {0, θ}
        p = torch.tensor([1.0, 0.0], **opts)
        q = torch.tensor([0.0, 1.0], **opts)
    w1 = wasserstein1_1d(torch.zeros(1, **opts), theta.reshape(1))
    return PointMassDivergences(categorical_kl(p, q), categorical_kl(q, p), jensen_shannon_categorical(p, q), w1)


def wasserstein_critic_loss(real_scores, fake_scores) -> torch.Tensor:
    r"""E_{p_G}[f(x)] - E_{p_data}[f(x)], the WGAN critic's loss (minimise over the critic f).

    Kantorovich–Rubinstein duality: W₁(p_data, p_G) = sup_{‖f‖_L ≤ 1} E_{p_data}[f] - E_{p_G}[f],
    so minus this loss, maximised over 1-Lipschitz critics, is W₁ (over K-Lipschitz critics it is
    K·W₁). The Lipschitz constraint is enforced separately, by :func:`clip_weights_` or
    :func:`gradient_penalty`. Chapter 5, "Wasserstein GAN".

    Args:
        real_scores: ``(B,)`` or ``(B, 1)`` critic values f(x) at data points (unbounded, no sigmoid).
        fake_scores: ``(B',)`` or ``(B', 1)`` critic values at generated points.

    Returns:
        ``()`` the loss.
    """
    real = _scores(real_scores, "real_scores")
    fake = _scores(fake_scores, "fake_scores", like=real, like_name="real_scores")
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake_scores) -> torch.Tensor:
    r"""-E_{z~p(z)}[f(G(z))], the WGAN generator's loss (the only term of the critic's objective G moves).

    Args:
        fake_scores: ``(B,)`` or ``(B, 1)`` critic values at generated points.

    Returns:
        ``()`` the loss.
    """
    fake = _scores(fake_scores, "fake_scores")
    return -fake.mean()


def clip_weights_(module: nn.Module, c: float) -> nn.Module:
    r"""Clamp every parameter of ``module`` to [-c, c] in place (the original WGAN's constraint).

    Bounded weights make the critic K-Lipschitz for some K that depends on c and the
    architecture, so the critic estimates K·W₁, not W₁; too small a c makes the critic nearly
    linear, too large makes clipping irrelevant. :func:`gradient_penalty` is the usual fix.

    Args:
        module: the critic; c: the clipping bound, a finite positive number.

    Returns:
        ``module`` itself (modified in place).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    c = check_number(c, "c", low=0, closed_low=False)
    with torch.no_grad():
        for param in module.parameters():
            param.clamp_(-c, c)
    return module


def gradient_penalty(critic, real, fake, generator=None, target_norm: float = 1.0, *, epsilon=None) -> torch.Tensor:
    r"""E_{x̂}[(‖∇_x f(x̂)‖₂ - 1)²] at x̂ = u x_real + (1 - u) x_fake, u ~ U(0, 1) (WGAN-GP).

    A differentiable critic is 1-Lipschitz iff ‖∇f‖ ≤ 1 everywhere; the optimal critic has
    ‖∇f‖ = 1 on the segments between coupled points, so Gulrajani et al. (2017) penalise the
    deviation from 1 at random points on random segments. Add λ·(this) to
    :func:`wasserstein_critic_loss` (λ = 10 in the paper). The gradient is taken with
    ``create_graph=True``, so the penalty is differentiable with respect to the critic's
    parameters; x̂ is detached from ``real`` and ``fake`` (the penalty trains the critic only).
    The critic must treat samples independently (no batch normalisation): the gradient of the
    summed scores is then each sample's own gradient. Chapter 5, "Gradient penalty".

    Args:
        critic: callable mapping ``(B, ...)`` to scores ``(B,)`` or ``(B, 1)``.
        real: ``(B, ...)`` data samples; fake: ``(B, ...)`` generated samples, same shape.
        generator: ``torch.Generator`` for u (its device is used for the draw, then u moves to
            ``real``'s device, so a CPU generator gives the same u everywhere).
        target_norm: the gradient norm the penalty pulls towards (1 for W₁).
        epsilon: optional ``(B,)`` interpolation weights u in [0, 1] (the keyword keeps the exercise's
            name); drawn when omitted.

    Returns:
        ``()`` the penalty, ≥ 0.
    """
    if not callable(critic):
        raise TypeError(f"critic must be callable (e.g. a torch.nn.Module); got {type(critic).__name__}")
    real = _samples(real, "real")
    fake = _samples(fake, "fake", like=real, like_name="real")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape (B, ...); got {tuple(real.shape)} and {tuple(fake.shape)}")
    target_norm = check_number(target_norm, "target_norm", low=0, closed_low=False)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    B = real.shape[0]
    if epsilon is None:
        gen_device = generator.device if generator is not None else real.device
        epsilon = torch.rand(B, dtype=real.dtype, device=gen_device, generator=generator).to(real.device)
    else:
        epsilon = as_float_tensor(epsilon, "epsilon", like=real)
        check_same_device(real=real, epsilon=epsilon)
        if epsilon.shape != (B,):
            raise ValueError(f"epsilon must have shape ({B},) (one weight per sample); got shape {tuple(epsilon.shape)}")
        if not bool(((epsilon >= 0) & (epsilon <= 1)).all()):
            raise ValueError("epsilon must lie in [0, 1]")
    eps = epsilon.reshape(B, *([1] * (real.dim() - 1)))
    with torch.enable_grad():
        x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
        scores = _scores(critic(x_hat), "critic(x_hat)")
        if scores.shape[0] != B:
            raise ValueError(f"critic(x_hat) must give one score per sample ({B}); got {scores.shape[0]}")
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    grad_norm = grad.reshape(B, -1).norm(dim=1)
    return (grad_norm - target_norm).pow(2).mean()


# --------------------------------------------------------------------------------------------
# InfoGAN (Chapter 5, "InfoGAN")
# --------------------------------------------------------------------------------------------


def mutual_information_lower_bound(log_q_c_given_x, prior_probs) -> tuple[torch.Tensor, torch.Tensor]:
    r"""L_I = E_{c~p(c), x~G(z,c)}[log Q(c | x)] + H(c) ≤ I(c; G(z, c)), with its standard error.

    I(c; x) = H(c) - H(c | x) = H(c) + E[log p(c | x)] = H(c) + E[log Q(c | x)]
    + E_x[KL(p(c | x) ‖ Q(c | x))] ≥ H(c) + E[log Q(c | x)], with equality iff Q(c | x) = p(c | x)
    (Chen et al. 2016; Chapter 5, "InfoGAN"). The expectation is over the joint: draw c from the
    prior, then x = G(z, c), then evaluate Q at (c, x) — no sample from the posterior is needed.
    H(c) of the categorical prior is exact (:func:`dgm.divergences.categorical_entropy`).

    Args:
        log_q_c_given_x: ``(S,)`` log Q(c_s | x_s) at joint samples, ``S >= 2`` (≤ 0: a log-probability).
        prior_probs: ``(K,)`` the prior p(c) of the categorical code.

    Returns:
        ``(estimate, standard_error)``, both ``()``, in nats; the bound lies in [-∞, H(c)].
    """
    log_q = as_float_tensor(log_q_c_given_x, "log_q_c_given_x")
    prior = as_float_tensor(prior_probs, "prior_probs", like=log_q)
    check_same_device(log_q_c_given_x=log_q, prior_probs=prior)
    if log_q.dim() != 1 or log_q.shape[0] < 2:
        raise ValueError(f"log_q_c_given_x must have shape (S,) with S >= 2; got shape {tuple(log_q.shape)}")
    if bool(torch.isnan(log_q).any()):
        raise ValueError("log_q_c_given_x must not contain NaN")
    slack = 1e-5 if log_q.dtype == torch.float32 else 1e-10
    if bool((log_q > slack).any()):
        raise ValueError(
            "log_q_c_given_x must be log-probabilities of a discrete code (≤ 0); its largest entry is "
            f"{float(log_q.max()):g}. Pass log_softmax of Q's logits, not the logits."
        )
    if prior.dim() != 1:
        raise ValueError(f"prior_probs must have shape (K,); got shape {tuple(prior.shape)}")
    check_probabilities(prior, "prior_probs")
    mean, se = monte_carlo_mean(log_q)
    return mean + categorical_entropy(prior), se


# --------------------------------------------------------------------------------------------
# Training a GAN on 2-D data and counting the modes it covers (Chapter 5, "Mode collapse")
# --------------------------------------------------------------------------------------------


class GanRun(NamedTuple):
    """What :func:`train_gan` records.

    Attributes:
        steps: the generator steps at which snapshots were taken (a list of ints, 0 first).
        samples: one ``(S, D)`` tensor of generator samples per snapshot (fixed noise, detached).
        d_loss: the discriminator's (critic's) loss at each generator step, a list of floats.
        g_loss: the generator's loss at each generator step, a list of floats.
    """

    steps: list
    samples: list
    d_loss: list
    g_loss: list


def ring_centres(num_modes: int = 8, radius: float = 2.0, *, dtype=torch.float32) -> torch.Tensor:
    r"""The means radius·(cos 2πk/M, sin 2πk/M), k = 0..M-1, of :func:`dgm.data.ring_of_gaussians`.

    Returns:
        ``(M, 2)`` the mode centres.
    """
    num_modes = check_int(num_modes, "num_modes", low=1)
    radius = check_number(radius, "radius", low=0, closed_low=False)
    angle = 2 * math.pi * torch.arange(num_modes, dtype=torch.float64) / num_modes
    return (radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)).to(dtype)


def mode_coverage(samples, centres, max_distance: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""How many samples fall near each mode, and the fraction that fall near none.

    A sample is assigned to its nearest centre if it lies within ``max_distance`` of it (three
    standard deviations of a mode is the usual choice); otherwise it is "off the data". A mode
    counts as *covered* when it receives a reasonable share of the samples, e.g. at least a
    quarter of the 1/M it would get from a perfect generator — the caller decides, from the counts.

    Args:
        samples: ``(S, D)`` generated points; centres: ``(M, D)`` mode centres.
        max_distance: the radius, a finite positive number.

    Returns:
        ``(counts, off_fraction)``: ``(M,)`` integer counts per mode and a ``()`` tensor.
    """
    x = _samples(samples, "samples")
    c = as_float_tensor(centres, "centres", like=x)
    check_same_device(samples=x, centres=c)
    if c.dim() != 2 or c.shape[1] != x.shape[1]:
        raise ValueError(f"centres must have shape (M, {x.shape[1]}); got shape {tuple(c.shape)}")
    max_distance = check_number(max_distance, "max_distance", low=0, closed_low=False)
    dist = torch.cdist(x.to(c.dtype), c)  # (S, M)
    nearest_dist, nearest = dist.min(dim=1)
    near = nearest_dist <= max_distance
    counts = torch.bincount(nearest[near], minlength=c.shape[0])
    return counts, 1.0 - near.to(x.dtype).mean()


def train_gan(
    gen_net: nn.Module,
    disc_net: nn.Module,
    data,
    *,
    latent_dim: int,
    steps: int,
    loss: str = "nonsaturating",
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_disc: float | None = None,
    betas: tuple[float, float] = (0.5, 0.999),
    critic_steps: int = 1,
    gp_weight: float = 10.0,
    snapshot_every: int | None = None,
    num_snapshot_samples: int = 1000,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> GanRun:
    r"""Alternate discriminator (critic) and generator steps with Adam; record samples on the way.

    ``loss="nonsaturating"``: D minimises :func:`discriminator_loss`, G minimises
    :func:`generator_loss_nonsaturating`. ``loss="minimax"``: G minimises
    :func:`generator_loss_minimax` instead. ``loss="wgan-gp"``: the critic minimises
    :func:`wasserstein_critic_loss` + ``gp_weight`` · :func:`gradient_penalty`, G minimises
    :func:`wasserstein_generator_loss` (Gulrajani et al. use ``critic_steps=5``, ``betas=(0.5, 0.9)``).
    Each generator step follows ``critic_steps`` critic steps on fresh minibatches. Every random
    number (minibatch indices, noise z ~ N(0, I), u of the penalty) comes from ``generator``, so
    with seeded initial weights the run is reproducible. Chapter 5, "Mode collapse".

    Args:
        gen_net: maps ``(B, latent_dim)`` noise to ``(B, D)`` samples.
        disc_net: maps ``(B, D)`` to logits or critic scores ``(B,)`` or ``(B, 1)``.
        data: ``(N, D)`` the training set; minibatches are drawn with replacement.
        latent_dim: size of z; steps: number of generator steps.
        loss: "nonsaturating", "minimax" or "wgan-gp".
        batch_size, lr, betas: minibatch size and Adam's settings (for both networks).
        lr_disc: the discriminator's learning rate, when it differs from ``lr``.
        critic_steps: discriminator steps per generator step; gp_weight: λ of the penalty.
        snapshot_every: record samples every this many generator steps (and at 0 and the end);
            None records only the start and the end.
        num_snapshot_samples: how many samples each snapshot holds (the same noise every time).
        generator: CPU ``torch.Generator`` for all randomness; progress: show a tqdm bar.

    Returns:
        :class:`GanRun` ``(steps, samples, d_loss, g_loss)``.
    """
    if not isinstance(gen_net, nn.Module) or not isinstance(disc_net, nn.Module):
        raise TypeError("gen_net and disc_net must be torch.nn.Modules")
    x = _samples(data, "data")
    latent_dim = check_int(latent_dim, "latent_dim", low=1)
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    critic_steps = check_int(critic_steps, "critic_steps", low=1)
    num_snapshot_samples = check_int(num_snapshot_samples, "num_snapshot_samples", low=1)
    lr = check_number(lr, "lr", low=0, closed_low=False)
    lr_disc = lr if lr_disc is None else check_number(lr_disc, "lr_disc", low=0, closed_low=False)
    if loss not in ("nonsaturating", "minimax", "wgan-gp"):
        raise ValueError(f"loss must be 'nonsaturating', 'minimax' or 'wgan-gp'; got {loss!r}")
    if loss == "wgan-gp":
        gp_weight = check_number(gp_weight, "gp_weight", low=0, closed_low=False)
    if snapshot_every is not None:
        snapshot_every = check_int(snapshot_every, "snapshot_every", low=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    opts = {"dtype": x.dtype}
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(disc_net.parameters(), lr=lr_disc, betas=betas)
    fixed_z = torch.randn(num_snapshot_samples, latent_dim, generator=generator, **opts).to(x.device)

    def noise(n):
        return torch.randn(n, latent_dim, generator=generator, **opts).to(x.device)

    def snapshot(step):
        with torch.no_grad():
            run.steps.append(step)
            run.samples.append(gen_net(fixed_z).detach().clone())

    run = GanRun([], [], [], [])
    snapshot(0)
    iterator = range(1, steps + 1)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"GAN ({loss})")
    for step in iterator:
        for _ in range(critic_steps):
            idx = torch.randint(x.shape[0], (batch_size,), generator=generator).to(x.device)
            real = x[idx]
            with torch.no_grad():
                fake = gen_net(noise(batch_size))
            if loss == "wgan-gp":
                d_loss = wasserstein_critic_loss(disc_net(real), disc_net(fake)) + gp_weight * gradient_penalty(
                    disc_net, real, fake, generator=generator
                )
            else:
                d_loss = discriminator_loss(disc_net(real), disc_net(fake))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        fake_scores = disc_net(gen_net(noise(batch_size)))
        if loss == "wgan-gp":
            g_loss = wasserstein_generator_loss(fake_scores)
        elif loss == "minimax":
            g_loss = generator_loss_minimax(fake_scores)
        else:
            g_loss = generator_loss_nonsaturating(fake_scores)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        run.d_loss.append(float(d_loss.detach()))
        run.g_loss.append(float(g_loss.detach()))
        due = (snapshot_every is not None and step % snapshot_every == 0) or step == steps
        if due and run.steps[-1] != step:
            snapshot(step)
    return run
