"""Checks of Exercise 8 (Chapter 8: why stop-gradient matters — SimSiam's collapse in the two-layer
linear model).

Notation (the chapter's): data dimension D, representation dimension K; the online network W is
``(K, D)``, the predictor W_p is ``(K, K)``; the views' second moments are ``(D, D)`` matrices
C₁ = E[x₁x₁ᵀ], C₂ = E[x₂x₂ᵀ], C₁₂ = E[x₁x₂ᵀ] (C₁₂ need not be symmetric: two different augmentations).
vec stacks columns (column-major), so vec(AXB) = (Bᵀ ⊗ A) vec(X).

The references the checks compare with are written out here in plain, differentiable torch;
``tests/test_checks_ch08.py`` checks them against :mod:`dgm.ssl`, autograd (gradients and Hessians of
a Monte Carlo objective) and scipy, so the expected values do not come from one code path alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import
from coursework._core import Ctx, call, expect_derivation, expect_same_gradients, expect_tensor
from coursework._core import nth_output as _nth, as_f64 as _f64, cast_like as _like, expect_tuple as _expect_tuple

#: what the exercise notebook imports in its set-up cell (one line: ``from coursework.ch08 import ...``)
__all__ = ["check", "derivation_report", "hess_symbols", "hess_derivation_start", "HESS_REPORT_POINT"]

CHAPTER = Chapter(
    number=8,
    assignment="08-simsiam",
    title="Why stop-gradient matters: SimSiam's collapse",
    forbidden=("dgm.ssl",),  # the reference implementations Exercise 8's answers re-build
)

#: prints each derivation step's value at a point (default: this chapter's report point)
derivation_report = CHAPTER.derivation_report

_F32 = (torch.float32, (2e-4, 2e-4))   # float32 tolerances (rtol, atol) against a float64 reference


# --------------------------------------------------------------------------------------------
# The references (float64 inside, differentiable)
# --------------------------------------------------------------------------------------------


def ref_objective(W, Wp, C1, C2, C12):
    """J = ½ tr(W_p W C₁ Wᵀ W_pᵀ) − tr(W_p W C₁₂ Wᵀ) + ½ tr(W C₂ Wᵀ), a 0-d tensor."""
    A = Wp @ W
    return 0.5 * torch.trace(A @ C1 @ A.T) - torch.trace(A @ C12 @ W.T) + 0.5 * torch.trace(W @ C2 @ W.T)


def ref_stopgrad_flow(W, Wp, C1, C12, weight_decay):
    """(Ẇ, Ẇ_p) with stop-gradient: G = W_p W C₁ − W C₁₂ᵀ, Ẇ = −W_pᵀ G − ηW, Ẇ_p = −G Wᵀ − ηW_p."""
    G = Wp @ W @ C1 - W @ C12.T
    return -Wp.T @ G - weight_decay * W, -G @ W.T - weight_decay * Wp


def _kron(A, B):
    """A ⊗ B (torch.kron refuses some non-contiguous inputs, such as a transpose, in torch 2.13)."""
    return torch.kron(A.contiguous(), B.contiguous())


def ref_hessian(Wp, C1, C2, C12):
    """H = C₁ ⊗ W_pᵀW_p − C₁₂ ⊗ W_pᵀ − C₁₂ᵀ ⊗ W_p + C₂ ⊗ I_K, ``(KD, KD)``: J = ½ vec(W)ᵀ H vec(W)
    without stop-gradient, vec column-major."""
    eye = torch.eye(Wp.shape[0], dtype=Wp.dtype)
    return (_kron(C1, Wp.T @ Wp) - _kron(C12, Wp.T) - _kron(C12.T, Wp) + _kron(C2, eye))


def ref_effective_rank(Z):
    """exp(−Σ p_i log p_i) with p_i = σ_i / Σ_j σ_j over the singular values σ of Z (0 log 0 = 0)."""
    s = torch.linalg.svdvals(Z)
    p = s / s.sum()
    safe = torch.where(p > 0, p, torch.ones_like(p))
    return torch.exp(-(p * torch.log(safe)).sum())


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _moments(ctx: Ctx, D: int, *, symmetric: bool = False, scale: float = 1.0):
    """(C₁, C₂, C₁₂) of two views x₁ = A₁x + ε₁, x₂ = A₂x + ε₂ (x ~ N(0, Σ)): C₁ = A₁ΣA₁ᵀ + N₁,
    C₂ = A₂ΣA₂ᵀ + N₂, C₁₂ = A₁ΣA₂ᵀ — a valid joint second moment whose C₁₂ is not symmetric (unless
    ``symmetric``: both views from one augmentation, A₁ = A₂ = I, N₁ = N₂ = σ²I, C₁₂ = Σ)."""
    B = ctx.randn(D, D)
    sigma = scale * (B @ B.T / D + 0.3 * torch.eye(D, dtype=torch.float64))
    if symmetric:
        noise = scale * ctx.uniform(0.1, 0.5, 1)[0] * torch.eye(D, dtype=torch.float64)
        return sigma + noise, sigma + noise, sigma.clone()
    A1 = torch.eye(D, dtype=torch.float64) + 0.4 * ctx.randn(D, D)
    A2 = torch.eye(D, dtype=torch.float64) + 0.4 * ctx.randn(D, D)
    N1 = scale * torch.diag(ctx.uniform(0.1, 0.6, D))
    N2 = scale * torch.diag(ctx.uniform(0.1, 0.6, D))
    return A1 @ sigma @ A1.T + N1, A2 @ sigma @ A2.T + N2, A1 @ sigma @ A2.T


def _weights(ctx: Ctx, K: int, D: int, scale: float = 1.0):
    """W ``(K, D)`` and a non-symmetric W_p ``(K, K)`` near 0.5·I."""
    return scale * ctx.randn(K, D) / math.sqrt(D), 0.5 * torch.eye(K, dtype=torch.float64) + 0.4 * ctx.randn(K, K)


# --------------------------------------------------------------------------------------------
# Task 1: the objective in trace form
# --------------------------------------------------------------------------------------------


@CHAPTER.function("simsiam_objective", references=("dgm.ssl:simsiam_objective_trace",))
def _simsiam_objective(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(W, Wp, C1, C2, C12, where, tol=(1e-6, 1e-8), grads=False):
        dtype = W.dtype
        got = call(ctx, fn, W, Wp, C1, C2, C12, where=where)
        W64, Wp64, C164, C264, C1264 = _f64(W, Wp, C1, C2, C12)
        want = _like(ref_objective(W64, Wp64, C164, C264, C1264), dtype)
        A = Wp64 @ W64
        t1, t2, t3 = (torch.trace(A @ C164 @ A.T), torch.trace(A @ C1264 @ W64.T), torch.trace(W64 @ C264 @ W64.T))
        expect_tensor(ctx, got, want, "J", where, *tol, hints=[
            ("the ½ in front of the squared norm is missing (every term doubled)", _like(t1 - 2 * t2 + t3, dtype)),
            ("the ½ is missing in the first term: ½ tr(A C₁ Aᵀ) with A = W_pW", _like(t1 - t2 + 0.5 * t3, dtype)),
            ("the ½ is missing in the last term: ½ tr(W C₂ Wᵀ)", _like(0.5 * t1 - t2 + t3, dtype)),
            ("the cross term is doubled: ½‖a − b‖² has −aᵀb, not −2aᵀb", _like(0.5 * t1 - 2 * t2 + 0.5 * t3, dtype)),
            ("the entries of the matrix products are summed instead of taking their traces",
             _like(0.5 * (A @ C164 @ A.T).sum() - (A @ C1264 @ W64.T).sum() + 0.5 * (W64 @ C264 @ W64.T).sum(), dtype)),
            ("the cross term has a + sign: ½‖a − b‖² = ½‖a‖² − aᵀb + ½‖b‖²", _like(0.5 * t1 + t2 + 0.5 * t3, dtype)),
            ("the last term ½ tr(W C₂ Wᵀ) is dropped — it does not depend on W_p, but J does contain it",
             _like(0.5 * t1 - t2, dtype)),
            ("C₁₂ is transposed in the cross term: E[(W_pWx₁)ᵀ(Wx₂)] = tr(W_pW E[x₁x₂ᵀ] Wᵀ) = tr(W_pW C₁₂ Wᵀ)",
             _like(0.5 * t1 - torch.trace(A @ C1264.T @ W64.T) + 0.5 * t3, dtype)),
            ("C₁ is used in the last term instead of C₂ (they are equal only when both views come from one "
             "augmentation)", _like(0.5 * t1 - t2 + 0.5 * torch.trace(W64 @ C164 @ W64.T), dtype)),
            ("the predictor is applied on the right, W W_p, instead of W_p W",
             _like(0.5 * torch.trace(W64 @ Wp64 @ C164 @ (W64 @ Wp64).T) - torch.trace(W64 @ Wp64 @ C1264 @ W64.T)
                   + 0.5 * t3, dtype) if W64.shape[0] == W64.shape[1] else torch.full_like(want, float("nan")))])
        if grads:
            expect_same_gradients(ctx, fn, ref_objective, [W, Wp, C1, C2, C12], wrt=(0, 1, 2, 3, 4), symmetric=(2, 3),
                                  where=f"{where}: gradients with respect to W, W_p, C₁, C₂ and C₁₂")

    if not ctx.hidden:
        W = torch.tensor([[1.0, 0.0, 0.5], [0.0, 2.0, -1.0]], dtype=torch.float64)
        Wp = torch.tensor([[0.5, 0.2], [-0.1, 1.0]], dtype=torch.float64)
        C1 = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.5, 0.2], [0.0, 0.2, 1.0]], dtype=torch.float64)
        C2 = torch.tensor([[1.5, 0.0, 0.1], [0.0, 2.5, 0.0], [0.1, 0.0, 1.2]], dtype=torch.float64)
        C12 = torch.tensor([[1.0, 0.4, 0.0], [-0.2, 1.2, 0.1], [0.0, 0.3, 0.8]], dtype=torch.float64)
        compare(W, Wp, C1, C2, C12, "example (K=2, D=3, C₁₂ not symmetric)")
        compare(W, torch.eye(2, dtype=torch.float64), C1, C1, C1 - 0.5 * torch.eye(3, dtype=torch.float64),
                "W_p = I, symmetric views (C₁ = C₂, C₁₂ = C₁ − 0.5·I)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        W, Wp = _weights(ctx, 3, 5)
        C1, C2, C12 = _moments(ctx, 5)
        compare(*(t.to(dtype) for t in (W, Wp, C1, C2, C12)), f"random W, W_p, two different augmentations, K=3, "
                f"D=5 ({dtype})", tol)
    W, Wp = _weights(ctx, 4, 2)
    compare(W, Wp, *_moments(ctx, 2), "K > D (K=4, D=2)", grads=True)
    W, Wp = _weights(ctx, 3, 3)
    compare(W, Wp, *_moments(ctx, 3), "K = D = 3: W W_p and W_p W are both defined — use W_p W", grads=True)
    W, Wp = _weights(ctx, 1, 1)
    compare(W, Wp, *_moments(ctx, 1), "K = D = 1 (1×1 matrices)", grads=True)
    W, Wp = _weights(ctx, 2, 4)
    compare(torch.zeros_like(W), Wp, *_moments(ctx, 4), "W = 0: the collapsed network, J = 0")
    W, Wp = _weights(ctx, 2, 4, scale=300.0)
    compare(W, Wp, *_moments(ctx, 4, scale=50.0), "large weights and moments (J about 1e7)", tol=(1e-9, 1e-6))
    W, Wp = _weights(ctx, 3, 4)
    compare(W, Wp, *_moments(ctx, 4, symmetric=True), "symmetric views (C₁ = C₂ = X + X', C₁₂ = X)", grads=True)


# --------------------------------------------------------------------------------------------
# Task 2: the gradient flow with stop-gradient
# --------------------------------------------------------------------------------------------


@CHAPTER.function("stopgrad_flow", references=("dgm.ssl:flow_stopgrad", "dgm.ssl:_flow_pair"))
def _stopgrad_flow(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(W, Wp, C1, C12, eta, where, tol=(1e-6, 1e-8), grads=False):
        dtype = W.dtype
        out = _expect_tuple(ctx, call(ctx, fn, W, Wp, C1, C12, eta, where=where), 2, where, "dW, dWp")
        W64, Wp64, C164, C1264 = _f64(W, Wp, C1, C12)
        want_W, want_Wp = (_like(t, dtype) for t in ref_stopgrad_flow(W64, Wp64, C164, C1264, eta))
        G = Wp64 @ W64 @ C164 - W64 @ C1264.T
        expect_tensor(ctx, out[0], want_W, "dW", where, *tol, hints=[
            ("the gradient also flows through the target branch (no stop-gradient): that adds W_pWC₁₂ − WC₂ "
             "(with C₂ taken as C₁ here, since the task gives no C₂)",
             _like(want_W.double() + Wp64 @ W64 @ C1264 - W64 @ C164, dtype)),
            ("C₁₂ is used where C₁₂ᵀ belongs: ∂/∂W of E[(W_pWx₁)ᵀ sg(Wx₂)] is W_pᵀ sg(W) E[x₂x₁ᵀ] = W_pᵀ W C₁₂ᵀ",
             _like(-Wp64.T @ (Wp64 @ W64 @ C164 - W64 @ C1264) - eta * W64, dtype)),
            ("W_p is used where W_pᵀ belongs (the chain rule through W_p W gives W_pᵀ on the left)",
             _like(-Wp64 @ G - eta * W64, dtype)),
            ("the sign is flipped: the flow is minus the gradient (gradient descent)", _like(Wp64.T @ G + eta * W64, dtype)),
            ("the weight decay has the wrong sign: it pulls towards 0, −ηW", _like(-Wp64.T @ G + eta * W64, dtype)),
            ("the weight decay is left out", _like(-Wp64.T @ G, dtype))])
        expect_tensor(ctx, out[1], want_Wp, "dWp", where, *tol, hints=[
            ("Wᵀ is on the wrong side or missing: ∂J/∂W_p = G Wᵀ with G = W_pWC₁ − WC₁₂ᵀ",
             _like(-W64.T @ G.T - eta * Wp64, dtype) if W64.shape[0] == W64.shape[1] else torch.full_like(want_Wp, float("nan"))),
            ("C₁₂ is used where C₁₂ᵀ belongs", _like(-(Wp64 @ W64 @ C164 - W64 @ C1264) @ W64.T - eta * Wp64, dtype)),
            ("the sign is flipped: the flow is minus the gradient", _like(G @ W64.T + eta * Wp64, dtype)),
            ("the weight decay has the wrong sign", _like(-G @ W64.T + eta * Wp64, dtype)),
            ("the weight decay is left out", _like(-G @ W64.T, dtype)),
            ("dWp is transposed (∂J/∂W_p = G Wᵀ, a (K, K) matrix whose transpose is W Gᵀ)", _like(want_Wp.double().T, dtype))])
        if grads:
            for output, name in ((0, "dW"), (1, "dWp")):
                expect_same_gradients(ctx, fn, _nth(ref_stopgrad_flow, output), [W, Wp, C1, C12, eta], wrt=(0, 1, 2, 3),
                                      output=output, symmetric=(2,), where=f"{where}: gradients of {name} with respect to W, W_p, C₁ "
                                                           "and C₁₂")

    if not ctx.hidden:
        W = torch.tensor([[1.0, 0.0, 0.5], [0.0, 2.0, -1.0]], dtype=torch.float64)
        Wp = torch.tensor([[0.5, 0.2], [-0.1, 1.0]], dtype=torch.float64)
        C1 = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.5, 0.2], [0.0, 0.2, 1.0]], dtype=torch.float64)
        C12 = torch.tensor([[1.0, 0.4, 0.0], [-0.2, 1.2, 0.1], [0.0, 0.3, 0.8]], dtype=torch.float64)
        compare(W, Wp, C1, C12, 0.0, "example (K=2, D=3, C₁₂ not symmetric, no weight decay)")
        compare(W, Wp, C1, C12, 0.1, "the same with weight decay η = 0.1")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        W, Wp = _weights(ctx, 3, 5)
        C1, C2, C12 = _moments(ctx, 5)
        eta = float(ctx.uniform(0.01, 0.2))
        compare(*(t.to(dtype) for t in (W, Wp, C1, C12)), eta,
                f"random W, W_p, two different augmentations, K=3, D=5, η={eta:.3f} ({dtype})", tol)
    for K, D, what in ((4, 2, "K > D (K=4, D=2)"), (3, 3, "K = D = 3"), (1, 1, "K = D = 1"), (2, 6, "K < D (K=2, D=6)")):
        W, Wp = _weights(ctx, K, D)
        C1, C2, C12 = _moments(ctx, D)
        compare(W, Wp, C1, C12, float(ctx.uniform(0.0, 0.1)), what, grads=True)
    W, Wp = _weights(ctx, 2, 4)
    C1, C2, C12 = _moments(ctx, 4, symmetric=True)
    compare(W, Wp, C1, C12, 0.0, "symmetric views (C₁₂ = X, C₁ = X + X'), η = 0", grads=True)
    compare(torch.zeros_like(W), Wp, C1, C12, 0.05, "W = 0: Ẇ = 0 and Ẇ_p = −ηW_p")
    W, Wp = _weights(ctx, 3, 3, scale=200.0)
    C1, C2, C12 = _moments(ctx, 3, scale=30.0)
    compare(W, Wp, C1, C12, 1e-3, "large weights and moments", tol=(1e-8, 1e-6))


# --------------------------------------------------------------------------------------------
# Task 3: the Hessian without stop-gradient, column-major vec
# --------------------------------------------------------------------------------------------


def _row_major(Wp, C1, C2, C12):
    eye = torch.eye(Wp.shape[0], dtype=Wp.dtype)
    return _kron(Wp.T @ Wp, C1) - _kron(Wp.T, C12) - _kron(Wp, C12.T) + _kron(eye, C2)


@CHAPTER.function("hessian_no_stopgrad", references=("dgm.ssl:hessian_operator", "dgm.ssl:_kron"))
def _hessian_no_stopgrad(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(Wp, C1, C2, C12, where, tol=(1e-6, 1e-8), grads=False):
        dtype = Wp.dtype
        got = call(ctx, fn, Wp, C1, C2, C12, where=where)
        Wp64, C164, C264, C1264 = _f64(Wp, C1, C2, C12)
        want = _like(ref_hessian(Wp64, C164, C264, C1264), dtype)
        K = Wp64.shape[0]
        eye = torch.eye(K, dtype=torch.float64)
        stopgrad = _kron(C164, Wp64.T @ Wp64) - _kron(C1264, Wp64.T)
        expect_tensor(ctx, got, want, "H", where, *tol, hints=[
            ("the vec is row-major (torch's reshape/flatten): the Kronecker factors are swapped; the column-major "
             "vec gives vec(AXB) = (Bᵀ ⊗ A) vec(X)", _like(_row_major(Wp64, C164, C264, C1264), dtype)),
            ("the target branch is not differentiated (that is the stop-gradient operator, not the Hessian of J)",
             _like(stopgrad, dtype)),
            ("the cross term is not symmetrised: −2·C₁₂ ⊗ W_pᵀ instead of −C₁₂ ⊗ W_pᵀ − C₁₂ᵀ ⊗ W_p",
             _like(_kron(C164, Wp64.T @ Wp64) - 2 * _kron(C1264, Wp64.T) + _kron(C264, eye), dtype)),
            ("C₁₂ and C₁₂ᵀ are swapped in the cross terms",
             _like(_kron(C164, Wp64.T @ Wp64) - _kron(C1264.T, Wp64.T) - _kron(C1264, Wp64)
                   + _kron(C264, eye), dtype)),
            ("W_p W_pᵀ is used where W_pᵀ W_p belongs",
             _like(_kron(C164, Wp64 @ Wp64.T) - _kron(C1264, Wp64.T) - _kron(C1264.T, Wp64)
                   + _kron(C264, eye), dtype)),
            ("the result is twice the Hessian (J = ½ vec(W)ᵀ H vec(W))", _like(2 * want.double(), dtype)),
            ("the result is half the Hessian (J = ½ vec(W)ᵀ H vec(W): H carries no ½)", _like(0.5 * want.double(), dtype)),
            ("a ½ is left on the first term C₁ ⊗ W_pᵀW_p",
             _like(0.5 * _kron(C164, Wp64.T @ Wp64) - _kron(C1264, Wp64.T) - _kron(C1264.T, Wp64) + _kron(C264, eye), dtype)),
            ("the cross terms have a + sign: the cross term of J is −tr(W_pW C₁₂ Wᵀ)",
             _like(_kron(C164, Wp64.T @ Wp64) + _kron(C1264, Wp64.T) + _kron(C1264.T, Wp64) + _kron(C264, eye), dtype)),
            ("one of the two cross terms is missing: J's cross term is a quadratic form whose matrix must be "
             "symmetrised, −C₁₂ ⊗ W_pᵀ − C₁₂ᵀ ⊗ W_p",
             _like(_kron(C164, Wp64.T @ Wp64) - _kron(C1264, Wp64.T) + _kron(C264, eye), dtype)),
            ("one of the two cross terms is missing (−C₁₂ ⊗ W_pᵀ): both halves of the symmetrised cross term belong in H",
             _like(_kron(C164, Wp64.T @ Wp64) - _kron(C1264.T, Wp64) + _kron(C264, eye), dtype))])
        if grads:
            expect_same_gradients(ctx, fn, ref_hessian, [Wp, C1, C2, C12], wrt=(0, 1, 2, 3), symmetric=(1, 2),
                                  where=f"{where}: gradients with respect to W_p, C₁, C₂ and C₁₂")

    if not ctx.hidden:
        Wp = torch.tensor([[0.5, 0.2], [-0.1, 1.0]], dtype=torch.float64)
        C1 = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.5, 0.2], [0.0, 0.2, 1.0]], dtype=torch.float64)
        C2 = torch.tensor([[1.5, 0.0, 0.1], [0.0, 2.5, 0.0], [0.1, 0.0, 1.2]], dtype=torch.float64)
        C12 = torch.tensor([[1.0, 0.4, 0.0], [-0.2, 1.2, 0.1], [0.0, 0.3, 0.8]], dtype=torch.float64)
        compare(Wp, C1, C2, C12, "example (K=2, D=3, C₁₂ not symmetric): H is (6, 6)")
        compare(torch.eye(2, dtype=torch.float64), C1, C1, C1 - 0.5 * torch.eye(3, dtype=torch.float64),
                "W_p = I, symmetric views: H = 2X' ⊗ I with X' = 0.5·I")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        _, Wp = _weights(ctx, 3, 4)
        compare(*(t.to(dtype) for t in (Wp, *_moments(ctx, 4))), f"random W_p, two different augmentations, K=3, "
                f"D=4 ({dtype})", tol)
    for K, D, what in ((4, 2, "K > D (K=4, D=2)"), (2, 5, "K < D (K=2, D=5)"), (1, 3, "K = 1"), (3, 1, "D = 1"),
                       (1, 1, "K = D = 1")):
        _, Wp = _weights(ctx, K, D)
        compare(Wp, *_moments(ctx, D), what, grads=True)
    _, Wp = _weights(ctx, 3, 3)
    compare(Wp, *_moments(ctx, 3, symmetric=True), "symmetric views (C₁ = C₂, C₁₂ = X)", grads=True)
    compare(torch.zeros(2, 2, dtype=torch.float64), *_moments(ctx, 3), "W_p = 0: H = C₂ ⊗ I")
    _, Wp = _weights(ctx, 2, 3)
    compare(30.0 * Wp, *_moments(ctx, 3, scale=100.0), "large W_p and moments", tol=(1e-9, 1e-6))


# --------------------------------------------------------------------------------------------
# Task 4: the effective rank
# --------------------------------------------------------------------------------------------


def _with_singular_values(ctx: Ctx, N: int, K: int, s: torch.Tensor) -> torch.Tensor:
    """A random ``(N, K)`` matrix with singular values ``s`` (min(N, K) of them)."""
    U = torch.linalg.qr(ctx.randn(N, N))[0][:, :len(s)]
    V = torch.linalg.qr(ctx.randn(K, K))[0][:, :len(s)]
    return U @ torch.diag(s) @ V.T


@CHAPTER.function("effective_rank", references=("dgm.ssl:effective_rank",))
def _effective_rank(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(Z, where, tol=(1e-6, 1e-8), grads=False):
        dtype = Z.dtype
        got = call(ctx, fn, Z, where=where)
        Z64 = Z.detach().double()
        want = _like(ref_effective_rank(Z64), dtype)
        s = torch.linalg.svdvals(Z64)

        def entropy(q):
            q = q / q.sum()
            return -(q * torch.log(torch.where(q > 0, q, torch.ones_like(q)))).sum()

        def cut(keep):
            return torch.exp(entropy(s[keep])) if bool(keep.any()) else torch.ones((), dtype=torch.float64)

        cutoffs = [(f"small singular values are dropped (as with a cut-off at {10.0 ** -k:.0e} × the largest): every "
                    "singular value counts, however small (a nearly collapsed Z has a rank just above 1, not 1)",
                    _like(cut(s > 10.0 ** -k * s.max()), dtype)) for k in range(1, 9)]
        cutoffs += [(f"small singular values are dropped (as with a cut-off at {c:.0e}): every singular value counts, "
                     "and the rank does not depend on the scale of Z", _like(cut(s > c), dtype))
                    for c in (1e-4, 1e-6, 1e-8, 1e-10, 1e-12)]
        expect_tensor(ctx, got, want, "effective rank", where, *tol, hints=cutoffs + [
            ("the entropy is returned without the exp (the rank is exp(H))", _like(entropy(s), dtype)),
            ("the squared singular values (eigenvalues of ZᵀZ) are normalised instead of the singular values",
             _like(torch.exp(entropy(s ** 2)), dtype)),
            ("the entropy is in bits (log₂) but exponentiated with e, or 2^H is used",
             _like(torch.exp(entropy(s) / math.log(2)), dtype)),
            ("the singular values are normalised by the largest instead of their sum",
             _like(torch.exp(-((s / s.max()) * torch.log(torch.where(s > 0, s / s.max(), torch.ones_like(s)))).sum()),
                   dtype)),
            ("the singular values are divided by their Euclidean norm instead of their sum (the p_i must sum to 1)",
             _like(torch.exp(-((s / s.norm()) * torch.log(torch.where(s > 0, s / s.norm(), torch.ones_like(s)))).sum()),
                   dtype)),
            ("the rows are centred first (that is the rank of the covariance's square root, not of Z)",
             _like(ref_effective_rank(Z64 - Z64.mean(0)), dtype) if Z64.shape[0] > 1 else torch.full_like(want, float("nan")))])
        if grads:
            expect_same_gradients(ctx, fn, ref_effective_rank, [Z], wrt=(0,), where=f"{where}: gradient with respect to Z")

    if not ctx.hidden:
        compare(torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64),
                "singular values 3 and 1 (N=3, K=2)")
        compare(torch.eye(4, dtype=torch.float64), "the identity (4×4): effective rank 4")
        compare(torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]], dtype=torch.float64), "a rank-one matrix: 1")
        compare(torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64),
                "a zero column: a (2, 3) matrix has min(N, K) = 2 singular values, here 2 and 1")
        compare(torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64),
                "singular values 2 and 0: 0·log 0 = 0, the effective rank is 1 (no NaN)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        compare(ctx.randn(20, 6).to(dtype), f"a random (20, 6) matrix ({dtype})", tol)
        s = torch.cat([ctx.uniform(0.5, 2.0, 3), torch.zeros(2, dtype=torch.float64)])
        compare(_with_singular_values(ctx, 12, 5, s).to(dtype),
                f"rank 3 of 5 (two singular values at rounding level) ({dtype})", (1e-5, 1e-5) if dtype ==
                torch.float64 else (1e-2, 1e-2))  # float32: a right answer through eigvalsh(ZᵀZ) turns a rounding
        # error of 1e-7·s_max² into a singular value near 3e-4·s_max, which moves the rank by up to ~5e-3
        # exact zeros: a block of rank 3 in the corner of zeros (LAPACK returns the other singular values as 0.0),
        # and a diagonal matrix with zeros on its diagonal
        Z = torch.zeros(10, 5, dtype=torch.float64)
        Z[:3, :3] = ctx.randn(3, 3)
        compare(Z.to(dtype), f"a rank-3 block in a (10, 5) matrix of zeros: two singular values exactly 0, and "
                f"0·log 0 = 0 (no NaN) ({dtype})", tol)
        d = torch.cat([ctx.uniform(0.5, 3.0, 2), torch.zeros(2, dtype=torch.float64)])
        compare(torch.diag(d[torch.randperm(4, generator=ctx.gen)]).to(dtype),
                f"a diagonal matrix with two zeros on its diagonal: effective rank of two values ({dtype})", tol)
    compare(_with_singular_values(ctx, 9, 4, torch.tensor([5.0, 2.0, 1.0, 0.5], dtype=torch.float64)), "N > K, distinct "
            "singular values", grads=True)
    compare(_with_singular_values(ctx, 3, 7, torch.tensor([4.0, 1.5, 0.25], dtype=torch.float64)), "N < K (3, 7)",
            grads=True)
    compare(ctx.randn(1, 5), "one row (N = 1): rank 1")
    compare(ctx.randn(6, 1), "one column (K = 1): rank 1")
    compare(1e6 * ctx.randn(10, 4), "entries near 1e6 (the rank does not depend on the scale)")
    compare(1e-6 * ctx.randn(10, 4), "entries near 1e-6")
    s = torch.cat([torch.tensor([1.0], dtype=torch.float64), ctx.uniform(1e-9, 1e-8, 3)])
    compare(_with_singular_values(ctx, 8, 4, s), "one dominant direction and three tiny ones (collapsed): near 1",
            tol=(1e-6, 1e-6))
    # Every singular value counts, however small against the largest or in absolute terms: a cut-off
    # (s > 1e-2·s_max, s > 1e-6...) changes the rank here by more than the tolerance.
    s = torch.cat([torch.ones(1, dtype=torch.float64)] + [ctx.uniform(2 * 10.0 ** -k, 5 * 10.0 ** -k, 1)
                                                          for k in range(1, 7)])
    compare(_with_singular_values(ctx, 10, 7, s), "a spread spectrum: singular values from 1 down to about 3e-6, one "
            "per decade (no cut-off: each counts)")
    s = torch.cat([torch.ones(1, dtype=torch.float64), ctx.uniform(3e-7, 8e-7, 5)])
    compare(_with_singular_values(ctx, 10, 6, s), "one direction and five of about 5e-7 of it (nearly collapsed, "
            "but not a rank of exactly 1)")
    for scale in (1e-9, 1e-13):
        compare(scale * ctx.randn(10, 4), f"entries near {scale:.0e} (the rank does not depend on the scale)")


# --------------------------------------------------------------------------------------------
# Concept checks (the correct options live in the hidden test cells)
# --------------------------------------------------------------------------------------------

CHAPTER.concept("concept_what_prevents_collapse", ("a", "b", "c", "d"))
CHAPTER.concept("concept_norm_bound", ("a", "b", "c", "d"))
CHAPTER.concept("concept_row_major", ("a", "b", "c", "d"))
CHAPTER.concept("concept_singular_noise", ("a", "b", "c", "d"))


# --------------------------------------------------------------------------------------------
# Step-checked derivation: in one dimension the Hessian without stop-gradient is at least s'
# --------------------------------------------------------------------------------------------


def hess_symbols() -> tuple:
    """The symbols of the Hessian derivation: ``(p, s, t)`` — the predictor p (any real number), the
    augmentation-averaged data second moment s = X > 0 and the augmentation noise t = X' > 0 (D = K = 1)."""
    import sympy as sp

    p = sp.Symbol("p", real=True)
    s, t = sp.symbols("s t", positive=True)
    return p, s, t


