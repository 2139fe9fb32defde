"""Checks of Exercise 7 (Chapter 7: diffusion models).

Every implementation task takes the schedule as a ``(T,)`` float64 tensor ``betas`` (entry
``t - 1`` is β_t) and timesteps ``t`` as an int64 ``(B,)`` tensor with values 1..T, as in
``dgm.diffusion``; expected values come from :class:`dgm.diffusion.GaussianDiffusion`. Hints name
the slips that circulating notes make (a standard deviation for a variance, square roots in β̃_t,
α_t where ᾱ_t belongs, σ_t⁴ for σ_t²).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import
from coursework._core import (
    Ctx,
    call,
    describe,
    expect_derivation,
    expect_pair,
    expect_same_gradients,
    expect_tensor,
    numeric,
)

#: what the exercise notebook imports in its set-up cell (one line: ``from coursework.ch07 import ...``)
__all__ = ["check", "derivation_report", "posterior_symbols", "posterior_derivation_start", "POSTERIOR_REPORT_POINT"]

CHAPTER = Chapter(
    number=7,
    assignment="07-diffusion",
    title="Diffusion models",
    forbidden=("dgm.diffusion",),  # the reference implementations Exercise 7's answers re-build
)

#: prints each derivation step's value at a point (default: this chapter's report point)
derivation_report = CHAPTER.derivation_report

_TOL = {torch.float64: (1e-6, 1e-8), torch.float32: (1e-4, 1e-5)}


def _diffusion(betas):
    from dgm.diffusion import GaussianDiffusion

    return GaussianDiffusion(betas)


def _visible_betas() -> torch.Tensor:
    """β_t rising linearly from 0.02 to 0.4 over T = 10 steps."""
    return torch.linspace(0.02, 0.4, 10, dtype=torch.float64)


def _random_betas(ctx: Ctx, T: int) -> torch.Tensor:
    return ctx.uniform(1e-3, 0.25, T).sort().values


def _extreme_betas(ctx: Ctx, T: int) -> torch.Tensor:
    """A non-decreasing schedule (T >= 3) mixing kinds for every seed: β_1 in [1e-6, 1e-5] (ᾱ_1 within 1e-5
    of 1), β_T in [0.6, 0.9] (ᾱ_T far below 1e-2), and log-uniform values from 1e-5 to 0.5 between."""
    middle = torch.exp(ctx.uniform(math.log(1e-5), math.log(0.5), T - 2))
    ends = torch.stack([ctx.uniform(1e-6, 1e-5), ctx.uniform(0.6, 0.9)])
    return torch.cat([ends[:1], middle, ends[1:]]).sort().values


def _hard_schedule(ctx: Ctx, dtype) -> tuple[torch.Tensor, str]:
    """(betas, label): :func:`_extreme_betas` (T = 12) for float64 data; for float32 data an ordinary random
    schedule (T = 12) — a schedule cast to float32 before 1 - abar_t is formed (as the exercise's own solution
    does) keeps no digit of 1 - abar_t = 1e-6, so the extreme schedule is checked in float64."""
    if dtype == torch.float64:
        return _extreme_betas(ctx, 12), "a schedule from beta = 1e-6 to 0.9"
    return _random_betas(ctx, 12), "a random schedule (T = 12)"


def _random_t(ctx: Ctx, B: int, T: int, *, low: int = 1) -> torch.Tensor:
    t = torch.randint(low, T + 1, (B,), generator=ctx.gen)
    t[0], t[-1] = low, T  # always both ends
    return t


def _sched(betas, t, dtype, like):
    """Per-row schedule values (α_t, β_t, ᾱ_t, ᾱ_{t−1}) shaped to broadcast against ``like``."""
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=betas.dtype), abar[:-1]])
    shape = (-1,) + (1,) * (like.dim() - 1)
    return tuple(v[t - 1].to(dtype).reshape(shape) for v in (alphas, betas, abar, abar_prev))


# --------------------------------------------------------------------------------------------
# Task 1: x_t from the closed form q(x_t | x_0)
# --------------------------------------------------------------------------------------------


@CHAPTER.function("q_sample_closed_form",
                  references=("dgm.diffusion:GaussianDiffusion.q_sample", "dgm.diffusion:GaussianDiffusion._q_sample"))
def _q_sample(ctx: Ctx, fn: Callable, expected: Any) -> None:

    def ref(x0, t, noise, betas):
        return _diffusion(betas).q_sample(x0, t, noise=noise)

    def compare(x0, t, noise, betas, where):
        got = call(ctx, fn, x0, t, noise, betas, where=where)
        want = ref(x0, t, noise, betas)
        alpha, _, abar, abar_prev = _sched(betas, t, x0.dtype, x0)
        hints = [("the noise is multiplied by the variance 1 - abar_t instead of the standard deviation sqrt(1 - abar_t)",
                  torch.sqrt(abar) * x0 + (1 - abar) * noise),
                 ("alpha_t is used where abar_t (the product alpha_1 ... alpha_t) belongs",
                  torch.sqrt(alpha) * x0 + torch.sqrt(1 - alpha) * noise),
                 ("the schedule is indexed one step too early (abar_(t-1): entry t - 1 of the cumulative product is abar_t)",
                  torch.sqrt(abar_prev) * x0 + torch.sqrt(1 - abar_prev) * noise),
                 ("x_0 is scaled by abar_t instead of sqrt(abar_t)", abar * x0 + torch.sqrt(1 - abar) * noise)]
        rtol, atol = _TOL[x0.dtype]
        expect_tensor(ctx, got, want, "x_t", where, rtol, atol, hints=hints)

    if not ctx.hidden:
        betas = _visible_betas()
        x0 = torch.tensor([[1.0, -0.5], [0.3, 0.8], [-1.0, 0.0]], dtype=torch.float64)
        noise = torch.tensor([[0.5, 1.0], [-1.2, 0.4], [0.7, -0.3]], dtype=torch.float64)
        compare(x0, torch.tensor([3, 3, 3]), noise, betas, "example (T = 10, t = 3 for all rows)")
        compare(x0, torch.tensor([1, 5, 10]), noise, betas, "rows at t = 1, 5, 10 (one timestep per row)")
        return
    for dtype in (torch.float64, torch.float32):
        T = int(torch.randint(5, 60, (1,), generator=ctx.gen))
        betas = _random_betas(ctx, T)
        x0, noise = ctx.randn(9, 4, dtype=dtype), ctx.randn(9, 4, dtype=dtype)
        compare(x0, _random_t(ctx, 9, T), noise, betas, f"random schedule, batch ({describe(x0)})")
        betas, hard = _hard_schedule(ctx, dtype)
        compare(ctx.randn(9, 4, dtype=dtype), _random_t(ctx, 9, 12), ctx.randn(9, 4, dtype=dtype), betas,
                f"{hard}, every t, {dtype}")
        compare(ctx.randn(6, dtype=dtype), _random_t(ctx, 6, 12), ctx.randn(6, dtype=dtype), betas,
                f"data of shape (B,): no event dimensions ({dtype})")
    betas = _random_betas(ctx, 20)
    compare(ctx.randn(4, 3, 2, 2), _random_t(ctx, 4, 20), ctx.randn(4, 3, 2, 2), betas, "image-shaped batch (4, 3, 2, 2)")
    compare(ctx.randn(3, 2), torch.ones(3, dtype=torch.long), ctx.randn(3, 2), _random_betas(ctx, 1), "T = 1 (one step)")
    expect_same_gradients(ctx, fn, ref, [ctx.randn(5, 3), _random_t(ctx, 5, 20), ctx.randn(5, 3), betas],
                          wrt=(0, 2), where="gradients with respect to x0 and noise")
    expect_same_gradients(ctx, fn, ref, [ctx.randn(6, 2), _random_t(ctx, 6, 12), ctx.randn(6, 2), _extreme_betas(ctx, 12)],
                          wrt=(0, 2), where="gradients with respect to x0 and noise, a schedule from 1e-6 to 0.9")


# --------------------------------------------------------------------------------------------
# Task 2: the posterior q(x_{t-1} | x_t, x_0)
# --------------------------------------------------------------------------------------------


@CHAPTER.function("posterior_mean_variance",
                  references=("dgm.diffusion:GaussianDiffusion.q_posterior_mean_variance", "dgm.diffusion:GaussianDiffusion._q_posterior_mean"))
def _posterior(ctx: Ctx, fn: Callable, expected: Any) -> None:

    def ref(x0, xt, t, betas):
        mean, var, _ = _diffusion(betas).q_posterior_mean_variance(x0, xt, t)
        return mean, var

    def compare(x0, xt, t, betas, where):
        out = call(ctx, fn, x0, xt, t, betas, where=where)
        mean, var = expect_pair(ctx, out, where)
        want_mean, want_var = ref(x0, xt, t, betas)
        alpha, beta, abar, abar_prev = _sched(betas, t, x0.dtype, x0)
        ones = torch.ones_like(x0)
        rtol, atol = _TOL[x0.dtype]
        expect_tensor(ctx, var, want_var, "the posterior variance", where, rtol, atol, hints=[
            ("square roots are put on abar: (1 - sqrt(abar_(t-1))) / (1 - sqrt(abar_t)) * beta_t — a slip in a common set of notes",
             ones * (1 - torch.sqrt(abar_prev)) / (1 - torch.sqrt(abar)) * beta),
            ("the variance beta_t of the forward step is returned instead of beta~_t", ones * beta),
            ("the ratio is inverted: (1 - abar_t) / (1 - abar_(t-1)) * beta_t", ones * (1 - abar) / (1 - abar_prev) * beta),
            ("the standard deviation sqrt(beta~_t) is returned instead of the variance", torch.sqrt(want_var)),
        ])
        c0, ct = torch.sqrt(abar_prev) * beta / (1 - abar), torch.sqrt(alpha) * (1 - abar_prev) / (1 - abar)
        expect_tensor(ctx, mean, want_mean, "the posterior mean", where, rtol, atol, hints=[
            ("the coefficients of x_0 and x_t are swapped", ct * x0 + c0 * xt),
            ("sqrt(abar_t) is used in the x_0 coefficient where sqrt(abar_(t-1)) belongs",
             torch.sqrt(abar) * beta / (1 - abar) * x0 + ct * xt),
            ("alpha_t is used where sqrt(alpha_t) belongs in the x_t coefficient", c0 * x0 + alpha * (1 - abar_prev) / (1 - abar) * xt),
        ])

    if not ctx.hidden:
        betas = _visible_betas()
        x0 = torch.tensor([[1.0, -0.5], [0.3, 0.8], [-1.0, 0.0]], dtype=torch.float64)
        xt = torch.tensor([[0.2, 0.1], [-0.9, 1.5], [0.4, -0.6]], dtype=torch.float64)
        compare(x0, xt, torch.tensor([4, 4, 4]), betas, "example (T = 10, t = 4 for all rows)")
        compare(x0, xt, torch.tensor([2, 7, 10]), betas, "rows at t = 2, 7, 10")
        compare(x0, xt, torch.tensor([1, 1, 1]), betas, "t = 1 (beta~_1 = 0 and the mean is x_0)")
        return
    for dtype in (torch.float64, torch.float32):
        T = int(torch.randint(5, 60, (1,), generator=ctx.gen))
        betas = _random_betas(ctx, T)
        compare(ctx.randn(8, 3, dtype=dtype), ctx.randn(8, 3, dtype=dtype), _random_t(ctx, 8, T), betas,
                f"random schedule (T from 5 to 59) in {dtype}")
        betas, hard = _hard_schedule(ctx, dtype)
        compare(ctx.randn(9, 3, dtype=dtype), ctx.randn(9, 3, dtype=dtype), _random_t(ctx, 9, 12), betas,
                f"{hard}, every t, {dtype}")
        compare(ctx.randn(6, dtype=dtype), ctx.randn(6, dtype=dtype), _random_t(ctx, 6, 12), betas,
                f"data of shape (B,): no event dimensions ({dtype})")
    betas = _random_betas(ctx, 15)
    compare(ctx.randn(3, 2, 4), ctx.randn(3, 2, 4), _random_t(ctx, 3, 15), betas, "batch of shape (3, 2, 4)")
    compare(ctx.randn(3, 2), ctx.randn(3, 2), torch.ones(3, dtype=torch.long), _random_betas(ctx, 1),
            "T = 1 (beta~_1 = 0 and the mean is x_0)")
    expect_same_gradients(ctx, fn, ref, [ctx.randn(5, 3), ctx.randn(5, 3), _random_t(ctx, 5, 15), betas],
                          wrt=(0, 1), where="gradients of the mean with respect to x0 and xt")
    expect_same_gradients(ctx, fn, ref, [ctx.randn(6, 2), ctx.randn(6, 2), _random_t(ctx, 6, 12), _extreme_betas(ctx, 12)],
                          wrt=(0, 1), where="gradients of the mean, a schedule from 1e-6 to 0.9")


# --------------------------------------------------------------------------------------------
# Task 3: one ancestral sampling step
# --------------------------------------------------------------------------------------------


class _ToyEps:
    """A fixed, deterministic 'noise predictor' ε̂(x, t) = tanh(x) · (1 + t/10) for the checks."""

    def __call__(self, x, t):
        return torch.tanh(x) * (1 + t.to(x.dtype) / 10).reshape((-1,) + (1,) * (x.dim() - 1))


def toy_eps() -> _ToyEps:
    """The checks' noise predictor, as a factory (see :mod:`coursework.wire`) so that a grading
    sandbox builds the same model."""
    from coursework.wire import factory_object

    return factory_object(_ToyEps(), "coursework.ch07:toy_eps")


@CHAPTER.function("p_sample_step",
                  references=("dgm.diffusion:GaussianDiffusion.p_sample", "dgm.diffusion:GaussianDiffusion._p_mean_variance"))
def _p_sample(ctx: Ctx, fn: Callable, expected: Any) -> None:
    model = toy_eps()

    def compare(xt, t, betas, noise, variance, where):
        got = call(ctx, fn, model, xt, t, betas, noise, variance, where=where)
        d = _diffusion(betas)
        want = d.p_sample(model, xt, t, noise=noise, variance=variance)
        other = "beta_tilde" if variance == "beta" else "beta"
        mean, var, logvar = d.p_mean_variance(model, xt, t, variance=variance)
        alpha, beta, abar, _ = _sched(betas, t, xt.dtype, xt)
        keep = (t > 1).to(xt.dtype).reshape((-1,) + (1,) * (xt.dim() - 1))
        eps = model(xt, t)
        slip_mean = (xt - beta / torch.sqrt(1 - alpha) * eps) / torch.sqrt(alpha)
        rtol, atol = _TOL[xt.dtype]
        expect_tensor(ctx, got, want, "x_(t-1)", where, rtol, atol, hints=[
            ("noise is added at t = 1 too (the last step returns the mean)", mean + torch.exp(0.5 * logvar) * noise),
            (f"sigma_t^2 = {other} is used where variance = {variance!r} asks for the other one",
             d.p_sample(model, xt, t, noise=noise, variance=other)),
            ("the noise is scaled by the variance sigma_t^2 instead of the standard deviation sigma_t", mean + keep * var * noise),
            ("alpha_t is used where abar_t belongs in the noise coefficient beta_t / sqrt(1 - abar_t)",
             slip_mean + keep * torch.exp(0.5 * logvar) * noise),
        ])

    if not ctx.hidden:
        betas = _visible_betas()
        xt = torch.tensor([[0.5, -1.0], [1.2, 0.3], [-0.4, 0.9]], dtype=torch.float64)
        noise = torch.tensor([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.1]], dtype=torch.float64)
        compare(xt, torch.tensor([5, 5, 5]), betas, noise, "beta", "example (t = 5, sigma_t^2 = beta_t)")
        compare(xt, torch.tensor([5, 5, 5]), betas, noise, "beta_tilde", "example (t = 5, sigma_t^2 = beta~_t)")
        compare(xt, torch.tensor([1, 3, 10]), betas, noise, "beta", "rows at t = 1, 3, 10 (no noise at t = 1)")
        return
    for dtype in (torch.float64, torch.float32):
        for variance in ("beta", "beta_tilde"):
            T = int(torch.randint(5, 60, (1,), generator=ctx.gen))
            betas = _random_betas(ctx, T)
            compare(ctx.randn(8, 3, dtype=dtype), _random_t(ctx, 8, T), betas, ctx.randn(8, 3, dtype=dtype), variance,
                    f"random schedule, {variance}, {dtype}")
            betas, hard = _hard_schedule(ctx, dtype)
            compare(ctx.randn(9, 3, dtype=dtype), _random_t(ctx, 9, 12), betas, ctx.randn(9, 3, dtype=dtype), variance,
                    f"{hard}, every t, {variance}, {dtype}")
            compare(ctx.randn(6, dtype=dtype), _random_t(ctx, 6, 12), betas, ctx.randn(6, dtype=dtype), variance,
                    f"data of shape (B,): no event dimensions, {variance}, {dtype}")
    betas = _random_betas(ctx, 12)
    compare(ctx.randn(3, 2, 2), _random_t(ctx, 3, 12), betas, ctx.randn(3, 2, 2), "beta", "batch of shape (3, 2, 2)")
    for variance in ("beta", "beta_tilde"):
        compare(ctx.randn(3, 2), torch.ones(3, dtype=torch.long), _random_betas(ctx, 1), ctx.randn(3, 2), variance,
                f"T = 1: the only step returns the mean ({variance})")

    def ref(model, xt, t, betas, noise, variance):
        return _diffusion(betas).p_sample(model, xt, t, noise=noise, variance=variance)

    for variance in ("beta", "beta_tilde"):
        for betas in (_random_betas(ctx, 12), _extreme_betas(ctx, 12)):
            expect_same_gradients(ctx, fn, ref, [model, ctx.randn(6, 3), _random_t(ctx, 6, 12), betas, ctx.randn(6, 3),
                                                 variance], wrt=(1, 4),
                                  where=f"gradients with respect to xt and noise ({variance})")


# --------------------------------------------------------------------------------------------
# Task 4: the VLB weights λ_t
# --------------------------------------------------------------------------------------------


@CHAPTER.function("vlb_weights", references=("dgm.diffusion:GaussianDiffusion.vlb_weights",))
def _vlb_weights(ctx: Ctx, fn: Callable, expected: Any) -> None:

    def compare(betas, variance, where):
        got = call(ctx, fn, betas, variance, where=where)
        d = _diffusion(betas)
        want = d.vlb_weights(variance)
        sigma2 = torch.exp(d.log_betas if variance == "beta" else d.posterior_log_variance_clipped)
        alpha, abar = d.alphas, d.alphas_cumprod
        hints = [("sigma_t^4 (a squared norm of Sigma) is used where the variance sigma_t^2 belongs",
                  betas**2 / (2 * sigma2**2 * alpha * (1 - abar))),
                 ("1 - alpha_t is used where 1 - abar_t belongs", betas**2 / (2 * sigma2 * alpha * (1 - alpha))),
                 ("the factor 1/2 is missing", 2 * want),
                 ("beta_t appears to the first power instead of squared", betas / (2 * sigma2 * alpha * (1 - abar)))]
        if variance == "beta_tilde":
            hints.append(("beta~_1 = 0 is not replaced by beta~_2 at t = 1",
                          torch.cat([torch.full((1,), math.inf, dtype=betas.dtype), want[1:]])))
        expect_tensor(ctx, got, want, "lambda", where, 1e-6, 1e-10, hints=hints)

    if not ctx.hidden:
        compare(_visible_betas(), "beta", "T = 10, sigma_t^2 = beta_t")
        compare(_visible_betas(), "beta_tilde", "T = 10, sigma_t^2 = beta~_t")
        return
    for variance in ("beta", "beta_tilde"):
        T = int(torch.randint(3, 200, (1,), generator=ctx.gen))
        compare(_random_betas(ctx, T), variance, f"random schedule (T from 3 to 199), {variance}")
        compare(_extreme_betas(ctx, 12), variance, f"a schedule from beta = 1e-6 to 0.9, {variance}")
        # the edge cases the task text defines: T = 1 (sigma_1^2 = beta_1 for beta_tilde) and T = 2
        compare(_random_betas(ctx, 1), variance, f"T = 1, {variance}")
        compare(_random_betas(ctx, 2), variance, f"T = 2, {variance}")
        compare(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), variance, f"Ho et al.'s schedule (T = 1000), {variance}")


# --------------------------------------------------------------------------------------------
# Task 5: the exact optimal ε for a finite training set
# --------------------------------------------------------------------------------------------


@CHAPTER.function("optimal_eps",
                  references=("dgm.diffusion:GaussianDiffusion.optimal_eps", "dgm.diffusion:GaussianDiffusion._log_data_posterior"))
def _optimal_eps(ctx: Ctx, fn: Callable, expected: Any) -> None:

    def compare(xt, t, data, betas, where):
        got = call(ctx, fn, xt, t, data, betas, where=where)
        d = _diffusion(betas)
        want = d.optimal_eps(xt, t, data, dtype=torch.float64).to(xt.dtype)
        mean_x0 = d.optimal_x0(xt, t, data, dtype=torch.float64).to(xt.dtype)
        _, _, abar, _ = _sched(betas, t, xt.dtype, xt)
        uniform = (xt - torch.sqrt(abar) * data.mean(0)) / torch.sqrt(1 - abar)
        rtol, atol = (1e-6, 1e-8) if xt.dtype == torch.float64 else (1e-3, 1e-4)
        expect_tensor(ctx, got, want, "eps*", where, rtol, atol, hints=[
            ("E[x_0 | x_t] is returned instead of E[eps | x_t]", mean_x0),
            ("the data points are weighted equally, ignoring the posterior q(x_0 | x_t)", uniform),
        ])

    if not ctx.hidden:
        betas = _visible_betas()
        data = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        xt = torch.tensor([[0.6, 0.2], [0.1, 0.9], [-1.0, 2.0]], dtype=torch.float64)
        compare(xt, torch.tensor([2, 5, 10]), data, betas, "the two-point data set {[1, 0], [0, 1]}")
        far = torch.tensor([[60.0, -40.0], [-50.0, 55.0]], dtype=torch.float64)
        compare(far, torch.tensor([1, 1]), data, betas,
                "points far from the data at t = 1 (densities underflow: work with log-weights and logsumexp)")
        return
    for dtype in (torch.float64, torch.float32):
        T = int(torch.randint(5, 60, (1,), generator=ctx.gen))
        betas = _random_betas(ctx, T)
        data = ctx.randn(7, 3, dtype=dtype)
        compare(2 * ctx.randn(10, 3, dtype=dtype), _random_t(ctx, 10, T), data, betas, f"7 random data points, {dtype}")
    betas = _random_betas(ctx, 10)
    compare(40 * ctx.randn(4, 2), torch.ones(4, dtype=torch.long), ctx.randn(5, 2), betas, "far points at t = 1")
    compare(ctx.randn(3, 2, 3), _random_t(ctx, 3, 10), ctx.randn(4, 2, 3), betas, "image-shaped data (N, 2, 3)")
    # far points among near ones in one batch, at t = 1 (densities underflow) and at later t
    far = torch.cat([2 * ctx.randn(4, 3), ctx.uniform(60, 80, 3, 3), -ctx.uniform(60, 80, 3, 3)])
    order = torch.randperm(10, generator=ctx.gen)
    t = torch.cat([torch.ones(5, dtype=torch.long), _random_t(ctx, 5, 10)])[order]
    compare(far[order], t, ctx.randn(6, 3), betas, "far points among near ones, t = 1 among later t")
    compare(ctx.randn(5, 2), _random_t(ctx, 5, 10), ctx.randn(1, 2), betas, "one data point (N = 1)")
    compare(ctx.randn(4, 2), torch.ones(4, dtype=torch.long), ctx.randn(3, 2), _random_betas(ctx, 1), "T = 1")
    compare(ctx.randn(6), _random_t(ctx, 6, 10), ctx.randn(4), betas, "data of shape (N,): no event dimensions")
    for dtype in (torch.float64, torch.float32):
        betas, hard = _hard_schedule(ctx, dtype)
        compare(ctx.randn(8, 3, dtype=dtype), _random_t(ctx, 8, 12), ctx.randn(5, 3, dtype=dtype), betas, f"{hard}, {dtype}")

    def ref(xt, t, data, betas):
        return _diffusion(betas).optimal_eps(xt, t, data, dtype=torch.float64).to(xt.dtype)

    expect_same_gradients(ctx, fn, ref, [ctx.randn(6, 3), _random_t(ctx, 6, 10), ctx.randn(4, 3), _random_betas(ctx, 10)],
                          wrt=(0, 2), where="gradients with respect to xt and data")


# --------------------------------------------------------------------------------------------
# Concept checks (the answers live in the hidden test cells, not here)
# --------------------------------------------------------------------------------------------

CHAPTER.concept("concept_prior_term", ("a", "b", "c", "d"))
CHAPTER.concept("concept_reverse_learned", ("a", "b", "c", "d"))
CHAPTER.concept("concept_large_t", ("a", "b", "c", "d"))


# --------------------------------------------------------------------------------------------
# Step-checked derivation: completing the square for q(x_{t-1} | x_t, x_0)
# --------------------------------------------------------------------------------------------


def posterior_symbols() -> tuple:
    """The symbols of the posterior derivation: ``(x, x_t, x_0, beta, abar)``.

    ``x`` is x_{t−1} (one coordinate), ``beta`` is β_t (so α_t = 1 − β_t) and ``abar`` is ᾱ_{t−1}.
    """
    import sympy as sp

    return (sp.Symbol("x", real=True), sp.Symbol("x_t", real=True), sp.Symbol("x_0", real=True),
            sp.Symbol("beta", positive=True), sp.Symbol("abar", positive=True))


def posterior_derivation_start():
    r"""log q(x_t | x_{t−1}) + log q(x_{t−1} | x_0) up to terms free of x_{t−1}, in SymPy (one coordinate)."""
    import sympy as sp

    x, x_t, x_0, beta, abar = posterior_symbols()
    return -(x_t - sp.sqrt(1 - beta) * x) ** 2 / (2 * beta) - (x - sp.sqrt(abar) * x_0) ** 2 / (2 * (1 - abar))


#: the point where ``derivation_report`` evaluates the steps of the posterior derivation
POSTERIOR_REPORT_POINT = {"x": 0.4, "x_t": -0.7, "x_0": 1.1, "beta": 0.15, "abar": 0.6}


def _reference_posterior(p) -> tuple[float, float]:
    """(μ̃, β̃) from dgm at β_t = beta, ᾱ_{t−1} = abar: a chain of k equal steps reaching abar, then β_t."""
    k = max(1, math.ceil(math.log(p["abar"]) / math.log(1 - p["beta"])))
    b0 = 1 - p["abar"] ** (1 / k)
    betas = torch.tensor([b0] * k + [p["beta"]], dtype=torch.float64)
    d = _diffusion(betas)
    x0 = torch.tensor([[p["x_0"]]], dtype=torch.float64)
    xt = torch.tensor([[p["x_t"]]], dtype=torch.float64)
    mean, var, _ = d.q_posterior_mean_variance(x0, xt, k + 1)
    return float(mean), float(var)


def _posterior_points(ctx: Ctx, n: int = 6) -> list[dict[str, float]]:
    """``n`` (>= 4) points over the symbols' whole domain with every kind present for every seed: x, x_t
    and x_0 of both signs (magnitudes 0.1 to 5), beta from 1e-3 to 0.95 and abar from 0.001 to 0.999
    (log-uniform in beta and in 1 - abar), small and large alternating."""
    def log_uniform(lo, hi):
        return float(torch.exp(ctx.uniform(math.log(lo), math.log(hi))))

    points = []
    for k in range(n):
        sign = lambda j: 1.0 if (k >> j) % 2 == 0 else -1.0  # noqa: E731 - x_0, x_t, x cycle through the signs
        small = k % 2 == 0
        points.append({"x": sign(2) * log_uniform(0.1, 5), "x_t": sign(1) * log_uniform(0.1, 5),
                       "x_0": sign(0) * log_uniform(0.1, 5),
                       "beta": log_uniform(1e-3, 0.05) if small else log_uniform(0.05, 0.95),
                       "abar": 1 - (log_uniform(1e-3, 0.05) if not small else log_uniform(0.05, 0.999))})
    return points


@CHAPTER.derivation("posterior_derivation_steps", start=posterior_derivation_start, point=POSTERIOR_REPORT_POINT)
def _posterior_derivation(ctx: Ctx, steps: Any, expected: Any) -> None:
    import sympy as sp

    x, *rest = posterior_symbols()
    start = posterior_derivation_start()
    if ctx.hidden:
        points = _posterior_points(ctx)
    else:
        points = [POSTERIOR_REPORT_POINT, {"x": -1.3, "x_t": 0.5, "x_0": -0.2, "beta": 0.05, "abar": 0.9},
                  {"x": 2.5, "x_t": -3.0, "x_0": -1.7, "beta": 0.8, "abar": 0.02}]
    expect_derivation(ctx, steps, start=start, symbols=(x, *rest), points=points,
                      target=lambda p: numeric(start, p), start_name="posterior_derivation_start()")
    # The last step must be the completed square: c·(a·x + b)² + (terms free of x).
    last = steps[-1]
    free, dependent = last.as_independent(x, as_Add=True)
    coeff, square = dependent.as_independent(x, as_Add=False)
    form = "-(x - MEAN)**2 / (2 * VARIANCE) + REST, with MEAN, VARIANCE and REST free of x"
    if not (isinstance(square, sp.Pow) and square.exp == 2):
        ctx.fail(f"the last step must be a completed square, of the form {form}; x must appear only inside one square")
    try:
        poly = sp.Poly(square.base, x)
    except sp.PolynomialError:
        poly = None
    if poly is None or poly.degree() != 1:
        ctx.fail(f"the last step must be of the form {form}: the squared expression must be linear in x")
    a, b = poly.coeff_monomial(x), poly.coeff_monomial(1)
    mean_expr, var_expr = -b / a, -1 / (2 * coeff * a**2)
    for p in points:
        mean, var = _reference_posterior(p)
        got_mean, got_var = numeric(mean_expr, p), numeric(var_expr, p)
        if not math.isclose(got_var, var, rel_tol=1e-7, abs_tol=1e-10):
            ctx.fail("the variance read off your completed square is not beta~_t"
                     + ("" if ctx.hidden else f": at {POSTERIOR_REPORT_POINT if p is points[0] else p} it is "
                        f"{got_var:.8g}, expected {var:.8g}"))
        if not math.isclose(got_mean, mean, rel_tol=1e-7, abs_tol=1e-10):
            ctx.fail("the mean read off your completed square is not mu~_t"
                     + ("" if ctx.hidden else f": it is {got_mean:.8g}, expected {mean:.8g}"))
