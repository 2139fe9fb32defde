"""Checks of Exercise 5 (Chapter 5: generative adversarial networks and divergences)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import
from coursework._core import (
    Ctx,
    GradRequest,
    IntegralRule,
    call,
    expect_derivation,
    expect_pair,
    expect_same_gradients,
    expect_tensor,
)

#: what the exercise notebook imports in its set-up cell (one line: ``from coursework.ch05 import ...``)
__all__ = ["check", "derivation_report", "cg_symbols", "cg_derivation_start", "CG_REPORT_POINT"]

CHAPTER = Chapter(
    number=5,
    assignment="05-gans",
    title="Generative adversarial networks",
    forbidden=("dgm.gan",),  # the reference implementations Exercise 5's answers re-build
)

#: prints each derivation step's value at a point (default: this chapter's report point)
derivation_report = CHAPTER.derivation_report

_EXTREME = "extreme logits (±300): compute log D = -softplus(-a) and log(1 - D) = -softplus(a), not log(sigmoid(a))"


def _logits(ctx: Ctx, *shape: int, scale: float = 3.0, dtype=torch.float64) -> torch.Tensor:
    return scale * ctx.randn(*shape, dtype=dtype)


def _extreme(ctx: Ctx, n: int, dtype=torch.float64, low: float = 800.0, high: float = 1200.0) -> torch.Tensor:
    """n >= 2 logits with |a| in [low, high] (default [800, 1200]), at least one of each sign, in random order."""
    mags = ctx.uniform(low, high, n)
    signs = torch.ones(n, dtype=torch.float64)
    signs[: n // 2] = -1
    perm = torch.randperm(n, generator=ctx.gen)
    return (signs[perm] * mags).to(dtype)


_EXTREME_MIXED = ("extreme logits (|a| from 800 to 1200, both signs) among ordinary ones: compute log D = -softplus(-a) "
                  "and log(1 - D) = -softplus(a), not log(sigmoid(a))")


def _mixed_logits(ctx: Ctx, n: int, dtype=torch.float64, *shape: int) -> torch.Tensor:
    """n >= 4 logits, ONE batch mixing kinds for every seed: max(2, n // 3) extreme ones (|a| in [800, 1200],
    both signs) among ordinary ones (3·N(0, 1)), in random order; reshaped to ``shape`` if given."""
    k = max(2, n // 3)
    values = torch.cat([_logits(ctx, n - k), _extreme(ctx, k)])
    values = values[torch.randperm(n, generator=ctx.gen)].to(dtype)
    return values.reshape(shape) if shape else values


def _mixed_log_densities(ctx: Ctx, n: int, dtype=torch.float64, *, moderate: bool = False):
    """Two (n,) log-densities, n >= 6, ONE batch mixing kinds for every seed (random order): ordinary pairs
    (2·N(0, 1), densities above 1 included), pairs both far in the tails (in [-1500, -700], where exp
    underflows to 0) and pairs with one far and one ordinary (D* is then 0 or 1 to machine precision).
    ``moderate``: every far pair has both in the tails, within a few units of each other (no pair mixes a far
    and an ordinary value, whose difference a correct 1 / (1 + exp(-d)) would overflow in the gradient)."""
    k = n // 3
    lpd_o, lpg_o = 2 * ctx.randn(n - 2 * k), 2 * ctx.randn(n - 2 * k)
    lpd_t = ctx.uniform(-1500, -700, k)
    lpg_t = lpd_t + 3 * ctx.randn(k) if moderate else ctx.uniform(-1500, -700, k)
    if moderate:
        lpd_f = ctx.uniform(-1500, -700, k)
        lpg_f = lpd_f + 3 * ctx.randn(k)
    else:  # one of the pair ordinary, the other far, on either side
        far, ordinary = ctx.uniform(-1500, -700, k), 2 * ctx.randn(k)
        first = torch.arange(k) % 2 == 0
        lpd_f, lpg_f = torch.where(first, far, ordinary), torch.where(first, ordinary, far)
    perm = torch.randperm(n, generator=ctx.gen)
    lpd = torch.cat([lpd_o, lpd_t, lpd_f])[perm].to(dtype)
    lpg = torch.cat([lpg_o, lpg_t, lpg_f])[perm].to(dtype)
    return lpd, lpg


# --------------------------------------------------------------------------------------------
# Task 1: the discriminator's and the (non-saturating) generator's losses from logits
# --------------------------------------------------------------------------------------------


@CHAPTER.function("gan_losses", references=("dgm.gan:discriminator_loss", "dgm.gan:generator_loss_nonsaturating"))
def _gan_losses(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.gan import (
        discriminator_loss,
        generator_loss_minimax,
        generator_loss_nonsaturating,
    )

    def compare(real, fake, where, rtol=1e-6, atol=1e-8):
        out = call(ctx, fn, real, fake, where=where)
        d_loss, g_loss = expect_pair(ctx, out, where)
        want_d, want_g = discriminator_loss(real, fake), generator_loss_nonsaturating(fake)
        r, f = real.reshape(-1), fake.reshape(-1)
        expect_tensor(ctx, d_loss, want_d, "the discriminator loss", where, rtol, atol, hints=[
            ("D and 1 - D are swapped (data must get log D, generated points log(1 - D))",
             F.softplus(r).mean() + F.softplus(-f).mean()),
            ("the batches are summed instead of averaged (unequal batch sizes then change D*)",
             F.softplus(-r).sum() + F.softplus(f).sum()),
            ("the sign is flipped (that is V, which D maximises; return -V)", -want_d)])
        expect_tensor(ctx, g_loss, want_g, "the generator loss", where, rtol, atol, hints=[
            ("the saturating minimax loss log(1 - D(G(z))) is used instead of -log D(G(z))",
             generator_loss_minimax(fake)),
            ("the sign is flipped", -want_g),
            ("the loss is summed instead of averaged", F.softplus(-f).sum())])

    if not ctx.hidden:
        real = torch.tensor([2.0, 0.5, -1.0, 3.0], dtype=torch.float64)
        fake = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
        compare(real, fake, "example (4 real logits, 3 generated logits)")
        compare(real.reshape(-1, 1), fake.reshape(-1, 1), "the same logits with shape (B, 1)")
        compare(torch.tensor([300.0, -300.0], dtype=torch.float64), torch.tensor([-300.0, 300.0], dtype=torch.float64),
                _EXTREME)
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-5, 1e-5))):
        compare(_logits(ctx, 9, dtype=dtype), _logits(ctx, 5, dtype=dtype), f"random logits ({dtype})", *tol)
        compare(_mixed_logits(ctx, 9, dtype), _mixed_logits(ctx, 7, dtype), f"{_EXTREME_MIXED} ({dtype})", *tol)
        compare(_extreme(ctx, 4, dtype), _extreme(ctx, 4, dtype), f"{_EXTREME} ({dtype})", *tol)
    compare(_logits(ctx, 6, 1), _logits(ctx, 11, 1), "shape (B, 1), unequal batch sizes")
    compare(_logits(ctx, 6, 1), _logits(ctx, 11), "real (B, 1) and fake (B',): each batch may come in either shape")
    compare(_mixed_logits(ctx, 8), _mixed_logits(ctx, 5, torch.float64, 5, 1), "real (B,) and fake (B', 1), extremes mixed in")
    compare(_logits(ctx, 6), _logits(ctx, 1, 1), "one generated logit of shape (1, 1)")
    for real, fake, label in ((_logits(ctx, 6), _logits(ctx, 5), "ordinary logits"),
                              (_mixed_logits(ctx, 9), _mixed_logits(ctx, 6, torch.float64, 6, 1), "extremes mixed in")):
        expect_same_gradients(ctx, fn, lambda r, f: discriminator_loss(r, f) + 0 * generator_loss_nonsaturating(f),
                              [real, fake], wrt=(0, 1), where=f"gradients of the discriminator loss ({label})",
                              output=0)
        expect_same_gradients(ctx, fn, lambda r, f: generator_loss_nonsaturating(f),
                              [real, fake], wrt=(1,), where=f"gradients of the generator loss ({label})",
                              output=1)


# --------------------------------------------------------------------------------------------
# Task 2: the optimal discriminator from log-densities
# --------------------------------------------------------------------------------------------


@CHAPTER.function("optimal_discriminator", references=("dgm.gan:optimal_discriminator",))
def _optimal_discriminator(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.gan import optimal_discriminator as ref

    def compare(lpd, lpg, where, rtol=1e-6, atol=1e-10):
        got = call(ctx, fn, lpd, lpg, where=where)
        want = ref(lpd, lpg)
        expect_tensor(ctx, got, want, "D*", where, rtol, atol, hints=[
            ("p_data and p_G are swapped: that is p_G / (p_data + p_G) = 1 - D*", ref(lpg, lpd)),
            ("the log-densities are used as if they were densities", lpd / (lpd + lpg))])

    if not ctx.hidden:
        lpd = torch.tensor([-1.0, -0.2, 1.1, -3.0], dtype=torch.float64)   # densities up to 3.0: above 1 is fine
        lpg = torch.tensor([-0.5, -2.0, 0.3, -3.0], dtype=torch.float64)
        compare(lpd, lpg, "example (4 points)")
        compare(torch.tensor([-800.0, -1200.0], dtype=torch.float64), torch.tensor([-805.0, -1190.0], dtype=torch.float64),
                "far in the tails (log-densities near -1000: exp underflows to 0, work with the difference)")
        return
    # float32 tails: an ulp of 1000 is 6e-5, so a correct log-space formula may differ by that much
    for dtype, tol, tail_tol in ((torch.float64, (1e-6, 1e-10), (1e-6, 1e-10)),
                                 (torch.float32, (1e-5, 1e-7), (3e-4, 1e-7))):
        compare(2 * ctx.randn(3, 5, dtype=dtype), 2 * ctx.randn(3, 5, dtype=dtype), f"batch (3, 5) ({dtype})", *tol)
        lpd, lpg = _mixed_log_densities(ctx, 12, dtype)
        compare(lpd, lpg, f"far in the tails (exp underflows to 0), among ordinary points ({dtype})", *tail_tol)
    compare(2 * ctx.randn(4, 3), 2 * ctx.randn(3), "broadcasting (4, 3) against (3,)")
    compare(2 * ctx.randn(3), 2 * ctx.randn(4, 3), "broadcasting (3,) against (4, 3)")
    compare(2 * ctx.randn(3, 1, 5), 2 * ctx.randn(4, 5), "broadcasting (3, 1, 5) against (4, 5)")
    lpd, lpg = _mixed_log_densities(ctx, 12)
    compare(lpd.reshape(4, 3), lpg[:3], "broadcasting (4, 3) against (3,), far in the tails among ordinary points")
    expect_same_gradients(ctx, fn, ref, [ctx.randn(5), ctx.randn(5)], wrt=(0, 1), where="gradients")
    lpd, lpg = _mixed_log_densities(ctx, 12, moderate=True)
    expect_same_gradients(ctx, fn, ref, [lpd, lpg], wrt=(0, 1),
                          where="gradients far in the tails, among ordinary points")
    # broadcasting: a (3,) base with one column far in the tails, moved by a few units per row and argument
    base = torch.cat([2 * ctx.randn(2), ctx.uniform(-1500, -700, 1)])[torch.randperm(3, generator=ctx.gen)]
    expect_same_gradients(ctx, fn, ref, [base + 3 * ctx.randn(4, 3), base + 3 * ctx.randn(3)], wrt=(0, 1),
                          where="gradients when (4, 3) broadcasts against (3,), far in the tails among ordinary points")


# --------------------------------------------------------------------------------------------
# Task 3: the JSD estimate from a discriminator, with its standard error
# --------------------------------------------------------------------------------------------


@CHAPTER.function("jsd_from_discriminator", references=("dgm.gan:jsd_from_discriminator",))
def _jsd(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.gan import jsd_from_discriminator as ref

    def compare(real, fake, where, rtol=1e-6, atol=1e-8):
        out = call(ctx, fn, real, fake, where=where)
        est, se = expect_pair(ctx, out, where)
        want_est, want_se = ref(real, fake)
        r, f = real.reshape(-1), fake.reshape(-1)
        log_d, log_1md = -F.softplus(-r), -F.softplus(f)
        expect_tensor(ctx, est, want_est, "the JSD estimate", where, rtol, atol, hints=[
            ("log 2 is missing (JSD = log 2 + (E[log D] + E[log(1 - D)]) / 2)", want_est - math.log(2)),
            ("the factor 1/2 is missing (that is 2 JSD - log 2)", 2 * want_est - math.log(2)),
            ("D and 1 - D are swapped", math.log(2) + 0.5 * (-F.softplus(r).mean() - F.softplus(-f).mean()))])
        se_r, se_f = log_d.std() / math.sqrt(r.numel()), log_1md.std() / math.sqrt(f.numel())
        expect_tensor(ctx, se, want_se, "the standard error", where, rtol, atol, hints=[
            ("the factor 1/2 is missing from the standard error", 2 * want_se),
            ("the standard errors are added instead of combined as sqrt(SE_real² + SE_fake²)", 0.5 * (se_r + se_f)),
            ("the standard deviations are not divided by sqrt(batch size)",
             0.5 * torch.sqrt(log_d.var() + log_1md.var()))])

    if not ctx.hidden:
        real = torch.tensor([2.0, 0.5, -1.0, 3.0, 1.0], dtype=torch.float64)
        fake = torch.tensor([-2.0, 0.0, 1.5, -0.5], dtype=torch.float64)
        compare(real, fake, "example (5 real logits, 4 generated logits)")
        compare(torch.tensor([300.0, 250.0], dtype=torch.float64), torch.tensor([-300.0, -280.0], dtype=torch.float64),
                "a perfect discriminator: " + _EXTREME)
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-4, 1e-5))):
        compare(_logits(ctx, 50, dtype=dtype), _logits(ctx, 30, dtype=dtype), f"random logits ({dtype})", *tol)
        compare(_mixed_logits(ctx, 12, dtype), _mixed_logits(ctx, 9, dtype), f"{_EXTREME_MIXED} ({dtype})", *tol)
    compare(_logits(ctx, 12, 1), _logits(ctx, 20, 1), "shape (B, 1)")
    compare(_logits(ctx, 12, 1), _logits(ctx, 20), "real (B, 1) and fake (B',): each batch may come in either shape")
    compare(_logits(ctx, 2), _logits(ctx, 2, 1), "the smallest batches allowed, B = B' = 2")
    compare(_extreme(ctx, 10), _extreme(ctx, 9), _EXTREME)
    for real, fake, label in ((_logits(ctx, 8), _logits(ctx, 7), "ordinary logits"),
                              (_mixed_logits(ctx, 9), _mixed_logits(ctx, 7, torch.float64, 7, 1), "extremes mixed in")):
        expect_same_gradients(ctx, fn, ref, [real, fake], wrt=(0, 1), where=f"gradients of the estimate ({label})",
                              output=0)
        expect_same_gradients(ctx, fn, lambda r, f: ref(r, f)[1], [real, fake], wrt=(0, 1),
                              where=f"gradients of the standard error ({label})", output=1)


# --------------------------------------------------------------------------------------------
# Task 4: a density from a discriminator, in log space
# --------------------------------------------------------------------------------------------


@CHAPTER.function("log_density_from_discriminator", references=("dgm.gan:density_from_discriminator",))
def _density(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.gan import density_from_discriminator as ref

    def compare(lp0, logits, where, rtol=1e-6, atol=1e-8):
        got = call(ctx, fn, lp0, logits, where=where)
        want = ref(lp0, logits)
        expect_tensor(ctx, got, want, "log f1", where, rtol, atol, hints=[
            ("D and 1 - D are swapped (that gives f0²/f1)", ref(lp0, -logits)),
            ("log D is added instead of log(D / (1 - D))", lp0 - F.softplus(-logits))])

    if not ctx.hidden:
        compare(torch.tensor([-1.0, -2.5, -0.3], dtype=torch.float64), torch.tensor([0.7, -1.2, 2.0], dtype=torch.float64),
                "example (3 points)")
        compare(torch.tensor([-2.0, -4.0], dtype=torch.float64), torch.tensor([60.0, -60.0], dtype=torch.float64),
                "confident discriminator (logits ±60: D = 1 - 1e-26 rounds to 1; use the logit, not D)")
        return
    def log_p0(n: int, dtype=torch.float64) -> torch.Tensor:
        """n >= 6 values of log f0 mixing, for every seed: ordinary (-5, 0), above 0 (densities above 1,
        up to e^5) and very negative (-1000, -200) ones, in random order."""
        k = n // 3
        values = torch.cat([ctx.uniform(-5, 0, n - 2 * k), ctx.uniform(0, 5, k), ctx.uniform(-1000, -200, k)])
        return values[torch.randperm(n, generator=ctx.gen)].to(dtype)

    # float32 at magnitudes near 1000: an ulp is 6e-5, so allow that much absolute difference there
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-5, 1e-3))):
        compare(ctx.uniform(-5, 0, 4, 3, dtype=dtype), _logits(ctx, 4, 3, dtype=dtype), f"batch (4, 3) ({dtype})", *tol)
        compare(log_p0(12, dtype), _mixed_logits(ctx, 12, dtype),
                f"log f0 from -1000 to 5 and logits up to ±1200 among ordinary ones ({dtype})", *tol)
        compare(log_p0(12, dtype).reshape(4, 1, 3), _mixed_logits(ctx, 6, dtype, 2, 3),
                f"broadcasting log f0 (4, 1, 3) against logits (2, 3) ({dtype})", *tol)
        compare(log_p0(6, dtype), _mixed_logits(ctx, 12, dtype, 2, 6),
                f"broadcasting log f0 (6,) against logits (2, 6) ({dtype})", *tol)
    confident = _extreme(ctx, 5, low=60.0, high=120.0)  # both signs, always: D rounds to 1 for the positive ones
    compare(ctx.uniform(-5, 0, 5), confident, "very confident discriminator (|logit| >= 60)")
    expect_same_gradients(ctx, fn, ref, [ctx.uniform(-5, 0, 5), _logits(ctx, 5)], wrt=(0, 1), where="gradients")
    expect_same_gradients(ctx, fn, ref, [log_p0(6).reshape(2, 1, 3), _mixed_logits(ctx, 12, torch.float64, 4, 3)],
                          wrt=(0, 1), where="gradients with extremes mixed in, (2, 1, 3) against (4, 3)")


# --------------------------------------------------------------------------------------------
# Task 5: the gradient penalty of WGAN-GP
# --------------------------------------------------------------------------------------------


def _critic(ctx: Ctx, in_shape: tuple[int, ...], dtype) -> nn.Module:
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))
    return critic_from_seed(seed, tuple(in_shape), dtype)


def critic_from_seed(seed: int, in_shape: tuple[int, ...], dtype) -> nn.Module:
    """The checks' critic: a tanh MLP on flattened inputs of shape ``in_shape``, weights drawn from
    ``seed``. A factory (see :mod:`coursework.wire`): a grading sandbox rebuilds the same network."""
    from coursework.wire import factory_object
    from dgm.nets import mlp

    net = mlp(math.prod(in_shape), 16, 1, depth=2, activation="tanh", generator=torch.Generator().manual_seed(seed),
              dtype=dtype)
    net = nn.Sequential(nn.Flatten(), net) if len(in_shape) > 1 else net
    return factory_object(net, "coursework.ch05:critic_from_seed", seed, tuple(in_shape), dtype)


def _gp_variant(critic, real, fake, eps, kind):
    """Penalties computed the ways the slips compute them (autograd, independent of dgm.gan)."""
    e = eps.reshape(-1, *([1] * (real.dim() - 1)))
    x = (e * real + (1 - e) * fake).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    sq = g.reshape(len(g), -1).pow(2).sum(1)
    if kind == "squared_norm":
        return (sq - 1).pow(2).mean()
    if kind == "no_minus_one":
        return sq.mean()
    if kind == "swapped_eps":
        return _gp_variant(critic, fake, real, eps, "right")
    if kind == "sum":
        return (sq.sqrt() - 1).pow(2).sum()
    return (sq.sqrt() - 1).pow(2).mean()


@CHAPTER.function("gradient_penalty", references=("dgm.gan:gradient_penalty",))
def _gradient_penalty(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.gan import gradient_penalty as ref

    def compare(shape, dtype, where, rtol=1e-6, atol=1e-8, ends=False):
        critic = _critic(ctx, shape[1:], dtype)
        real, fake = 1.5 * ctx.randn(*shape, dtype=dtype), ctx.randn(*shape, dtype=dtype) - 1
        eps = ctx.uniform(0, 1, shape[0], dtype=dtype)
        if ends:  # the ends of the segments, epsilon = 0 (x_hat = fake) and 1 (x_hat = real), among interior points
            ends_at = torch.randperm(shape[0], generator=ctx.gen)[:2]
            eps[ends_at] = torch.tensor([0.0, 1.0], dtype=dtype)
        # real, fake and epsilon require gradients, as a generator's output does in training
        got, mine = call(ctx, fn, critic, real, fake, eps, where=where, grad=GradRequest(inputs=(1, 2, 3), params_of=0))
        want = ref(critic, real, fake, epsilon=eps)
        hints = [(label, _gp_variant(critic, real, fake, eps, kind).detach()) for label, kind in (
            ("the squared norm is used: (‖∇f‖² - 1)² instead of (‖∇f‖ - 1)²", "squared_norm"),
            ("the target 1 is missing: ‖∇f‖² instead of (‖∇f‖ - 1)²", "no_minus_one"),
            ("ε weighs the generated points: use ε·real + (1 - ε)·fake", "swapped_eps"),
            ("the penalty is summed over the batch instead of averaged", "sum"))]
        expect_tensor(ctx, got, want, "the penalty", where, rtol, atol, hints=hints)
        if mine is None:
            ctx.fail(f"{where}: the penalty does not depend on the critic's parameters — take the gradient with "
                     "torch.autograd.grad(..., create_graph=True) so the penalty can be trained")
        params = list(critic.parameters())
        inputs = [a.detach().clone().requires_grad_(True) for a in (real, fake, eps)]
        # x_hat is detached, so the reference's gradients with respect to real, fake and epsilon are None
        # (zero); the last bias does not move ∇_x f, so its gradient is None (zero) for every correct answer
        theirs = torch.autograd.grad(ref(critic, inputs[0], inputs[1], epsilon=inputs[2]), inputs + params,
                                     allow_unused=True)
        for name, a, g, r in zip(("real", "fake", "epsilon"), inputs, mine[:3], theirs[:3]):
            g = torch.zeros_like(a) if g is None else g
            r = torch.zeros_like(a) if r is None else r
            if type(g) is not torch.Tensor or g.shape != r.shape or g.dtype != r.dtype \
                    or not bool(torch.allclose(g, r, rtol=rtol, atol=atol)):  # noqa: E721
                ctx.fail(f"{where}: the penalty's gradient with respect to `{name}` is wrong — it must not flow back "
                         "into the samples (detach the interpolated points: the penalty trains the critic only)")
        for p, g, r in zip(params, mine[3:], theirs[3:]):
            g = torch.zeros_like(p) if g is None else g
            r = torch.zeros_like(p) if r is None else r
            if type(g) is not torch.Tensor or g.shape != r.shape or g.dtype != r.dtype \
                    or not bool(torch.allclose(g, r, rtol=rtol, atol=atol)):  # noqa: E721
                ctx.fail(f"{where}: the gradient of the penalty with respect to the critic's weights is wrong "
                         "(did you detach the input gradient, or forget create_graph=True?)")

    if not ctx.hidden:
        compare((6, 2), torch.float64, "6 points in 2-D, a tanh MLP critic")
        compare((3, 2, 2), torch.float64, "3 samples of shape (2, 2): the norm is over all of a sample's entries")
        return
    compare((9, 3), torch.float64, "9 points in 3-D")
    compare((5, 2), torch.float32, "float32", 1e-4, 1e-5)
    compare((4, 2, 3), torch.float64, "samples of shape (2, 3): the norm is over all of a sample's entries")
    compare((7, 3), torch.float64, "epsilon = 0 and epsilon = 1 (the ends of the segments) among interior points",
            ends=True)
    compare((6, 2), torch.float32, "epsilon = 0 and 1 among interior points, float32", 1e-4, 1e-5, ends=True)
    compare((1, 4), torch.float64, "a batch of one sample")


# --------------------------------------------------------------------------------------------
# Concept checks (the answers live in the hidden test cells, not here)
# --------------------------------------------------------------------------------------------

CHAPTER.concept("concept_gan_saturation", ("a", "b", "c", "d"))
CHAPTER.concept("concept_disjoint_jsd", ("a", "b", "c", "d"))
CHAPTER.concept("concept_generator_invertible", (True, False))


# --------------------------------------------------------------------------------------------
# Step-checked derivation: C(G) for p_data = U(0, 1) and p_G = U(0, s)
# --------------------------------------------------------------------------------------------


def cg_symbols() -> tuple:
    """The symbols of the C(G) derivation: ``(x, s)`` with s > 1 the width of p_G = U(0, s)."""
    import sympy as sp

    return sp.Symbol("x", real=True), sp.Symbol("s", positive=True)


def cg_derivation_start():
    r"""C(G) = ∫ [p log D* + q log(1 - D*)] dx for p = U(0, 1), q = U(0, s), s > 1, in SymPy.

    On (1, s) p = 0 and D* = 0, so the integrand is q log 1 = 0; what remains is the integral over
    (0, 1), where p = 1 and q = 1/s.
    """
    import sympy as sp

    x, s = cg_symbols()
    p, q = sp.Integer(1), 1 / s
    return sp.Integral(p * sp.log(p / (p + q)) + q * sp.log(q / (p + q)), (x, 0, 1))


#: the point at which derivation_report evaluates the steps of Exercise 5
CG_REPORT_POINT = {"s": 2.5}


def _cg_target(point) -> float:
    """-log 4 + 2 JSD(U(0,1) ‖ U(0,s)) by quadrature of the JSD's definition (independent route)."""
    from scipy.integrate import quad

    s = point["s"]

    def kl_to_m(dens, lo, hi):
        def integrand(x):
            p, q = (1.0 if x < 1 else 0.0), 1 / s
            m = 0.5 * (p + q)
            d = dens(p, q)
            return d * math.log(d / m) if d > 0 else 0.0
        return sum(quad(integrand, a, b, epsabs=1e-13, epsrel=1e-12)[0] for a, b in ((lo, 1.0), (1.0, hi)) if b > a)

    jsd = 0.5 * kl_to_m(lambda p, q: p, 0.0, s) + 0.5 * kl_to_m(lambda p, q: q, 0.0, s)
    return -math.log(4) + 2 * jsd


