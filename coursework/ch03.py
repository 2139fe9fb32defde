"""Checks of Exercise 3 (Chapter 3: variational autoencoders — the pieces of a VAE's objective).

Notation (the chapter's): the encoder gives a diagonal Gaussian q(z | x) = N(μ, diag e^ℓ) with mean μ and
log-variance ℓ (``mean``, ``logvar``, each ``(..., L)``), the prior is N(0, I), and a Bernoulli decoder gives
logits a (``(..., D)``) with p(x | z) = Π_d σ(a_d)^{x_d} (1 − σ(a_d))^{1 − x_d}. The IWAE bound with K samples
z_k ~ q is log (1/K) Σ_k p(x, z_k) / q(z_k | x).

The references the checks compare with are written out here in plain, differentiable torch;
``tests/test_checks_ch03.py`` checks them against :mod:`dgm.vae`, :mod:`torch.distributions` and Monte
Carlo, so the expected values do not come from one code path alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import
from coursework._core import Ctx, call, expect_derivation, expect_same_gradients, expect_tensor
from coursework._core import as_f64 as _f64, cast_like as _like

#: what the exercise notebook imports in its set-up cell (one line: ``from coursework.ch03 import ...``)
__all__ = ["check", "derivation_report", "score_symbols", "score_derivation_start", "SCORE_REPORT_POINT"]

CHAPTER = Chapter(
    number=3,
    assignment="03-vaes",
    title="Variational autoencoders: the pieces of the objective",
    forbidden=("dgm.vae",),  # the reference implementations Exercise 3's answers re-build
)

#: prints each derivation step's value at a point (default: this chapter's report point)
derivation_report = CHAPTER.derivation_report

_F32 = (torch.float32, (2e-5, 1e-5))   # float32 tolerances (rtol, atol) against a float64 reference
_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------
# The references (float64 inside, differentiable)
# --------------------------------------------------------------------------------------------


def ref_gaussian_kl(mean, logvar):
    """KL(N(μ, diag e^ℓ) ‖ N(0, I)) = ½ Σ_l (μ_l² + e^{ℓ_l} − 1 − ℓ_l), summed over the last dimension."""
    return 0.5 * (mean ** 2 + torch.exp(logvar) - 1.0 - logvar).sum(-1)


def ref_reparameterize(mean, logvar, eps):
    """z = μ + e^{ℓ/2} ε (broadcast)."""
    return mean + torch.exp(0.5 * logvar) * eps


def ref_bernoulli(x, logits):
    """Σ_d x_d log σ(a_d) + (1 − x_d) log σ(−a_d) = Σ_d x_d a_d − softplus(a_d), over the last dimension."""
    return (x * logits - torch.nn.functional.softplus(logits)).sum(-1)


def _normal_log_prob(z, mean, logvar):
    """log N(z; μ, diag e^ℓ), summed over the last dimension."""
    return -0.5 * (_LOG_2PI + logvar + (z - mean) ** 2 * torch.exp(-logvar)).sum(-1)


def ref_log_weights(log_px_given_z, z, mean, logvar):
    """log w_k = log p(x | z_k) + log N(z_k; 0, I) − log N(z_k; μ, diag e^ℓ), ``(K, ...)``."""
    return log_px_given_z + _normal_log_prob(z, torch.zeros_like(z), torch.zeros_like(z)) \
        - _normal_log_prob(z, mean, logvar)


def ref_iwae(log_px_given_z, z, mean, logvar):
    """log (1/K) Σ_k w_k = logsumexp_k log w_k − log K, ``(...)``."""
    log_w = ref_log_weights(log_px_given_z, z, mean, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def _nan(t: torch.Tensor) -> torch.Tensor:
    return torch.full_like(t, float("nan"))


def _name_overflow(ctx: Ctx, got: Any, want: torch.Tensor, extreme: bool, where: str, what: str, slip: str) -> None:
    """Fail naming ``slip`` when the answer is NaN or infinite where the right value is finite and the input holds
    the extremes that expose that slip."""
    if extreme and type(got) is torch.Tensor and got.shape == want.shape \
            and not bool(torch.isfinite(got.detach()).all()) and bool(torch.isfinite(want).all()):  # noqa: E721
        ctx.fail(f"{where}: {what} is NaN or infinite where the right value is finite — {slip}")


# --------------------------------------------------------------------------------------------
# Task 1: the Gaussian KL to the standard normal
# --------------------------------------------------------------------------------------------


@CHAPTER.function("gaussian_kl", references=("dgm.vae:gaussian_kl_standard", "dgm.vae:_kl_per_dim"))
def _gaussian_kl(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(mean, logvar, where, tol=(1e-6, 1e-8), grads=False):
        dtype = torch.promote_types(mean.dtype, logvar.dtype)
        got = call(ctx, fn, mean, logvar, where=where)
        m, lv = _f64(mean, logvar)
        m, lv = torch.broadcast_tensors(m, lv)
        want = _like(ref_gaussian_kl(m, lv), dtype)
        var = torch.exp(lv)
        expect_tensor(ctx, got, want, "KL", where, *tol, hints=[
            ("the ½ is missing (the KL is doubled: a KL weight of 2)", _like(2 * ref_gaussian_kl(m, lv), dtype)),
            ("the standard deviation e^{ℓ/2} is used where the variance e^ℓ belongs",
             _like(0.5 * (m ** 2 + torch.exp(0.5 * lv) - 1 - lv).sum(-1), dtype)),
            ("the −1 is missing (every dimension adds ½)", _like(0.5 * (m ** 2 + var - lv).sum(-1), dtype)),
            ("the log-variance has a + sign: the term is −log σ², that is −ℓ",
             _like(0.5 * (m ** 2 + var - 1 + lv).sum(-1), dtype)),
            ("the dimensions are averaged instead of summed (the KL of independent dimensions is their sum)",
             _like(ref_gaussian_kl(m, lv) / m.shape[-1], dtype)),
            ("the KL is the other way round, KL(N(0, I) ‖ q) = ½ Σ (ℓ + (1 + μ²) e^{−ℓ} − 1)",
             _like(0.5 * (lv + (1 + m ** 2) * torch.exp(-lv) - 1).sum(-1), dtype)),
            ("the mean's square is missing", _like(0.5 * (var - 1 - lv).sum(-1), dtype))])
        if grads:
            expect_same_gradients(ctx, fn, ref_gaussian_kl, [mean, logvar], wrt=(0, 1),
                                  where=f"{where}: gradients with respect to mean and logvar")

    if not ctx.hidden:
        compare(torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64),
                torch.tensor([[0.0, 0.0], [0.5, -1.0]], dtype=torch.float64),
                "example (N=2, L=2): q = N(0, I) in row 0 gives 0")
        compare(torch.tensor([0.3, -0.4, 1.5], dtype=torch.float64), torch.tensor([1.0, -0.5, 0.0], dtype=torch.float64),
                "one distribution (L=3, no batch dimension)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        compare(ctx.randn(6, 4).to(dtype), ctx.uniform(-3, 2, 6, 4).to(dtype), f"random (N=6, L=4) ({dtype})", tol)
    compare(ctx.randn(5, 3), ctx.uniform(-2, 1, 3), "mean (N, L) with one logvar (L,) shared by every row", grads=True)
    compare(ctx.randn(3), ctx.uniform(-2, 1, 4, 3), "one mean (L,) with logvar (N, L)", grads=True)
    compare(ctx.randn(2, 5, 3), ctx.uniform(-2, 1, 5, 3), "mean (B, N, L) with logvar (N, L)", grads=True)
    compare(ctx.randn(4, 1), ctx.uniform(-2, 1, 4, 1), "L = 1", grads=True)
    # extremes in one batch with ordinary rows: a variance near 0 (ℓ = −700: the KL is about 350 per dimension),
    # a huge variance (ℓ = 300), a far mean (1e4) — each kind in every seed, at random rows
    mean = ctx.randn(8, 3)
    logvar = ctx.uniform(-1, 1, 8, 3)
    logvar[0] = ctx.uniform(-700, -600, 3)
    logvar[0, int(torch.randint(0, 3, (1,), generator=ctx.gen))] = float(ctx.uniform(-745, -700))
    logvar[1] = ctx.uniform(250, 300, 3)
    mean[2] = 1e4 * ctx.uniform(0.5, 1.0, 3)
    idx = torch.randperm(8, generator=ctx.gen)
    compare(mean[idx], logvar[idx], "extreme rows (variances e^-745…e^-600 and e^250…e^300, means near 1e4) mixed with "
            "ordinary ones", tol=(1e-9, 1e-8), grads=True)
    compare(ctx.randn(1, 3), ctx.uniform(-2, 1, 1, 3), "a batch of one (1, L): the KL has shape (1,)", grads=True)
    compare(ctx.randn(2, 1, 3), ctx.uniform(-2, 1, 1, 3), "batch dimensions of size 1, (2, 1, L) with (1, L)")
    m32 = 30 * ctx.randn(6, 3)
    lv32 = ctx.uniform(-1, 1, 6, 3)
    lv32[0] = ctx.uniform(-80, -60, 3)
    lv32[1] = ctx.uniform(60, 80, 3)
    idx = torch.randperm(6, generator=ctx.gen)
    compare(m32[idx].float(), lv32[idx].float(), "float32 with variances e^-80 and e^80 mixed with ordinary ones",
            tol=(1e-5, 1e-5))


# --------------------------------------------------------------------------------------------
# Task 2: the reparameterisation
# --------------------------------------------------------------------------------------------


@CHAPTER.function("reparameterize", references=("dgm.vae:reparameterize",))
def _reparameterize(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(mean, logvar, eps, where, tol=(1e-6, 1e-8), grads=False):
        dtype = mean.dtype
        got = call(ctx, fn, mean, logvar, eps, where=where)
        m, lv, e = _f64(mean, logvar, eps)
        want = _like(ref_reparameterize(m, lv, e), dtype)
        _name_overflow(ctx, got, want, bool((lv.abs() > 80).any()), where, "z",
                       "σ computed as sqrt(exp(ℓ)) overflows (e^ℓ is beyond the dtype's range while e^{ℓ/2} is not), "
                       "or ε is multiplied by an infinite variance; use exp(0.5 * logvar)")
        expect_tensor(ctx, got, want, "z", where, *tol, hints=[
            ("the variance e^ℓ multiplies ε instead of the standard deviation e^{ℓ/2}", _like(m + torch.exp(lv) * e, dtype)),
            ("ℓ itself multiplies ε (it is the log-variance, not the standard deviation)", _like(m + lv * e, dtype)),
            ("ε is subtracted", _like(m - torch.exp(0.5 * lv) * e, dtype)),
            ("the standard deviation multiplies the mean too: σ(μ + ε)", _like(torch.exp(0.5 * lv) * (m + e), dtype))])
        if grads:
            expect_same_gradients(ctx, fn, ref_reparameterize, [mean, logvar, eps], wrt=(0, 1, 2),
                                  where=f"{where}: gradients with respect to mean, logvar and eps")

    if not ctx.hidden:
        compare(torch.tensor([[0.0, 1.0], [-1.0, 2.0]], dtype=torch.float64),
                torch.tensor([[0.0, 2.0], [-2.0, 0.0]], dtype=torch.float64),
                torch.tensor([[1.0, 1.0], [0.5, -1.0]], dtype=torch.float64), "example (N=2, L=2)")
        compare(torch.tensor([0.5, -0.5], dtype=torch.float64), torch.tensor([1.0, -1.0], dtype=torch.float64),
                torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0]], dtype=torch.float64),
                "three samples ε (S=3, L=2) of one q (L=2): z is (3, 2)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        compare(ctx.randn(5, 3).to(dtype), ctx.uniform(-3, 2, 5, 3).to(dtype), ctx.randn(5, 3).to(dtype),
                f"random (N=5, L=3) ({dtype})", tol)
    compare(ctx.randn(4, 3), ctx.uniform(-2, 1, 4, 3), ctx.randn(6, 4, 3), "S=6 samples per row: ε (S, N, L), "
            "mean and logvar (N, L)", grads=True)
    compare(ctx.randn(4, 3), ctx.uniform(-2, 1, 3), ctx.randn(4, 3), "one logvar (L,) shared by every row", grads=True)
    compare(ctx.randn(3), ctx.uniform(-2, 1, 3), ctx.randn(2, 5, 3), "one q (L,) and ε (S, N, L)", grads=True)
    compare(ctx.randn(5, 1), ctx.uniform(-2, 1, 5, 1), ctx.randn(5, 1), "L = 1", grads=True)
    compare(ctx.randn(4, 3), ctx.uniform(-2, 1, 4, 3), ctx.randn(3), "one ε (L,) shared by every row (N, L)", grads=True)
    compare(ctx.randn(1, 3), ctx.uniform(-2, 1, 1, 3), ctx.randn(1, 1, 3), "batch dimensions of size 1", grads=True)
    eps = ctx.randn(5, 3)
    eps[torch.randperm(5, generator=ctx.gen)[:2], torch.randint(0, 3, (2,), generator=ctx.gen)] = 0.0
    compare(ctx.randn(5, 3), ctx.uniform(-2, 1, 5, 3), eps, "ε exactly 0 in some entries (z = μ there)", grads=True)
    # extremes mixed with ordinary rows: a tiny variance (ℓ = −600), a huge one whose e^ℓ overflows while e^{ℓ/2}
    # does not (float64: ℓ in (1000, 1400); float32: ℓ in (100, 170)), a far mean
    mean, logvar, eps = ctx.randn(6, 3), ctx.uniform(-1, 1, 6, 3), ctx.randn(6, 3)
    logvar[0] = ctx.uniform(-700, -600, 3)
    logvar[1] = ctx.uniform(1000, 1400, 3)
    mean[2] = 1e6 * ctx.randn(3)
    idx = torch.randperm(6, generator=ctx.gen)
    compare(mean[idx], logvar[idx], eps[idx], "float64: variances e^-700 and e^1000..e^1400 (the variance overflows, "
            "the standard deviation does not) and a mean near 1e6, mixed with ordinary rows", tol=(1e-9, 1e-8))
    mean, logvar, eps = ctx.randn(6, 3), ctx.uniform(-1, 1, 6, 3), ctx.randn(6, 3)
    logvar[0] = ctx.uniform(-150, -100, 3)
    logvar[1] = ctx.uniform(100, 170, 3)
    idx = torch.randperm(6, generator=ctx.gen)
    compare(mean[idx].float(), logvar[idx].float(), eps[idx].float(), "float32: variances e^-150..e^-100 and "
            "e^100..e^170 (beyond float32's range; the standard deviation is not) mixed with ordinary rows", tol=(1e-5, 1e-6))


# --------------------------------------------------------------------------------------------
# Task 3: the Bernoulli log-likelihood from logits
# --------------------------------------------------------------------------------------------


@CHAPTER.function("bernoulli_log_likelihood", references=("dgm.vae:bernoulli_log_likelihood", "dgm.vae:_bernoulli_ll"),
                  allowed=("torch.nn.functional",))
def _bernoulli_log_likelihood(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(x, logits, where, tol=(1e-6, 1e-8), grads=False):
        dtype = torch.promote_types(x.dtype, logits.dtype)
        got = call(ctx, fn, x, logits, where=where)
        x64, a = _f64(x, logits)
        x64, a = torch.broadcast_tensors(x64, a)
        want = _like(ref_bernoulli(x64, a), dtype)
        ls = torch.nn.functional.logsigmoid
        _name_overflow(ctx, got, want, bool((a.abs() > 30).any()), where, "the log-likelihood",
                       "log(sigmoid(a)) underflows to log 0 for large |a|; write log σ(a) = logsigmoid(a) = a − softplus(a) "
                       "and log(1 − σ(a)) = logsigmoid(−a) = −softplus(a)")
        expect_tensor(ctx, got, want, "log p(x | z)", where, *tol, hints=[
            ("the sign is flipped: this is the binary cross-entropy loss, −log p(x | z)", _like(-ref_bernoulli(x64, a), dtype)),
            ("the pixels are averaged instead of summed (log p(x | z) sums over independent pixels)",
             _like(ref_bernoulli(x64, a) / a.shape[-1], dtype)),
            ("x and 1 − x are swapped: x pairs with log σ(a), 1 − x with log(1 − σ(a))",
             _like(((1 - x64) * ls(a) + x64 * ls(-a)).sum(-1), dtype)),
            ("the logits are used as probabilities (apply σ: p = σ(a))",
             _like((x64 * torch.log(a.clamp_min(1e-300)) + (1 - x64) * torch.log((1 - a).clamp_min(1e-300))).sum(-1), dtype)),
            ("a small constant is added inside the logs (log(σ(a) + ε)): wrong for large |a|",
             _like((x64 * torch.log(torch.sigmoid(a) + 1e-7) + (1 - x64) * torch.log(1 - torch.sigmoid(a) + 1e-7)).sum(-1),
                   dtype)),
            ("the probabilities are clamped before the log (log σ(a) clamped at log 1e-7 or similar): wrong for large |a|",
             _like((x64 * torch.log(torch.sigmoid(a).clamp(1e-7, 1 - 1e-7))
                    + (1 - x64) * torch.log((1 - torch.sigmoid(a)).clamp(1e-7, 1 - 1e-7))).sum(-1), dtype))])
        if grads:
            expect_same_gradients(ctx, fn, ref_bernoulli, [x, logits], wrt=(0, 1),
                                  where=f"{where}: gradients with respect to x and logits")

    if not ctx.hidden:
        compare(torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64),
                torch.tensor([[2.0, -1.0, 0.0], [0.5, 3.0, -2.0]], dtype=torch.float64), "example (N=2, D=3, binary x)")
        compare(torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64),
                "grey levels x in [0, 1] (one image, D=3)")
        compare(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
                torch.tensor([[50.0, -50.0], [50.0, -50.0]], dtype=torch.float64),
                "logits ±50: row 0 is near 0 (confident and right), row 1 near −100 (confident and wrong)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        x = (ctx.uniform(0, 1, 5, 8) > 0.5).to(dtype)
        compare(x, (3 * ctx.randn(5, 8)).to(dtype), f"binary x (N=5, D=8) ({dtype})", tol)
    compare(ctx.uniform(0, 1, 4, 6), 2 * ctx.randn(4, 6), "grey levels in [0, 1]", grads=True)
    compare(ctx.uniform(0, 1, 4, 6), 2 * ctx.randn(6), "x (N, D) with one logits vector (D,)", grads=True)
    compare(ctx.uniform(0, 1, 6), 2 * ctx.randn(3, 4, 6), "one image x (D,) with logits (B, N, D)", grads=True)
    compare(ctx.uniform(0, 1, 5, 1), ctx.randn(5, 1), "D = 1", grads=True)
    compare(ctx.uniform(0, 1, 1, 6), ctx.randn(1, 6), "a batch of one (1, D): the result has shape (1,)", grads=True)
    # extremes: every row has ordinary logits and, at random positions, logits of ±(40..1000) both right and wrong
    x = (ctx.uniform(0, 1, 6, 10) > 0.5).double()
    a = 2 * ctx.randn(6, 10)
    big = ctx.uniform(40, 1000, 6, 4)
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    cols = torch.randperm(10, generator=ctx.gen)[:4]
    a[:, cols] = big * sign
    compare(x, a, "logits ±40..±1000 mixed with ordinary ones in every row", tol=(1e-9, 1e-8), grads=True)
    compare(x.float(), a.float(), "the same in float32", tol=(1e-5, 1e-4))


# --------------------------------------------------------------------------------------------
# Task 4: the IWAE bound from samples
# --------------------------------------------------------------------------------------------


def _iwae_problem(ctx: Ctx, K: int, batch: tuple, L: int, scale: float = 1.0):
    mean = ctx.randn(*batch, L)
    logvar = ctx.uniform(-2, 0.5, *batch, L)
    z = mean + torch.exp(0.5 * logvar) * ctx.randn(K, *batch, L)
    log_px = -scale * ctx.uniform(20, 60, K, *batch)
    return log_px, z, mean, logvar


@CHAPTER.function("iwae_bound", references=("dgm.vae:importance_log_weights", "dgm.vae:iwae_from_log_weights"),
                  allowed=("torch.nn.functional",))
def _iwae_bound(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(log_px, z, mean, logvar, where, tol=(1e-6, 1e-8), grads=False):
        dtype = z.dtype
        got = call(ctx, fn, log_px, z, mean, logvar, where=where)
        lp, z64, m, lv = _f64(log_px, z, mean, logvar)
        want = _like(ref_iwae(lp, z64, m, lv), dtype)
        K = z64.shape[0]
        log_w = ref_log_weights(lp, z64, m, lv)
        log_prior = _normal_log_prob(z64, torch.zeros_like(z64), torch.zeros_like(z64))
        log_q = _normal_log_prob(z64, m, lv)
        _name_overflow(ctx, got, want, bool((log_w.abs() > 80).any()), where, "the bound",
                       "log(mean(exp(log w))) under- or overflows for log-weights far from 0; use logsumexp over the "
                       "samples (dimension 0) minus log K")

        def lse(t):
            return torch.logsumexp(t, 0) - math.log(K)

        expect_tensor(ctx, got, want, "IWAE bound", where, *tol, hints=[
            ("the log-weights are averaged: that is the ELBO estimate (K = 1's bound averaged), not the IWAE bound",
             _like(log_w.mean(0), dtype) if K > 1 else _nan(want)),
            ("− log K is missing: logsumexp is the log of the sum, the bound is the log of the mean",
             _like(torch.logsumexp(log_w, 0), dtype) if K > 1 else _nan(want)),
            ("log q and log p(z) have swapped signs: w = p(x, z) / q(z | x)", _like(lse(lp - log_prior + log_q), dtype)),
            ("the prior log p(z) is missing from the weights (p(x, z) = p(x | z) p(z))", _like(lse(lp - log_q), dtype)),
            ("q's log-density uses e^{ℓ/2} as the variance (or e^ℓ as the standard deviation)",
             _like(lse(lp + log_prior - _normal_log_prob(z64, m, 0.5 * lv)), dtype)),
            ("q's log-density uses e^{2ℓ} as the variance",
             _like(lse(lp + log_prior - _normal_log_prob(z64, m, 2 * lv)), dtype)),
            ("the 2π constants are kept in one density and dropped in the other (they cancel only together)",
             _like(lse(log_w + 0.5 * z64.shape[-1] * _LOG_2PI), dtype)),
            ("the 2π constants are kept in one density and dropped in the other (they cancel only together)",
             _like(lse(log_w - 0.5 * z64.shape[-1] * _LOG_2PI), dtype))])
        if grads:
            expect_same_gradients(ctx, fn, ref_iwae, [log_px, z, mean, logvar], wrt=(0, 1, 2, 3),
                                  where=f"{where}: gradients with respect to log_px_given_z, z, mean and logvar")

    if not ctx.hidden:
        log_px = torch.tensor([[-3.0, -10.0], [-4.0, -9.0], [-2.5, -12.0]], dtype=torch.float64)
        z = torch.tensor([[[0.0], [1.0]], [[0.5], [-1.0]], [[-0.5], [2.0]]], dtype=torch.float64)
        mean = torch.tensor([[0.0], [0.5]], dtype=torch.float64)
        logvar = torch.tensor([[0.0], [-1.0]], dtype=torch.float64)
        compare(log_px, z, mean, logvar, "example (K=3 samples, N=2, L=1)")
        compare(log_px[:1], z[:1], mean, logvar, "K = 1: the bound is the single sample's log-weight")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        compare(*(t.to(dtype) for t in _iwae_problem(ctx, 10, (4,), 3)), f"random (K=10, N=4, L=3) ({dtype})", tol)
    compare(*_iwae_problem(ctx, 5, (3,), 2), "K=5, N=3, L=2", grads=True)
    compare(*_iwae_problem(ctx, 4, (2, 3), 2), "two batch dimensions (K=4, B=2, N=3, L=2)", grads=True)
    compare(*_iwae_problem(ctx, 1, (4,), 3), "K = 1: the ELBO's one-sample estimate", grads=True)
    compare(*_iwae_problem(ctx, 1, (1,), 2), "K = 1 and N = 1: the bound has shape (1,)", grads=True)
    compare(*_iwae_problem(ctx, 5, (1, 3), 2), "a batch dimension of size 1 (K=5, 1, 3, L=2)", grads=True)
    compare(*_iwae_problem(ctx, 6, (), 4), "no batch dimension (one x: z is (K, L), log_px_given_z is (K,))", grads=True)
    log_px, z, mean, logvar = _iwae_problem(ctx, 5, (3,), 2)
    compare(log_px, z, mean[0], logvar[0], "one q (L,) for a batch of samples z (K, N, L)", grads=True)
    # extremes: log-likelihoods near −1000 (every weight underflows exp) in some columns, near −50 in others, and
    # samples with very different weights (one dominant), all in one batch
    log_px, z, mean, logvar = _iwae_problem(ctx, 8, (5,), 3)
    col = torch.randperm(5, generator=ctx.gen)
    log_px[:, col[0]] = -ctx.uniform(900, 1100, 8)
    log_px[:, col[1]] = -ctx.uniform(20, 300, 8)
    log_px[:, col[2]] = 400 + ctx.uniform(0, 400, 8)
    compare(log_px, z, mean, logvar, "log p(x | z) near −1000 and near +400 (exp under- and overflows) mixed with "
            "ordinary columns", tol=(1e-9, 1e-8), grads=True)
    compare(log_px.float(), z.float(), mean.float(), logvar.float(), "the same in float32", tol=(1e-5, 1e-3))


# --------------------------------------------------------------------------------------------
# Concept checks (the correct options live in the hidden test cells)
# --------------------------------------------------------------------------------------------

CHAPTER.concept("concept_naive_mc", ("a", "b", "c", "d"))
CHAPTER.concept("concept_iwae_k", ("a", "b", "c", "d"))
CHAPTER.concept("concept_discrete_latent", ("a", "b", "c", "d"))
CHAPTER.concept("concept_posterior_collapse", ("a", "b", "c", "d"))


# --------------------------------------------------------------------------------------------
# Step-checked derivation: the score-function estimator with a baseline is unbiased (Bernoulli, logit a)
# --------------------------------------------------------------------------------------------


def score_symbols() -> tuple:
    """The symbols of the score-function derivation: ``(a, f0, f1, c)`` — the Bernoulli's logit a, the values
    f(0) and f(1) of the function whose expectation is differentiated, and the baseline c (all real)."""
    import sympy as sp

    return sp.symbols("a f0 f1 c", real=True)


def score_derivation_start():
    r"""E_ξ[(f(ξ) − c) ∂_a log p_a(ξ)] for ξ ~ Bernoulli(σ(a)), written as the sum over ξ ∈ {0, 1}:
    σ(a) (f1 − c) ∂_a log σ(a) + (1 − σ(a)) (f0 − c) ∂_a log(1 − σ(a)), with σ(a) = 1 / (1 + e^{−a}) and the
    two derivatives as SymPy computes them (in terms of e^{−a}, not yet simplified)."""
    import sympy as sp

    a, f0, f1, c = score_symbols()
    s = 1 / (1 + sp.exp(-a))
    return s * (f1 - c) * sp.diff(sp.log(s), a) + (1 - s) * (f0 - c) * sp.diff(sp.log(1 - s), a)


#: the point at which derivation_report evaluates the steps of Exercise 3
SCORE_REPORT_POINT = {"a": 0.5, "f0": 1.0, "f1": 3.0, "c": 2.0}


def _score_target(point) -> float:
    """d/da E[f(ξ)] by autograd: E[f(ξ)] = σ(a) f1 + (1 − σ(a)) f0 in float64 — the exact gradient the
    estimator's mean must equal, computed without the score function and without c."""
    a = torch.tensor(point["a"], dtype=torch.float64, requires_grad=True)
    s = torch.sigmoid(a)
    (g,) = torch.autograd.grad(s * point["f1"] + (1 - s) * point["f0"], a)
    return float(g)


