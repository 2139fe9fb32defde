r"""Denoising diffusion probabilistic models (DDPM, Ho et al. 2020), Chapter 7.

Notation (the book's, which is Ho et al.'s)
-------------------------------------------
* forward process q(x_t | x_{t-1}) = N(√α_t x_{t-1}, β_t I) with α_t = 1 − β_t, t = 1, …, T;
* ᾱ_t = Π_{s=1}^t α_s (and ᾱ_0 = 1), so q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I);
* posterior q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I) with β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t and
  μ̃_t = √ᾱ_{t-1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · x_t;
* reverse model p_θ(x_{t-1} | x_t) = N(μ_θ(x_t, t), σ_t² I) with μ_θ the posterior mean at the
  predicted x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ(x_t, t)) / √ᾱ_t, and σ_t² = β_t or β̃_t.

Indexing convention (read this before indexing an array)
--------------------------------------------------------
* Every ``t`` argument, and the ``t`` a model receives, is the book's timestep t ∈ {1, …, T}
  itself (an ``int64`` tensor of shape ``(B,)``, or a Python int for the whole batch):
  t = 1 is one step of noise, t = T is (nearly) pure noise. Nothing is ever indexed by t − 1 in
  user code.
* The per-timestep arrays of :class:`GaussianDiffusion` (``betas``, ``alphas_cumprod``, …) have
  length T and hold the value at timestep t in entry ``t - 1``: ``betas[0]`` is β_1,
  ``alphas_cumprod[T - 1]`` is ᾱ_T, ``alphas_cumprod_prev[0]`` is ᾱ_0 = 1.
* Results that run over time *including* t = 0 are indexed by time itself:
  :meth:`GaussianDiffusion.p_sample_trajectory` returns ``(T + 1, …)`` with entry ``t`` = x_t,
  and :meth:`GaussianDiffusion.vlb_terms` returns ``(B, T + 1)`` with column ``j`` = L_j
  (L_0 the decoder term, L_1 … L_{T-1} the denoising KLs, L_T the prior term).

Shapes: data and noise are ``(B, …)`` (a batch dimension, then any event shape, e.g. ``(B, D)`` or
``(B, C, H, W)``); sums "over dimensions" run over all non-batch dimensions. A *model* is any
callable ``model(x_t, t) -> ε̂`` taking ``x_t`` of shape ``(B, …)`` and ``t`` (``int64``, ``(B,)``,
values 1..T) and returning ε̂ of the shape of ``x_t``. Tensors stay on the device of the inputs;
the schedule is precomputed once in float64 and cast to the inputs' dtype when used.
Randomness comes in through ``noise=`` or ``generator=`` arguments. Quantities are in nats
unless the name says bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm import tqdm  # text bars: they render on the static pages too (tqdm.auto would freeze a widget there)

from dgm._validate import (
    as_float_tensor,
    check_int,
    check_min_ndim,
    check_number,
    check_same_device,
    diagonal_gaussian_args,
)
from dgm.divergences import gaussian_kl

__all__ = [
    "linear_beta_schedule",
    "cosine_beta_schedule",
    "discretized_gaussian_log_prob",
    "GaussianDiffusion",
    "bare_sampling_loop",
]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_VARIANCES = ("beta", "beta_tilde")


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def linear_beta_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    r"""β_t rising linearly from ``beta_start`` (t = 1) to ``beta_end`` (t = T) (Ho et al. 2020).

    The defaults are Ho et al.'s values for T = 1000, where ᾱ_T ≈ 4·10⁻⁵. They are *not* rescaled
    for other T: with T = 100 they give ᾱ_T ≈ 0.36, far from noise. For a shorter chain scale
    both ends by 1000 / T (Nichol & Dhariwal), e.g. ``linear_beta_schedule(100, 1e-3, 0.2)``.

    Args:
        T: number of steps, ``>= 1``.
        beta_start, beta_end: β_1 and β_T, with ``0 < beta_start <= beta_end < 1``.

    Returns:
        ``(T,)`` float64 tensor; entry ``t - 1`` is β_t.
    """
    T = check_int(T, "T", low=1)
    beta_start = check_number(beta_start, "beta_start", low=0, high=1, closed_low=False, closed_high=False)
    beta_end = check_number(beta_end, "beta_end", low=0, high=1, closed_low=False, closed_high=False)
    if beta_end < beta_start:
        raise ValueError(
            f"beta_end must be >= beta_start (the noise grows along the chain); got beta_start={beta_start:g}, "
            f"beta_end={beta_end:g}"
        )
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_beta_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    r"""β_t of the cosine schedule (Nichol & Dhariwal 2021): ᾱ_t = f(t) / f(0), f(t) = cos²(π/2 · (t/T + s)/(1 + s)).

    β_t = min(1 − ᾱ_t / ᾱ_{t-1}, max_beta); the clipping only acts near t = T, where f → 0.
    ᾱ_t then falls smoothly from ≈ 1 to ≈ 0 and spends fewer steps near pure noise than the
    linear schedule.

    Args:
        T: number of steps, ``>= 1``.
        s: small offset, ``>= 0``, keeping β_1 from being vanishingly small.
        max_beta: upper clip of β_t, in ``(0, 1)``.

    Returns:
        ``(T,)`` float64 tensor; entry ``t - 1`` is β_t.
    """
    T = check_int(T, "T", low=1)
    s = check_number(s, "s", low=0)
    max_beta = check_number(max_beta, "max_beta", low=0, high=1, closed_low=False, closed_high=False)
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * (math.pi / 2)) ** 2
    alphas_cumprod = f / f[0]
    return (1.0 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(max=max_beta)


def _check_betas(betas) -> torch.Tensor:
    if isinstance(betas, torch.Tensor) and not torch.is_floating_point(betas):
        raise TypeError(f"betas must be a floating-point tensor; got dtype {betas.dtype}")
    betas = as_float_tensor(betas, "betas", like=torch.zeros((), dtype=torch.float64))
    if betas.dim() != 1:
        raise ValueError(f"betas must have shape (T,) (one β_t per step); got shape {tuple(betas.shape)}")
    if betas.shape[0] < 1:
        raise ValueError("betas must hold at least one step: T must be >= 1; got T = 0")
    if betas.device.type == "meta":
        raise ValueError("betas must hold values (a CPU or CUDA tensor); got a tensor on the meta device")
    betas = betas.detach().to(device="cpu", dtype=torch.float64).clone()
    if not bool(torch.isfinite(betas).all()):
        raise ValueError("betas must be finite; it contains NaN or infinity")
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError(
            f"betas must lie strictly between 0 and 1 (each β_t is a variance added and α_t = 1 − β_t must "
            f"stay positive); got values from {float(betas.min()):g} to {float(betas.max()):g}"
        )
    drops = torch.nonzero(betas[1:] < betas[:-1] * (1 - 1e-12)).flatten()
    if drops.numel():
        t = int(drops[0]) + 2
        raise ValueError(
            f"betas must be non-decreasing (β_1 <= β_2 <= ... <= β_T); β_{t} = {float(betas[t - 1]):g} < "
            f"β_{t - 1} = {float(betas[t - 2]):g}. Was the schedule passed reversed?"
        )
    return betas


# --------------------------------------------------------------------------------------------
# Discretised Gaussian decoder (Ho et al. 2020, eq. 13)
# --------------------------------------------------------------------------------------------


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 − e^d) for d < 0, accurate at both ends (Mächler 2012); no NaN gradients from the unused branch."""
    near_zero = d > -math.log(2.0)
    d_near = torch.where(near_zero, d, torch.full_like(d, -1.0))
    d_far = torch.where(near_zero, torch.full_like(d, -1.0), d)
    return torch.where(near_zero, torch.log(-torch.expm1(d_near)), torch.log1p(-torch.exp(d_far)))