@CHAPTER.derivation("cg_derivation_steps", start=cg_derivation_start, point=CG_REPORT_POINT)
def _cg_steps(ctx: Ctx, steps: Any, expected: Any) -> None:
    import sympy as sp

    x, s = cg_symbols()
    if ctx.hidden:
        # s over its whole domain (1, oo), every range present for every seed: just above 1, moderate, large
        ranges = ((1.001, 1.2), (1.2, 5.0), (5.0, 1000.0), (1.001, 1000.0), (1.001, 1000.0))
        points = [{"s": float(torch.exp(ctx.uniform(math.log(lo), math.log(hi))))} for lo, hi in ranges]
    else:
        points = [{"s": 2.0}, {"s": 3.5}, {"s": 1.05}, {"s": 40.0}]
    rule = IntegralRule(var="x", limits=(sp.Integer(0), sp.Integer(1)), weight=sp.Integer(1),
                        parts=((sp.Integer(1), "∫ c dx over (0, 1) = c for c free of x"),),
                        at=lambda p: [0.1, 0.3, 0.5, 0.7, 0.9],
                        describe="free of x (on (0, 1), p_data = 1 and p_G = 1/s)")
    expect_derivation(ctx, steps, start=cg_derivation_start(), symbols=(x, s), points=points, target=_cg_target,
                      start_name="cg_derivation_start()", not_in_result=(x,), integrals=rule)

