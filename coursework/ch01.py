"""Checks of Exercise 1 (Chapter 1: divergences, likelihood and the ELBO)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import
from coursework._core import (
    Ctx,
    IntegralRule,
    call,
    describe,
    expect_derivation,
    expect_pair,
    expect_same_gradients,
    expect_tensor,
    short,
    type_name,
)

#: what the exercise notebook imports in its set-up cell (one line: ``from coursework.ch01 import ...``)
__all__ = ["check", "derivation_report", "kl_symbols", "kl_derivation_start", "KL_REPORT_POINT"]

CHAPTER = Chapter(
    number=1,
    assignment="01-elbo",
    title="Divergences, likelihood and the ELBO",
    # the reference implementations Exercise 1's answers re-build
    forbidden=("dgm.divergences", "dgm.linear_gaussian", "dgm.mixtures", "torch.distributions"),
)

#: prints each derivation step's value at a point (default: this chapter's report point)
derivation_report = CHAPTER.derivation_report


def _mixed(ctx: Ctx, *shape: int, ordinary: tuple[float, float] = (-1.0, 1.0),
           extreme: tuple[float, float] = (10.0, 20.0), dtype=torch.float64) -> torch.Tensor:
    """Values of ``shape`` (at least 3 entries) mixing kinds in ONE batch, for every seed: about a third
    of the entries (at least 2: one of each sign) are ±``extreme``, the rest drawn from ``ordinary``."""
    n = math.prod(shape)
    if n < 3:
        raise ValueError("_mixed needs at least 3 entries (ordinary and extreme values of both signs)")
    out = ctx.uniform(*ordinary, n)
    k = max(2, n // 3)
    where = torch.randperm(n, generator=ctx.gen)[:k]
    signs = torch.ones(k, dtype=torch.float64)
    signs[: k // 2] = -1
    out[where] = signs * ctx.uniform(*extreme, k)
    return out.reshape(shape).to(dtype)


#: the four ways the parameters of q and p broadcast against each other (shapes for D = 3)
_KL_BROADCASTS = (
    (((4, 3), (4, 3), (3,), (3,)), "a batch of q (4, 3) against one p (3,)"),
    (((3,), (3,), (4, 3), (4, 3)), "one q (3,) against a batch of p (4, 3)"),
    (((3, 1, 3), (3, 1, 3), (4, 3), (4, 3)), "q (3, 1, 3) against p (4, 3): both batched, broadcast to (3, 4)"),
    (((3, 1, 3), (3,), (1, 4, 3), (4, 3)), "each argument its own shape: (3, 1, 3), (3,), (1, 4, 3), (4, 3)"),
)


@CHAPTER.function("gaussian_kl_diag", references=("dgm.divergences:gaussian_kl",))
def _kl_diag(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.divergences import gaussian_kl as ref

    def compare(args, where, rtol=1e-6, atol=1e-8):
        got = call(ctx, fn, *args, where=where)
        want = ref(*args)
        hints = [("the arguments of q and p are swapped (KL is not symmetric)", ref(args[2], args[3], args[0], args[1])),
                 ("the factor 1/2 is missing", 2 * want),
                 ("variances are used where log-variances are given", _kl_var_slip(*args))]
        expect_tensor(ctx, got, want, "the KL", where, rtol=rtol, atol=atol, hints=hints)

    def draw(shapes, dtype=torch.float64):
        (smq, slq, smp, slp) = shapes
        return [ctx.randn(*smq, dtype=dtype), ctx.uniform(-2, 2, *slq, dtype=dtype),
                ctx.randn(*smp, dtype=dtype), ctx.uniform(-2, 2, *slp, dtype=dtype)]

    if not ctx.hidden:
        mq = torch.tensor([[0.0, 1.0, -0.5]], dtype=torch.float64)
        lq = torch.tensor([[0.0, -1.0, 0.5]], dtype=torch.float64)
        mp = torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64)
        lp = torch.tensor([[0.3, 0.0, -0.2]], dtype=torch.float64)
        compare([mq, lq, mp, lp], "example 1 (shape (1, 3))")
        compare([mq, lq, mq, lq], "KL(q || q) must be 0")
        compare([mq.expand(4, 3), lq.expand(4, 3), mp, lp], "a batch of 4 against one p (broadcasting)")
        compare([mq[0], lq[0], mp.expand(4, 3), lp.expand(4, 3)], "one q against a batch of 4 p (broadcasting)")
        return
    tols = {torch.float64: (1e-6, 1e-8), torch.float32: (1e-4, 1e-5)}
    for dtype, tol in tols.items():
        args = draw(((5, 7),) * 4, dtype)
        compare(args, f"random batch ({describe(args[0])})", *tol)
        # every broadcast direction, in both dtypes
        for shapes, label in _KL_BROADCASTS:
            compare(draw(shapes, dtype), f"{label}, {str(dtype).replace('torch.', '')}", *tol)
        # extremes mixed with ordinary values in one batch: |means| up to 1e3, log-variances up to ±20
        args = [_mixed(ctx, 6, 4, ordinary=(-2, 2), extreme=(100, 1000), dtype=dtype),
                _mixed(ctx, 6, 4, dtype=dtype),
                _mixed(ctx, 6, 4, ordinary=(-2, 2), extreme=(100, 1000), dtype=dtype),
                _mixed(ctx, 6, 4, dtype=dtype)]
        compare(args, f"far means and very small and very large variances among ordinary ones "
                      f"({str(dtype).replace('torch.', '')})", *tol)
    args = [ctx.randn(3, 4, 2), ctx.uniform(-1, 1, 3, 4, 2), torch.zeros(2, dtype=torch.float64),
            torch.zeros(2, dtype=torch.float64)]
    compare(args, "batch (3, 4) against a standard-normal prior of shape (2,)")
    mq, lq = ctx.randn(5, 1), ctx.uniform(-3, 3, 5, 1)
    compare([mq, lq, mq.clone(), lq.clone()], "KL(q || q) = 0, with D = 1")
    expect_same_gradients(ctx, fn, ref, draw(((4, 3),) * 4), wrt=(0, 1, 2, 3), where="gradients")
    for shapes, label in _KL_BROADCASTS[1:]:
        expect_same_gradients(ctx, fn, ref, draw(shapes), wrt=(0, 1, 2, 3), where=f"gradients, {label}")


def _kl_var_slip(mq, lq, mp, lp):
    """KL computed by someone who treats the log-variance arguments as variances."""
    vq, vp = lq.abs() + 1e-12, lp.abs() + 1e-12
    return 0.5 * (torch.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1).sum(-1)


def _kl_mc_replay(mq, lq, mp, lp, S: int, seed: int, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """The estimate and standard error from exactly the samples the task text prescribes: ε of shape
    ``(S, *shape)`` drawn with one ``torch.randn`` call from a generator seeded with ``seed``, in the
    inputs' dtype; the log-densities then evaluated in float64 (independently of the answer's arithmetic)."""
    from dgm.distributions import gaussian_log_prob

    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((S, *shape), generator=gen, dtype=mq.dtype).to(torch.float64)
    mq, lq, mp, lp = (a.detach().to(torch.float64) for a in (mq, lq, mp, lp))
    z = mq + torch.exp(0.5 * lq) * eps
    f = gaussian_log_prob(z, mq, lq) - gaussian_log_prob(z, mp, lp)
    return f.mean(0), f.std(0) / math.sqrt(S)


@CHAPTER.function("kl_monte_carlo",
                  references=("dgm.distributions:gaussian_log_prob", "dgm.divergences:kl_monte_carlo", "dgm.divergences:monte_carlo_mean"),
                  allowed=("dgm.distributions",))  # the set-up cell's gaussian_log_prob
def _kl_mc(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.distributions import gaussian_log_prob
    from dgm.divergences import gaussian_kl

    def run(args, S, where, *, z_check=True):
        mq, lq, mp, lp = args
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))
        out = call(ctx, fn, mq, lq, mp, lp, S, torch.Generator().manual_seed(seed), where=where)
        est, se = expect_pair(ctx, out, where)
        batch = torch.broadcast_shapes(mq.shape, lq.shape, mp.shape, lp.shape)[:-1]
        for name, t in (("estimate", est), ("standard_error", se)):
            if type(t) is not torch.Tensor:  # noqa: E721
                ctx.fail(f"{where}: {name} must be a torch.Tensor, got {type_name(t)}")
            if t.shape != batch:
                ctx.fail(f"{where}: {name} has shape {tuple(t.shape)}, expected the batch shape {tuple(batch)}")
            if t.dtype != mq.dtype:
                ctx.fail(f"{where}: {name} has dtype {t.dtype}, expected {mq.dtype} (keep the inputs' dtype)")
            if not bool(torch.isfinite(t).all()):
                ctx.fail(f"{where}: {name} contains NaN or infinity")
        def estimate_of(out) -> torch.Tensor:
            first, _ = expect_pair(ctx, out, where)
            if type(first) is not torch.Tensor or first.shape != est.shape:  # noqa: E721
                ctx.fail(f"{where}: calls with the same arguments returned estimates of different types or shapes")
            return first

        again = estimate_of(call(ctx, fn, mq, lq, mp, lp, S, torch.Generator().manual_seed(seed), where=where))
        if not torch.equal(again, est):
            ctx.fail(f"{where}: two calls with identically seeded generators gave different estimates — "
                     "draw every random number with the `generator` argument")
        other_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))  # unpredictable, != seed
        other_seed += other_seed == seed
        other = estimate_of(call(ctx, fn, mq, lq, mp, lp, S, torch.Generator().manual_seed(other_seed), where=where))
        if torch.equal(other, est):
            ctx.fail(f"{where}: generators with different seeds gave identical estimates — the estimate must "
                     "come from samples drawn with the `generator` argument (not a fixed seed or a closed form)")
        md, ld, pd, pld = (a.double() for a in (mq, lq, mp, lp))
        if z_check:
            exact = gaussian_kl(md, ld, pd, pld)
            # The true standard error, sd_q[log q - log p] / sqrt(S), from a large independent sample.
            ref_gen = torch.Generator().manual_seed(seed + 1)
            eps = torch.randn((20000, *torch.broadcast_shapes(md.shape, ld.shape, pd.shape, pld.shape)),
                              generator=ref_gen, dtype=md.dtype)
            z = md + torch.exp(0.5 * ld) * eps
            ratio = gaussian_log_prob(z, md, ld) - gaussian_log_prob(z, pd, pld)
            true_se = ratio.std(0) / math.sqrt(S)
            z_score = (est.detach().to(torch.float64) - exact) / true_se
            if not bool((z_score.abs() < 6).all()):
                msg = (f"{where}: the estimate is {float(z_score.abs().max()):.1f} standard errors from the exact KL; "
                       "an unbiased estimator is within 6 SE with probability > 0.999999")
                if not ctx.hidden:
                    msg += f"\n  exact {short(exact)}\n  got   {short(est.detach())}"
                    msg += "\n  (are you sampling z from q, and averaging log q(z) - log p(z)?)"
                ctx.fail(msg)
            se_d = se.detach().to(torch.float64)
            if not bool((se_d > 0).all()):
                ctx.fail(f"{where}: the standard error must be positive")
            rel = se_d / true_se
            if not bool(((rel > 0.8) & (rel < 1.25)).all()):
                msg = f"{where}: the standard error is off by a factor of about {float(rel.median()):.3g}"
                if not ctx.hidden:
                    msg += " (it should be the sample standard deviation of log q - log p divided by sqrt(S))"
                ctx.fail(msg)
        # The estimate IS the documented sampling: replay it from the same seed. The task text fixes
        # eps = torch.randn((S, *shape), generator=..., dtype=mean_q.dtype) with shape the broadcast of
        # all four arguments; q's own shape (mean_q with logvar_q) is accepted too where it broadcasts.
        shapes = {torch.broadcast_shapes(mq.shape, lq.shape), torch.broadcast_shapes(mq.shape, lq.shape, mp.shape, lp.shape)}
        e64, s64 = est.detach().to(torch.float64), se.detach().to(torch.float64)
        # float32 sums S terms in float32: allow 2% of a standard error (a different sample is ~1 SE away)
        k_se, k_rel = (1e-6, 1e-9) if mq.dtype == torch.float64 else (2e-2, 1e-5)
        matched = None
        for shape in sorted(shapes, key=len):
            try:
                want_est, want_se = _kl_mc_replay(mq, lq, mp, lp, S, seed, shape)
            except ValueError:  # q's shape alone does not broadcast against p's batch here
                continue
            if bool(((e64 - want_est).abs() <= k_se * want_se + k_rel * want_est.abs()).all()):
                matched = want_se
                break
        if matched is None:
            msg = (f"{where}: the estimate is not the average of log q(z) - log p(z) over the samples the task "
                   "prescribes: eps = torch.randn((S, *shape), generator=generator, dtype=mean_q.dtype, "
                   "device=mean_q.device), one call, shape = the broadcast shape of the four parameters, "
                   "z = mean_q + exp(logvar_q / 2) * eps")
            ctx.fail(msg)
        se_rtol = 1e-6 if mq.dtype == torch.float64 else 1e-3
        if not bool(((s64 - matched).abs() <= se_rtol * matched).all()):
            msg = (f"{where}: the standard error is not the sample standard deviation (unbiased, .std()) of "
                   "log q(z) - log p(z) over those samples divided by sqrt(S)")
            if not ctx.hidden:
                msg += f"\n  expected {short(matched)}\n  got      {short(s64)}"
            ctx.fail(msg)

    if not ctx.hidden:
        # sd of log q - log p is about 7.6 here, so a variance in place of the standard deviation shows
        args = [torch.tensor([0.0, 2.0]), torch.tensor([0.5, 0.0]), torch.tensor([1.5, -1.0]),
                torch.tensor([-1.0, -0.5])]
        run([a.double() for a in args], 20000, "example (D = 2, S = 20000)")
        batch = [torch.stack([a, a + 0.25, a - 0.25]).double() for a in args]
        run(batch, 5000, "a batch of 3 distributions (shape (3, 2), S = 5000)")
        return
    args = [ctx.randn(3, 4), ctx.uniform(-1, 1, 3, 4), ctx.randn(3, 4), ctx.uniform(-1, 1, 3, 4)]
    run(args, 20000, "random batch of 3 (D = 4)")
    args = [ctx.randn(2, 5, 2), ctx.uniform(-1, 1, 2, 5, 2), torch.zeros(2, dtype=torch.float64),
            torch.zeros(2, dtype=torch.float64)]
    run(args, 5000, "batch (2, 5) against a standard-normal p")
    args = [ctx.randn(3), ctx.uniform(-1, 1, 3), ctx.randn(4, 3), ctx.uniform(-1, 1, 4, 3)]
    run(args, 5000, "one q (3,) against a batch of p (4, 3)")
    args = [ctx.randn(3, 1, 2), ctx.uniform(-1, 1, 3, 1, 2), ctx.randn(4, 2), ctx.uniform(-1, 1, 4, 2)]
    run(args, 5000, "q (3, 1, 2) against p (4, 2): both batched, broadcast to (3, 4)")
    args = [ctx.randn(4, 3, dtype=torch.float32), ctx.uniform(-1, 1, 4, 3, dtype=torch.float32),
            ctx.randn(4, 3, dtype=torch.float32), ctx.uniform(-1, 1, 4, 3, dtype=torch.float32)]
    run(args, 20000, "random batch in float32")
    for dtype in (torch.float64, torch.float32):
        args = [_mixed(ctx, 5, 3, ordinary=(-1, 1), extreme=(20, 50), dtype=dtype), _mixed(ctx, 5, 3, extreme=(4, 8), dtype=dtype),
                _mixed(ctx, 5, 3, ordinary=(-1, 1), extreme=(20, 50), dtype=dtype), _mixed(ctx, 5, 3, extreme=(4, 8), dtype=dtype)]
        run(args, 5000, f"far means and very small and very large variances among ordinary ones "
                        f"({str(dtype).replace('torch.', '')})", z_check=False)
    # gradients of the estimate and of the standard error with respect to all four parameters
    # (one shape for all four, so that both sample shapes the task allows draw the same samples)
    args = [ctx.randn(3, 2), ctx.uniform(-1, 1, 3, 2), ctx.randn(3, 2), ctx.uniform(-1, 1, 3, 2)]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))
    S = 2000

    def reference(mq, lq, mp, lp, num_samples, generator, item):
        # its own generator with the same seed: a local answer has used up the one in the arguments
        gen = torch.Generator().manual_seed(seed)
        eps = torch.randn((num_samples, *mq.shape), generator=gen, dtype=mq.dtype)
        z = mq + torch.exp(0.5 * lq) * eps
        f = gaussian_log_prob(z, mq, lq) - gaussian_log_prob(z, mp, lp)
        return f.mean(0) if item == 0 else f.std(0) / math.sqrt(num_samples)

    for item, name in ((0, "the estimate"), (1, "the standard error")):
        expect_same_gradients(ctx, fn, lambda *a, item=item: reference(*a, item),
                              [*args, S, torch.Generator().manual_seed(seed)], wrt=(0, 1, 2, 3),
                              where=f"gradients of {name}", output=item)


def _lg_params(ctx: Ctx, D: int, K: int, dtype=torch.float64, sigma2: tuple[float, float] = (0.2, 1.5)):
    W = ctx.randn(D, K, dtype=dtype)
    b = ctx.randn(D, dtype=dtype)
    lo, hi = math.log(sigma2[0]), math.log(sigma2[1])
    s2 = torch.exp(ctx.uniform(lo, hi)).to(dtype).reshape(())  # log-uniform: small and large noise alike
    return W, b, s2


@CHAPTER.function("lg_posterior", references=("dgm.linear_gaussian:posterior",))
def _lg_posterior(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.linear_gaussian import posterior as ref

    def compare(x, W, b, s2, where, rtol=1e-6, atol=1e-8):
        out = call(ctx, fn, x, W, b, s2, where=where)
        mean, cov = expect_pair(ctx, out, where)
        want_mean, want_cov = ref(x, W, b, s2)
        K = W.shape[1]
        eye = torch.eye(K, dtype=W.dtype)
        wrong_cov = torch.linalg.inv(W.T @ W / s2)  if K <= W.shape[0] else want_cov
        expect_tensor(ctx, cov, want_cov, "the posterior covariance", where, rtol, atol,
                hints=[("the identity (from the prior) is left out of the precision", wrong_cov),
                       ("the precision is returned instead of the covariance", eye + W.T @ W / s2)])
        expect_tensor(ctx, mean, want_mean, "the posterior mean", where, rtol, atol,
                hints=[("the covariance factor S is left out of the mean", (x - b) @ W / s2)])

    if not ctx.hidden:
        W = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, -1.0]], dtype=torch.float64)
        b = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
        s2 = torch.tensor(0.5, dtype=torch.float64)
        x = torch.tensor([[1.0, 2.0, -1.0]], dtype=torch.float64)
        compare(x, W, b, s2, "example (D = 3, K = 2, one observation)")
        compare(torch.stack([x[0], -x[0], torch.zeros(3, dtype=torch.float64)]), W, b, s2, "a batch of 3")
        compare(x[0], W, b, s2, "one observation of shape (D,): the mean has shape (K,)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-4, 1e-5))):
        W, b, s2 = _lg_params(ctx, 6, 3, dtype)
        compare(ctx.randn(7, 6, dtype=dtype), W, b, s2, f"random model D = 6, K = 3 ({dtype})", *tol)
        W, b, s2 = _lg_params(ctx, 4, 2, dtype)
        compare(ctx.randn(4, dtype=dtype), W, b, s2, f"one observation of shape (D,) ({dtype})", *tol)
    W, b, s2 = _lg_params(ctx, 4, 2)
    compare(ctx.randn(2, 3, 4), W, b, s2, "batch shape (2, 3)")
    W, b, s2 = _lg_params(ctx, 2, 1)
    compare(ctx.randn(5, 2), W, b, s2, "a scalar latent (K = 1)")
    W, b, s2 = _lg_params(ctx, 2, 4)
    compare(ctx.randn(5, 2), W, b, s2, "more latents than observed dimensions (D = 2, K = 4)")
    W, b, s2 = _lg_params(ctx, 5, 3, sigma2=(1e-2, 1e2))
    compare(_mixed(ctx, 6, 5, ordinary=(-2, 2), extreme=(100, 1000)), W, b, s2,
            "far observations among ordinary ones, noise variance from 0.01 to 100")
    # the gradient of every differentiable argument: x, W, b and sigma2 (mean); W and sigma2 (cov)
    W, b, s2 = _lg_params(ctx, 5, 3)
    args = [ctx.randn(4, 5), W, b, s2]
    expect_same_gradients(ctx, fn, ref, args, wrt=(0, 1, 2, 3), where="gradients of the mean", output=0)
    expect_same_gradients(ctx, fn, lambda x, W, b, s2: ref(x, W, b, s2)[1], args, wrt=(1, 3),
                          where="gradients of the covariance", output=1)


@CHAPTER.function("lg_elbo", references=("dgm.linear_gaussian:elbo",))
def _lg_elbo(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.linear_gaussian import elbo as ref, log_marginal, posterior

    def spd(K, *batch, dtype=torch.float64, ridge=0.5):
        A = ctx.randn(*batch, K, K, dtype=dtype)
        return A @ A.transpose(-1, -2) / K + ridge * torch.eye(K, dtype=dtype)

    def compare(x, m, S, W, b, s2, where, rtol=1e-6, atol=1e-8):
        got = call(ctx, fn, x, m, S, W, b, s2, where=where)
        want = ref(x, m, S, W, b, s2)
        no_trace = want + torch.einsum("dk,...kl,dl->...", W, S, W) / (2 * s2)
        expect_tensor(ctx, got, want, "the ELBO", where, rtol, atol,
                hints=[("the trace term tr(W S W^T) / (2 sigma^2) is left out", no_trace)])

    if not ctx.hidden:
        W = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, -1.0]], dtype=torch.float64)
        b = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
        s2 = torch.tensor(0.5, dtype=torch.float64)
        x = torch.tensor([[1.0, 2.0, -1.0]], dtype=torch.float64)
        m = torch.tensor([[0.2, -0.4]], dtype=torch.float64)
        S = torch.tensor([[0.6, 0.1], [0.1, 0.3]], dtype=torch.float64)
        compare(x, m, S, W, b, s2, "example (D = 3, K = 2)")
        pm, pS = posterior(x, W, b, s2)
        got = call(ctx, fn, x, pm, pS, W, b, s2, where="q = exact posterior")
        expect_tensor(ctx, got, log_marginal(x, W, b, s2), "ELBO(q = p(z|x))", "with q equal to the exact posterior "
                "the ELBO must equal log p(x)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-4, 1e-4))):
        W, b, s2 = _lg_params(ctx, 5, 3, dtype)
        compare(ctx.randn(6, 5, dtype=dtype), ctx.randn(6, 3, dtype=dtype), spd(3, 6, dtype=dtype), W, b, s2,
                f"random batch ({dtype})", *tol)
        # every broadcast direction between x (..., D), q_mean (..., K) and q_cov (..., K, K) or (K, K)
        W, b, s2 = _lg_params(ctx, 4, 2, dtype)
        compare(ctx.randn(2, 3, 4, dtype=dtype), ctx.randn(2, 3, 2, dtype=dtype), spd(2, dtype=dtype), W, b, s2,
                f"batch (2, 3) with one shared q_cov ({dtype})", *tol)
        compare(ctx.randn(4, dtype=dtype), ctx.randn(5, 2, dtype=dtype), spd(2, 5, dtype=dtype), W, b, s2,
                f"one x (D,) against a batch of 5 q ({dtype})", *tol)
        compare(ctx.randn(3, 1, 4, dtype=dtype), ctx.randn(4, 2, dtype=dtype), spd(2, 4, dtype=dtype), W, b, s2,
                f"x (3, 1, D) against q (4, K): broadcast to (3, 4) ({dtype})", *tol)
        compare(ctx.randn(4, 4, dtype=dtype), ctx.randn(2, dtype=dtype), spd(2, 3, 1, dtype=dtype), W, b, s2,
                f"x (4, D), one q_mean (K,), q_cov (3, 1, K, K): broadcast to (3, 4) ({dtype})", *tol)
    # extremes among ordinary values in one batch: far observations and means, q_cov from 1e-4 I to 1e3 I
    W, b, s2 = _lg_params(ctx, 4, 3, sigma2=(1e-2, 1e2))
    ridge = torch.tensor([1e-4, 0.5, 1e3, 0.5, 2.0, 1e-4], dtype=torch.float64)[torch.randperm(6, generator=ctx.gen)]
    covs = spd(3, 6) * 0.1 + ridge[:, None, None] * torch.eye(3, dtype=torch.float64)
    compare(_mixed(ctx, 6, 4, ordinary=(-2, 2), extreme=(100, 1000)), _mixed(ctx, 6, 3, ordinary=(-2, 2), extreme=(50, 200)),
            covs, W, b, s2, "far observations and means, tiny and huge q_cov, among ordinary ones")
    # the chapter's identity, as an independent value: with q = p(z | x) the ELBO is log p(x)
    W, b, s2 = _lg_params(ctx, 5, 2, sigma2=(1e-2, 1e2))
    x = ctx.randn(4, 5)
    pm, pS = posterior(x, W, b, s2)
    got = call(ctx, fn, x, pm, pS, W, b, s2, where="q = exact posterior")
    expect_tensor(ctx, got, log_marginal(x, W, b, s2), "ELBO(q = p(z|x))",
                  "with q equal to the exact posterior the ELBO must equal log p(x)", 1e-6, 1e-8)
    # the gradient of every differentiable argument: x, q_mean, q_cov, W, b and sigma2
    W, b, s2 = _lg_params(ctx, 4, 2)
    args = [ctx.randn(3, 4), ctx.randn(3, 2), spd(2, 3), W, b, s2]
    expect_same_gradients(ctx, fn, ref, args, wrt=(0, 1, 2, 3, 4, 5),
                          where="gradients with respect to x, q_mean, q_cov, W, b and sigma2")
    args = [ctx.randn(4), ctx.randn(3, 2), spd(2), W, b, s2]
    expect_same_gradients(ctx, fn, ref, args, wrt=(0, 1, 2, 3, 4, 5),
                          where="gradients when one x and one q_cov are shared by a batch of q_mean")


@CHAPTER.function("mixture_responsibilities", references=("dgm.mixtures:posterior", "dgm.mixtures:log_posterior"),
                  allowed=("dgm.distributions",))  # the set-up cell's gaussian_log_prob
def _mixture_resp(ctx: Ctx, fn: Callable, expected: Any) -> None:
    from dgm.mixtures import posterior as ref

    def compare(x, w, m, lv, where, rtol=1e-6, atol=1e-8):
        got = call(ctx, fn, x, w, m, lv, where=where)
        want = ref(x, w, m, lv)
        expect_tensor(ctx, got, want, "the responsibilities", where, rtol, atol,
                hints=[("the mixture weights are ignored", ref(x, torch.full_like(w, 1 / w.numel()), m, lv))])

    if not ctx.hidden:
        w = torch.tensor([0.3, 0.7], dtype=torch.float64)
        m = torch.tensor([[0.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
        lv = torch.tensor([[0.0, 0.0], [-0.5, 0.5]], dtype=torch.float64)
        x = torch.tensor([[1.0, 0.5], [0.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
        compare(x, w, m, lv, "example (K = 2, D = 2, three points)")
        compare(torch.tensor([[40.0, -30.0]], dtype=torch.float64), w, m, lv,
                "a point far from both components (work in log space: logsumexp)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-4, 1e-5))):
        K, D = 4, 3
        w = torch.softmax(ctx.randn(K), 0).to(dtype)
        m, lv = 2 * ctx.randn(K, D, dtype=dtype), ctx.uniform(-1, 1, K, D, dtype=dtype)
        compare(3 * ctx.randn(10, D, dtype=dtype), w, m, lv, f"random mixture ({dtype})", *tol)
        # points very far from every component among ordinary ones, in one batch
        compare(_mixed(ctx, 8, D, ordinary=(-3, 3), extreme=(200, 2000), dtype=dtype), w, m, lv,
                f"far points among ordinary ones ({dtype})", *tol)
        compare(3 * ctx.randn(D, dtype=dtype), w, m, lv, f"one point of shape (D,): the result has shape (K,) ({dtype})",
                *tol)
    w = torch.softmax(ctx.randn(3), 0)
    m, lv = ctx.randn(3, 2), ctx.uniform(-1, 1, 3, 2)
    compare(ctx.randn(2, 4, 2), w, m, lv, "batch shape (2, 4)")
    compare(_mixed(ctx, 6, 2, ordinary=(-2, 2), extreme=(100, 1000)),
            torch.tensor([1e-12, 0.5 - 5e-13, 0.5 - 5e-13], dtype=torch.float64), m, lv,
            "a component with weight 1e-12, far and ordinary points")
    compare(ctx.randn(5, 2), torch.ones(1, dtype=torch.float64), ctx.randn(1, 2), ctx.uniform(-1, 1, 1, 2),
            "one component (K = 1): every responsibility is 1")
    # Every row sums to 1, so the gradient of a plain sum would be 0 for any answer that normalises:
    # the gradients are those of a random weighted sum (expect_same_gradients), which sees each
    # responsibility's dependence on x, the weights, means and log-variances.
    expect_same_gradients(ctx, fn, ref, [_mixed(ctx, 5, 2, ordinary=(-2, 2), extreme=(20, 60)), w, m, lv],
                          wrt=(0, 1, 2, 3), where="gradients")


# --------------------------------------------------------------------------------------------
# Concept checks (the answers live in the hidden test cells, not here)
# --------------------------------------------------------------------------------------------

CHAPTER.concept("concept_vae_sampling", (True, False))
CHAPTER.concept("concept_kl_asymmetry", ("a", "b", "c", "d"))
CHAPTER.concept("concept_two_image_elbo", ("a", "b", "c", "d"))


# --------------------------------------------------------------------------------------------
# Step-checked derivation: KL between two 1-D Gaussians
# --------------------------------------------------------------------------------------------


def kl_symbols() -> tuple:
    """The symbols of the KL derivation: ``(z, mu_q, mu_p, sigma_q, sigma_p)``."""
    import sympy as sp

    return (sp.Symbol("z", real=True), sp.Symbol("mu_q", real=True), sp.Symbol("mu_p", real=True),
            sp.Symbol("sigma_q", positive=True), sp.Symbol("sigma_p", positive=True))


def kl_derivation_start():
    r"""KL(q‖p) = ∫ q(z) [log q(z) − log p(z)] dz for q = N(μ_q, σ_q²), p = N(μ_p, σ_p²), in SymPy."""
    import sympy as sp

    z, mu_q, mu_p, sigma_q, sigma_p = kl_symbols()
    q = sp.exp(-(z - mu_q) ** 2 / (2 * sigma_q ** 2)) / sp.sqrt(2 * sp.pi * sigma_q ** 2)
    p = sp.exp(-(z - mu_p) ** 2 / (2 * sigma_p ** 2)) / sp.sqrt(2 * sp.pi * sigma_p ** 2)
    return sp.Integral(q * (sp.log(q) - sp.log(p)), (z, -sp.oo, sp.oo))


#: the point where ``derivation_report`` evaluates the steps of the KL derivation
KL_REPORT_POINT = {"mu_q": 0.3, "mu_p": -0.7, "sigma_q": 1.3, "sigma_p": 0.8}


def _kl_target(p) -> float:
    from dgm.divergences import gaussian_kl

    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return float(gaussian_kl(t(p["mu_q"]), t(2 * math.log(p["sigma_q"])),
                             t(p["mu_p"]), t(2 * math.log(p["sigma_p"]))))


def kl_integral_rule() -> IntegralRule:
    """How the KL derivation's integrals may be worked out: every integrand is q(z) times
    a + b (z - mu_q)² + c (z - mu_p)², and each of the three parts is kept or replaced by its fact."""
    import sympy as sp

    z, mu_q, mu_p, sigma_q, sigma_p = kl_symbols()
    q = sp.exp(-(z - mu_q) ** 2 / (2 * sigma_q ** 2)) / sp.sqrt(2 * sp.pi * sigma_q ** 2)
    return IntegralRule(
        var="z", limits=(-sp.oo, sp.oo), weight=q,
        parts=((sp.Integer(1), "∫ q dz = 1"), ((z - mu_q) ** 2, "∫ q·(z - mu_q)² dz = sigma_q²"),
               ((z - mu_p) ** 2, "∫ q·(z - mu_p)² dz = sigma_q² + (mu_q - mu_p)²")),
        at=lambda p: [p["mu_q"] + p["sigma_q"] * t for t in (-2.1, -1.2, -0.4, 0.3, 1.0, 1.8)],
        describe="q(z) times a + b·(z - mu_q)² + c·(z - mu_p)² with a, b, c free of z")


def _kl_points(ctx: Ctx, n: int = 6) -> list[dict[str, float]]:
    """``n`` (even, >= 4) points over the parameters' whole domain with every kind present for every seed:
    mu_q above and below mu_p (0.3 to 6 apart, so that the parts of the integrand stay distinguishable),
    sigma_q below and above sigma_p, standard deviations log-uniform from 0.25 to 4."""
    points = []
    for k in range(n):
        mu_p = float(ctx.uniform(-3, 3))
        gap = float(ctx.uniform(0.3, 6)) * (1 if k % 2 == 0 else -1)
        small, large = sorted(float(torch.exp(ctx.uniform(math.log(0.25), math.log(4)))) for _ in range(2))
        sigma_q, sigma_p = (small, large) if (k // 2) % 2 == 0 else (large, small)
        points.append({"mu_q": mu_p + gap, "mu_p": mu_p, "sigma_q": sigma_q, "sigma_p": sigma_p})
    return points


@CHAPTER.derivation("kl_derivation_steps", start=kl_derivation_start, point=KL_REPORT_POINT)
def _kl_derivation(ctx: Ctx, steps: Any, expected: Any) -> None:
    z, *params = kl_symbols()
    if ctx.hidden:
        points = _kl_points(ctx)
    else:
        points = [KL_REPORT_POINT, {"mu_q": -1.1, "mu_p": 0.4, "sigma_q": 0.6, "sigma_p": 1.7},
                  {"mu_q": 2.5, "mu_p": -1.5, "sigma_q": 3.0, "sigma_p": 0.3}]
    expect_derivation(ctx, steps, start=kl_derivation_start(), symbols=(z, *params), points=points,
                      target=_kl_target, start_name="kl_derivation_start() (the KL as an integral)", not_in_result=(z,),
                      integrals=kl_integral_rule())