def _log_normal_interval(z_low: torch.Tensor, z_high: torch.Tensor) -> torch.Tensor:
    """log(Φ(z_high) − Φ(z_low)) for z_low < z_high, stable in both tails."""
    flip = (z_low + z_high) > 0  # right tail: use Φ(b) − Φ(a) = Φ(−a) − Φ(−b)
    a = torch.where(flip, -z_high, z_low)
    b = torch.where(flip, -z_low, z_high)
    log_b = torch.special.log_ndtr(b)
    log_a = torch.special.log_ndtr(a)
    return log_b + _log1mexp(log_a - log_b)


def discretized_gaussian_log_prob(x, mean, logvar, bins: int = 256) -> torch.Tensor:
    r"""log P(x) for data on ``bins`` levels in [−1, 1] under N(mean, e^{logvar}) integrated over each level's bin.

    .. math::
        P(x) = \prod_d \int_{\delta_-(x_d)}^{\delta_+(x_d)} \mathcal N(u; \mu_d, \sigma_d^2)\,du,\qquad
        \delta_\pm(x) = \begin{cases}\pm\infty & x = \pm 1\\ x \pm \tfrac{1}{\text{bins}-1} & \text{otherwise}\end{cases}

    The decoder p_θ(x_0 | x_1) of Ho et al. (2020, eq. 13): a probability (not a density), so
    −log P / (D log 2) is a genuine bits-per-dimension. Bin width is 2 / (bins − 1); the outer
    bins extend to ±∞. ``x`` should lie on the grid −1 + 2k/(bins − 1); a value off the grid
    gets the probability of the bin of that width centred on it.

    Args:
        x: ``(..., D)`` data in [−1, 1].
        mean: ``(..., D)`` means (broadcast against ``x``).
        logvar: ``(..., D)`` log-variances (broadcast).
        bins: number of levels, ``>= 2`` (256 for 8-bit images).

    Returns:
        ``(...)`` log-probability in nats, summed over ``D``; always ``<= 0``.
    """
    bins = check_int(bins, "bins", low=2)
    x, mean, logvar = diagonal_gaussian_args(x, mean, logvar)
    if x.device.type != "meta":
        if not bool(((x >= -1) & (x <= 1)).all()):
            raise ValueError(
                f"x must lie in [-1, 1] (data scaled as 2·pixel/255 − 1); got values from {float(x.min()):g} "
                f"to {float(x.max()):g}"
            )
    return _discretized_gaussian_log_prob(x, mean, logvar, bins)


def _discretized_gaussian_log_prob(x, mean, logvar, bins):
    half_width = 1.0 / (bins - 1)
    inv_std = torch.exp(-0.5 * logvar)
    z_low = (x - half_width - mean) * inv_std
    z_high = (x + half_width - mean) * inv_std
    log_left = torch.special.log_ndtr(z_high)  # bin (−∞, x + h] at x = −1
    log_right = torch.special.log_ndtr(-z_low)  # bin [x − h, ∞) at x = +1
    log_mid = _log_normal_interval(z_low, z_high)
    out = torch.where(x < -1 + half_width, log_left, torch.where(x > 1 - half_width, log_right, log_mid))
    return out.sum(-1)


# --------------------------------------------------------------------------------------------
# The diffusion
# --------------------------------------------------------------------------------------------


