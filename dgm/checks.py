"""The exercise-check API: the one function every exercise test cell calls.

A test cell reads ``check("gaussian_kl_diag", gaussian_kl_diag)``: the task's checks call the
student's function on inputs, compare with ``dgm``'s reference implementation (or, for a
derivation, with an independent numerical route), and raise :class:`CheckFailed` (an
``AssertionError``) with a message saying which property failed. Keeping every comparison here,
rather than spelled out in each notebook, means judgement can later move out of the student's
kernel by changing this module alone.

Two suites per task:

* ``suite="visible"`` — fixed, documented inputs; failure messages show the numbers and, where
  the wrong answer matches a known slip (arguments swapped, a missing ½...), say so.
* ``suite="hidden"`` — inputs drawn at grading time (fresh seed), other batch shapes, float32
  and float64, edge cases, gradients. Messages name the property, never the values.

Concept checks pass ``expected=`` from the (hidden) test cell; the visible suite only checks that
the answer is one of the allowed options.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["check", "CheckFailed", "TASKS", "derivation_report"]

VISIBLE_SEED = 20261123


class CheckFailed(AssertionError):
    """A property of the student's answer does not hold; the message says which."""


@dataclass(frozen=True)
class _Ctx:
    task: str
    hidden: bool
    gen: torch.Generator

    def fail(self, message: str) -> None:
        raise CheckFailed(f"[{self.task}] {message}")

    def randn(self, *shape: int, dtype=torch.float64) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.gen, dtype=torch.float64).to(dtype)

    def uniform(self, low: float, high: float, *shape: int, dtype=torch.float64) -> torch.Tensor:
        u = torch.rand(tuple(shape), generator=self.gen, dtype=torch.float64)
        return (low + (high - low) * u).to(dtype)


# --------------------------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------------------------


def _call(ctx: _Ctx, fn: Callable, *args: Any, where: str) -> Any:
    """Call the student's function on copies of ``args``; turn exceptions into failures."""
    if not callable(fn):
        ctx.fail(f"expected a function, got {type(fn).__name__}")
    copies = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        out = fn(*args)
    except NotImplementedError:
        ctx.fail("not implemented yet: replace `raise NotImplementedError()` with your code")
    except CheckFailed:
        raise
    except Exception as err:  # noqa: BLE001 - any student error becomes a readable failure
        ctx.fail(f"{where}: your function raised {type(err).__name__}: {err}")
    for a, c in zip(args, copies):
        if isinstance(a, torch.Tensor) and (a.shape != c.shape or not torch.equal(a.detach(), c)):
            ctx.fail(f"{where}: your function modified one of its input tensors in place; work on copies")
    return out


def _describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {str(t.dtype).replace('torch.', '')}"


def _tensor(ctx: _Ctx, got: Any, expected: torch.Tensor, what: str, where: str,
            rtol: float = 1e-6, atol: float = 1e-8, hints: Sequence[tuple[str, torch.Tensor]] = ()) -> None:
    """Exact type, shape, dtype, device, finiteness, then closeness to ``expected``."""
    if type(got) is not torch.Tensor:  # noqa: E721 - exact type: subclasses could fake comparisons
        ctx.fail(f"{where}: {what} must be a torch.Tensor, got {type(got).__name__}")
    if got.shape != expected.shape:
        ctx.fail(f"{where}: {what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    if got.dtype != expected.dtype:
        ctx.fail(f"{where}: {what} has dtype {got.dtype}, expected {expected.dtype} (keep the inputs' dtype)")
    if got.device != expected.device:
        ctx.fail(f"{where}: {what} is on {got.device}, expected {expected.device} (keep the inputs' device)")
    got = got.detach()
    expected = expected.detach()
    if not bool(torch.isfinite(got).all()) and bool(torch.isfinite(expected).all()):
        ctx.fail(f"{where}: {what} contains NaN or infinity where the correct value is finite")
    if bool(torch.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)):
        return
    message = f"{where}: {what} is wrong"
    for label, alt in hints:
        if alt.shape == got.shape and bool(torch.allclose(got, alt.to(got.dtype), rtol=rtol, atol=atol)):
            message += f" — it matches what you get if {label}"
            break
    if not ctx.hidden:
        message += f"\n  expected {_short(expected)}\n  got      {_short(got)}"
    ctx.fail(message)


def _short(t: torch.Tensor) -> str:
    flat = t.flatten()
    body = ", ".join(f"{float(v):.6g}" for v in flat[:6])
    return f"[{body}{', ...' if flat.numel() > 6 else ''}] ({_describe(t)})"


