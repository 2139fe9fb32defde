"""Checks of Exercise 4 (Chapter 4: normalizing flows and autoregressive models).

Notation (the chapter's): a flow f maps data x to the base variable z, and
log p_X(x) = log p_Z(f(x)) + log|det ∂f/∂x|. An affine coupling with a ``(D,)`` 0/1 mask m
(1 = passive, copied) and a conditioner (s, t) = scale_shift(x ⊙ m) is
y = m ⊙ x + (1 − m) ⊙ (x ⊙ e^{s} + t), log|det ∂y/∂x| = Σ_d (1 − m_d) s_d. MADE gives input d the
degree order[d] + 1; a hidden weight k ← j is kept iff m(k) ≥ m(j), an output weight d ← k iff
m(d) > m(k) (strict).

The references are written out here in plain, differentiable torch; ``tests/test_checks_ch04.py``
checks them against :mod:`dgm.flows` (``AffineCoupling``, ``rescaled_log_prob``, ``bits_per_dim``,
``made_masks``), autograd's log|det| of the Jacobian and scipy, so the expected values do not come
from one code path alone. This module never imports :mod:`dgm.flows` (hidden in the sandbox).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import
from coursework._core import Ctx, call, expect_derivation, expect_same_gradients, expect_tensor, type_name
from coursework._core import nth_output as _nth, expect_tuple as _expect_tuple

#: what the exercise notebook imports in its set-up cell (one line: ``from coursework.ch04 import ...``)
__all__ = ["check", "derivation_report", "scale_shift_net", "lognormal_symbols", "lognormal_derivation_start",
           "LOGNORMAL_REPORT_POINT"]

CHAPTER = Chapter(
    number=4,
    assignment="04-flows",
    title="Normalizing flows and autoregressive models",
    forbidden=("dgm.flows",),  # the reference implementations Exercise 4's answers re-build
)

#: prints each derivation step's value at a point (default: this chapter's report point)
derivation_report = CHAPTER.derivation_report

_F32 = (1e-5, 1e-5)   # float32 tolerances (rtol, atol) against a float64 reference
_F64 = (1e-9, 1e-10)


# --------------------------------------------------------------------------------------------
# The conditioner handed to the answers (a factory: a grading sandbox rebuilds the same one)
# --------------------------------------------------------------------------------------------


class _ScaleShift:
    """(s, t) = scale_shift(u) for u ``(..., D)``: a one-hidden-layer tanh network, s soft-clamped,
    s = c·tanh(ŝ/c). The weights are float64; each call works in the input's dtype."""

    def __init__(self, dim: int, seed: int, gain: float, clamp: float, bias: float = 0.0) -> None:
        g = torch.Generator().manual_seed(int(seed))
        hidden = 8
        self.w1 = torch.randn(dim, hidden, generator=g, dtype=torch.float64) / math.sqrt(dim)
        self.b1 = 0.3 * torch.randn(hidden, generator=g, dtype=torch.float64)
        self.ws = gain * torch.randn(hidden, dim, generator=g, dtype=torch.float64) / math.sqrt(hidden)
        self.bs = 0.3 * torch.randn(dim, generator=g, dtype=torch.float64) + float(bias)
        self.wt = torch.randn(hidden, dim, generator=g, dtype=torch.float64)
        self.bt = torch.randn(dim, generator=g, dtype=torch.float64)
        self.clamp = float(clamp)

    def __call__(self, u):
        h = torch.tanh(u @ self.w1.to(u.dtype) + self.b1.to(u.dtype))
        s = self.clamp * torch.tanh((h @ self.ws.to(u.dtype) + self.bs.to(u.dtype)) / self.clamp)
        t = h @ self.wt.to(u.dtype) + self.bt.to(u.dtype)
        return s, t


def scale_shift_net(dim: int, seed: int = 0, gain: float = 1.0, clamp: float = 2.5, bias: float = 0.0) -> _ScaleShift:
    """The checks' conditioner for a ``(..., dim)`` input: ``net(u)`` returns ``(s, t)``, each ``(..., dim)``,
    in u's dtype; |s| < ``clamp``; ``gain`` scales the raw log-scale (a large gain puts s near ±clamp), ``bias``
    shifts it (a large positive bias puts every s near +clamp, so the log-scales add up to large values).
    A factory (see :mod:`coursework.wire`): a grading sandbox builds the same network."""
    from coursework.wire import factory_object

    return factory_object(_ScaleShift(dim, seed, gain, clamp, bias), "coursework.ch04:scale_shift_net", int(dim),
                          int(seed), float(gain), float(clamp), float(bias))