def hess_derivation_start():
    r"""d²J/dw² for D = K = 1 without stop-gradient, with C₁ = C₂ = s + t and C₁₂ = s substituted into
    J(w) = ½ p² w² C₁ − p w² C₁₂ + ½ w² C₂: the second derivative p²C₁ − 2pC₁₂ + C₂, in SymPy."""
    p, s, t = hess_symbols()
    return p ** 2 * (s + t) - 2 * p * s + (s + t)


#: the point at which derivation_report evaluates the steps of Exercise 8
HESS_REPORT_POINT = {"p": 0.5, "s": 2.0, "t": 0.25}


def _hess_target(point) -> float:
    """H from autograd: the exact Hessian of J(w) (torch.autograd.functional.hessian, float64) at the
    point — an independent route from the symbolic start."""
    p = torch.tensor([[point["p"]]], dtype=torch.float64)
    c1 = torch.tensor([[point["s"] + point["t"]]], dtype=torch.float64)
    c12 = torch.tensor([[point["s"]]], dtype=torch.float64)

    def J(w):
        return ref_objective(w.reshape(1, 1), p, c1, c1, c12)

    return float(torch.autograd.functional.hessian(J, torch.tensor([0.7], dtype=torch.float64))[0, 0])


def _hess_points(ctx: Ctx) -> list[dict[str, float]]:
    """Random points, each kind present for every seed: p near 1 (the data term vanishes), p negative,
    p large, a tiny noise t, a large noise t."""
    points = []
    for p_lo, p_hi, t_lo, t_hi in ((0.9, 1.1, 0.1, 1.0), (-3.0, -0.5, 0.1, 1.0), (2.0, 10.0, 0.1, 1.0),
                                   (-2.0, 2.0, 1e-4, 1e-3), (-2.0, 2.0, 5.0, 50.0)):
        points.append({"p": float(ctx.uniform(p_lo, p_hi)), "s": float(ctx.uniform(0.1, 5.0)),
                       "t": float(ctx.uniform(t_lo, t_hi))})
    return points