def _pair(ctx: _Ctx, out: Any, where: str) -> tuple[Any, Any]:
    if not isinstance(out, tuple) or len(out) != 2:
        ctx.fail(f"{where}: return a tuple of two tensors, got {type(out).__name__}"
                 + (f" of length {len(out)}" if isinstance(out, tuple) else ""))
    return out


def _grad_matches(ctx: _Ctx, fn: Callable, ref: Callable, args: list[torch.Tensor], wrt: Sequence[int],
                  where: str) -> None:
    """The student's output is differentiable and its gradients equal the reference's."""
    def grads(f):
        leaves = [a.detach().clone().requires_grad_(i in wrt) for i, a in enumerate(args)]
        out = f(*leaves)
        if isinstance(out, tuple):
            out = out[0]
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return None
        gs = torch.autograd.grad(out.sum(), [leaves[i] for i in wrt], allow_unused=True)
        return gs
    try:
        mine = grads(fn)
    except NotImplementedError:
        ctx.fail("not implemented yet")
    except Exception as err:  # noqa: BLE001
        ctx.fail(f"{where}: your function failed under autograd: {type(err).__name__}: {err}")
    if mine is None:
        ctx.fail(f"{where}: the result does not depend differentiably on the inputs "
                 "(did you use .item(), numpy, or .detach()? keep everything in torch)")
    theirs = grads(ref)
    for i, g, r in zip(wrt, mine, theirs):
        if g is None or not bool(torch.allclose(g, r, rtol=1e-6, atol=1e-8)):
            ctx.fail(f"{where}: the gradient with respect to argument {i + 1} is wrong")


# --------------------------------------------------------------------------------------------
# Chapter 1 tasks
# --------------------------------------------------------------------------------------------