def _net(ctx: Ctx, dim: int, gain: float = 1.0, bias: float = 0.0) -> _ScaleShift:
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))
    return scale_shift_net(dim, seed, gain, 2.5, bias)


# --------------------------------------------------------------------------------------------
# The references (differentiable)
# --------------------------------------------------------------------------------------------


def ref_coupling_forward(x, mask, scale_shift):
    """(y, log|det ∂y/∂x|) of the affine coupling, shapes ``(..., D)`` and ``(...)``."""
    s, t = scale_shift(x * mask)
    y = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return y, ((1 - mask) * s).sum(-1)


def ref_coupling_inverse(y, mask, scale_shift):
    """(x, log|det ∂x/∂y|) of the inverse coupling: x_b = (y_b − t) e^{−s}, log-det −Σ (1 − m) s."""
    s, t = scale_shift(y * mask)
    x = mask * y + (1 - mask) * (y - t) * torch.exp(-s)
    return x, -((1 - mask) * s).sum(-1)


def ref_rescaled_bits_per_dim(log_prob, num_dims, scale):
    """−(log p + D log|a|) / (D ln 2): bits per dimension on the original scale of data rescaled by x̃ = a·x + b."""
    return -(log_prob + num_dims * math.log(abs(scale))) / (num_dims * math.log(2.0))