_BOUND_FORM = "s·(p − 1)² + t·(p² + 1), a sum of two terms that are visibly ≥ 0 and ≥ t"


@CHAPTER.derivation("hessian_derivation_steps", start=hess_derivation_start, point=HESS_REPORT_POINT)
def _hess_steps(ctx: Ctx, steps: Any, expected: Any) -> None:
    import sympy as sp

    symbols = hess_symbols()
    points = _hess_points(ctx) if ctx.hidden else [
        HESS_REPORT_POINT, {"p": -1.5, "s": 0.5, "t": 1.0}, {"p": 1.0, "s": 3.0, "t": 0.01}]
    expect_derivation(ctx, steps, start=hess_derivation_start(), symbols=symbols, points=points,
                      target=_hess_target, start_name="hess_derivation_start()", exact_numbers=True)
    p, s, t = symbols
    last = steps[-1]
    squares = [e for e in sp.preorder_traversal(last) if isinstance(e, sp.Pow) and e.exp == 2
               and (sp.expand(e.base - (p - 1)) == 0 or sp.expand(e.base + (p - 1)) == 0)]
    if not squares:
        ctx.fail(f"the last step must be {_BOUND_FORM}: complete the square — (p − 1)² must appear as a square")
    rest = sp.expand(last - s * (p - 1) ** 2)
    if sp.expand(rest - t * (p ** 2 + 1)) != 0:
        ctx.fail(f"the last step must be {_BOUND_FORM}")