def _kl_diag(ctx: _Ctx, fn: Callable, expected: Any) -> None:
    from dgm.divergences import gaussian_kl as ref

    def compare(args, where, rtol=1e-6, atol=1e-8):
        got = _call(ctx, fn, *args, where=where)
        want = ref(*args)
        hints = [("the arguments of q and p are swapped (KL is not symmetric)", ref(args[2], args[3], args[0], args[1])),
                 ("the factor 1/2 is missing", 2 * want),
                 ("variances are used where log-variances are given", _kl_var_slip(*args))]
        _tensor(ctx, got, want, "the KL", where, rtol=rtol, atol=atol, hints=hints)

    if not ctx.hidden:
        mq = torch.tensor([[0.0, 1.0, -0.5]], dtype=torch.float64)
        lq = torch.tensor([[0.0, -1.0, 0.5]], dtype=torch.float64)
        mp = torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64)
        lp = torch.tensor([[0.3, 0.0, -0.2]], dtype=torch.float64)
        compare([mq, lq, mp, lp], "example 1 (shape (1, 3))")
        compare([mq, lq, mq, lq], "KL(q || q) must be 0")
        compare([mq.expand(4, 3), lq.expand(4, 3), mp, lp], "a batch of 4 against one p (broadcasting)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-4, 1e-5))):
        B, D = 5, 7
        args = [ctx.randn(B, D, dtype=dtype), ctx.uniform(-2, 2, B, D, dtype=dtype),
                ctx.randn(B, D, dtype=dtype), ctx.uniform(-2, 2, B, D, dtype=dtype)]
        compare(args, f"random batch ({_describe(args[0])})", *tol)
    args = [ctx.randn(3, 4, 2), ctx.uniform(-1, 1, 3, 4, 2), torch.zeros(2, dtype=torch.float64),
            torch.zeros(2, dtype=torch.float64)]
    compare(args, "batch (3, 4) against a standard-normal prior of shape (2,)")
    args = [ctx.randn(6, 1), ctx.uniform(-8, 8, 6, 1), ctx.randn(6, 1), ctx.uniform(-8, 8, 6, 1)]
    compare(args, "very small and very large variances (log-variances in [-8, 8])")
    args = [ctx.randn(4, 3), ctx.uniform(-1, 1, 4, 3), ctx.randn(4, 3), ctx.uniform(-1, 1, 4, 3)]
    _grad_matches(ctx, fn, ref, args, wrt=(0, 1, 2, 3), where="gradients")


def _kl_var_slip(mq, lq, mp, lp):
    """KL computed by someone who treats the log-variance arguments as variances."""
    vq, vp = lq.abs() + 1e-12, lp.abs() + 1e-12
    return 0.5 * (torch.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1).sum(-1)


def _kl_mc(ctx: _Ctx, fn: Callable, expected: Any) -> None:
    from dgm.distributions import gaussian_log_prob
    from dgm.divergences import gaussian_kl, monte_carlo_mean

    def run(args, S, where):
        mq, lq, mp, lp = args
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))
        out = _call(ctx, fn, mq, lq, mp, lp, S, torch.Generator().manual_seed(seed), where=where)
        est, se = _pair(ctx, out, where)
        batch = torch.broadcast_shapes(mq.shape, lq.shape, mp.shape, lp.shape)[:-1]
        for name, t in (("estimate", est), ("standard_error", se)):
            if type(t) is not torch.Tensor:  # noqa: E721
                ctx.fail(f"{where}: {name} must be a torch.Tensor, got {type(t).__name__}")
            if t.shape != batch:
                ctx.fail(f"{where}: {name} has shape {tuple(t.shape)}, expected the batch shape {tuple(batch)}")
            if not bool(torch.isfinite(t).all()):
                ctx.fail(f"{where}: {name} contains NaN or infinity")
        again = _call(ctx, fn, mq, lq, mp, lp, S, torch.Generator().manual_seed(seed), where=where)
        if not (isinstance(again, tuple) and len(again) == 2 and torch.equal(again[0], est)):
            ctx.fail(f"{where}: two calls with identically seeded generators gave different estimates — "
                     "draw every random number with the `generator` argument")
        exact = gaussian_kl(mq, lq, mp, lp)
        # The true standard error, sd_q[log q - log p] / sqrt(S), from a large independent sample.
        ref_gen = torch.Generator().manual_seed(seed + 1)
        eps = torch.randn((20000, *torch.broadcast_shapes(mq.shape, lq.shape)), generator=ref_gen,
                          dtype=mq.dtype)
        z = mq + torch.exp(0.5 * lq) * eps
        ratio = gaussian_log_prob(z, mq, lq) - gaussian_log_prob(z, mp, lp)
        true_se = ratio.std(0) / math.sqrt(S)
        z_score = (est.detach().to(torch.float64) - exact) / true_se
        if not bool((z_score.abs() < 6).all()):
            msg = (f"{where}: the estimate is {float(z_score.abs().max()):.1f} standard errors from the exact KL; "
                   "an unbiased estimator is within 6 SE with probability > 0.999999")
            if not ctx.hidden:
                msg += f"\n  exact {_short(exact)}\n  got   {_short(est.detach())}"
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
    if not ctx.hidden:
        args = [torch.tensor([0.0, 1.0]), torch.tensor([0.0, -1.0]), torch.tensor([1.0, 0.0]),
                torch.tensor([0.5, 0.0])]
        run([a.double() for a in args], 20000, "example (D = 2, S = 20000)")
        return
    args = [ctx.randn(3, 4), ctx.uniform(-1, 1, 3, 4), ctx.randn(3, 4), ctx.uniform(-1, 1, 3, 4)]
    run(args, 20000, "random batch of 3 (D = 4)")
    args = [ctx.randn(2, 5, 2), ctx.uniform(-1, 1, 2, 5, 2), torch.zeros(2, dtype=torch.float64),
            torch.zeros(2, dtype=torch.float64)]
    run(args, 5000, "batch (2, 5) against a standard-normal p")


def _lg_params(ctx: _Ctx, D: int, K: int, dtype=torch.float64):
    W = ctx.randn(D, K, dtype=dtype)
    b = ctx.randn(D, dtype=dtype)
    sigma2 = ctx.uniform(0.2, 1.5, dtype=dtype).reshape(())
    return W, b, sigma2