def _score_points(ctx: Ctx) -> list[dict[str, float]]:
    """Random points, each kind present for every seed: a near 0, a large positive, a large negative, f1 < f0,
    a baseline far from the values."""
    points = []
    for a_lo, a_hi, c_lo, c_hi in ((-0.5, 0.5, -2, 2), (3, 8, -2, 2), (-8, -3, -2, 2), (-2, 2, 20, 50),
                                   (-2, 2, -50, -20)):
        f0, f1 = float(ctx.uniform(-3, 3)), float(ctx.uniform(-3, 3))
        points.append({"a": float(ctx.uniform(a_lo, a_hi)), "f0": f0, "f1": f1, "c": float(ctx.uniform(c_lo, c_hi))})
    return points


@CHAPTER.derivation("score_function_steps", start=score_derivation_start, point=SCORE_REPORT_POINT)
def _score_steps(ctx: Ctx, steps: Any, expected: Any) -> None:
    symbols = score_symbols()
    points = _score_points(ctx) if ctx.hidden else [
        SCORE_REPORT_POINT, {"a": -3.0, "f0": 2.0, "f1": -1.0, "c": 10.0}, {"a": 4.0, "f0": 0.5, "f1": 0.5, "c": -1.0}]
    a, f0, f1, c = symbols
    expect_derivation(ctx, steps, start=score_derivation_start(), symbols=symbols, points=points,
                      target=_score_target, start_name="score_derivation_start()", not_in_result=(c,),
                      exact_numbers=True)