def ref_made_masks(order, hidden_degrees):
    """MADE's masks ``(out, in)``, float64: hidden [m(k) ≥ m(j)], output [m(d) > m(k)], m(d) = order[d] + 1."""
    m_in = order.to(torch.int64) + 1
    degrees = [m_in, *(h.to(torch.int64) for h in hidden_degrees)]
    masks = [(d_out[:, None] >= d_in[None, :]).to(torch.float64) for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    masks.append((m_in[:, None] > degrees[-1][None, :]).to(torch.float64))
    return masks


def log_abs_det_jacobian(fn: Callable, x: torch.Tensor) -> torch.Tensor:
    """log|det ∂fn(x)/∂x| row by row from ``torch.autograd.functional.jacobian`` (x ``(N, D)``, float64):
    an independent route to a coupling's log-determinant."""
    rows = []
    for row in x.reshape(-1, x.shape[-1]):
        J = torch.autograd.functional.jacobian(fn, row)
        rows.append(torch.linalg.slogdet(J)[1])
    return torch.stack(rows).reshape(x.shape[:-1])


def _in_dtype(net: Callable, dtype) -> Callable:
    """``net`` evaluated in ``dtype`` (the answer's), its outputs in float64: the conditioner's rounding in
    float32 is the answer's too (an input near 1e3 can cancel inside it), the rest of the reference is float64."""
    return lambda u: tuple(v.double() for v in net(u.to(dtype)))


def _mask(ctx: Ctx, D: int, dtype=torch.float64) -> torch.Tensor:
    """A random (D,) 0/1 mask with at least one passive and one active coordinate (D ≥ 2)."""
    k = int(torch.randint(1, D, (1,), generator=ctx.gen))
    perm = torch.randperm(D, generator=ctx.gen)
    m = torch.zeros(D, dtype=dtype)
    m[perm[:k]] = 1.0
    return m


def _mixed(ctx: Ctx, *batch: int, D: int, big: float = 1e3) -> torch.Tensor:
    """``(*batch, D)`` ordinary points with two rows of entries near ±big (both signs) at random positions."""
    x = ctx.randn(*batch, D)
    flat = x.reshape(-1, D)
    rows = torch.randperm(flat.shape[0], generator=ctx.gen)[:2]
    sign = torch.tensor([1.0, -1.0], dtype=torch.float64)[:, None]
    flat[rows] = sign * ctx.uniform(0.5 * big, big, 2, D)
    return flat.reshape(x.shape)


# --------------------------------------------------------------------------------------------
# Task 1: the affine coupling, forward
# --------------------------------------------------------------------------------------------


def _coupling_variants(x, mask, net):
    """The values of the known slips of the forward coupling (float64)."""
    s, t = net(x * mask)
    su, tu = net(x)
    inv = 1 - mask
    return [
        ("the log-determinant sums s over every coordinate, the passive ones too (only the transformed ones, "
         "(1 − m) ⊙ s, scale anything)", None, (s.sum(-1))),
        ("the conditioner is fed x instead of the passive part x ⊙ m (then y_b depends on x_b through s and t: "
         "the Jacobian is no longer triangular and Σ s is not its log-determinant)",
         mask * x + inv * (x * torch.exp(su) + tu), (inv * su).sum(-1)),
        ("the scale is e^{−s} instead of e^{s} (that is the inverse's)", mask * x + inv * (x * torch.exp(-s) + t),
         None),
        ("the log-determinant has the wrong sign (log|det ∂y/∂x| = +Σ (1 − m) s for y = x e^{s} + t)", None,
         -(inv * s).sum(-1)),
        ("the shift is added before scaling, (x + t) e^{s}", mask * x + inv * ((x + t) * torch.exp(s)), None),
        ("the mask is read the other way round (m = 1 marks the passive, copied coordinates)",
         *(lambda s2, t2: (inv * x + mask * (x * torch.exp(s2) + t2), (mask * s2).sum(-1)))(*net(x * inv))),
    ]


@CHAPTER.function("affine_coupling_forward", references=("dgm.flows:AffineCoupling._forward",))
def _coupling_forward(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(x, mask, net, where, grads=False, jacobian=False):
        dtype = x.dtype
        tol = _F64 if dtype == torch.float64 else _F32
        out = _expect_tuple(ctx, call(ctx, fn, x, mask, net, where=where), 2, where, "y, log_det")
        x64, m64 = x.double(), mask.double()
        want_y, want_ld = (t.to(dtype) for t in ref_coupling_forward(x64, m64, _in_dtype(net, dtype)))
        variants = _coupling_variants(x64, m64, _in_dtype(net, dtype))
        expect_tensor(ctx, out[0], want_y, "y", where, *tol,
                      hints=[(label, v.to(dtype)) for label, v, _ in variants if v is not None])
        expect_tensor(ctx, out[1], want_ld, "log_det", where, *tol,
                      hints=[(label, v.to(dtype)) for label, _, v in variants if v is not None])
        if jacobian:
            ld = log_abs_det_jacobian(lambda r: ref_coupling_forward(r, m64, net)[0], x64).to(dtype)
            expect_tensor(ctx, out[1], ld, "log_det", f"{where}: against log|det| of autograd's Jacobian of y", *tol)
        if grads:
            for output, name in ((0, "y"), (1, "log_det")):
                expect_same_gradients(ctx, fn, _nth(ref_coupling_forward, output), [x, mask, net], wrt=(0,),
                                      output=output, where=f"{where}: the gradient of {name} with respect to x")

    F64 = torch.float64
    if not ctx.hidden:
        net = scale_shift_net(3, 4)
        mask = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
        x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=F64)
        compare(x, mask, net, "example (N=2, D=3, mask (1, 0, 0): x_1 copied)")
        compare(x, torch.tensor([0.0, 1.0, 0.0], dtype=F64), net, "mask (0, 1, 0): x_2 copied")
        compare(x[0], mask, net, "a single point x of shape (D,): y (D,), log_det a 0-d tensor")
        return
    for dtype in (torch.float64, torch.float32):
        net, mask = _net(ctx, 5), _mask(ctx, 5)
        compare(ctx.randn(7, 5).to(dtype), mask.to(dtype), net, f"random points (7, 5) ({dtype})", grads=dtype == F64,
                jacobian=dtype == F64)
        compare(ctx.randn(5).to(dtype), mask.to(dtype), net, f"a single point (D,) ({dtype})")
        compare(ctx.randn(2, 3, 5).to(dtype), mask.to(dtype), net, f"a batch (B, N, D) = (2, 3, 5) ({dtype})",
                grads=dtype == F64)
        big_net = _net(ctx, 4, gain=40.0)
        compare(_mixed(ctx, 6, D=4).to(dtype), _mask(ctx, 4).to(dtype), big_net,
                f"|x| up to 1e3 among ordinary points, s near its clamp ±2.5 ({dtype})", grads=dtype == F64)
    net = _net(ctx, 3)
    compare(ctx.randn(1, 3), _mask(ctx, 3), net, "N = 1", grads=True, jacobian=True)
    net1 = _net(ctx, 1)
    compare(ctx.randn(4, 1), torch.ones(1, dtype=F64), net1, "D = 1, all passive: y = x, log_det = 0", grads=True)
    compare(ctx.randn(4, 1), torch.zeros(1, dtype=F64), net1, "D = 1, all active: s, t of a zero input", grads=True,
            jacobian=True)
    compare(ctx.randn(3, 4), torch.zeros(4, dtype=F64), _net(ctx, 4), "all active (mask of zeros)", grads=True)
    compare(ctx.randn(2, 2, 3, 4), _mask(ctx, 4), _net(ctx, 4), "a 4-d batch (2, 2, 3, D)", grads=True)
    # many active coordinates with every log-scale near +2.5: Σ s is far beyond log of the largest float (88 in float32,
    # 709 in float64), so e^{Σ s} overflows although Σ s itself is ordinary
    m80 = torch.zeros(80, dtype=F64)
    m80[torch.randperm(80, generator=ctx.gen)[:8]] = 1.0
    compare(ctx.randn(3, 80).float(), m80.float(), _net(ctx, 80, bias=20.0), "72 active coordinates with s near +2.5 "
            "(float32): the log-determinant is about ±180, its exponential overflows")
    m320 = torch.zeros(320, dtype=F64)
    m320[torch.randperm(320, generator=ctx.gen)[:20]] = 1.0
    compare(ctx.randn(2, 320), m320, _net(ctx, 320, bias=20.0), "300 active coordinates with s near +2.5 (float64): "
            "the log-determinant is about ±750")


# --------------------------------------------------------------------------------------------
# Task 2: the affine coupling, inverse
# --------------------------------------------------------------------------------------------


def _inverse_variants(y, mask, net):
    s, t = net(y * mask)
    su, tu = net(y)
    inv = 1 - mask
    return [
        ("the scale is e^{s} instead of e^{−s} (undo the multiplication by dividing)", mask * y + inv * (y - t) * torch.exp(s),
         None),
        ("the shift is subtracted after undoing the scale, y e^{−s} − t; the forward map scales first, so the "
         "inverse subtracts t first: (y − t) e^{−s}", mask * y + inv * (y * torch.exp(-s) - t), None),
        ("the log-determinant is the forward one, +Σ (1 − m) s; the inverse's is −Σ (1 − m) s", None, (inv * s).sum(-1)),
        ("the log-determinant sums s over every coordinate, the passive ones too", None, -s.sum(-1)),
        ("the conditioner is fed y instead of its passive part y ⊙ m", mask * y + inv * (y - tu) * torch.exp(-su),
         -(inv * su).sum(-1)),
    ]


@CHAPTER.function("affine_coupling_inverse", references=("dgm.flows:AffineCoupling._inverse",))
def _coupling_inverse(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(y, mask, net, where, grads=False, round_trip=None):
        dtype = y.dtype
        tol = _F64 if dtype == torch.float64 else _F32
        out = _expect_tuple(ctx, call(ctx, fn, y, mask, net, where=where), 2, where, "x, log_det")
        y64, m64 = y.double(), mask.double()
        want_x, want_ld = (t.to(dtype) for t in ref_coupling_inverse(y64, m64, _in_dtype(net, dtype)))
        variants = _inverse_variants(y64, m64, _in_dtype(net, dtype))
        expect_tensor(ctx, out[0], want_x, "x", where, *tol,
                      hints=[(label, v.to(dtype)) for label, v, _ in variants if v is not None])
        expect_tensor(ctx, out[1], want_ld, "log_det", where, *tol,
                      hints=[(label, v.to(dtype)) for label, _, v in variants if v is not None])
        if round_trip is not None:
            expect_tensor(ctx, out[0], round_trip, "x", f"{where}: the round trip inverse(forward(x)) = x", 1e-10, 1e-10)
            _, fwd_ld = ref_coupling_forward(round_trip, m64, net)
            expect_tensor(ctx, out[1], -fwd_ld, "log_det", f"{where}: the inverse's log-det is minus the forward's",
                          1e-10, 1e-10)
        if grads:
            for output, name in ((0, "x"), (1, "log_det")):
                expect_same_gradients(ctx, fn, _nth(ref_coupling_inverse, output), [y, mask, net], wrt=(0,),
                                      output=output, where=f"{where}: the gradient of {name} with respect to y")

    F64 = torch.float64
    if not ctx.hidden:
        net = scale_shift_net(3, 4)
        mask = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
        y = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=F64)
        compare(y, mask, net, "example (N=2, D=3, mask (1, 0, 0))")
        x = torch.tensor([[0.3, 1.0, -2.0]], dtype=F64)
        compare(ref_coupling_forward(x, mask, net)[0], mask, net, "inverse of forward((0.3, 1, −2))", round_trip=x)
        compare(y[1], torch.tensor([0.0, 1.0, 1.0], dtype=F64), net, "a single point (D,), mask (0, 1, 1)")
        return
    for dtype in (torch.float64, torch.float32):
        net, mask = _net(ctx, 5), _mask(ctx, 5)
        compare(ctx.randn(7, 5).to(dtype), mask.to(dtype), net, f"random points (7, 5) ({dtype})", grads=dtype == F64)
        compare(ctx.randn(5).to(dtype), mask.to(dtype), net, f"a single point (D,) ({dtype})")
        compare(ctx.randn(2, 3, 5).to(dtype), mask.to(dtype), net, f"a batch (B, N, D) = (2, 3, 5) ({dtype})",
                grads=dtype == F64)
        big_net = _net(ctx, 4, gain=40.0)
        compare(_mixed(ctx, 6, D=4).to(dtype), _mask(ctx, 4).to(dtype), big_net,
                f"|y| up to 1e3 among ordinary points, s near its clamp ±2.5 ({dtype})", grads=dtype == F64)
    # the round trip in float64, ordinary and extreme points, one batch
    net, mask = _net(ctx, 6, gain=40.0), _mask(ctx, 6)
    x = _mixed(ctx, 8, D=6)
    compare(ref_coupling_forward(x, mask, net)[0], mask, net, "inverse(forward(x)) with |x| up to 1e3 and s near ±2.5",
            round_trip=x)
    net = _net(ctx, 3)
    x = ctx.randn(2, 4, 3)
    m3 = _mask(ctx, 3)
    compare(ref_coupling_forward(x, m3, net)[0], m3, net, "inverse(forward(x)) for a (2, 4, 3) batch", round_trip=x)
    compare(ctx.randn(1, 3), m3, net, "N = 1", grads=True)
    net1 = _net(ctx, 1)
    compare(ctx.randn(4, 1), torch.ones(1, dtype=F64), net1, "D = 1, all passive: x = y, log_det = 0", grads=True)
    compare(ctx.randn(4, 1), torch.zeros(1, dtype=F64), net1, "D = 1, all active", grads=True)
    compare(ctx.randn(3, 4), torch.zeros(4, dtype=F64), _net(ctx, 4), "all active (mask of zeros)", grads=True)
    compare(ctx.randn(2, 2, 3, 4), _mask(ctx, 4), _net(ctx, 4), "a 4-d batch (2, 2, 3, D)", grads=True)
    # many active coordinates with every log-scale near +2.5: Σ s is far beyond log of the largest float (88 in float32,
    # 709 in float64), so e^{Σ s} overflows although Σ s itself is ordinary
    m80 = torch.zeros(80, dtype=F64)
    m80[torch.randperm(80, generator=ctx.gen)[:8]] = 1.0
    compare(ctx.randn(3, 80).float(), m80.float(), _net(ctx, 80, bias=20.0), "72 active coordinates with s near +2.5 "
            "(float32): the log-determinant is about ±180, its exponential overflows")
    m320 = torch.zeros(320, dtype=F64)
    m320[torch.randperm(320, generator=ctx.gen)[:20]] = 1.0
    compare(ctx.randn(2, 320), m320, _net(ctx, 320, bias=20.0), "300 active coordinates with s near +2.5 (float64): "
            "the log-determinant is about ±750")


# --------------------------------------------------------------------------------------------
# Task 3: bits per dimension on the original scale of rescaled data
# --------------------------------------------------------------------------------------------


@CHAPTER.function("rescaled_bits_per_dim", references=("dgm.flows:rescaled_log_prob", "dgm.flows:bits_per_dim"))
def _rescaled_bpd(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(lp, D, a, where, grads=False):
        dtype = lp.dtype
        tol = _F64 if dtype == torch.float64 else (1e-5, 1e-5)
        got = call(ctx, fn, lp, D, a, where=where)
        lp64 = lp.double()
        want = ref_rescaled_bits_per_dim(lp64, D, a).to(dtype)
        la, l2 = math.log(abs(a)), math.log(2.0)
        expect_tensor(ctx, got, want, "bits per dimension", where, *tol, hints=[
            ("the log-likelihood is divided by D but left in nats (divide by D ln 2 for bits)",
             (-(lp64 + D * la) / D).to(dtype)),
            ("the rescaling's Jacobian is left out: bits/dim on the rescaled scale, not the original one "
             "(log p_X(x) = log p(x̃) + D log|a|)", (-lp64 / (D * l2)).to(dtype)),
            ("the rescaling term has the wrong sign: log p_X(x) = log p(x̃) + D log|a| (for a = 1/127.5 that is "
             "− D log 127.5)", (-(lp64 - D * la) / (D * l2)).to(dtype)),
            ("the rescaling term is counted once instead of once per coordinate (D log|a|)",
             (-(lp64 + la) / (D * l2)).to(dtype)),
            ("the result is not divided by the number of dimensions D", (-(lp64 + D * la) / l2).to(dtype)),
            ("the sign is flipped: bits per dimension are the *negative* log-likelihood per coordinate",
             ((lp64 + D * la) / (D * l2)).to(dtype)),
            ("the logarithm base is 10, not 2", (-(lp64 + D * la) / (D * math.log(10.0))).to(dtype))])
        if grads:
            expect_same_gradients(ctx, fn, ref_rescaled_bits_per_dim, [lp, D, a], wrt=(0,),
                                  where=f"{where}: the gradient with respect to log_prob")

    F64 = torch.float64
    if not ctx.hidden:
        compare(torch.tensor(32.5, dtype=F64), 1024, 1 / 127.5,
                "32.5 nats per image on [−1, 1]^1024 (x̃ = x/127.5 − 1): bits/dim on [0, 255]")
        compare(torch.tensor([-100.0, -64.0, 10.0], dtype=F64), 64, 1 / 8.5, "three digits (D = 64), x̃ = x/8.5 − 1")
        compare(torch.tensor([-3.0, 0.5], dtype=F64), 2, 1.0, "no rescaling (a = 1): −log p/(D ln 2)")
        return
    cases = ((1024, 1 / 127.5), (64, 1 / 8.5), (3072, 2 / 255), (5, 3.0), (1, 0.5), (16, 1.0), (10, -1 / 127.5))
    for dtype in (torch.float64, torch.float32):
        for D, a in cases:
            lp = -D * (math.log(abs(1 / a)) + ctx.uniform(-3.0, 3.0, 6))
            compare(lp.to(dtype), D, a, f"log p of order −D log(1/|a|), D = {D}, a = {a:.4g} ({dtype})",
                    grads=dtype == F64)
        D = int(torch.randint(2, 500, (1,), generator=ctx.gen))
        lp = ctx.uniform(-5.0, 5.0, 3, 4) * D
        lp[torch.randint(0, 3, (1,), generator=ctx.gen), torch.randint(0, 4, (1,), generator=ctx.gen)] = -1e6
        lp[torch.randint(0, 3, (1,), generator=ctx.gen), torch.randint(0, 4, (1,), generator=ctx.gen)] = 1e4
        compare(lp.to(dtype), D, 1 / 127.5, f"a (3, 4) batch with log p = −1e6 and 1e4 among ordinary ones ({dtype})",
                grads=dtype == F64)
        compare(torch.tensor(float(ctx.uniform(-3000.0, 100.0)), dtype=dtype), 1024, 1 / 127.5,
                f"a single image (0-d log_prob) ({dtype})")
    compare(ctx.uniform(-10.0, 10.0, 5), 1, 1e-3, "D = 1, a tiny scale", grads=True)
    compare(ctx.uniform(-10.0, 10.0, 5), 7, -2.0, "a negative scale (x̃ = −2x + b): |a| enters", grads=True)


# --------------------------------------------------------------------------------------------
# Task 4: MADE's masks
# --------------------------------------------------------------------------------------------


def _made_variants(order, hidden):
    """The known slips of the masks, each as a list of masks (float64)."""
    m_in = order + 1

    def build(hid, out, inputs=m_in):
        d = [inputs, *hidden]
        ms = [hid(b[:, None], a[None, :]).to(torch.float64) for a, b in zip(d[:-1], d[1:])]
        ms.append(out(inputs[:, None], d[-1][None, :]).to(torch.float64))
        return ms

    ge, gt = (lambda a, b: a >= b), (lambda a, b: a > b)
    inverse = torch.argsort(order) + 1
    return [
        ("the output mask uses ≥: output d then reads input d itself (the Jacobian has a non-zero diagonal — not "
         "autoregressive); the output rule is strict, m(d) > m(k)", build(ge, ge)),
        ("the hidden masks use >: a hidden unit of degree k must also read the inputs of degree k (m(k) ≥ m(j))",
         build(gt, gt)),
        ("the degrees come from the inverse permutation argsort(order): order[d] is coordinate d's position, so "
         "m(d) = order[d] + 1", build(ge, gt, inverse)),
        ("the input degrees are order[d] without the + 1", build(ge, gt, order)),
        ("the hidden and output rules are swapped (> in the hidden layers, ≥ at the output)", build(gt, ge)),
    ]


def _expect_masks(ctx: Ctx, got: Any, want: list, variants: list, where: str) -> None:
    if not isinstance(got, (list, tuple)):
        ctx.fail(f"{where}: return a list of mask tensors, got {type_name(got)}")
    if len(got) != len(want):
        ctx.fail(f"{where}: return one mask per linear layer, {len(want)} here (the hidden layers, then the output); "
                 f"got {len(got)}")
    for i, (g, w) in enumerate(zip(got, want)):
        name = "the output mask" if i == len(want) - 1 else f"mask {i} (hidden layer {i + 1})"
        if type(g) is torch.Tensor and g.shape == w.T.shape and g.shape != w.shape:  # noqa: E721
            ctx.fail(f"{where}: {name} has shape {tuple(g.shape)}, expected {tuple(w.shape)}: masks are "
                     "(out_features, in_features), like a linear layer's weight")
        hints = []
        for label, alt in variants:
            wrong = alt[i] if not bool(torch.equal(alt[i], w)) else None
            if wrong is not None:
                hints.append((label, wrong))
        expect_tensor(ctx, g, w, name, where, 0.0, 0.0, hints=hints)


@CHAPTER.function("made_masks", references=("dgm.flows:made_masks",))
def _made_masks(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(order, hidden, where):
        got = call(ctx, fn, order, hidden, where=where)
        want = ref_made_masks(order, hidden)
        _expect_masks(ctx, got, want, _made_variants(order, hidden), where)
        # the property the masks exist for: output d reads input j only when order[j] < order[d]
        prod = want[0].T
        for m in want[1:]:
            prod = prod @ m.T
        reads = (prod > 0).T
        assert not bool((reads & ~(order[None, :] < order[:, None])).any())

    I64 = torch.int64
    if not ctx.hidden:
        order = torch.tensor([2, 0, 1], dtype=I64)
        compare(order, [torch.tensor([1, 2, 1, 2], dtype=I64)], "order (2, 0, 1), one hidden layer of degrees (1, 2, 1, 2)")
        compare(order, [], "no hidden layer: one (D, D) mask")
        compare(torch.tensor([1, 3, 0, 2], dtype=I64), [torch.tensor([1, 2, 3, 1, 2], dtype=I64),
                                                        torch.tensor([2, 1, 3], dtype=I64)],
                "order (1, 3, 0, 2), two hidden layers")
        return

    def perm(D):   # a permutation that is not its own inverse (D ≥ 3): order and argsort(order) differ
        while True:
            p = torch.randperm(D, generator=ctx.gen)
            if D < 3 or not bool(torch.equal(torch.argsort(p), p)):
                return p

    def degrees(H, D):
        return torch.randint(1, max(D, 2), (H,), generator=ctx.gen)

    for D, widths in ((5, (8,)), (6, (4, 9)), (7, (10, 3, 12)), (4, (2,)), (3, (1,))):
        order = perm(D)
        compare(order, [degrees(H, D) for H in widths], f"D = {D}, hidden widths {widths}")
    compare(perm(6), [], "no hidden layer (D = 6)")
    compare(torch.arange(5), [degrees(7, 5)], "the natural order")
    compare(torch.arange(4).flip(0), [degrees(6, 4)], "the reversed order")
    compare(torch.zeros(1, dtype=I64), [torch.randint(0, 2, (3,), generator=ctx.gen)], "D = 1 (no output reads anything)")
    compare(torch.zeros(1, dtype=I64), [], "D = 1, no hidden layer")
    D = 6
    hidden = torch.cat([torch.tensor([0, D], dtype=I64), degrees(6, D)])
    compare(perm(D), [hidden[torch.randperm(8, generator=ctx.gen)]],
            "hidden degrees 0 and D among ordinary ones (units that read nothing or feed nothing)")


# --------------------------------------------------------------------------------------------
# Concept checks (the correct options live in the hidden test cells)
# --------------------------------------------------------------------------------------------

CHAPTER.concept("concept_exp_uniform", ("a", "b", "c", "d"))
CHAPTER.concept("concept_maf_iaf", ("a", "b", "c", "d"))
CHAPTER.concept("concept_rotated_base", ("a", "b", "c", "d"))
CHAPTER.concept("concept_rescaled_likelihood", ("a", "b", "c", "d"))


# --------------------------------------------------------------------------------------------
# Step-checked derivation: the log-normal density as a Gaussian in ln x
# --------------------------------------------------------------------------------------------


def lognormal_symbols() -> tuple:
    """The symbols of the log-normal derivation: ``(x, mu, sigma)`` — x > 0 a value of X = e^Z, and
    Z ~ N(mu, sigma²) with mu real and sigma > 0."""
    import sympy as sp

    x, sigma = sp.symbols("x sigma", positive=True)
    mu = sp.Symbol("mu", real=True)
    return x, mu, sigma


def lognormal_derivation_start():
    r"""p_X(x) = p_Z(ln x) · |d ln x/dx| for X = e^Z, Z ~ N(μ, σ²): N(ln x; μ, σ²) · (1/x), in SymPy."""
    import sympy as sp

    x, mu, sigma = lognormal_symbols()
    return sp.exp(-(sp.log(x) - mu) ** 2 / (2 * sigma ** 2)) / (sp.sqrt(2 * sp.pi) * sigma) * (1 / x)


#: the point at which derivation_report evaluates the steps of Exercise 4
LOGNORMAL_REPORT_POINT = {"x": 2.0, "mu": 0.5, "sigma": 0.75}


def _lognormal_target(point) -> float:
    """SciPy's log-normal density (s = σ, scale = e^μ): an independent route from the symbolic start."""
    from scipy.stats import lognorm

    return float(lognorm.pdf(point["x"], s=point["sigma"], scale=math.exp(point["mu"])))


def _lognormal_points(ctx: Ctx) -> list[dict[str, float]]:
    """Random points, each kind present for every seed: x = e^{μ + σu} with u in (−2, 2) (where the density
    is not negligible); σ small, ordinary and large; μ negative and positive."""
    points = []
    for s_lo, s_hi, m_lo, m_hi in ((0.1, 0.3, -2.0, 2.0), (0.5, 1.0, -3.0, -0.5), (1.0, 2.5, 0.5, 3.0),
                                   (0.3, 1.5, -1.0, 1.0), (0.05, 3.0, -3.0, 3.0)):
        sigma = float(ctx.uniform(s_lo, s_hi))
        mu = float(ctx.uniform(m_lo, m_hi))
        u = float(ctx.uniform(-2.0, 2.0))
        points.append({"x": math.exp(mu + sigma * u), "mu": mu, "sigma": sigma})
    return points


_LOGN_FORM = ("exp(−(ln x − μ + σ²)²/(2σ²)) · exp(σ²/2 − μ)/(√(2π) σ): a Gaussian in ln x centred at μ − σ², "
              "with x only inside ln x (the Jacobian 1/x = e^{−ln x} moved into the exponent, the square completed)")


@CHAPTER.derivation("lognormal_derivation_steps", start=lognormal_derivation_start, point=LOGNORMAL_REPORT_POINT)
def _lognormal_steps(ctx: Ctx, steps: Any, expected: Any) -> None:
    import sympy as sp

    symbols = lognormal_symbols()
    points = _lognormal_points(ctx) if ctx.hidden else [
        LOGNORMAL_REPORT_POINT, {"x": 0.05, "mu": -2.0, "sigma": 1.5}, {"x": 30.0, "mu": 3.0, "sigma": 0.3}]
    expect_derivation(ctx, steps, start=lognormal_derivation_start(), symbols=symbols, points=points,
                      target=_lognormal_target, start_name="lognormal_derivation_start()")
    x, mu, sigma = symbols
    last = steps[-1]
    L = sp.Dummy("L")
    if last.xreplace({sp.log(x): L}).has(x):
        ctx.fail(f"the last step must be {_LOGN_FORM}: x may appear only inside log(x)")
    centre = sp.log(x) - mu + sigma ** 2
    squares = [e for e in sp.preorder_traversal(last) if isinstance(e, sp.Pow) and e.exp == 2
               and (sp.expand(e.base - centre) == 0 or sp.expand(e.base + centre) == 0)]
    if not squares:
        ctx.fail(f"the last step must be {_LOGN_FORM}: (log(x) − μ + σ²)² must appear as a square")
    if not last.has(sp.pi) or any(isinstance(a, sp.Float) for step in steps for a in step.atoms(sp.Number)):
        ctx.fail("write the constants exactly (sp.pi, sp.Rational, integers): a decimal such as 3.1416 or 0.5 in a "
                 "step only approximates the derivation")