def _lg_posterior(ctx: _Ctx, fn: Callable, expected: Any) -> None:
    from dgm.linear_gaussian import posterior as ref

    def compare(x, W, b, s2, where, rtol=1e-6, atol=1e-8):
        out = _call(ctx, fn, x, W, b, s2, where=where)
        mean, cov = _pair(ctx, out, where)
        want_mean, want_cov = ref(x, W, b, s2)
        K = W.shape[1]
        eye = torch.eye(K, dtype=W.dtype)
        wrong_cov = torch.linalg.inv(W.T @ W / s2)  if K <= W.shape[0] else want_cov
        _tensor(ctx, cov, want_cov, "the posterior covariance", where, rtol, atol,
                hints=[("the identity (from the prior) is left out of the precision", wrong_cov),
                       ("the precision is returned instead of the covariance", eye + W.T @ W / s2)])
        _tensor(ctx, mean, want_mean, "the posterior mean", where, rtol, atol,
                hints=[("the covariance factor S is left out of the mean", (x - b) @ W / s2)])

    if not ctx.hidden:
        W = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, -1.0]], dtype=torch.float64)
        b = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
        s2 = torch.tensor(0.5, dtype=torch.float64)
        x = torch.tensor([[1.0, 2.0, -1.0]], dtype=torch.float64)
        compare(x, W, b, s2, "example (D = 3, K = 2, one observation)")
        compare(torch.stack([x[0], -x[0], torch.zeros(3, dtype=torch.float64)]), W, b, s2, "a batch of 3")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-4, 1e-5))):
        W, b, s2 = _lg_params(ctx, 6, 3, dtype)
        compare(ctx.randn(7, 6, dtype=dtype), W, b, s2, f"random model D = 6, K = 3 ({dtype})", *tol)
    W, b, s2 = _lg_params(ctx, 4, 2)
    compare(ctx.randn(2, 3, 4), W, b, s2, "batch shape (2, 3)")
    W, b, s2 = _lg_params(ctx, 2, 1)
    compare(ctx.randn(5, 2), W, b, s2, "a scalar latent (K = 1)")