class GaussianDiffusion:
    r"""The DDPM forward process q and reverse model p_θ for a fixed schedule β_1, …, β_T.

    Every schedule quantity is computed once, in float64 on the CPU, into an attribute named after
    its symbol; each is a ``(T,)`` tensor whose entry ``t - 1`` is the value at timestep t (see the
    module docstring for the indexing convention):

    * ``betas``: β_t; ``alphas``: α_t = 1 − β_t; ``log_betas``: log β_t;
    * ``alphas_cumprod``: ᾱ_t = Π_{s ≤ t} α_s; ``alphas_cumprod_prev``: ᾱ_{t−1} (entry 0 is ᾱ_0 = 1);
    * ``one_minus_alphas_cumprod``: 1 − ᾱ_t (as −expm1(Σ log α_s), accurate for small t);
    * ``sqrt_alphas_cumprod``: √ᾱ_t; ``sqrt_one_minus_alphas_cumprod``: √(1 − ᾱ_t);
    * ``sqrt_recip_alphas_cumprod``: 1/√ᾱ_t; ``sqrt_recipm1_alphas_cumprod``: √(1/ᾱ_t − 1);
    * ``posterior_variance``: β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (β̃_1 = 0);
    * ``posterior_log_variance_clipped``: log β̃_t with β̃_1 replaced by β̃_2 (log β_1 if T = 1);
    * ``posterior_mean_coef1``: √ᾱ_{t−1} β_t / (1 − ᾱ_t), multiplying x_0 in μ̃_t;
    * ``posterior_mean_coef2``: √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), multiplying x_t in μ̃_t.

    Treat them as read-only: they are cached per device and dtype on first use.

    Args:
        betas: ``(T,)`` the schedule, ``0 < β_t < 1``, non-decreasing, e.g. from
            :func:`linear_beta_schedule` or :func:`cosine_beta_schedule`.
    """

    _SCHEDULE_NAMES = (
        "betas",
        "alphas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "one_minus_alphas_cumprod",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
        "log_betas",
    )

    def __init__(self, betas) -> None:
        betas = _check_betas(betas)
        self.T: int = int(betas.shape[0])
        self.betas = betas
        self.alphas = 1.0 - betas
        log_alphas_cumprod = torch.cumsum(torch.log1p(-betas), 0)
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)
        if float(self.alphas_cumprod[-1]) <= 0.0:
            raise ValueError(
                "betas destroy the signal completely: ᾱ_T underflows to 0 in float64, so x_0 cannot be "
                "predicted from x_T. Use fewer steps or a smaller max_beta."
            )
        self.one_minus_alphas_cumprod = -torch.expm1(log_alphas_cumprod)
        one = torch.ones(1, dtype=torch.float64)
        self.alphas_cumprod_prev = torch.cat([one, self.alphas_cumprod[:-1]])
        one_minus_prev = torch.cat([torch.zeros(1, dtype=torch.float64), self.one_minus_alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(self.one_minus_alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = torch.rsqrt(self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = torch.sqrt(self.one_minus_alphas_cumprod / self.alphas_cumprod)
        # Bayes' rule for q(x_{t-1} | x_t, x_0): precisions add, 1/β̃_t = α_t/β_t + 1/(1 − ᾱ_{t−1}).
        self.posterior_variance = betas * one_minus_prev / self.one_minus_alphas_cumprod
        if self.T > 1:
            clipped = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        else:
            clipped = betas.clone()
        self.posterior_log_variance_clipped = torch.log(clipped)
        self.posterior_mean_coef1 = betas * torch.sqrt(self.alphas_cumprod_prev) / self.one_minus_alphas_cumprod
        self.posterior_mean_coef2 = torch.sqrt(self.alphas) * one_minus_prev / self.one_minus_alphas_cumprod
        self.log_betas = torch.log(betas)
        # Per-device/dtype copies, padded so that entry t is timestep t (filled lazily by _at), and
        # Python floats for the sampling loop, where all examples share one t.
        self._tables: dict[tuple, torch.Tensor] = {}
        self._floats = {name: [math.nan] + getattr(self, name).tolist() for name in self._SCHEDULE_NAMES}

    def __repr__(self) -> str:
        return (
            f"GaussianDiffusion(T={self.T}, beta_1={float(self.betas[0]):.3g}, beta_T={float(self.betas[-1]):.3g}, "
            f"alphas_cumprod_T={float(self.alphas_cumprod[-1]):.3g})"
        )

    # ---- the one helper that picks per-timestep values ---------------------------------------

    def _at(self, name: str, t, x: torch.Tensor):
        """The schedule entry ``name`` at timesteps ``t``, ready to multiply ``x`` of shape ``(B, …)``.

        ``t`` a ``(B,)`` int64 tensor (values 1..T, already validated): returns the values cast to
        ``x``'s dtype and device, broadcast to ``x``'s shape. ``t`` a Python int: returns a float.
        """
        if isinstance(t, int):
            return self._floats[name][t]
        key = (name, x.device, x.dtype)
        table = self._tables.get(key)
        if table is None:
            padded = torch.cat([torch.full((1,), math.nan, dtype=torch.float64), getattr(self, name)])
            table = padded.to(device=x.device, dtype=x.dtype)
            self._tables[key] = table
        return table[t].reshape((-1,) + (1,) * (x.dim() - 1)).expand(x.shape)

    # ---- input checks -------------------------------------------------------------------------

    def _check_x(self, x, name: str) -> torch.Tensor:
        x = as_float_tensor(x, name)
        check_min_ndim(x, name, 1, "(B, ...)")
        return x

    def _check_t(self, t, x: torch.Tensor, x_name: str, name: str = "t") -> torch.Tensor:
        """Timesteps as an int64 ``(B,)`` tensor on ``x``'s device, values in 1..T."""
        B = x.shape[0]
        if not isinstance(t, torch.Tensor):
            expected = (
                f"an int64 tensor of shape (B,) or an int, holding timesteps in 1..T = 1..{self.T} "
                f"(t = 1 is one step of noise)"
            )
            t = check_int(t, name, low=1, high=self.T, expected=expected)
            return torch.full((B,), t, dtype=torch.long, device=x.device)
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(
                f"{name} must be an integer tensor (torch.long) of timesteps 1..T; got dtype {t.dtype}. "
                f"Timesteps index the schedule: build them with torch.randint or torch.full(..., dtype=torch.long)."
            )
        if t.dim() == 0:
            t = t.expand(B)
        if tuple(t.shape) != (B,):
            raise ValueError(
                f"{name} must have shape (B,) = ({B},), one timestep per row of {x_name}; got shape {tuple(t.shape)}"
            )
        check_same_device(**{x_name: x, name: t})
        t = t.long()
        if t.device.type != "meta":
            lo, hi = int(t.min()), int(t.max())
            if lo < 1 or hi > self.T:
                raise ValueError(
                    f"{name} must lie in 1..T = 1..{self.T} (timesteps count from 1; t = 1 is one step of "
                    f"noise); got values from {lo} to {hi}"
                )
        return t

    def _check_like(self, value, name: str, x: torch.Tensor, x_name: str) -> torch.Tensor:
        value = as_float_tensor(value, name, like=x)
        check_same_device(**{x_name: x, name: value})
        if value.shape != x.shape:
            raise ValueError(f"{name} must have the shape of {x_name}, {tuple(x.shape)}; got {tuple(value.shape)}")
        return value

    def _check_variance(self, variance: str) -> str:
        if variance not in _VARIANCES:
            raise ValueError(f"variance must be one of {_VARIANCES} (σ_t² = β_t or β̃_t); got {variance!r}")
        return variance

    def _noise(self, noise, x: torch.Tensor, x_name: str, generator) -> torch.Tensor:
        if noise is None:
            return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return self._check_like(noise, "noise", x, x_name)

    @staticmethod
    def _eps(model: Model, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = model(xt, t)
        if not isinstance(eps, torch.Tensor) or eps.shape != xt.shape:
            got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
            raise ValueError(f"model(x_t, t) must return ε̂ with the shape of x_t, {tuple(xt.shape)}; got {got}")
        return eps

    # ---- the forward process q ----------------------------------------------------------------

    def q_mean_variance(self, x0, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The distribution q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I).

        Args:
            x0: ``(B, …)`` data.
            t: ``(B,)`` int64 timesteps in 1..T (or an int).

        Returns:
            ``(mean, variance, log_variance)``, each of shape ``(B, …)``.
        """
        x0 = self._check_x(x0, "x0")
        t = self._check_t(t, x0, "x0")
        mean = self._at("sqrt_alphas_cumprod", t, x0) * x0
        variance = self._at("one_minus_alphas_cumprod", t, x0)
        log_variance = torch.log(self._at("one_minus_alphas_cumprod", t, x0))
        return mean, variance, log_variance

    def q_sample(self, x0, t, noise=None, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""A draw x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε from q(x_t | x_0), ε ~ N(0, I).

        Args:
            x0: ``(B, …)`` data.
            t: ``(B,)`` int64 timesteps in 1..T (or an int).
            noise: optional ``(B, …)`` the ε to use; drawn with ``generator`` when omitted.
            generator: optional ``torch.Generator`` on ``x0``'s device.

        Returns:
            ``(B, …)`` x_t.
        """
        x0 = self._check_x(x0, "x0")
        t = self._check_t(t, x0, "x0")
        noise = self._noise(noise, x0, "x0", generator)
        return self._q_sample(x0, t, noise)

    def _q_sample(self, x0, t, noise):
        return self._at("sqrt_alphas_cumprod", t, x0) * x0 + self._at("sqrt_one_minus_alphas_cumprod", t, x0) * noise

    def q_posterior_mean_variance(self, x0, xt, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The distribution q(x_{t−1} | x_t, x_0) = N(μ̃_t(x_t, x_0), β̃_t I).

        μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t and
        β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (Chapter 7, "The diffusion posterior"). At t = 1,
        β̃_1 = 0 (x_0 is known) and μ̃_1 = x_0.

        Args:
            x0: ``(B, …)`` data.
            xt: ``(B, …)`` the noisy x_t.
            t: ``(B,)`` int64 timesteps in 1..T (or an int).

        Returns:
            ``(mean, variance, log_variance_clipped)``, each ``(B, …)``; the log-variance at t = 1
            is log β̃_2 (``posterior_log_variance_clipped``) since log β̃_1 = −∞.
        """
        x0 = self._check_x(x0, "x0")
        xt = self._check_like(xt, "xt", x0, "x0")
        t = self._check_t(t, x0, "x0")
        mean = self._q_posterior_mean(x0, xt, t)
        return (
            mean,
            self._at("posterior_variance", t, x0),
            self._at("posterior_log_variance_clipped", t, x0),
        )

    def _q_posterior_mean(self, x0, xt, t):
        return self._at("posterior_mean_coef1", t, xt) * x0 + self._at("posterior_mean_coef2", t, xt) * xt

    def predict_x0_from_eps(self, xt, t, eps) -> torch.Tensor:
        r"""x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t: the x_0 that q_sample maps to x_t with noise ε.

        Args:
            xt: ``(B, …)`` the noisy x_t.
            t: ``(B,)`` int64 timesteps in 1..T (or an int).
            eps: ``(B, …)`` the noise ε (or a prediction ε̂).

        Returns:
            ``(B, …)`` x̂_0.
        """
        xt = self._check_x(xt, "xt")
        eps = self._check_like(eps, "eps", xt, "xt")
        t = self._check_t(t, xt, "xt")
        return self._predict_x0_from_eps(xt, t, eps)

    def _predict_x0_from_eps(self, xt, t, eps):
        return self._at("sqrt_recip_alphas_cumprod", t, xt) * xt - self._at("sqrt_recipm1_alphas_cumprod", t, xt) * eps

    def predict_eps_from_x0(self, xt, t, x0) -> torch.Tensor:
        r"""ε = (x_t − √ᾱ_t x_0) / √(1 − ᾱ_t): the noise that q_sample needs to map x_0 to x_t.

        Args:
            xt: ``(B, …)`` the noisy x_t.
            t: ``(B,)`` int64 timesteps in 1..T (or an int).
            x0: ``(B, …)`` data (or a prediction x̂_0).

        Returns:
            ``(B, …)`` ε.
        """
        xt = self._check_x(xt, "xt")
        x0 = self._check_like(x0, "x0", xt, "xt")
        t = self._check_t(t, xt, "xt")
        return self._predict_eps_from_x0(xt, t, x0)

    def _predict_eps_from_x0(self, xt, t, x0):
        return (xt - self._at("sqrt_alphas_cumprod", t, xt) * x0) / self._at("sqrt_one_minus_alphas_cumprod", t, xt)

    # ---- the reverse model p_θ ----------------------------------------------------------------

    def p_mean_variance(
        self, model: Model, xt, t, clip_x0: bool = False, variance: str = "beta"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The distribution p_θ(x_{t−1} | x_t) = N(μ_θ(x_t, t), σ_t² I) of an ε-predicting model.

        μ_θ = μ̃_t(x_t, x̂_0) with x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ(x_t, t)) / √ᾱ_t, which equals
        (x_t − β_t / √(1 − ᾱ_t) · ε_θ) / √α_t. σ_t² is β_t (``variance="beta"``, Ho et al.'s choice)
        or β̃_t (``"beta_tilde"``; at t = 1, where β̃_1 = 0, the value β̃_2 is used so the decoder's
        log-variance stays finite).

        Args:
            model: callable ``(x_t, t) -> ε̂``, see the module docstring.
            xt: ``(B, …)`` the noisy x_t.
            t: ``(B,)`` int64 timesteps in 1..T (or an int).
            clip_x0: clamp x̂_0 to [−1, 1] before forming the mean (data scaled to [−1, 1]).
            variance: ``"beta"`` or ``"beta_tilde"``.

        Returns:
            ``(mean, variance, log_variance)``, each of shape ``(B, …)``.
        """
        xt = self._check_x(xt, "xt")
        t = self._check_t(t, xt, "xt")
        variance = self._check_variance(variance)
        mean, log_variance = self._p_mean_variance(model, xt, t, t, clip_x0, variance)
        return mean, torch.exp(log_variance), log_variance

    def _p_mean_variance(self, model, xt, t, t_model, clip_x0, variance):
        """(mean, log σ_t²); ``t`` picks the coefficients (tensor or int), ``t_model`` is what the model sees."""
        eps = self._eps(model, xt, t_model)
        x0 = self._predict_x0_from_eps(xt, t, eps)
        if clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        mean = self._q_posterior_mean(x0, xt, t)
        log_variance = self._at("log_betas" if variance == "beta" else "posterior_log_variance_clipped", t, xt)
        return mean, log_variance

    def p_sample(
        self,
        model: Model,
        xt,
        t,
        generator: torch.Generator | None = None,
        noise=None,
        clip_x0: bool = False,
        variance: str = "beta",
    ) -> torch.Tensor:
        r"""One ancestral step: a draw x_{t−1} = μ_θ(x_t, t) + σ_t z from p_θ(x_{t−1} | x_t), z ~ N(0, I).

        No noise is added where t = 1 (the last step returns the mean, as in Ho et al.'s Algorithm 2).

        Args:
            model, xt, t, clip_x0, variance: as in :meth:`p_mean_variance`.
            generator: optional ``torch.Generator`` on ``xt``'s device for z.
            noise: optional ``(B, …)`` the z to use instead.

        Returns:
            ``(B, …)`` x_{t−1}.
        """
        xt = self._check_x(xt, "xt")
        t = self._check_t(t, xt, "xt")
        variance = self._check_variance(variance)
        noise = self._noise(noise, xt, "xt", generator)
        mean, log_variance = self._p_mean_variance(model, xt, t, t, clip_x0, variance)
        keep = (t > 1).to(xt.dtype).reshape((-1,) + (1,) * (xt.dim() - 1))
        return mean + keep * torch.exp(0.5 * log_variance) * noise

    def _reverse_chain(self, model, shape, generator, device, dtype, clip_x0, variance, progress):
        """Yields x_T, x_{T−1}, …, x_0 of one ancestral sampling run (no gradients)."""
        x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        yield x
        steps = tqdm(range(self.T, 0, -1), total=self.T, disable=not progress, desc="p_sample_loop", leave=False)
        for t in steps:
            t_model = torch.full((shape[0],), t, dtype=torch.long, device=device)
            mean, log_variance = self._p_mean_variance(model, x, t, t_model, clip_x0, variance)
            if t > 1:
                z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
                x = mean + math.exp(0.5 * log_variance) * z
            else:
                x = mean
            yield x

    def p_sample_loop(
        self,
        model: Model,
        shape,
        generator: torch.Generator | None = None,
        *,
        device=None,
        dtype: torch.dtype = torch.float32,
        clip_x0: bool = False,
        variance: str = "beta",
        progress: bool = False,
    ) -> torch.Tensor:
        r"""A draw x_0 from p_θ(x_{0:T}) by ancestral sampling: x_T ~ N(0, I), then x_{t−1} ~ p_θ(· | x_t) for t = T, …, 1.

        Ho et al.'s Algorithm 2. Runs under ``torch.no_grad()``. With the same ``generator``
        state it returns exactly ``p_sample_trajectory(...)[0]``.

        Args:
            model: callable ``(x_t, t) -> ε̂``.
            shape: ``(B, …)`` the shape of the samples.
            generator: optional ``torch.Generator``; its device is the default sampling device.
            device: where to sample (default: the generator's device, else CPU).
            dtype: floating dtype of the samples.
            clip_x0, variance: as in :meth:`p_mean_variance`.
            progress: show a tqdm progress bar over the T steps (off by default).

        Returns:
            ``shape`` tensor of samples x_0.
        """
        shape, device = _check_sample_args(shape, generator, device, dtype)
        variance = self._check_variance(variance)
        with torch.no_grad():
            for x in self._reverse_chain(model, shape, generator, device, dtype, clip_x0, variance, progress):
                pass
        return x

    def p_sample_trajectory(
        self,
        model: Model,
        shape,
        generator: torch.Generator | None = None,
        *,
        device=None,
        dtype: torch.dtype = torch.float32,
        clip_x0: bool = False,
        variance: str = "beta",
        progress: bool = False,
    ) -> torch.Tensor:
        r"""The whole reverse chain x_T, …, x_0 of :meth:`p_sample_loop`, indexed by time.

        Same arguments as :meth:`p_sample_loop` (and the same draws for the same generator state).

        Returns:
            ``(T + 1, *shape)`` tensor whose entry ``t`` is x_t (entry 0 the sample, entry T the
            starting noise).
        """
        shape, device = _check_sample_args(shape, generator, device, dtype)
        variance = self._check_variance(variance)
        with torch.no_grad():
            chain = list(self._reverse_chain(model, shape, generator, device, dtype, clip_x0, variance, progress))
        return torch.stack(chain[::-1])

    def sampling_coefficients(self, variance: str = "beta") -> tuple[list[float], list[float], list[float]]:
        r"""The coefficients of one ancestral sampling step, as Python floats for :func:`bare_sampling_loop`.

        The mean of p_θ(x_{t−1} | x_t) is (x_t − β_t / √(1 − ᾱ_t) · ε̂) / √α_t (see
        :meth:`p_mean_variance`), so a step of :meth:`p_sample_loop` is
        x_{t−1} = c_x[t] x_t − c_eps[t] ε̂ + sigma[t] z with c_x[t] = 1/√α_t,
        c_eps[t] = β_t / √((1 − ᾱ_t) α_t) and sigma[t] = σ_t (no noise at t = 1).

        Args:
            variance: σ_t² = β_t (``"beta"``) or β̃_t (``"beta_tilde"``), as in :meth:`p_mean_variance`.

        Returns:
            ``(c_x, c_eps, sigma)``: three lists of length T + 1 indexed by the timestep t itself;
            entry 0 is NaN (there is no step at t = 0).
        """
        variance = self._check_variance(variance)
        sigma2 = self.betas if variance == "beta" else self.posterior_variance
        c_x = 1 / torch.sqrt(self.alphas)
        c_eps = self.betas / torch.sqrt(self.one_minus_alphas_cumprod * self.alphas)
        return tuple([math.nan] + c.tolist() for c in (c_x, c_eps, torch.sqrt(sigma2)))

    # ---- losses -------------------------------------------------------------------------------

    def _t_and_noise(self, x0, t, noise, generator):
        if t is None:
            t = torch.randint(1, self.T + 1, (x0.shape[0],), generator=generator, device=x0.device)
        else:
            t = self._check_t(t, x0, "x0")
        return t, self._noise(noise, x0, "x0", generator)

    def loss_simple(
        self, model: Model, x0, t=None, noise=None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""L_simple = E_{t, x_0, ε} ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖² / D, t ~ U{1..T} (Ho et al. eq. 14).

        The unweighted ε-prediction loss, averaged over the batch and over dimensions (so it equals
        ``torch.nn.functional.mse_loss``); an unbiased estimate of the expectation.

        Args:
            model: callable ``(x_t, t) -> ε̂``.
            x0: ``(B, …)`` data.
            t: optional ``(B,)`` int64 timesteps in 1..T; drawn uniformly with ``generator`` when omitted.
            noise: optional ``(B, …)`` ε; drawn with ``generator`` (after t) when omitted.
            generator: optional ``torch.Generator`` on ``x0``'s device.

        Returns:
            ``()`` scalar loss (differentiable w.r.t. the model's parameters).
        """
        x0 = self._check_x(x0, "x0")
        t, noise = self._t_and_noise(x0, t, noise, generator)
        eps = self._eps(model, self._q_sample(x0, t, noise), t)
        return (noise - eps).pow(2).mean()

    def vlb_weights(self, variance: str = "beta") -> torch.Tensor:
        r"""λ_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t)), the weight with L_{t−1} = λ_t ‖ε − ε_θ‖² + C_t.

        For t ≥ 2, KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) = λ_t ‖ε − ε_θ(x_t, t)‖² + C_t
        (‖·‖² summed over dimensions) with C_t = D/2 (log(σ_t²/β̃_t) + β̃_t/σ_t² − 1), which does not
        depend on θ and is 0 for σ_t² = β̃_t. Entry t = 1 weights the same squared error for the
        decoder term (its continuous approximation).

        Args:
            variance: σ_t², ``"beta"`` or ``"beta_tilde"`` (as in :meth:`p_mean_variance`).

        Returns:
            ``(T,)`` float64 tensor; entry ``t - 1`` is λ_t.
        """
        variance = self._check_variance(variance)
        log_sigma2 = self.log_betas if variance == "beta" else self.posterior_log_variance_clipped
        return self.betas**2 / (2 * torch.exp(log_sigma2) * self.alphas * self.one_minus_alphas_cumprod)

    def loss_vlb_weighted(
        self,
        model: Model,
        x0,
        t=None,
        noise=None,
        generator: torch.Generator | None = None,
        variance: str = "beta",
    ) -> torch.Tensor:
        r"""E_{t, x_0, ε}[λ_t ‖ε − ε_θ(x_t, t)‖²], the ε-MSE weighted by :meth:`vlb_weights`, t ~ U{1..T}.

        T times its expectation is Σ_{t≥2} (L_{t−1} − C_t) plus the continuous approximation of L_0:
        the θ-dependent part of the VLB. The squared error is summed over dimensions (nats), then
        averaged over the batch.

        Args:
            model, x0, t, noise, generator: as in :meth:`loss_simple`.
            variance: σ_t², ``"beta"`` or ``"beta_tilde"``.

        Returns:
            ``()`` scalar loss in nats per example.
        """
        x0 = self._check_x(x0, "x0")
        variance = self._check_variance(variance)
        t, noise = self._t_and_noise(x0, t, noise, generator)
        eps = self._eps(model, self._q_sample(x0, t, noise), t)
        weights = self.vlb_weights(variance).to(device=x0.device, dtype=x0.dtype)[t - 1]
        return (weights * (noise - eps).pow(2).flatten(1).sum(1)).mean()

    def vlb_terms(
        self,
        model: Model,
        x0,
        generator: torch.Generator | None = None,
        noise=None,
        variance: str = "beta",
        clip_x0: bool = False,
    ) -> torch.Tensor:
        r"""The terms L_0, L_1, …, L_T of −ELBO = L_0 + Σ_{t=2}^T L_{t−1} + L_T ≥ −log p_θ(x_0), per example.

        * L_T = KL(q(x_T | x_0) ‖ N(0, I)): prior matching, no parameters (closed form);
        * L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) for t = 2..T, at one draw
          x_t ~ q(x_t | x_0) per t (a single-sample estimate of the expectation over x_t);
        * L_0 = −log p_θ(x_0 | x_1), the discretised Gaussian decoder
          (:func:`discretized_gaussian_log_prob`, 256 bins) at one draw x_1 ~ q(x_1 | x_0).

        The KLs use :func:`dgm.divergences.gaussian_kl`. Calls the model T times.

        Args:
            model: callable ``(x_t, t) -> ε̂``.
            x0: ``(B, …)`` data on the 256-level grid in [−1, 1].
            generator: optional ``torch.Generator`` for the draws of x_t.
            noise: optional ``(T, B, …)``; ``noise[t - 1]`` is the ε that draws x_t.
            variance: σ_t², ``"beta"`` or ``"beta_tilde"``.
            clip_x0: as in :meth:`p_mean_variance`.

        Returns:
            ``(B, T + 1)`` tensor in nats; column ``j`` is L_j. Its row sums estimate −ELBO.
        """
        x0 = self._check_x(x0, "x0")
        variance = self._check_variance(variance)
        if x0.device.type != "meta" and not bool(((x0 >= -1) & (x0 <= 1)).all()):
            raise ValueError(
                f"x0 must lie in [-1, 1] for the discretised decoder; got values from {float(x0.min()):g} to "
                f"{float(x0.max()):g}"
            )
        if noise is not None:
            noise = as_float_tensor(noise, "noise", like=x0)
            check_same_device(x0=x0, noise=noise)
            if noise.shape != (self.T,) + tuple(x0.shape):
                raise ValueError(
                    f"noise must have shape (T, *x0.shape) = {(self.T,) + tuple(x0.shape)}; got {tuple(noise.shape)}"
                )
        B = x0.shape[0]
        flat = x0.reshape(B, -1)
        terms = []
        for t in range(1, self.T + 1):
            if noise is not None:
                eps = noise[t - 1]
            else:
                eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            xt = self._q_sample(x0, t, eps)
            t_model = torch.full((B,), t, dtype=torch.long, device=x0.device)
            mean_p, log_var_p = self._p_mean_variance(model, xt, t, t_model, clip_x0, variance)
            log_var_p = torch.full_like(flat, log_var_p)
            if t == 1:
                terms.append(-_discretized_gaussian_log_prob(flat, mean_p.reshape(B, -1), log_var_p, 256))
            else:
                mean_q = self._q_posterior_mean(x0, xt, t).reshape(B, -1)
                log_var_q = torch.full_like(flat, math.log(self._floats["posterior_variance"][t]))
                terms.append(gaussian_kl(mean_q, log_var_q, mean_p.reshape(B, -1), log_var_p))
        mean_T = self._floats["sqrt_alphas_cumprod"][self.T] * flat
        log_var_T = torch.full_like(flat, math.log(self._floats["one_minus_alphas_cumprod"][self.T]))
        terms.append(gaussian_kl(mean_T, log_var_T, torch.zeros_like(flat), torch.zeros_like(flat)))
        return torch.stack(terms, dim=1)

    def bits_per_dim(
        self,
        model: Model,
        x0,
        generator: torch.Generator | None = None,
        noise=None,
        variance: str = "beta",
        clip_x0: bool = False,
    ) -> torch.Tensor:
        r"""−ELBO / (D log 2): the variational bound on −log₂ p_θ(x_0) per dimension.

        Equals ``vlb_terms(...).sum(1) / (D · log 2)`` with D the number of values per example; an
        upper bound (in expectation) on the model's negative log-likelihood of the 8-bit data, so a
        uniform model scores 8.

        Args:
            model, x0, generator, noise, variance, clip_x0: as in :meth:`vlb_terms`.

        Returns:
            ``(B,)`` bits per dimension.
        """
        terms = self.vlb_terms(model, x0, generator=generator, noise=noise, variance=variance, clip_x0=clip_x0)
        D = terms.new_tensor(x0[0].numel())
        return terms.sum(1) / (D * math.log(2.0))

    # ---- the exact optimum for a finite training set -----------------------------------------

    def _data_args(self, xt, t, data, dtype):
        xt = self._check_x(xt, "xt")
        data = as_float_tensor(data, "data", like=xt)
        check_min_ndim(data, "data", 1, "(N, ...)")
        check_same_device(xt=xt, data=data)
        if data.shape[1:] != xt.shape[1:] or data.shape[0] < 1:
            raise ValueError(
                f"data must have shape (N, ...) with the event shape of xt, {tuple(xt.shape[1:])}, and N >= 1; "
                f"got {tuple(data.shape)}"
            )
        t = self._check_t(t, xt, "xt")
        if dtype is None:
            dtype = xt.dtype
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch dtype or None; got {dtype!r}")
        return xt, t, data, dtype

    def _log_data_posterior(self, xt, t, data, dtype):
        """log w_bi = log q(x_0 = data_i | x_t), (B, N), computed in ``dtype``; also returns data as (N, D)."""
        B = xt.shape[0]
        x = xt.reshape(B, -1).to(dtype)
        d = data.reshape(data.shape[0], -1).to(dtype)
        a = self._at("sqrt_alphas_cumprod", t, x)[:, :1]  # (B, 1)
        v = self._at("one_minus_alphas_cumprod", t, x)[:, :1]
        # log N(x; a d_i, v I) = −‖x − a d_i‖²/(2v) + const; the ‖x‖² part is constant over i and cancels.
        logits = (a * (x @ d.T) - 0.5 * a**2 * d.pow(2).sum(1)) / v
        return logits - torch.logsumexp(logits, dim=1, keepdim=True), d

    def data_posterior(self, xt, t, data, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        r"""The distribution q(x_0 = x^{(i)} | x_t) over the N points of a finite training set.

        With x_0 uniform on the set, Bayes' rule gives w_i ∝ N(x_t; √ᾱ_t x^{(i)}, (1 − ᾱ_t) I): a
        softmax of Gaussian log-likelihoods, computed with logsumexp.

        Args:
            xt: ``(B, …)`` the noisy x_t.
            t: ``(B,)`` int64 timesteps in 1..T (or an int).
            data: ``(N, …)`` the training set (the event shape of ``xt``).
            dtype: dtype to compute in (``torch.float64`` for accuracy with float32 inputs);
                default ``xt``'s.

        Returns:
            ``(B, N)`` posterior probabilities (rows sum to 1), in ``xt``'s dtype.
        """
        xt, t, data, dtype = self._data_args(xt, t, data, dtype)
        log_w, _ = self._log_data_posterior(xt, t, data, dtype)
        return torch.exp(log_w).to(xt.dtype)

    def optimal_x0(self, xt, t, data, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        r"""E[x_0 | x_t] = Σ_i q(x^{(i)} | x_t) x^{(i)} for x_0 uniform on a finite training set.

        The exact minimiser of E‖x_0 − x̂_0(x_t, t)‖² over all functions x̂_0 (see :meth:`data_posterior`).

        Args:
            xt, t, data, dtype: as in :meth:`data_posterior`.

        Returns:
            ``(B, …)`` the posterior mean of x_0, in ``xt``'s dtype.
        """
        xt, t, data, dtype = self._data_args(xt, t, data, dtype)
        log_w, d = self._log_data_posterior(xt, t, data, dtype)
        return (torch.exp(log_w) @ d).reshape(xt.shape).to(xt.dtype)

    def optimal_eps(self, xt, t, data, *, dtype: torch.dtype | None = None) -> torch.Tensor:
        r"""ε*(x_t, t) = E[ε | x_t] = (x_t − √ᾱ_t E[x_0 | x_t]) / √(1 − ᾱ_t) for a finite training set.

        The exact minimiser of the simple loss when x_0 is uniform on ``data``: a perfectly trained
        ε-model. Use it as a model with ``lambda x, t: diffusion.optimal_eps(x, t, data)``.

        Args:
            xt, t, data, dtype: as in :meth:`data_posterior`.

        Returns:
            ``(B, …)`` ε*, in ``xt``'s dtype.
        """
        xt, t, data, dtype = self._data_args(xt, t, data, dtype)
        log_w, d = self._log_data_posterior(xt, t, data, dtype)
        x = xt.reshape(xt.shape[0], -1).to(dtype)
        eps = self._predict_eps_from_x0(x, t, torch.exp(log_w) @ d)
        return eps.reshape(xt.shape).to(xt.dtype)

    # ---- diffusion models as classifiers ----------------------------------------------------

    def class_log_posterior(
        self,
        model: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        x0,
        num_classes: int,
        noise=None,
        generator: torch.Generator | None = None,
        *,
        variance: str = "beta",
        weighted: bool = True,
        log_prior=None,
    ) -> torch.Tensor:
        r"""log p_θ(y = c | x_0) ≈ log softmax_c(log π_c + ELBO_c(x_0)) for a class-conditional ε_θ(x_t, t, c).

        Bayes' rule with each log p_θ(x_0 | c) replaced by its ELBO. Up to terms that do not depend on
        the class (L_T, the constants C_t), −ELBO_c = Σ_{t=1}^T λ_t E_ε ‖ε − ε_θ(x_t, t, c)‖² (λ_t from
        :meth:`vlb_weights`, the t = 1 term the continuous decoder's); it is estimated with one ε per
        timestep and example, the *same* ε for every class, so the class comparison does not see the
        Monte Carlo noise of x_t. ``weighted=False`` uses the unweighted score −(1/T) Σ_t ‖ε − ε_θ‖²
        instead (the simple loss in place of the ELBO; Chapter 7 compares the two). Calls the model T
        times on ``(C·B, …)`` inputs.

        Args:
            model: callable ``(x_t, t, y) -> ε̂`` with ``y`` an int64 ``(N,)`` tensor of labels.
            x0: ``(B, …)`` data.
            num_classes: C, the labels are 0..C−1.
            noise: optional ``(T, B, …)``; ``noise[t − 1]`` is the ε that draws x_t (drawn with
                ``generator`` otherwise).
            generator: optional ``torch.Generator`` on ``x0``'s device.
            variance: σ_t² in λ_t, ``"beta"`` or ``"beta_tilde"``.
            weighted: λ_t-weighted (the ELBO) or unweighted (the simple loss).
            log_prior: optional ``(C,)`` log class probabilities (uniform when omitted).

        Returns:
            ``(B, C)`` log posterior class probabilities (each row's exp sums to 1).
        """
        x0 = self._check_x(x0, "x0")
        variance = self._check_variance(variance)
        num_classes = check_int(num_classes, "num_classes", low=1)
        if noise is not None:
            noise = as_float_tensor(noise, "noise", like=x0)
            check_same_device(x0=x0, noise=noise)
            if noise.shape != (self.T,) + tuple(x0.shape):
                raise ValueError(
                    f"noise must have shape (T, *x0.shape) = {(self.T,) + tuple(x0.shape)}; got {tuple(noise.shape)}"
                )
        if log_prior is None:
            log_prior = torch.full((num_classes,), -math.log(num_classes), dtype=x0.dtype, device=x0.device)
        else:
            log_prior = as_float_tensor(log_prior, "log_prior", like=x0)
            if log_prior.shape != (num_classes,):
                raise ValueError(f"log_prior must have shape ({num_classes},); got {tuple(log_prior.shape)}")
        B, C = x0.shape[0], num_classes
        weights = self.vlb_weights(variance).tolist() if weighted else [1.0 / self.T] * self.T
        labels = torch.arange(C, device=x0.device).repeat_interleave(B)  # class c for rows c·B … c·B + B − 1
        x_rep = x0.repeat((C,) + (1,) * (x0.dim() - 1))
        score = torch.zeros(C, B, dtype=x0.dtype, device=x0.device)
        for t in range(1, self.T + 1):
            eps = noise[t - 1] if noise is not None else torch.randn(
                x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            eps_rep = eps.repeat((C,) + (1,) * (x0.dim() - 1))
            xt = self._q_sample(x_rep, t, eps_rep)
            t_model = torch.full((C * B,), t, dtype=torch.long, device=x0.device)
            err = (eps_rep - model(xt, t_model, labels)).pow(2).flatten(1).sum(1)
            score -= weights[t - 1] * err.reshape(C, B)
        return torch.log_softmax(score.T + log_prior, dim=1)


# --------------------------------------------------------------------------------------------
# Sampling arguments, and the bare sampling loop the library's is checked and timed against
# --------------------------------------------------------------------------------------------


def _check_sample_args(shape, generator, device, dtype) -> tuple[tuple[int, ...], torch.device]:
    """The arguments of a sampling loop: ``shape`` as a tuple of positive ints, and the device."""
    if isinstance(shape, (tuple, list, torch.Size)):
        if len(shape) == 0:
            raise ValueError("shape must be a tuple of positive ints (B, ...), e.g. (16, 2); got ()")
        shape = tuple(check_int(n, f"shape[{i}]", low=1) for i, n in enumerate(shape))
    else:
        expected = "a tuple of positive ints (B, ...), e.g. (16, 2), or an int B"
        shape = (check_int(shape, "shape", low=1, expected=expected),)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype such as torch.float32; got {dtype!r}")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator must live on the sampling device; got a generator on {generator.device} and device={device}"
        )
    return shape, device


def bare_sampling_loop(
    model: Model,
    coefs: tuple[list[float], list[float], list[float]],
    shape,
    generator: torch.Generator | None = None,
    *,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""DDPM ancestral sampling with nothing but the step: x_{t−1} = c_x[t] x_t − c_eps[t] ε_θ(x_t, t) + sigma[t] z.

    The reference that :meth:`GaussianDiffusion.p_sample_loop` is checked and timed against (the
    end of Chapter 7, the tests, ``make bench``). It draws x_T ~ N(0, I) and then, for
    t = T, …, 1, calls ``model`` once and adds fresh noise z ~ N(0, I) when t > 1, in the order
    :meth:`~GaussianDiffusion.p_sample_loop` does: from the same ``generator`` state, with the
    coefficients of :meth:`GaussianDiffusion.sampling_coefficients` and ``clip_x0=False``, the two
    give the same draws up to rounding. The arguments are checked once, before the loop; inside it
    there is no lookup, no check and no progress bar. Runs under ``torch.no_grad()``.

    Args:
        model: callable ``(x_t, t) -> ε̂``, ``t`` an int64 ``(B,)`` tensor of the timestep.
        coefs: ``(c_x, c_eps, sigma)``, three sequences of floats of one length T + 1, indexed
            by the timestep t (entry 0 unused), e.g. ``diffusion.sampling_coefficients()``.
        shape: ``(B, …)`` the shape of the samples.
        generator: optional ``torch.Generator``; its device is the default sampling device.
        device: where to sample (default: the generator's device, else CPU).
        dtype: floating dtype of the samples.

    Returns:
        ``shape`` tensor of samples x_0.
    """
    try:
        c_x, c_eps, sigma = coefs
        lengths = {len(c_x), len(c_eps), len(sigma)}
    except (TypeError, ValueError):
        lengths = set()
    if len(lengths) != 1 or min(lengths) < 2:
        got = f"lengths {sorted(lengths)}" if lengths else f"{type(coefs).__name__}"
        raise ValueError(
            "coefs must be three sequences (c_x, c_eps, sigma) of one length T + 1 >= 2, indexed by the "
            f"timestep (see GaussianDiffusion.sampling_coefficients); got {got}"
        )
    shape, device = _check_sample_args(shape, generator, device, dtype)
    with torch.no_grad():
        x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        for t in range(len(c_x) - 1, 0, -1):
            x = c_x[t] * x - c_eps[t] * model(x, torch.full((shape[0],), t, dtype=torch.long, device=device))
            if t > 1:
                x = x + sigma[t] * torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return x
