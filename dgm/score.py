r"""Energy-based models and score matching (Chapter 6).

Energy-based models
-------------------
An energy E_θ : R^D → R defines p_θ(x) = exp(−E_θ(x)) / Z_θ with Z_θ = ∫ exp(−E_θ(x)) dx (low
energy, high density; the energy is a scalar, whatever D). Z_θ is intractable in general, but

* the *log-partition bound*: for any density q, log Z = log E_q[p̃/q] ≥ E_q[log p̃ − log q]
  (Jensen), with equality iff p̃/q is constant, i.e. q = p; the gap is KL(q ‖ p);
* the *likelihood gradient*: ∇_θ log Z_θ = ∫ exp(−E_θ) (−∇_θ E_θ) dx / Z_θ = −E_{p_θ}[∇_θ E_θ], so

  .. math::
      \nabla_\theta \log p_\theta(x) = -\nabla_\theta E_\theta(x) + \mathbb E_{x' \sim p_\theta}
      [\nabla_\theta E_\theta(x')],

  estimated with samples x' of the model: the gradient of the *contrastive-divergence loss*
  mean E_θ(x_data) − mean E_θ(x_model) (x_model held fixed) is minus this estimate. CD-k starts
  k MCMC steps at the data; persistent CD keeps chains running across updates. Short chains
  are biased (they have not reached p_θ): CD-k does not follow the likelihood gradient exactly.

The score s(x) = ∇_x log p(x) = −∇_x E(x) does not involve Z (∇_x log Z = 0: Z does not depend on
x), which is why samplers (:func:`dgm.sampling.langevin`) and score matching need only E or s.

Score matching
--------------
The Fisher divergence ½ E_p ‖s_θ(x) − ∇log p(x)‖² needs the unknown data score; integrating by
parts (assuming p(x) s_θ(x) → 0 as ‖x‖ → ∞),

.. math::
    \tfrac12\mathbb E_p\|s_\theta - \nabla\log p\|^2 = \mathbb E_p\big[\tfrac12\|s_\theta(x)\|^2
    + \operatorname{tr}\nabla_x s_\theta(x)\big] + \tfrac12\mathbb E_p\|\nabla\log p\|^2 ,

so the *exact score-matching loss* J(θ) = E[½‖s_θ‖² + tr ∇s_θ] is the Fisher divergence minus a
constant (Hyvärinen 2005). Its trace costs D backward passes; *sliced* score matching replaces it
with vᵀ(∇s_θ)v for random v with E[vvᵀ] = I (one backward pass; Song et al. 2019), and
*denoising* score matching (Vincent 2011) regresses s_θ(x̃) on the score of the noise kernel,
−(x̃ − x)/σ², for x̃ = x + σε: its minimiser is the score of the noisy data p_σ = p ∗ N(0, σ²I).
With s_θ(x̃) = −ε̂_θ(x̃)/σ the DSM loss is ‖ε̂_θ − ε‖²/(2σ²): DDPM's ε-prediction loss is denoising
score matching with weight 2σ².

Sampling with a learned score: :func:`annealed_langevin` (Song & Ermon 2019) runs Langevin steps at
decreasing noise levels σ_1 > … > σ_L with step sizes α_i = ε σ_i²/σ_L², using the same step-size
convention as :func:`dgm.sampling.langevin`: x ← x + (α/2) s(x, σ) + √α z.

Networks here draw their initial weights from a CPU ``generator=`` (:func:`dgm.nets.mlp`); training
loops take a ``generator`` for every minibatch, noise and chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm  # text bars: they render on the static pages too

from dgm._validate import (
    as_float_tensor,
    check_bool,
    check_callable,
    check_generator,
    check_int,
    check_last_dim,
    check_min_ndim,
    check_number,
    check_probabilities,
    check_same_device,
    check_square,
    check_symmetric,
    promote_float,
)
from dgm.nets import mlp
from dgm.sampling import _states, langevin, mala, metropolis_hastings

__all__ = [
    "EnergyMLP",
    "energy_score",
    "log_partition_lower_bound",
    "contrastive_divergence_loss",
    "ebm_gradient_estimate",
    "model_samples",
    "EBMRun",
    "train_ebm",
    "exact_score_matching_loss",
    "sliced_score_matching_loss",
    "denoising_score_matching_loss",
    "score_from_noise_prediction",
    "noise_prediction_from_score",
    "gaussian_score",
    "gaussian_mixture_score",
    "geometric_sigmas",
    "annealed_langevin",
    "NoiseConditionalScoreNet",
    "noise_conditional_dsm_loss",
    "ScoreRun",
    "train_score_network",
]

SAMPLERS = ("langevin", "mala", "mh")
_REDUCTIONS = ("mean", "none")


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _points(x, name: str = "x") -> torch.Tensor:
    x = as_float_tensor(x, name)
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (B, D) (B points in D dimensions); got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    return x


def _reduction(reduction) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'none'; got {reduction!r}")
    return reduction


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    return values.mean() if reduction == "mean" else values


def _scores_of(score_fn, x: torch.Tensor, name: str = "score_fn") -> torch.Tensor:
    s = score_fn(x)
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"{name} must return a tensor of the shape of its input {tuple(x.shape)}; got {got}")
    return s


def _energies(energy, x: torch.Tensor) -> torch.Tensor:
    e = energy(x)
    if not isinstance(e, torch.Tensor) or e.shape != x.shape[:1]:
        got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ValueError(f"energy must return one scalar energy per point, shape ({x.shape[0]},); got {got}")
    return e


def _check_module(module, name: str) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {type(module).__name__}")


# --------------------------------------------------------------------------------------------
# energy-based models
# --------------------------------------------------------------------------------------------


class EnergyMLP(nn.Module):
    r"""A scalar energy E_θ(x) = f_θ(x) + (c/2)‖x‖², f_θ an :func:`dgm.nets.mlp` R^D → R.

    The model is p_θ(x) ∝ exp(−E_θ(x)). A smooth activation (SiLU by default) keeps the score
    −∇_x E smooth for Langevin sampling. The fixed confinement c ≥ 0 makes exp(−E) integrable
    whatever f_θ does far from the data (an MLP grows at most linearly there); c = 0 leaves it out.

    Args:
        dim: D. hidden, depth, activation: of the MLP (see :func:`dgm.nets.mlp`).
        confinement: c ≥ 0.
        generator: CPU ``torch.Generator`` for the initial weights (global RNG when None).
        dtype, device: of the parameters.

    Call it on ``(B, D)`` points; it returns ``(B,)`` energies.
    """

    def __init__(self, dim: int, hidden: int = 64, depth: int = 2, activation: str = "silu", *,
                 confinement: float = 0.0, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        self.confinement = check_number(confinement, "confinement", low=0)
        self.net = mlp(self.dim, hidden, 1, depth, activation, generator=generator, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.dim}); got {got}")
        out = self.net(x).squeeze(-1)
        if self.confinement:
            out = out + 0.5 * self.confinement * (x * x).sum(-1)
        return out


def energy_score(energy: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The score of p ∝ exp(−E): x ↦ −∇_x E(x) by autograd (works inside ``torch.no_grad``).

    Args:
        energy: ``(B, D) -> (B,)``.

    Returns:
        A function ``(B, D) -> (B, D)`` (detached: no graph to the parameters).
    """
    check_callable(energy, "energy", "x -> E(x)")

    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(_energies(energy, xr).sum(), xr)
        return -grad.detach()

    return score