def _lg_elbo(ctx: _Ctx, fn: Callable, expected: Any) -> None:
    from dgm.linear_gaussian import elbo as ref, log_marginal, posterior

    def spd(K, *batch, dtype=torch.float64):
        A = ctx.randn(*batch, K, K, dtype=dtype)
        return A @ A.transpose(-1, -2) / K + 0.5 * torch.eye(K, dtype=dtype)

    def compare(x, m, S, W, b, s2, where, rtol=1e-6, atol=1e-8):
        got = _call(ctx, fn, x, m, S, W, b, s2, where=where)
        want = ref(x, m, S, W, b, s2)
        no_trace = want + torch.einsum("dk,...kl,dl->...", W, S, W) / (2 * s2)
        _tensor(ctx, got, want, "the ELBO", where, rtol, atol,
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
        got = _call(ctx, fn, x, pm, pS, W, b, s2, where="q = exact posterior")
        _tensor(ctx, got, log_marginal(x, W, b, s2), "ELBO(q = p(z|x))", "with q equal to the exact posterior "
                "the ELBO must equal log p(x)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-4, 1e-4))):
        W, b, s2 = _lg_params(ctx, 5, 3, dtype)
        compare(ctx.randn(6, 5, dtype=dtype), ctx.randn(6, 3, dtype=dtype), spd(3, 6, dtype=dtype), W, b, s2,
                f"random batch ({dtype})", *tol)
    W, b, s2 = _lg_params(ctx, 4, 2)
    compare(ctx.randn(2, 3, 4), ctx.randn(2, 3, 2), spd(2), W, b, s2, "batch (2, 3) with one shared q_cov")
    args = [ctx.randn(3, 4), ctx.randn(3, 2), spd(2, 3), W, b, s2]
    _grad_matches(ctx, fn, ref, args, wrt=(1, 2), where="gradients with respect to q_mean and q_cov")


def _mixture_resp(ctx: _Ctx, fn: Callable, expected: Any) -> None:
    from dgm.mixtures import posterior as ref

    def compare(x, w, m, lv, where, rtol=1e-6, atol=1e-8):
        got = _call(ctx, fn, x, w, m, lv, where=where)
        want = ref(x, w, m, lv)
        _tensor(ctx, got, want, "the responsibilities", where, rtol, atol,
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
    w = torch.softmax(ctx.randn(3), 0)
    m, lv = ctx.randn(3, 2), ctx.uniform(-1, 1, 3, 2)
    compare(ctx.randn(2, 4, 2), w, m, lv, "batch shape (2, 4)")
    compare(1e3 * ctx.randn(5, 2), w, m, lv, "points very far from every component")
    compare(ctx.randn(5, 2), torch.tensor([1e-12, 0.5 - 5e-13, 0.5 - 5e-13], dtype=torch.float64), m, lv,
            "a component with weight 1e-12")


# --------------------------------------------------------------------------------------------
# Concept checks and SymPy derivations
# --------------------------------------------------------------------------------------------

_CONCEPT_OPTIONS: dict[str, tuple] = {
    "concept_vae_sampling": (True, False),
    "concept_kl_asymmetry": ("a", "b", "c", "d"),
    "concept_two_image_elbo": ("a", "b", "c", "d"),
}


def _concept(task: str) -> Callable:
    options = _CONCEPT_OPTIONS[task]

    def run(ctx: _Ctx, answer: Any, expected: Any) -> None:
        if answer is None or answer is ...:
            ctx.fail("no answer yet: set the variable to one of " + ", ".join(map(repr, options)))
        if type(answer) not in {type(o) for o in options} or answer not in options:
            ctx.fail(f"the answer must be one of {', '.join(map(repr, options))}; got {answer!r}")
        if ctx.hidden:
            if expected is None:
                raise ValueError(f"check({task!r}, ..., suite='hidden') needs expected=")
            if answer != expected:
                ctx.fail("the answer is not correct")
    return run


def _kl_derivation(ctx: _Ctx, steps: Any, expected: Any) -> None:
    import sympy as sp

    from dgm.divergences import gaussian_kl

    syms = _kl_symbols()
    start = kl_derivation_start()
    if steps is None or steps is ...:
        ctx.fail("no derivation yet: fill in the list of steps")
    if not isinstance(steps, (list, tuple)) or not all(isinstance(s, sp.Expr) for s in steps):
        ctx.fail("the derivation must be a list of SymPy expressions")
    if len(steps) < 3:
        ctx.fail(f"give at least 3 steps (the start, at least one intermediate step, the result); got {len(steps)}")
    allowed = set(syms.values())
    for i, s in enumerate(steps):
        extra = s.free_symbols - allowed
        if extra:
            ctx.fail(f"step {i} uses symbols outside the exercise's: {sorted(map(str, extra))}")
    points = _kl_points(ctx)
    values = [[_numeric(s, p) for p in points] for s in steps]
    start_vals = [_numeric(start, p) for p in points]
    if not _close(values[0], start_vals):
        ctx.fail("step 0 must be the starting expression KL_START (the KL as an integral)")
    for i in range(1, len(steps)):
        if not _close(values[i], values[i - 1]):
            ctx.fail(f"step {i} is not equal to step {i - 1}" + ("" if ctx.hidden else
                     f": at {_fmt_point(points[0], syms)} they are {values[i - 1][0]:.10g} and {values[i][0]:.10g}"))
    last = steps[-1]
    if last.has(sp.Integral) or syms["z"] in last.free_symbols:
        ctx.fail("the last step must be a closed form: no integral and no z")
    for p, v in zip(points, values[-1]):
        mq = torch.tensor([p["mu_q"]], dtype=torch.float64)
        mp = torch.tensor([p["mu_p"]], dtype=torch.float64)
        lq = torch.tensor([2 * math.log(p["sigma_q"])], dtype=torch.float64)
        lp = torch.tensor([2 * math.log(p["sigma_p"])], dtype=torch.float64)
        if not math.isclose(v, float(gaussian_kl(mq, lq, mp, lp)), rel_tol=1e-7, abs_tol=1e-9):
            ctx.fail("the final expression is not KL(q || p)")


def _kl_symbols() -> dict:
    import sympy as sp

    return {
        "z": sp.Symbol("z", real=True),
        "mu_q": sp.Symbol("mu_q", real=True),
        "mu_p": sp.Symbol("mu_p", real=True),
        "sigma_q": sp.Symbol("sigma_q", positive=True),
        "sigma_p": sp.Symbol("sigma_p", positive=True),
    }


def kl_derivation_start():
    r"""The start of the step-checked derivation: KL(q‖p) = ∫ q(z) [log q(z) − log p(z)] dz for
    q = N(μ_q, σ_q²), p = N(μ_p, σ_p²), as a SymPy expression in the symbols of :func:`kl_symbols`."""
    import sympy as sp

    s = _kl_symbols()
    z = s["z"]
    q = sp.exp(-(z - s["mu_q"]) ** 2 / (2 * s["sigma_q"] ** 2)) / sp.sqrt(2 * sp.pi * s["sigma_q"] ** 2)
    p = sp.exp(-(z - s["mu_p"]) ** 2 / (2 * s["sigma_p"] ** 2)) / sp.sqrt(2 * sp.pi * s["sigma_p"] ** 2)
    return sp.Integral(q * (sp.log(q) - sp.log(p)), (z, -sp.oo, sp.oo))


def kl_symbols() -> tuple:
    """The symbols of the KL derivation: ``(z, mu_q, mu_p, sigma_q, sigma_p)``."""
    s = _kl_symbols()
    return s["z"], s["mu_q"], s["mu_p"], s["sigma_q"], s["sigma_p"]


def _kl_points(ctx: _Ctx) -> list[dict[str, float]]:
    if not ctx.hidden:
        return [{"mu_q": 0.3, "mu_p": -0.7, "sigma_q": 1.3, "sigma_p": 0.8},
                {"mu_q": -1.1, "mu_p": 0.4, "sigma_q": 0.6, "sigma_p": 1.7}]
    pts = []
    for _ in range(3):
        u = torch.rand(4, generator=ctx.gen, dtype=torch.float64)
        pts.append({"mu_q": float(4 * u[0] - 2), "mu_p": float(4 * u[1] - 2),
                    "sigma_q": float(0.4 + 1.6 * u[2]), "sigma_p": float(0.4 + 1.6 * u[3])})
    return pts


def _fmt_point(p: dict[str, float], syms: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in p.items())


def _numeric(expr, point: dict[str, float]) -> float:
    """Evaluate a SymPy expression at ``point``; integrals by adaptive quadrature (scipy.quad)."""
    import sympy as sp
    from scipy.integrate import quad

    subs = {sym: point[name] for name, sym in _kl_symbols().items() if name in point}
    e = expr.subs(subs)

    def integrate(node):
        if len(node.limits) != 1 or len(node.limits[0]) != 3:
            raise CheckFailed("integrals must be definite single integrals, e.g. Integral(f, (z, -oo, oo))")
        var, a, b = node.limits[0]
        f = sp.lambdify(var, sp.expand_log(node.function, force=True), "math")

        def safe(t):
            try:
                v = f(t)
            except (OverflowError, ValueError, ZeroDivisionError):
                return 0.0
            return 0.0 if math.isnan(v) else v
        val, _ = quad(safe, float(a), float(b), epsabs=1e-12, epsrel=1e-11, limit=200)
        return sp.Float(val)

    e = e.replace(lambda n: isinstance(n, sp.Integral), integrate)
    try:
        return float(sp.N(e))
    except (TypeError, ValueError):
        return float("nan")


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(math.isfinite(x) and math.isfinite(y) and math.isclose(x, y, rel_tol=1e-7, abs_tol=1e-9)
               for x, y in zip(a, b))


def derivation_report(steps: Sequence) -> None:
    """Print each step's value at a test point and whether it equals the previous step.

    A debugging aid for the step-checked derivation: the first step that changes value is
    where the algebra went wrong.
    """
    point = {"mu_q": 0.3, "mu_p": -0.7, "sigma_q": 1.3, "sigma_p": 0.8}
    prev = None
    for i, s in enumerate(steps):
        v = _numeric(s, point)
        flag = "" if prev is None else ("  = previous" if _close([v], [prev]) else "  <-- differs from the previous step")
        print(f"step {i}: {v:.10g}{flag}")
        prev = v


# --------------------------------------------------------------------------------------------
# Registry and entry point
# --------------------------------------------------------------------------------------------

TASKS: dict[str, Callable[[_Ctx, Any, Any], None]] = {
    "gaussian_kl_diag": _kl_diag,
    "kl_monte_carlo": _kl_mc,
    "lg_posterior": _lg_posterior,
    "lg_elbo": _lg_elbo,
    "mixture_responsibilities": _mixture_resp,
    "kl_derivation_steps": _kl_derivation,
    **{name: _concept(name) for name in _CONCEPT_OPTIONS},
}


def check(task: str, answer: Any, *, suite: str = "visible", expected: Any = None) -> None:
    """Run the checks of ``task`` on the student's ``answer``; raise :class:`CheckFailed` if one fails.

    Args:
        task: the task's name (the answer cell's grade id), e.g. ``"gaussian_kl_diag"``.
        answer: the student's function, value or list of derivation steps.
        suite: ``"visible"`` (fixed inputs, detailed messages) or ``"hidden"`` (inputs drawn now).
        expected: the correct value, for concept checks in the hidden suite only.

    Returns:
        None. Prints one line when every check passed.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
    if suite not in ("visible", "hidden"):
        raise ValueError(f"suite must be 'visible' or 'hidden'; got {suite!r}")
    seed = VISIBLE_SEED if suite == "visible" else secrets.randbits(62)
    ctx = _Ctx(task=task, hidden=suite == "hidden", gen=torch.Generator().manual_seed(seed))
    TASKS[task](ctx, answer, expected)
    print(f"{task}: all {suite} checks passed")