def log_partition_lower_bound(log_p_tilde, q_sample, q_log_prob, n: int,
                              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo estimate of the bound E_q[log p̃(x) − log q(x)] ≤ log Z, with its standard error.

    log Z = log ∫ p̃ = log E_q[p̃/q] ≥ E_q[log(p̃/q)] by Jensen (log is concave); the gap is
    KL(q ‖ p) with p = p̃/Z, so the bound is tight iff q = p — and then every term equals log Z,
    a zero-variance estimator. It is the ELBO of an EBM's partition function.

    Args:
        log_p_tilde: ``(n, ...) -> (n,)`` log p̃.
        q_sample: ``q_sample(n, generator) -> (n, ...)`` draws from q.
        q_log_prob: ``(n, ...) -> (n,)`` log q (normalised).
        n: draws, at least 2.
        generator: passed to ``q_sample``.

    Returns:
        ``(estimate, standard_error)``, both ``()``.
    """
    check_callable(log_p_tilde, "log_p_tilde", "x -> log p~(x)")
    check_callable(q_sample, "q_sample", "(n, generator) -> n draws from q")
    check_callable(q_log_prob, "q_log_prob", "x -> log q(x)")
    n = check_int(n, "n", low=2)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    x = q_sample(n, generator)
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] != n:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"q_sample must return a tensor of shape ({n}, ...); got {got}")
    values = []
    for name, fn in (("log_p_tilde", log_p_tilde), ("q_log_prob", q_log_prob)):
        v = fn(x)
        if not isinstance(v, torch.Tensor) or v.shape != (n,):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must return ({n},) log-densities; got {got}")
        values.append(v)
    terms = values[0] - values[1]
    return terms.mean(), terms.std() / math.sqrt(n)


def contrastive_divergence_loss(energy: nn.Module, x_data, x_model) -> torch.Tensor:
    r"""The contrastive-divergence loss mean_i E_θ(x_data,i) − mean_j E_θ(x_model,j).

    ``x_model`` is detached (samples are constants of the update), so the loss's gradient is

    .. math::
        \nabla_\theta \mathcal L = \overline{\nabla_\theta E_\theta(x_{\rm data})}
        - \overline{\nabla_\theta E_\theta(x_{\rm model})}
        \approx -\nabla_\theta\, \overline{\log p_\theta(x_{\rm data})}

    when x_model ~ p_θ: minimising it pushes energy down at the data and up at the model's
    samples. Its value is not a log-likelihood (log Z is missing).

    Args:
        energy: ``(B, D) -> (B,)`` energies (a module).
        x_data: ``(B, D)`` data; x_model: ``(M, D)`` model samples.

    Returns:
        ``()`` the loss (differentiable in θ).
    """
    check_callable(energy, "energy", "x -> E(x)")
    x_data = _points(x_data, "x_data")
    x_model = _points(x_model, "x_model")
    check_same_device(x_data=x_data, x_model=x_model)
    if x_model.shape[1] != x_data.shape[1]:
        raise ValueError(f"x_model must have shape (M, {x_data.shape[1]}) like x_data; got {tuple(x_model.shape)}")
    return _energies(energy, x_data).mean() - _energies(energy, x_model.detach()).mean()


def ebm_gradient_estimate(energy: nn.Module, x_data, x_model) -> tuple[torch.Tensor, ...]:
    r"""Estimate of ∇_θ mean_i log p_θ(x_data,i) = −mean ∇_θ E(x_data) + E_{p_θ}[∇_θ E], one tensor per parameter.

    The expectation over the model is the mean over ``x_model`` (unbiased when they are exact
    draws from p_θ); it is minus the gradient of :func:`contrastive_divergence_loss`.

    Args:
        energy: an ``nn.Module`` ``(B, D) -> (B,)``.
        x_data: ``(B, D)``; x_model: ``(M, D)``.

    Returns:
        A tuple of tensors shaped like ``energy.parameters()`` (those that require a gradient).
    """
    _check_module(energy, "energy")
    params = [p for p in energy.parameters() if p.requires_grad]
    if not params:
        raise ValueError("energy has no parameter that requires a gradient")
    loss = contrastive_divergence_loss(energy, x_data, x_model)
    return tuple(-g for g in torch.autograd.grad(loss, params))


def model_samples(energy, x_init, steps: int, step_size: float, generator: torch.Generator | None = None, *,
                  sampler: str = "langevin") -> torch.Tensor:
    r"""Approximate draws from p ∝ exp(−E): ``steps`` MCMC steps from ``x_init`` (one chain per row).

    ``sampler``: ``"langevin"`` (ULA, x ← x − (ε/2)∇E(x) + √ε ξ), ``"mala"`` (the same with the MH
    correction) or ``"mh"`` (Gaussian random walk with standard deviation √ε, so that one step
    moves about as far as a Langevin step). Started at the data and run k steps this is CD-k's
    negative phase; the result is detached.

    Args:
        energy: ``(C, D) -> (C,)``.
        x_init: ``(C, D)`` starting states.
        steps: k ≥ 1; step_size: ε > 0.
        generator: ``torch.Generator`` on x_init's device.
        sampler: one of ``"langevin"``, ``"mala"``, ``"mh"``.

    Returns:
        ``(C, D)`` the final states.
    """
    check_callable(energy, "energy", "x -> E(x)")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(repr(s) for s in SAMPLERS)}; got {sampler!r}")
    step_size = check_number(step_size, "step_size", low=0, closed_low=False)

    def log_p(x):
        return -_energies(energy, x)

    if sampler == "langevin":
        out = langevin(energy_score(energy), x_init, steps, step_size, generator, trajectory=False)
    elif sampler == "mala":
        out = mala(log_p, x_init, steps, step_size, generator, score_fn=energy_score(energy), trajectory=False)
    else:
        out = metropolis_hastings(log_p, x_init, steps, math.sqrt(step_size), generator, trajectory=False)
    return out.samples.detach()


@dataclass
class EBMRun:
    """History of :func:`train_ebm`, one entry per update.

    Attributes:
        loss: the contrastive-divergence loss (before the regulariser).
        energy_data: the mean energy of the data minibatch.
        energy_model: the mean energy of the model samples.
    """

    loss: list[float] = field(default_factory=list)
    energy_data: list[float] = field(default_factory=list)
    energy_model: list[float] = field(default_factory=list)


def train_ebm(energy: nn.Module, data, *, steps: int, batch_size: int = 128, lr: float = 1e-3, k: int = 20,
              step_size: float = 1e-2, sampler: str = "langevin", persistent: bool = False,
              energy_reg: float = 0.1, generator: torch.Generator | None = None, progress: bool = False) -> EBMRun:
    r"""Train an energy model by contrastive divergence with Adam.

    Each update draws a minibatch x⁺ of the data (with replacement) and model samples x⁻ by k steps
    of :func:`model_samples` started at x⁺ (CD-k) or, with ``persistent=True``, at the previous
    update's x⁻ (persistent CD: one set of ``batch_size`` chains, started at data points), then
    minimises

    .. math::
        \overline{E(x^+)} - \overline{E(x^-)} + \lambda\,\big(\overline{E(x^+)^2} + \overline{E(x^-)^2}\big)

    whose first part has gradient ≈ −∇_θ log-likelihood; the λ term (Du & Mordatch 2019) keeps
    the energies near 0 (without it they can drift, since only differences matter).

    Args:
        energy: an ``nn.Module`` ``(B, D) -> (B,)`` (e.g. :class:`EnergyMLP`), trained in place.
        data: ``(N, D)`` training points.
        steps: the number of updates; batch_size: B.
        lr: Adam's learning rate. k: MCMC steps per update; step_size: ε of the sampler.
        sampler: ``"langevin"``, ``"mala"`` or ``"mh"``.
        persistent: persistent chains instead of restarting at the data.
        energy_reg: λ ≥ 0.
        generator: ``torch.Generator`` on the data's device for minibatches and chains.
        progress: show a tqdm bar.

    Returns:
        :class:`EBMRun`.
    """
    _check_module(energy, "energy")
    x = _points(data, "data")
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    k = check_int(k, "k", low=1)
    lr = check_number(lr, "lr", low=0, closed_low=False)
    step_size = check_number(step_size, "step_size", low=0, closed_low=False)
    energy_reg = check_number(energy_reg, "energy_reg", low=0)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(repr(s) for s in SAMPLERS)}; got {sampler!r}")
    persistent = check_bool(persistent, "persistent")
    progress = check_bool(progress, "progress")
    check_generator(generator, x.device)
    opt = torch.optim.Adam(energy.parameters(), lr=lr)
    run = EBMRun()
    chains = x[torch.randint(x.shape[0], (batch_size,), device=x.device, generator=generator)] if persistent else None
    iterator = range(steps)
    if progress:
        iterator = tqdm(iterator, desc=f"EBM (CD-{k}{', persistent' if persistent else ''})")
    for _ in iterator:
        positive = x[torch.randint(x.shape[0], (batch_size,), device=x.device, generator=generator)]
        start = chains if persistent else positive
        negative = model_samples(energy, start, k, step_size, generator, sampler=sampler)
        if persistent:
            chains = negative
        e_pos = _energies(energy, positive)
        e_neg = _energies(energy, negative)
        loss = e_pos.mean() - e_neg.mean()
        total = loss + energy_reg * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        run.loss.append(float(loss.detach()))
        run.energy_data.append(float(e_pos.detach().mean()))
        run.energy_model.append(float(e_neg.detach().mean()))
    return run


# --------------------------------------------------------------------------------------------
# score matching losses
# --------------------------------------------------------------------------------------------


def exact_score_matching_loss(score_fn, x, *, reduction: str = "mean") -> torch.Tensor:
    r"""Hyvärinen's score-matching loss J = E[½‖s(x)‖² + tr ∇_x s(x)], the trace by autograd.

    J equals the Fisher divergence ½E‖s − ∇log p‖² minus the constant ½E‖∇log p‖² (integration by
    parts, assuming p s → 0 at infinity), so it is minimised by the data score. The trace
    Σ_d ∂s_d/∂x_d takes D backward passes (one per coordinate; fine for small D) and keeps the
    graph, so the loss can be differentiated in the parameters. The per-point values assume
    ``score_fn`` treats the rows independently (no batch normalisation).

    Args:
        score_fn: s, ``(B, D) -> (B, D)``.
        x: ``(B, D)`` data.
        reduction: ``"mean"`` (the batch average) or ``"none"`` (``(B,)`` per point).

    Returns:
        ``()`` or ``(B,)``.
    """
    check_callable(score_fn, "score_fn", "x -> s(x)")
    x = _points(x)
    reduction = _reduction(reduction)
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        s = _scores_of(score_fn, xr)
        trace = torch.zeros_like(s[:, 0])
        for d in range(x.shape[1]):
            (row,) = torch.autograd.grad(s[:, d].sum(), xr, create_graph=True)
            trace = trace + row[:, d]
        values = 0.5 * (s * s).sum(-1) + trace
    return _reduce(values, reduction)


def sliced_score_matching_loss(score_fn, x, generator: torch.Generator | None = None, n_projections: int = 1, *,
                               reduction: str = "mean") -> torch.Tensor:
    r"""Sliced score matching: E_x E_v[vᵀ(∇_x s(x)) v + ½(vᵀ s(x))²], v ~ N(0, I).

    E_v[vᵀAv] = tr A and E_v[(vᵀs)²] = ‖s‖² for E[vvᵀ] = I, so the expectation equals the exact
    score-matching loss, at one backward pass per projection (∇_x(vᵀs) = (∇s)ᵀv). Each point gets
    ``n_projections`` independent v's, averaged.

    Args:
        score_fn: ``(B, D) -> (B, D)``.
        x: ``(B, D)``.
        generator: for v (on x's device).
        n_projections: M ≥ 1.
        reduction: ``"mean"`` or ``"none"`` (``(B,)``, each the mean over its M projections).

    Returns:
        ``()`` or ``(B,)``.
    """
    check_callable(score_fn, "score_fn", "x -> s(x)")
    x = _points(x)
    M = check_int(n_projections, "n_projections", low=1)
    reduction = _reduction(reduction)
    check_generator(generator, x.device)
    B, D = x.shape
    v = torch.randn(M, B, D, dtype=x.dtype, device=x.device, generator=generator).reshape(M * B, D)
    with torch.enable_grad():
        xr = x.detach().repeat(M, 1).requires_grad_(True)
        s = _scores_of(score_fn, xr)
        vs = (v * s).sum(-1)
        (jt_v,) = torch.autograd.grad(vs.sum(), xr, create_graph=True)
        values = (jt_v * v).sum(-1) + 0.5 * vs * vs
    return _reduce(values.reshape(M, B).mean(0), reduction)


def denoising_score_matching_loss(score_fn, x, sigma: float, generator: torch.Generator | None = None, *,
                                  noise=None, reduction: str = "mean") -> torch.Tensor:
    r"""Denoising score matching at noise level σ: E ½‖s(x̃) + (x̃ − x)/σ²‖², x̃ = x + σε.

    −(x̃ − x)/σ² = −ε/σ is the score of the kernel N(x̃; x, σ²I) in x̃. The loss equals
    ½E‖s(x̃) − ∇log p_σ(x̃)‖² plus a constant, with p_σ = p ∗ N(0, σ²I) (Vincent 2011), so its
    minimiser is the score of the noisy data. With s = −ε̂/σ (:func:`score_from_noise_prediction`)
    it is ‖ε̂ − ε‖²/(2σ²): DDPM's ε-loss, weighted by 1/(2σ²).

    Args:
        score_fn: ``(B, D) -> (B, D)``.
        x: ``(B, D)`` clean data.
        sigma: σ > 0.
        generator: for ε when ``noise`` is None.
        noise: optional ``(B, D)`` ε to use.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        ``()`` or ``(B,)``.
    """
    check_callable(score_fn, "score_fn", "x -> s(x)")
    x = _points(x)
    sigma = check_number(sigma, "sigma", low=0, closed_low=False)
    reduction = _reduction(reduction)
    eps = _noise(noise, x, generator)
    s = _scores_of(score_fn, x + sigma * eps)
    values = 0.5 * (s + eps / sigma).pow(2).sum(-1)
    return _reduce(values, reduction)


def _noise(noise, x: torch.Tensor, generator) -> torch.Tensor:
    if noise is None:
        check_generator(generator, x.device)
        return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    noise = as_float_tensor(noise, "noise", like=x)
    check_same_device(x=x, noise=noise)
    if noise.shape != x.shape:
        raise ValueError(f"noise must have the shape of x {tuple(x.shape)}; got {tuple(noise.shape)}")
    return noise


def score_from_noise_prediction(eps_hat, sigma) -> torch.Tensor:
    r"""s = −ε̂/σ: the score estimate carried by a noise prediction at noise level σ.

    For x̃ = x + σε (or DDPM's x_t = √ᾱ_t x_0 + σ_t ε with σ_t = √(1 − ᾱ_t)), ∇log q(x̃ | x) = −ε/σ,
    so a network predicting ε is a score model s_θ = −ε_θ/σ.

    Args:
        eps_hat: ``(B, ...)``; sigma: σ > 0, a number or a tensor broadcasting against ``eps_hat``.

    Returns:
        ``(B, ...)``.
    """
    eps_hat = as_float_tensor(eps_hat, "eps_hat")
    sigma = as_float_tensor(sigma, "sigma", like=eps_hat)
    if not bool((sigma > 0).all()):
        raise ValueError("sigma must be positive")
    return -eps_hat / sigma


def noise_prediction_from_score(score, sigma) -> torch.Tensor:
    r"""ε̂ = −σ s: the inverse of :func:`score_from_noise_prediction`.

    Args:
        score: ``(B, ...)``; sigma: σ > 0, a number or a broadcasting tensor.

    Returns:
        ``(B, ...)``.
    """
    score = as_float_tensor(score, "score")
    sigma = as_float_tensor(sigma, "sigma", like=score)
    if not bool((sigma > 0).all()):
        raise ValueError("sigma must be positive")
    return -sigma * score


# --------------------------------------------------------------------------------------------
# closed-form scores
# --------------------------------------------------------------------------------------------


def _cholesky(cov: torch.Tensor, name: str) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError(f"{name} must be symmetric positive definite; its Cholesky factorisation failed")
    return L


def gaussian_score(x, mean, cov) -> torch.Tensor:
    r"""∇_x log N(x; μ, Σ) = −Σ⁻¹(x − μ).

    Args:
        x: ``(..., D)``; mean: ``(D,)``; cov: ``(D, D)`` symmetric positive definite.

    Returns:
        ``(..., D)``.
    """
    x = as_float_tensor(x, "x")
    check_min_ndim(x, "x", 1, "(..., D)")
    D = x.shape[-1]
    mean = as_float_tensor(mean, "mean", like=x)
    cov = as_float_tensor(cov, "cov", like=x)
    if mean.shape != (D,):
        raise ValueError(f"mean must have shape ({D},); got {tuple(mean.shape)}")
    if cov.shape != (D, D):
        raise ValueError(f"cov must have shape ({D}, {D}); got {tuple(cov.shape)}")
    check_same_device(x=x, mean=mean, cov=cov)
    check_symmetric(cov, "cov")
    x, mean, cov = promote_float(x, mean, cov)
    L = _cholesky(cov, "cov")
    diff = (x - mean).reshape(-1, D).T
    return -torch.cholesky_solve(diff, L).T.reshape(x.shape)


def gaussian_mixture_score(x, weights, means, covs) -> torch.Tensor:
    r"""The score of a Gaussian mixture p(x) = Σ_k π_k N(x; μ_k, Σ_k):

    .. math::
        \nabla_x \log p(x) = \sum_k r_k(x)\,\big(-\Sigma_k^{-1}(x - \mu_k)\big),\qquad
        r_k(x) = \frac{\pi_k \mathcal N(x;\mu_k,\Sigma_k)}{\sum_j \pi_j \mathcal N(x;\mu_j,\Sigma_j)}

    (∇p = Σ_k π_k ∇N_k and ∇N_k = N_k ∇log N_k). The responsibilities are computed in log space.
    Convolving with N(0, σ²I) adds σ²I to every Σ_k: pass ``covs + sigma**2 * eye`` for the
    score of the noisy mixture p_σ.

    Args:
        x: ``(..., D)``; weights: ``(K,)`` probabilities; means: ``(K, D)``; covs: ``(K, D, D)``.

    Returns:
        ``(..., D)``.
    """
    x = as_float_tensor(x, "x")
    check_min_ndim(x, "x", 1, "(..., D)")
    D = x.shape[-1]
    weights = as_float_tensor(weights, "weights", like=x)
    means = as_float_tensor(means, "means", like=x)
    covs = as_float_tensor(covs, "covs", like=x)
    if weights.dim() != 1:
        raise ValueError(f"weights must have shape (K,); got {tuple(weights.shape)}")
    K = weights.shape[0]
    check_probabilities(weights, "weights")
    if means.shape != (K, D):
        raise ValueError(f"means must have shape ({K}, {D}) (K = len(weights), D = x's last dimension); "
                         f"got {tuple(means.shape)}")
    check_square(covs, "covs")
    if covs.shape != (K, D, D):
        raise ValueError(f"covs must have shape ({K}, {D}, {D}); got {tuple(covs.shape)}")
    check_same_device(x=x, weights=weights, means=means, covs=covs)
    check_symmetric(covs, "covs")
    check_last_dim(x, "x", D, f"(..., {D})")
    x, weights, means, covs = promote_float(x, weights, means, covs)
    L = _cholesky(covs, "covs")                                             # (K, D, D)
    flat = x.reshape(-1, D)
    diff = flat[None, :, :] - means[:, None, :]                             # (K, N, D)
    white = torch.linalg.solve_triangular(L, diff.transpose(1, 2), upper=False)   # (K, D, N) = L⁻¹(x − μ)
    log_det = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)    # (K,)
    log_joint = torch.log(weights)[:, None] - 0.5 * (white.pow(2).sum(1) + log_det[:, None])   # (K, N), up to D/2 log 2π
    resp = torch.softmax(log_joint, dim=0)                                  # (K, N)
    prec_diff = torch.linalg.solve_triangular(L.transpose(-1, -2), white, upper=True)   # Σ⁻¹(x − μ): (K, D, N)
    score = -(resp[:, None, :] * prec_diff).sum(0).T                        # (N, D)
    return score.reshape(x.shape)


# --------------------------------------------------------------------------------------------
# noise-conditional score networks and annealed Langevin
# --------------------------------------------------------------------------------------------


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int, *, dtype=torch.float64, device=None
                     ) -> torch.Tensor:
    r"""σ_i = σ_max (σ_min/σ_max)^{(i−1)/(L−1)}, i = 1..L: a decreasing geometric sequence (Song & Ermon).

    Args:
        sigma_max > sigma_min > 0; n_levels: L ≥ 2.

    Returns:
        ``(L,)`` from σ_max down to σ_min.
    """
    sigma_max = check_number(sigma_max, "sigma_max", low=0, closed_low=False)
    sigma_min = check_number(sigma_min, "sigma_min", low=0, closed_low=False)
    n_levels = check_int(n_levels, "n_levels", low=2)
    if not sigma_min < sigma_max:
        raise ValueError(f"sigma_min must be below sigma_max; got sigma_min={sigma_min:g}, sigma_max={sigma_max:g}")
    exponent = torch.linspace(0, 1, n_levels, dtype=dtype, device=device)
    return sigma_max * (sigma_min / sigma_max) ** exponent


def _sigmas(sigmas, like: torch.Tensor | None = None) -> torch.Tensor:
    sigmas = as_float_tensor(sigmas, "sigmas", like=like)
    if sigmas.dim() != 1 or sigmas.shape[0] < 1:
        raise ValueError(f"sigmas must have shape (L,) (the noise levels); got shape {tuple(sigmas.shape)}")
    if not bool(torch.isfinite(sigmas).all()) or not bool((sigmas > 0).all()):
        raise ValueError("sigmas must be finite and positive")
    if sigmas.shape[0] > 1 and not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError("sigmas must be strictly decreasing (from the largest noise level to the smallest)")
    return sigmas


def annealed_langevin(score_fn, sigmas, steps_per_level: int, step_scale: float, x0,
                      generator: torch.Generator | None = None, *, denoise: bool = False,
                      trajectory: bool = False) -> torch.Tensor:
    r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) for C chains.

    For each level σ_1 > … > σ_L, with α_i = ε σ_i² / σ_L², take T steps

    .. math::
        x \leftarrow x + \tfrac{\alpha_i}{2}\, s(x, \sigma_i) + \sqrt{\alpha_i}\, z,\qquad z \sim \mathcal N(0, I),

    the convention of :func:`dgm.sampling.langevin` (α is the noise variance). At large σ the
    noisy density p_σ is smooth and its modes connect, so chains spread across modes in the right
    proportions; the decreasing σ then sharpens them onto the data. α_i ∝ σ_i² keeps the
    signal-to-noise ratio of the updates the same at every level. With ``denoise`` a last step
    x ← x + σ_L² s(x, σ_L) returns Tweedie's estimate of E[x_clean | x] (Song & Ermon 2020).

    Args:
        score_fn: ``score_fn(x, sigma) -> (C, D)`` for ``(C, D)`` states and a Python float σ.
        sigmas: ``(L,)`` strictly decreasing noise levels.
        steps_per_level: T ≥ 1. step_scale: ε > 0.
        x0: ``(C, D)`` starting states (e.g. uniform noise).
        generator: ``torch.Generator`` on x0's device.
        denoise: add the final denoising step.
        trajectory: also return the states at the end of every level.

    Returns:
        ``(C, D)`` final states, or ``(L, C, D)`` the states after each level when ``trajectory``
        (the last row is the final state before denoising).
    """
    check_callable(score_fn, "score_fn", "(x, sigma) -> s(x, sigma)")
    x = _states(x0)
    sigmas = _sigmas(sigmas)
    T = check_int(steps_per_level, "steps_per_level", low=1)
    eps = check_number(step_scale, "step_scale", low=0, closed_low=False)
    denoise = check_bool(denoise, "denoise")
    trajectory = check_bool(trajectory, "trajectory")
    check_generator(generator, x.device)
    levels = [float(s) for s in sigmas]
    x = x.detach().clone()
    snapshots = []
    with torch.no_grad():
        for sigma in levels:
            alpha = eps * sigma**2 / levels[-1] ** 2
            for _ in range(T):
                s = _scores_of(lambda y: score_fn(y, sigma), x)
                z = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
                x = x + 0.5 * alpha * s + math.sqrt(alpha) * z
            if trajectory:
                snapshots.append(x.clone())
        if denoise:
            x = x + levels[-1] ** 2 * _scores_of(lambda y: score_fn(y, levels[-1]), x)
    return torch.stack(snapshots) if trajectory else x


class NoiseConditionalScoreNet(nn.Module):
    r"""A small noise-conditional score network s_θ(x, σ) = f_θ([x, log σ]) / σ.

    f_θ is an :func:`dgm.nets.mlp`. Dividing by σ builds in the scale of the true noisy score
    (‖∇log p_σ‖ ~ 1/σ for small σ; Song & Ermon 2020's parametrisation), so f_θ ≈ −ε̂ has the
    same size at every level.

    Args:
        dim: D. hidden, depth, activation: of the MLP.
        generator: CPU ``torch.Generator`` for the initial weights.
        dtype, device: of the parameters.

    Call ``net(x, sigma)`` with ``x`` ``(B, D)`` and σ a positive number or a ``(B,)`` tensor.
    """

    def __init__(self, dim: int, hidden: int = 64, depth: int = 3, activation: str = "silu", *,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        self.net = mlp(self.dim + 1, hidden, self.dim, depth, activation, generator=generator, dtype=dtype,
                       device=device)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.dim}); got {got}")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.dim() == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],) or not bool((sigma > 0).all()):
            raise ValueError(f"sigma must be a positive number or a positive tensor of shape ({x.shape[0]},)")
        features = torch.cat([x, torch.log(sigma)[:, None]], dim=1)
        return self.net(features) / sigma[:, None]


def noise_conditional_dsm_loss(score_net, x, sigmas, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Song & Ermon's multi-level DSM loss: E_{i, x, ε} ½ σ_i² ‖s_θ(x + σ_i ε, σ_i) + ε/σ_i‖².

    i is drawn uniformly from the L levels for every point; the weight λ(σ) = σ² makes every
    level's term of order 1 (it is ½‖σ s_θ + ε‖²).

    Args:
        score_net: ``(x (B, D), sigma (B,)) -> (B, D)``.
        x: ``(B, D)`` data.
        sigmas: ``(L,)`` noise levels (strictly decreasing).
        generator: for the levels and ε (on x's device).

    Returns:
        ``()`` the batch average.
    """
    check_callable(score_net, "score_net", "(x, sigma) -> s(x, sigma)")
    x = _points(x)
    sigmas = _sigmas(sigmas, like=x).to(device=x.device, dtype=x.dtype)
    check_generator(generator, x.device)
    level = torch.randint(sigmas.shape[0], (x.shape[0],), device=x.device, generator=generator)
    sigma = sigmas[level]
    eps = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    s = score_net(x + sigma[:, None] * eps, sigma)
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score_net must return a tensor of shape {tuple(x.shape)}; got {got}")
    return 0.5 * (sigma[:, None] * s + eps).pow(2).sum(-1).mean()


@dataclass
class ScoreRun:
    """History of :func:`train_score_network`: the loss of every update."""

    loss: list[float] = field(default_factory=list)


def train_score_network(score_net: nn.Module, data, sigmas, *, steps: int, batch_size: int = 256, lr: float = 3e-3,
                        lr_schedule: str = "cosine", generator: torch.Generator | None = None,
                        progress: bool = False) -> ScoreRun:
    r"""Fit a noise-conditional score network by :func:`noise_conditional_dsm_loss` with Adam.

    With ``lr_schedule="cosine"`` the learning rate decays from ``lr`` to 0 along a half cosine
    over the ``steps`` updates; the small noise levels need it: on a 2-D mixture of three
    Gaussians (weights 0.2, 0.3, 0.5; σ = 3 … 0.1, 8 levels, batch 512), 2000 updates at a
    constant rate 2e-3 left annealed Langevin's component proportions off by up to 0.13 over
    seeds 0–7, against 0.04 with the decay from 3e-3.

    Args:
        score_net: an ``nn.Module`` ``(x, sigma) -> s`` (e.g. :class:`NoiseConditionalScoreNet`), trained in place.
        data: ``(N, D)`` training points; minibatches drawn with replacement.
        sigmas: ``(L,)`` strictly decreasing noise levels.
        steps: updates; batch_size: B; lr: Adam's (initial) learning rate.
        lr_schedule: ``"cosine"`` (decay to 0) or ``"constant"``.
        generator: ``torch.Generator`` on the data's device (minibatches, levels, noise).
        progress: show a tqdm bar.

    Returns:
        :class:`ScoreRun`.
    """
    _check_module(score_net, "score_net")
    x = _points(data, "data")
    sigmas = _sigmas(sigmas, like=x)
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    lr = check_number(lr, "lr", low=0, closed_low=False)
    if lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"lr_schedule must be 'cosine' or 'constant'; got {lr_schedule!r}")
    progress = check_bool(progress, "progress")
    check_generator(generator, x.device)
    opt = torch.optim.Adam(score_net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if lr_schedule == "cosine" else None
    run = ScoreRun()
    iterator = range(steps)
    if progress:
        iterator = tqdm(iterator, desc="score network (DSM)")
    for _ in iterator:
        batch = x[torch.randint(x.shape[0], (batch_size,), device=x.device, generator=generator)]
        loss = noise_conditional_dsm_loss(score_net, batch, sigmas, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        run.loss.append(float(loss.detach()))
    return run
