r"""Non-contrastive self-supervised learning: why SimSiam needs its stop-gradient (Chapter 8).

**The two-layer linear model** (Tian, Chen & Ganguli 2021, "Understanding self-supervised learning
dynamics without contrastive pairs"). A data point x ∈ R^D gives two augmented views x₁, x₂. An
online network W ``(K, D)`` maps a view to a representation f = Wx ∈ R^K, a linear predictor
W_p ``(K, K)`` maps f₁ = Wx₁ to W_p f₁, and the *target* f₂ = Wx₂ uses the same W but is a
constant for differentiation (stop-gradient, sg):

.. math::
    J(W, W_p) = \tfrac12\,\mathbb E\,\lVert W_p W x_1 - \mathrm{sg}(W x_2)\rVert_2^2 .

(The paper and the seeds write the sizes n₁ = D and n₂ = K; this course keeps D for the data and K
for the representation.) The value of J does not depend on sg; only its gradient does.

**Second moments.** Everything the linear model sees of the data is three D × D matrices, which
this module calls C (input space):

.. math::
    C_1 = \mathbb E[x_1x_1^\top], \qquad C_2 = \mathbb E[x_2x_2^\top], \qquad C_{12} = \mathbb E[x_1x_2^\top],

(second moments, not covariances: a mean is included). For two views drawn independently from the
same augmentation p(x' | x) — the paper's setting — with x̄ = E[x' | x], X = E[x̄x̄ᵀ] and
X' = E_x[Cov(x' | x)], they are C₁ = C₂ = X + X' and C₁₂ = X (:func:`view_moments`). The seeds'
F₁ = E[f₁f₁ᵀ] = WC₁Wᵀ, F₂ = WC₂Wᵀ and F₁₂ = WC₁₂Wᵀ are the same matrices seen in representation
space (:func:`representation_moments`); F₁₂ = WXWᵀ is the F of the paper's eigen-alignment
analysis (with X = I and X' = σ²I it is proportional to F₁ = E[f₁f₁ᵀ], the matrix DirectPred
estimates). Expanding the square,

.. math::
    J = \tfrac12\operatorname{tr}(W_pWC_1W^\top W_p^\top) - \operatorname{tr}(W_pWC_{12}W^\top)
        + \tfrac12\operatorname{tr}(WC_2W^\top)
      = \tfrac12\operatorname{tr}(W_p^\top W_pF_1) - \operatorname{tr}(W_pF_{12}) + \tfrac12\operatorname{tr}F_2 .

**Gradient flows.** With G = W_pWC₁ − WC₁₂ᵀ = E[(W_pWx₁ − Wx₂)x₁ᵀ] (the error times the online input):

* with stop-gradient (SimSiam): Ẇ = −W_pᵀG − ηW and Ẇ_p = −α_p GWᵀ − ηW_p
  (:func:`flow_stopgrad`; η is weight decay, α_p the predictor's relative learning rate, as in
  the paper's Ẇ_p = α_p(−W_pW(X + X') + WX)Wᵀ − ηW_p);
* without stop-gradient the target's W is differentiated too, adding −(WC₂ − W_pWC₁₂):
  Ẇ = −(W_pᵀW_pWC₁ − W_pᵀWC₁₂ᵀ − W_pWC₁₂ + WC₂) − ηW (:func:`flow_no_stopgrad`); Ẇ_p is unchanged;
* without predictor (W_p = I fixed): Ẇ = −W(C₁ + C₂ − C₁₂ − C₁₂ᵀ) − ηW = −W E[(x₁−x₂)(x₁−x₂)ᵀ] − ηW
  without stop-gradient, Ẇ = −W(C₁ − C₁₂ᵀ) − ηW with it (for symmetric views both are −cWX' − ηW:
  either way W → 0 when X' ≻ 0).

**The vec form.** vec stacks the *columns* of a matrix (column-major, the seeds' and the
Kronecker-product convention): for A ``(K, K)``, X ``(K, D)``, B ``(D, D)``,
vec(AXB) = (Bᵀ ⊗ A) vec(X). (torch's ``reshape``/``flatten`` is row-major: there
vec_r(AXB) = (A ⊗ Bᵀ) vec_r(X); :func:`vec` does the column-major one.) J without stop-gradient is
a quadratic form in W for fixed W_p, J = ½ vec(W)ᵀ H vec(W), so its gradient flow is
d vec(W)/dt = −H vec(W) with the Hessian

.. math::
    H = C_1\otimes W_p^\top W_p - C_{12}\otimes W_p^\top - C_{12}^\top\otimes W_p + C_2\otimes I_K
      \;=\; X'\otimes(W_p^\top W_p + I_K) + X\otimes (W_p - I_K)^\top(W_p - I_K)

(the second form for symmetric views; :func:`hessian_operator`). H is symmetric positive
semi-definite for *every* W_p (a Hessian of a mean of squares), and for symmetric views
H ⪰ X' ⊗ I_K, so λ_min(H(t)) ≥ λ_min(X') at all times: when X' ≻ 0 the seeds' hypothesis
"λ_min(H(t)) bounded away from 0" holds by itself (without predictor H = 2X' ⊗ I_K). Then
d‖w‖²/dt = −2wᵀHw ≤ −2λ_min(H)‖w‖² gives (Grönwall)

.. math::
    \lVert \operatorname{vec} W(t)\rVert \le \lVert\operatorname{vec}W(0)\rVert\,
    \exp\Big(-\int_0^t \lambda_{\min}\big(\tfrac12(H + H^\top)\big)(s)\,ds\Big)
    \le \lVert\operatorname{vec}W(0)\rVert\, e^{-\lambda_0 t}

— an inequality, not the equality the seeds state (:func:`norm_bound`). With stop-gradient the flow
is still linear in W, d vec(W)/dt = −M vec(W) with M = C₁ ⊗ W_pᵀW_p − C₁₂ ⊗ W_pᵀ
(:func:`stopgrad_operator`), but M is not symmetric and its symmetric part can have negative
eigenvalues: nothing forces W to 0.

**Diagnostics**: :func:`effective_rank` (Roy & Vetterli 2007), :func:`predictor_spectrum`,
:func:`representation_spectrum`, :func:`eigen_alignment` (the paper's prediction: with symmetric
views, X = I and X' = σ²I, W_p's eigenvectors align with those of F = WXWᵀ; the commutator
[W_p, F] → 0). :func:`integrate` is a fixed-step RK4 (or Euler) integrator for these flows.

**A non-linear SimSiam** (:class:`SimSiamNet`, :func:`train_simsiam`): an MLP encoder and an MLP
predictor trained with the cosine loss ½(−cos(p₁, sg(z₂))) + ½(−cos(p₂, sg(z₁))) of Chen & He
(2021). Removing the stop-gradient (or the predictor) collapses the representations, which the
effective rank of the encoder's outputs shows.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn

from dgm._validate import (
    as_float_tensor,
    broadcast_batch_shapes,
    check_int,
    check_last_dim,
    check_min_ndim,
    check_number,
    check_same_device,
    check_square,
    check_symmetric,
    promote_float,
)
from dgm.nets import mlp

__all__ = [
    "vec",
    "unvec",
    "view_moments",
    "sample_views",
    "representation_moments",
    "simsiam_objective_mc",
    "simsiam_objective_trace",
    "flow_stopgrad",
    "flow_no_stopgrad",
    "flow_no_stopgrad_no_predictor",
    "flow_stopgrad_no_predictor",
    "FLOW_KINDS",
    "linear_flow",
    "hessian_operator",
    "stopgrad_operator",
    "Trajectory",
    "integrate",
    "NormBound",
    "norm_bound",
    "effective_rank",
    "predictor_spectrum",
    "representation_spectrum",
    "Alignment",
    "eigen_alignment",
    "SimSiamNet",
    "noise_augment",
    "simsiam_cosine_loss",
    "SimSiamRun",
    "train_simsiam",
]

INTEGRATION_METHODS = ("rk4", "euler")


# --------------------------------------------------------------------------------------------
# validation shared by the linear model's functions
# --------------------------------------------------------------------------------------------


def _matrix(value, name: str, shape_hint: str, *, like: torch.Tensor | None = None) -> torch.Tensor:
    t = as_float_tensor(value, name, like=like)
    check_min_ndim(t, name, 2, shape_hint)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    return t


def _weights(W, Wp, *, allow_identity: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """W ``(..., K, D)`` and Wp ``(..., K, K)`` (or None → W_p = I when allowed)."""
    W = _matrix(W, "W", "(..., K, D)")
    K = W.shape[-2]
    if Wp is None:
        if not allow_identity:
            raise TypeError("Wp must be a (..., K, K) tensor (the predictor); got None. For the model without a "
                            "predictor use flow_no_stopgrad_no_predictor / flow_stopgrad_no_predictor, or pass "
                            "torch.eye(K)")
        return W, None
    Wp = _matrix(Wp, "Wp", f"(..., {K}, {K})", like=W)
    if Wp.shape[-2:] != (K, K):
        raise ValueError(f"Wp must have shape (..., {K}, {K}) (K = {K}, the number of rows of W); "
                         f"got shape {tuple(Wp.shape)}")
    check_same_device(W=W, Wp=Wp)
    broadcast_batch_shapes(W=W.shape[:-2], Wp=Wp.shape[:-2])
    return W, Wp


def _moments(C1, C2, C12, D: int | None, like: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """C1, C2 symmetric ``(..., D, D)``; C12 square ``(..., D, D)``."""
    out = []
    for name, value in (("C1", C1), ("C2", C2), ("C12", C12)):
        t = _matrix(value, name, "(..., D, D)", like=like)
        check_square(t, name)
        if D is None:
            D = t.shape[-1]
        elif t.shape[-1] != D:
            raise ValueError(f"{name} must have shape (..., {D}, {D}) (D = {D}, the columns of W); "
                             f"got shape {tuple(t.shape)}")
        if name != "C12":
            check_symmetric(t, name)
        out.append(t)
    check_same_device(C1=out[0], C2=out[1], C12=out[2], **({"W": like} if like is not None else {}))
    broadcast_batch_shapes(C1=out[0].shape[:-2], C2=out[1].shape[:-2], C12=out[2].shape[:-2])
    return tuple(out)


def _linear_args(W, Wp, C1, C2, C12, *, allow_identity: bool = False):
    W, Wp = _weights(W, Wp, allow_identity=allow_identity)
    C1, C2, C12 = _moments(C1, C2, C12, W.shape[-1], W)
    batch = {"W": W.shape[:-2], "C1": C1.shape[:-2], "C2": C2.shape[:-2], "C12": C12.shape[:-2]}
    if Wp is not None:
        batch["Wp"] = Wp.shape[:-2]
    broadcast_batch_shapes(**batch)
    if Wp is None:
        W, C1, C2, C12 = promote_float(W, C1, C2, C12)
    else:
        W, Wp, C1, C2, C12 = promote_float(W, Wp, C1, C2, C12)
    return W, Wp, C1, C2, C12


def _check_square_predictor(Wp: torch.Tensor) -> None:
    if Wp.shape[-1] != Wp.shape[-2]:
        raise ValueError(f"Wp must have shape (..., K, K) (a square predictor); got shape {tuple(Wp.shape)}")


def _rates(weight_decay, predictor_rate=1.0) -> tuple[float, float]:
    eta = check_number(weight_decay, "weight_decay", low=0)
    alpha = check_number(predictor_rate, "predictor_rate", low=0, closed_low=False)
    return eta, alpha


def _t(M: torch.Tensor) -> torch.Tensor:
    return M.transpose(-1, -2)


def _trace(M: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(M, dim1=-2, dim2=-1).sum(-1)


def _kron(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Batched Kronecker product: ``(..., m, n)`` ⊗ ``(..., p, q)`` → ``(..., mp, nq)``."""
    batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    m, n = A.shape[-2:]
    p, q = B.shape[-2:]
    out = A[..., :, None, :, None] * B[..., None, :, None, :]
    return out.expand(*batch, m, p, n, q).reshape(*batch, m * p, n * q)


# --------------------------------------------------------------------------------------------
# vec, moments and views
# --------------------------------------------------------------------------------------------


def vec(M) -> torch.Tensor:
    r"""vec(M): the columns of M stacked into one vector (column-major, the Kronecker convention).

    For M ``(..., K, D)``, entry M_ij lands at position j·K + i, so that
    vec(AXB) = (Bᵀ ⊗ A) vec(X). (``M.reshape(-1)`` is the row-major vec_r(M) = vec(Mᵀ).)

    Args:
        M: ``(..., K, D)``.

    Returns:
        ``(..., K·D)``.
    """
    M = _matrix(M, "M", "(..., K, D)")
    return _t(M).reshape(*M.shape[:-2], M.shape[-1] * M.shape[-2])


def unvec(v, K: int, D: int) -> torch.Tensor:
    r"""The inverse of :func:`vec`: a ``(..., K·D)`` vector back to the ``(..., K, D)`` matrix.

    Args:
        v: ``(..., K·D)``; K, D: positive integers, the shape of the matrix.

    Returns:
        ``(..., K, D)`` with M_ij = v[j·K + i].
    """
    K = check_int(K, "K", low=1)
    D = check_int(D, "D", low=1)
    v = as_float_tensor(v, "v")
    check_min_ndim(v, "v", 1, "(..., K*D)")
    check_last_dim(v, "v", K * D, f"(..., {K * D}) (K*D = {K}*{D})")
    return _t(v.reshape(*v.shape[:-1], D, K))


def _noise_matrix(noise, name: str, D: int, like: torch.Tensor) -> torch.Tensor:
    """σ² (a number or 0-d tensor) → σ²I; ``(..., D)`` variances → diag; ``(..., D, D)`` → itself (PSD)."""
    t = as_float_tensor(noise, name, like=like)
    check_same_device(**{name: t, "cov": like})
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    eye = torch.eye(D, dtype=t.dtype, device=t.device)
    if t.dim() == 0 or (t.dim() >= 1 and t.shape[-1] == D and (t.dim() == 1 or t.shape[-2] != D)):
        if bool((t < 0).any()):
            raise ValueError(f"{name} must hold non-negative variances; its smallest entry is {float(t.min()):g}")
        return t[..., None, None] * eye if t.dim() == 0 else torch.diag_embed(t)
    if t.dim() >= 2 and t.shape[-2:] == (D, D):
        check_symmetric(t, name)
        smallest = float(torch.linalg.eigvalsh(0.5 * (t + _t(t))).min())
        if smallest < -1e-8 * max(1.0, float(t.abs().max())):
            raise ValueError(f"{name} must be positive semi-definite (a covariance); its smallest eigenvalue is "
                             f"{smallest:.3g}")
        return t
    raise ValueError(f"{name} must be a variance σ² (a number), ({D},) variances or a ({D}, {D}) covariance; "
                     f"got shape {tuple(t.shape)}")


def _moment_args(cov, noise, noise2, mean):
    cov = _matrix(cov, "cov", "(..., D, D)")
    check_square(cov, "cov")
    check_symmetric(cov, "cov")
    D = cov.shape[-1]
    smallest = float(torch.linalg.eigvalsh(0.5 * (cov + _t(cov))).min())
    if smallest < -1e-8 * max(1.0, float(cov.abs().max())):
        raise ValueError("cov must be positive semi-definite (a covariance); its smallest eigenvalue is "
                         f"{smallest:.3g}")
    N1 = _noise_matrix(noise, "noise", D, cov)
    N2 = N1 if noise2 is None else _noise_matrix(noise2, "noise2", D, cov)
    if mean is None:
        mean = torch.zeros(D, dtype=cov.dtype, device=cov.device)
    else:
        mean = as_float_tensor(mean, "mean", like=cov)
        check_min_ndim(mean, "mean", 1, f"(..., {D})")
        check_last_dim(mean, "mean", D, f"(..., {D})")
        check_same_device(mean=mean, cov=cov)
        if not bool(torch.isfinite(mean).all()):
            raise ValueError("mean must be finite; it contains NaN or infinity")
    broadcast_batch_shapes(cov=cov.shape[:-2], noise=N1.shape[:-2], noise2=N2.shape[:-2], mean=mean.shape[:-1])
    return promote_float(cov, N1, N2, mean)


def view_moments(cov, noise, noise2=None, *, mean=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""C₁ = E[x₁x₁ᵀ], C₂ = E[x₂x₂ᵀ], C₁₂ = E[x₁x₂ᵀ] for additive-noise views, in closed form.

    x has mean m and covariance Σ (any distribution: only second moments enter); the views are
    x₁ = x + ε₁, x₂ = x + ε₂ with ε₁, ε₂, x independent, E ε_i = 0, Cov ε_i = N_i. Then

    .. math::
        C_1 = \Sigma + mm^\top + N_1, \qquad C_2 = \Sigma + mm^\top + N_2, \qquad C_{12} = \Sigma + mm^\top.

    In the paper's notation (views drawn from one augmentation, N₁ = N₂): X = E[x̄x̄ᵀ] = Σ + mmᵀ
    (x̄ = E[x' | x] = x) and X' = N₁, so C₁ = C₂ = X + X' and C₁₂ = X: pass ``cov=X``, ``noise=X'``.

    Args:
        cov: ``(..., D, D)`` Σ, symmetric positive semi-definite.
        noise: N₁ as σ² (a number: isotropic noise σ²I), ``(..., D)`` variances (anisotropic,
            diagonal) or a ``(..., D, D)`` covariance (a ``(D, D)`` tensor is always a covariance).
        noise2: N₂ in the same forms; None means N₂ = N₁ (the same augmentation for both views).
        mean: ``(..., D)`` m; None means 0.

    Returns:
        ``(C1, C2, C12)``, each ``(..., D, D)`` in the common dtype.
    """
    cov, N1, N2, mean = _moment_args(cov, noise, noise2, mean)
    X = cov + mean[..., :, None] * mean[..., None, :]
    return X + N1, X + N2, X.clone()


def _psd_sqrt(M: torch.Tensor) -> torch.Tensor:
    """L with L Lᵀ = M for a symmetric PSD M (eigen-decomposition: works for singular M too)."""
    evals, evecs = torch.linalg.eigh(0.5 * (M + _t(M)))
    return evecs * evals.clamp(min=0).sqrt()[..., None, :]


def sample_views(num_samples: int, cov, noise, noise2=None, *, mean=None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw N pairs of views x₁ = x + ε₁, x₂ = x + ε₂ with x ~ N(m, Σ), ε_i ~ N(0, N_i), all independent.

    Their second moments are :func:`view_moments` (same arguments). Each Gaussian is drawn as
    m + L ξ with L Lᵀ the covariance (from its eigen-decomposition, so singular covariances are
    fine) and ξ ~ N(0, I) from ``generator``.

    Args:
        num_samples: N, a positive integer.
        cov, noise, noise2, mean: as in :func:`view_moments`.
        generator: ``torch.Generator`` on cov's device.

    Returns:
        ``(x1, x2)``, each ``(N, ..., D)`` (sample dimension first).
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    cov, N1, N2, mean = _moment_args(cov, noise, noise2, mean)
    batch = torch.broadcast_shapes(cov.shape[:-2], N1.shape[:-2], N2.shape[:-2], mean.shape[:-1])
    D = cov.shape[-1]
    opts = {"dtype": cov.dtype, "device": cov.device}

    def draw(M):
        xi = torch.randn(num_samples, *batch, D, generator=generator, **opts)
        return (_psd_sqrt(M) @ xi[..., None]).squeeze(-1)

    x = mean + draw(cov)
    return x + draw(N1), x + draw(N2)


def representation_moments(W, C1, C2, C12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The seeds' F₁ = E[f₁f₁ᵀ] = WC₁Wᵀ, F₂ = WC₂Wᵀ and F₁₂ = E[f₁f₂ᵀ] = WC₁₂Wᵀ (f_i = Wx_i).

    For symmetric views F₁ = F₂ = W(X + X')Wᵀ and F₁₂ = WXWᵀ (the F of the paper's eigen-alignment
    analysis).

    Args:
        W: ``(..., K, D)``; C1, C2, C12: ``(..., D, D)`` input-space moments.

    Returns:
        ``(F1, F2, F12)``, each ``(..., K, K)``.
    """
    W, _, C1, C2, C12 = _linear_args(W, None, C1, C2, C12, allow_identity=True)
    return W @ C1 @ _t(W), W @ C2 @ _t(W), W @ C12 @ _t(W)


# --------------------------------------------------------------------------------------------
# the objective
# --------------------------------------------------------------------------------------------


def simsiam_objective_mc(W, Wp, x1, x2, *, stop_gradient: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo estimate of J = ½ E‖W_p W x₁ − sg(W x₂)‖² and its standard error.

    The per-pair losses ℓ_n = ½‖W_p W x₁⁽ⁿ⁾ − W x₂⁽ⁿ⁾‖² are averaged over the N pairs; the
    standard error is their sample standard deviation (N − 1 in the denominator) over √N.
    With ``stop_gradient=True`` the target W x₂ is detached, so ``backward`` gives SimSiam's
    update; the value is the same either way.

    Args:
        W: ``(..., K, D)`` online network.
        Wp: ``(..., K, K)`` predictor, or None for no predictor (W_p = I).
        x1, x2: ``(N, ..., D)`` the two views of N data points (pairs share their index).
        stop_gradient: detach the target branch.

    Returns:
        ``(estimate, stderr)``, each of the broadcast batch shape ``(...)``; stderr is NaN for N = 1.
    """
    W, Wp = _weights(W, Wp, allow_identity=True)
    D = W.shape[-1]
    x1 = _matrix(x1, "x1", f"(N, ..., {D})", like=W)
    x2 = _matrix(x2, "x2", f"(N, ..., {D})", like=W)
    for name, x in (("x1", x1), ("x2", x2)):
        check_last_dim(x, name, D, f"(N, ..., {D})")
    if x1.shape != x2.shape:
        raise ValueError(f"x1 and x2 must have the same shape (pairs of views); got {tuple(x1.shape)} and "
                         f"{tuple(x2.shape)}")
    check_same_device(W=W, x1=x1, x2=x2)
    broadcast_batch_shapes(W=W.shape[:-2], x=x1.shape[1:-1], **({} if Wp is None else {"Wp": Wp.shape[:-2]}))
    if Wp is None:
        W, x1, x2 = promote_float(W, x1, x2)
    else:
        W, Wp, x1, x2 = promote_float(W, Wp, x1, x2)
    f1 = (W @ x1[..., None]).squeeze(-1)
    f2 = (W @ x2[..., None]).squeeze(-1)
    if stop_gradient:
        f2 = f2.detach()
    pred = f1 if Wp is None else (Wp @ f1[..., None]).squeeze(-1)
    losses = 0.5 * ((pred - f2) ** 2).sum(-1)
    N = losses.shape[0]
    estimate = losses.mean(0)
    stderr = losses.std(0, correction=1) / math.sqrt(N) if N > 1 else torch.full_like(estimate, float("nan"))
    return estimate, stderr


def simsiam_objective_trace(W, Wp, C1, C2, C12) -> torch.Tensor:
    r"""J(W, W_p) from the second moments: the trace form.

    .. math::
        J = \tfrac12\operatorname{tr}(W_pWC_1W^\top W_p^\top) - \operatorname{tr}(W_pWC_{12}W^\top)
            + \tfrac12\operatorname{tr}(WC_2W^\top)

    (E[f₂ᵀW_pf₁] = tr(W_pW E[x₁x₂ᵀ] Wᵀ)). With F_i = WC_iWᵀ this is the seeds'
    ½[tr(W_pᵀW_pF₁) − tr(W_pF₁₂) − tr(F₁₂W_p) + tr F₂] (the two middle traces are equal). Every
    operation is differentiable, but there is no stop-gradient here: autograd through it gives the
    gradient *without* stop-gradient.

    Args:
        W: ``(..., K, D)``; Wp: ``(..., K, K)`` or None (W_p = I).
        C1, C2: ``(..., D, D)`` symmetric; C12: ``(..., D, D)``.

    Returns:
        ``(...)`` J, the broadcast batch shape.
    """
    W, Wp, C1, C2, C12 = _linear_args(W, Wp, C1, C2, C12, allow_identity=True)
    A = W if Wp is None else Wp @ W          # the online map x ↦ W_p W x
    return 0.5 * _trace(A @ C1 @ _t(A)) - _trace(A @ C12 @ _t(W)) + 0.5 * _trace(W @ C2 @ _t(W))


# --------------------------------------------------------------------------------------------
# gradient flows
# --------------------------------------------------------------------------------------------


#: the four linear flows: with/without stop-gradient, with/without predictor (see :func:`linear_flow`).
FLOW_KINDS = ("stopgrad", "no_stopgrad", "stopgrad_no_predictor", "no_stopgrad_no_predictor")


def _flow_pair(W, Wp, C1, C2, C12, eta, alpha, stop_gradient):
    """(Ẇ, Ẇ_p) with or without stop-gradient; no checks."""
    G = Wp @ W @ C1 - W @ _t(C12)
    grad_W = _t(Wp) @ G if stop_gradient else _t(Wp) @ G - Wp @ W @ C12 + W @ C2
    dW = -grad_W - eta * W if eta else -grad_W
    dWp = -alpha * (G @ _t(W))
    return dW, (dWp - eta * Wp if eta else dWp)


def _flow_single(W, C1, C2, C12, eta, stop_gradient):
    """Ẇ without predictor (W_p = I); no checks."""
    A = C1 - _t(C12) if stop_gradient else C1 + C2 - C12 - _t(C12)
    dW = -(W @ A)
    return dW - eta * W if eta else dW


def flow_stopgrad(W, Wp, C1, C2, C12, *, weight_decay: float = 0.0, predictor_rate: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""SimSiam's flow: (Ẇ, Ẇ_p) = −∇J with the target held fixed, plus weight decay.

    With G = W_pWC₁ − WC₁₂ᵀ (= E[(W_pWx₁ − Wx₂)x₁ᵀ]):

    .. math::
        \dot W = -W_p^\top G - \eta W, \qquad \dot W_p = -\alpha_p\, G W^\top - \eta W_p .

    For symmetric views (C₁ = X + X', C₁₂ = X) this is the paper's
    Ẇ = W_pᵀ(−W_pW(X + X') + WX) − ηW, Ẇ_p = α_p(−W_pW(X + X') + WX)Wᵀ − ηW_p.
    C₂ does not enter (the target is a constant); it is accepted so that every flow takes the
    same arguments. Inside :func:`integrate` prefer :func:`linear_flow` ``("stopgrad", ...)``,
    which checks the arguments once instead of at every evaluation.

    Args:
        W: ``(..., K, D)``; Wp: ``(..., K, K)``; C1, C2, C12: ``(..., D, D)`` input-space moments.
        weight_decay: η ≥ 0.
        predictor_rate: α_p > 0, the predictor's learning rate relative to W's.

    Returns:
        ``(dW, dWp)`` of shapes ``(..., K, D)`` and ``(..., K, K)`` (broadcast batch).
    """
    eta, alpha = _rates(weight_decay, predictor_rate)
    W, Wp, C1, C2, C12 = _linear_args(W, Wp, C1, C2, C12)
    return _flow_pair(W, Wp, C1, C2, C12, eta, alpha, True)


def flow_no_stopgrad(W, Wp, C1, C2, C12, *, weight_decay: float = 0.0, predictor_rate: float = 1.0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The flow without stop-gradient: the target's W is differentiated too.

    .. math::
        \dot W = -(W_p^\top W_pWC_1 - W_p^\top WC_{12}^\top - W_pWC_{12} + WC_2) - \eta W,
        \qquad \dot W_p = -\alpha_p (W_pWC_1 - WC_{12}^\top)W^\top - \eta W_p

    (Ẇ_p is the same as with stop-gradient: the target does not depend on W_p). In vec form
    vec(Ẇ) = −(H + ηI) vec(W), H = :func:`hessian_operator`.

    Args:
        W, Wp, C1, C2, C12, weight_decay, predictor_rate: as in :func:`flow_stopgrad`.

    Returns:
        ``(dW, dWp)`` of shapes ``(..., K, D)`` and ``(..., K, K)``.
    """
    eta, alpha = _rates(weight_decay, predictor_rate)
    W, Wp, C1, C2, C12 = _linear_args(W, Wp, C1, C2, C12)
    return _flow_pair(W, Wp, C1, C2, C12, eta, alpha, False)


def flow_no_stopgrad_no_predictor(W, C1, C2, C12, *, weight_decay: float = 0.0) -> torch.Tensor:
    r"""No predictor (W_p = I fixed) and no stop-gradient: J = ½E‖W(x₁ − x₂)‖².

    .. math::
        \dot W = -W(C_1 + C_2 - C_{12} - C_{12}^\top) - \eta W
               = -W\,\mathbb E[(x_1-x_2)(x_1-x_2)^\top] - \eta W,

    a linear flow with a constant matrix, so W(t) = W(0) exp(−t(C₁ + C₂ − C₁₂ − C₁₂ᵀ + ηI)). For
    symmetric views the matrix is 2X': W → 0 when X' ≻ 0.

    Args:
        W: ``(..., K, D)``; C1, C2, C12: ``(..., D, D)``; weight_decay: η ≥ 0.

    Returns:
        ``(..., K, D)`` dW.
    """
    eta, _ = _rates(weight_decay)
    W, _, C1, C2, C12 = _linear_args(W, None, C1, C2, C12, allow_identity=True)
    return _flow_single(W, C1, C2, C12, eta, False)


def flow_stopgrad_no_predictor(W, C1, C2, C12, *, weight_decay: float = 0.0) -> torch.Tensor:
    r"""No predictor (W_p = I fixed) but with stop-gradient: Ẇ = −W(C₁ − C₁₂ᵀ) − ηW.

    For symmetric views Ẇ = −WX' − ηW: the stop-gradient alone does not prevent the collapse
    (SimSiam's ablation without predictor). C2 is accepted for a uniform signature.

    Args:
        W: ``(..., K, D)``; C1, C2, C12: ``(..., D, D)``; weight_decay: η ≥ 0.

    Returns:
        ``(..., K, D)`` dW.
    """
    eta, _ = _rates(weight_decay)
    W, _, C1, C2, C12 = _linear_args(W, None, C1, C2, C12, allow_identity=True)
    return _flow_single(W, C1, C2, C12, eta, True)


def linear_flow(kind: str, C1, C2, C12, *, weight_decay: float = 0.0, predictor_rate: float = 1.0) -> Callable:
    r"""One of the four flows as a right-hand side for :func:`integrate`, checked once.

    ``kind`` is ``"stopgrad"`` (:func:`flow_stopgrad`), ``"no_stopgrad"`` (:func:`flow_no_stopgrad`),
    ``"stopgrad_no_predictor"`` or ``"no_stopgrad_no_predictor"``. The moments and rates are
    validated here; the returned function computes the same formulas without any check (an ODE
    solver calls it thousands of times), so give it W ``(..., K, D)`` (and W_p ``(..., K, K)``) of
    the moments' dtype and device.

    Args:
        kind: one of :data:`FLOW_KINDS`.
        C1, C2, C12: ``(..., D, D)`` input-space moments.
        weight_decay: η ≥ 0; predictor_rate: α_p > 0 (ignored without predictor).

    Returns:
        ``f(W, Wp) -> (dW, dWp)`` for the kinds with a predictor, ``f(W) -> dW`` without.
    """
    if not isinstance(kind, str) or kind not in FLOW_KINDS:
        raise ValueError(f"kind must be one of {', '.join(repr(k) for k in FLOW_KINDS)}; got {kind!r}")
    eta, alpha = _rates(weight_decay, predictor_rate)
    C1, C2, C12 = promote_float(*_moments(C1, C2, C12, None, None))
    stop_gradient = not kind.startswith("no_stopgrad")
    if kind.endswith("no_predictor"):
        return lambda W: _flow_single(W, C1, C2, C12, eta, stop_gradient)
    return lambda W, Wp: _flow_pair(W, Wp, C1, C2, C12, eta, alpha, stop_gradient)


def _operator_args(Wp, C1, C2, C12):
    Wp = _matrix(Wp, "Wp", "(..., K, K)")
    _check_square_predictor(Wp)
    C1, C2, C12 = _moments(C1, C2, C12, None, Wp)
    broadcast_batch_shapes(Wp=Wp.shape[:-2], C1=C1.shape[:-2], C2=C2.shape[:-2], C12=C12.shape[:-2])
    return promote_float(Wp, C1, C2, C12)


def hessian_operator(Wp, C1, C2, C12, *, weight_decay: float = 0.0) -> torch.Tensor:
    r"""H + ηI: the Hessian of J without stop-gradient in vec(W) (column-major), plus weight decay.

    .. math::
        H = C_1\otimes W_p^\top W_p - C_{12}\otimes W_p^\top - C_{12}^\top\otimes W_p + C_2\otimes I_K ,

    from vec(AXB) = (Bᵀ ⊗ A) vec(X) applied to each term of ∇_W J. J = ½ vec(W)ᵀ H vec(W) and
    the flow without stop-gradient is d vec(W)/dt = −(H + ηI) vec(W). H is symmetric positive
    semi-definite; for symmetric views it equals X' ⊗ (W_pᵀW_p + I) + X ⊗ (W_p − I)ᵀ(W_p − I).
    Pass ``torch.eye(K)`` as ``Wp`` for the model without predictor.

    Args:
        Wp: ``(..., K, K)``; C1, C2: ``(..., D, D)`` symmetric; C12: ``(..., D, D)``.
        weight_decay: η ≥ 0, added to the diagonal.

    Returns:
        ``(..., K·D, K·D)``.
    """
    eta, _ = _rates(weight_decay)
    Wp, C1, C2, C12 = _operator_args(Wp, C1, C2, C12)
    K = Wp.shape[-1]
    eye = torch.eye(K, dtype=Wp.dtype, device=Wp.device)
    H = _kron(C1, _t(Wp) @ Wp) - _kron(C12, _t(Wp)) - _kron(_t(C12), Wp) + _kron(C2, eye)
    return H + eta * torch.eye(H.shape[-1], dtype=H.dtype, device=H.device) if eta else H


def stopgrad_operator(Wp, C1, C2, C12, *, weight_decay: float = 0.0) -> torch.Tensor:
    r"""M + ηI with vec(Ẇ) = −(M + ηI) vec(W) for SimSiam's flow (stop-gradient), column-major vec.

    .. math::
        M = C_1\otimes W_p^\top W_p - C_{12}\otimes W_p^\top ,

    from Ẇ = −W_pᵀ(W_pWC₁ − WC₁₂ᵀ). M is not symmetric in general and its symmetric part may have
    negative eigenvalues, so no decay bound follows. C2 is accepted for a uniform signature.

    Args:
        Wp, C1, C2, C12, weight_decay: as in :func:`hessian_operator`.

    Returns:
        ``(..., K·D, K·D)``.
    """
    eta, _ = _rates(weight_decay)
    Wp, C1, C2, C12 = _operator_args(Wp, C1, C2, C12)
    M = _kron(C1, _t(Wp) @ Wp) - _kron(C12, _t(Wp))
    return M + eta * torch.eye(M.shape[-1], dtype=M.dtype, device=M.device) if eta else M


# --------------------------------------------------------------------------------------------
# integration and the norm bound
# --------------------------------------------------------------------------------------------


class Trajectory(NamedTuple):
    """What :func:`integrate` returns.

    Attributes:
        times: ``(T,)`` the recorded times t_n = n·dt (0 first, the last step always included).
        W: ``(T, ...)`` the first state tensor at those times (W(t) for the flows of this module).
        Wp: ``(T, ...)`` the second state tensor (W_p(t)), or None when the state was one tensor.
    """

    times: torch.Tensor
    W: torch.Tensor
    Wp: torch.Tensor | None


def integrate(flow_fn: Callable, state, *, dt: float, steps: int, method: str = "rk4",
              record_every: int = 1) -> Trajectory:
    r"""Integrate the autonomous ODE ṡ = f(s) with a fixed step: classical Runge–Kutta 4 or Euler.

    RK4: k₁ = f(s), k₂ = f(s + ½dt k₁), k₃ = f(s + ½dt k₂), k₄ = f(s + dt k₃),
    s ← s + dt(k₁ + 2k₂ + 2k₃ + k₄)/6 (global error O(dt⁴): halving dt divides it by about 16).
    Euler: s ← s + dt f(s) (global error O(dt)). The state is one tensor or a pair (W, W_p); for a
    pair, ``flow_fn(W, Wp)`` returns ``(dW, dWp)``, e.g.
    ``integrate(lambda W, Wp: flow_stopgrad(W, Wp, C1, C2, C12), (W0, Wp0), dt=0.01, steps=1000)``, or
    faster, ``integrate(linear_flow("stopgrad", C1, C2, C12), (W0, Wp0), ...)`` (checked once).
    A state that the derivative broadcasts to a larger batch (W ``(B, K, D)``, Wp ``(K, K)``) is
    expanded first. Batch dimensions integrate independently (e.g. several initialisations at once).

    Args:
        flow_fn: the right-hand side, called with the state tensor(s).
        state: a tensor, or a pair of tensors.
        dt: the step, a finite positive number; steps: the number of steps (≥ 1).
        method: ``"rk4"`` or ``"euler"``.
        record_every: keep every this many steps (the last one always).

    Returns:
        :class:`Trajectory` ``(times, W, Wp)``; ``Wp`` is None for a one-tensor state.
    """
    if not callable(flow_fn):
        raise TypeError(f"flow_fn must be callable (the ODE's right-hand side); got {type(flow_fn).__name__}")
    dt = check_number(dt, "dt", low=0, closed_low=False)
    steps = check_int(steps, "steps", low=1)
    record_every = check_int(record_every, "record_every", low=1)
    if not isinstance(method, str) or method not in INTEGRATION_METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in INTEGRATION_METHODS)}; got {method!r}")
    single = isinstance(state, torch.Tensor)
    if single:
        states = (as_float_tensor(state, "state"),)
    else:
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            length = f" of length {len(state)}" if isinstance(state, (tuple, list)) else ""
            raise TypeError(f"state must be a tensor or a pair of tensors (W, Wp); got {type(state).__name__}{length}")
        states = (as_float_tensor(state[0], "state[0]"), as_float_tensor(state[1], "state[1]"))
        check_same_device(**{"state[0]": states[0], "state[1]": states[1]})

    def f(s):
        out = flow_fn(*s)
        out = (out,) if single else tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if len(out) != len(s) or not all(isinstance(o, torch.Tensor) for o in out):
            raise ValueError(f"flow_fn must return {'a tensor' if single else 'a pair of tensors'} like the state; "
                             f"got {type(out).__name__} of length {len(out)}")
        return out

    k1 = f(states)
    states = tuple(s.expand(torch.broadcast_shapes(s.shape, k.shape)).clone() if s.shape != k.shape else s
                   for s, k in zip(states, k1))
    times, records = [0.0], [states]
    for n in range(1, steps + 1):
        if n > 1:
            k1 = f(states)
        if method == "euler":
            states = tuple(s + dt * k for s, k in zip(states, k1))
        else:
            k2 = f(tuple(s + 0.5 * dt * k for s, k in zip(states, k1)))
            k3 = f(tuple(s + 0.5 * dt * k for s, k in zip(states, k2)))
            k4 = f(tuple(s + dt * k for s, k in zip(states, k3)))
            states = tuple(s + (dt / 6) * (a + 2 * b + 2 * c + d) for s, a, b, c, d in zip(states, k1, k2, k3, k4))
        if n % record_every == 0 or n == steps:
            times.append(n * dt)
            records.append(states)
    t = torch.tensor(times, dtype=states[0].dtype, device=states[0].device)
    stacked = [torch.stack([r[i] for r in records]) for i in range(len(states))]
    return Trajectory(t, stacked[0], None if single else stacked[1])


class NormBound(NamedTuple):
    """What :func:`norm_bound` returns (all ``(T, ...)``, the batch shape of W).

    Attributes:
        times: ``(T,)`` the times.
        norms: ‖vec W(t)‖ (the Frobenius norm).
        lambda_min: λ_min(½(H + Hᵀ)) at each time.
        bound: ‖vec W(t₀)‖ exp(−∫_{t₀}^t λ_min ds), the integral by the trapezoid rule.
        bound_constant: ‖vec W(t₀)‖ exp(−λ₀(t − t₀)) with λ₀ the smallest recorded λ_min.
    """

    times: torch.Tensor
    norms: torch.Tensor
    lambda_min: torch.Tensor
    bound: torch.Tensor
    bound_constant: torch.Tensor


def norm_bound(times, W, H) -> NormBound:
    r"""Grönwall's bound on ‖vec W(t)‖ along a trajectory of d vec(W)/dt = −H(t) vec(W).

    d‖w‖²/dt = −2wᵀH(t)w = −2wᵀ½(H + Hᵀ)w ≤ −2λ(t)‖w‖², with λ(t) the smallest eigenvalue of the
    *symmetric part* of H(t) (H need not be symmetric, e.g. :func:`stopgrad_operator`), so

    .. math::
        \lVert w(t)\rVert \le \lVert w(t_0)\rVert\, e^{-\int_{t_0}^t\lambda(s)\,ds}
        \le \lVert w(t_0)\rVert\, e^{-\lambda_0 (t - t_0)}, \qquad \lambda_0 = \min_s \lambda(s).

    The bound holds for any λ(t), positive or not; it forces W → 0 when ∫λ → ∞ (e.g. λ ≥ λ₀ > 0).
    The integral uses the trapezoid rule over the given times (error O(Δt²)).

    Args:
        times: ``(T,)`` increasing times (a :class:`Trajectory`'s ``times``).
        W: ``(T, ..., K, D)`` the states at those times.
        H: ``(T, ..., K·D, K·D)`` the operator at those times (e.g. :func:`hessian_operator` of the
            trajectory's W_p), or ``(K·D, K·D)`` for a constant H; its batch shape must broadcast to
            W's ``(T, ...)`` aligned from the right (a time-varying H for a batch of W: ``H[:, None]``).

    Returns:
        :class:`NormBound`.
    """
    times = as_float_tensor(times, "times")
    if times.dim() != 1 or times.shape[0] < 1:
        raise ValueError(f"times must have shape (T,) with T >= 1; got shape {tuple(times.shape)}")
    T = times.shape[0]
    if T > 1 and not bool((times[1:] > times[:-1]).all()):
        raise ValueError("times must be strictly increasing")
    W = _matrix(W, "W", "(T, ..., K, D)", like=times)
    check_min_ndim(W, "W", 3, "(T, ..., K, D)")
    if W.shape[0] != T:
        raise ValueError(f"W must have shape (T, ..., K, D) with T = {T} (the number of times); got shape "
                         f"{tuple(W.shape)}")
    KD = W.shape[-1] * W.shape[-2]
    H = _matrix(H, "H", f"(T, ..., {KD}, {KD})", like=W)
    if H.shape[-2:] != (KD, KD):
        raise ValueError(f"H must have shape (T, ..., {KD}, {KD}) (K*D = {KD} from W); got shape {tuple(H.shape)}")
    check_same_device(times=times, W=W, H=H)
    times, W, H = promote_float(times, W, H)
    norms = torch.linalg.matrix_norm(W)                     # (T, ...)
    lam = torch.linalg.eigvalsh(0.5 * (H + _t(H)))[..., 0]  # H's batch shape
    try:
        shape = torch.broadcast_shapes(lam.shape, norms.shape)
    except RuntimeError:
        shape = None
    if shape != norms.shape:
        raise ValueError(f"H's batch shape {tuple(H.shape[:-2])} must broadcast to W's {tuple(W.shape[:-2])} "
                         "(aligned from the right; a time-varying H without W's batch dimensions needs "
                         "H[:, None])")
    lam = lam.expand(shape)
    dt = (times[1:] - times[:-1]).reshape(-1, *([1] * (lam.dim() - 1)))
    increments = 0.5 * (lam[1:] + lam[:-1]) * dt
    integral = torch.cat([torch.zeros_like(lam[:1]), torch.cumsum(increments, 0)])
    elapsed = (times - times[0]).reshape(-1, *([1] * (lam.dim() - 1)))
    lam0 = lam.amin(0)
    return NormBound(times, norms, lam, norms[0] * torch.exp(-integral), norms[0] * torch.exp(-lam0 * elapsed))


# --------------------------------------------------------------------------------------------
# diagnostics
# --------------------------------------------------------------------------------------------


def effective_rank(A) -> torch.Tensor:
    r"""Roy & Vetterli's effective rank: exp of the entropy of the normalised singular values.

    With σ₁ ≥ … ≥ σ_r the singular values of A and p_i = σ_i / Σ_j σ_j (0 log 0 = 0),

    .. math::
        \operatorname{erank}(A) = \exp\Big(-\sum_i p_i \log p_i\Big) \in [1, \operatorname{rank} A].

    It is r for r equal non-zero singular values (identity I_r → r), 1 for a rank-one matrix, and
    varies continuously in between. Apply it to the representations Z ``(N, K)`` (rows f⁽ⁿ⁾, not
    centred: a collapse onto one vector gives 1) or to a covariance; the two differ, since the
    singular values of ZᵀZ are the squares of Z's. A zero matrix gives NaN (no direction at all).

    Args:
        A: ``(..., M, N)``.

    Returns:
        ``(...)`` effective ranks.
    """
    A = _matrix(A, "A", "(..., M, N)")
    s = torch.linalg.svdvals(A)
    total = s.sum(-1, keepdim=True)
    p = s / total
    entropy = -torch.xlogy(p, p).sum(-1)
    return torch.where(total.squeeze(-1) > 0, torch.exp(entropy), torch.full_like(entropy, float("nan")))


def predictor_spectrum(Wp) -> torch.Tensor:
    r"""The eigenvalues of W_p (complex in general), sorted by decreasing real part.

    Args:
        Wp: ``(..., K, K)``.

    Returns:
        ``(..., K)`` complex eigenvalues.
    """
    Wp = _matrix(Wp, "Wp", "(..., K, K)")
    _check_square_predictor(Wp)
    evals = torch.linalg.eigvals(Wp)
    order = torch.argsort(evals.real, dim=-1, descending=True)
    return torch.gather(evals, -1, order)


def representation_spectrum(W, C) -> torch.Tensor:
    r"""The eigenvalues of the representation's second moment W C Wᵀ, in decreasing order.

    With C = C₁ (= X + X') this is the spectrum of E[f₁f₁ᵀ]; with C = X that of the paper's
    F = WXWᵀ. Collapse shows as eigenvalues going to 0.

    Args:
        W: ``(..., K, D)``; C: ``(..., D, D)`` symmetric.

    Returns:
        ``(..., K)`` real eigenvalues, decreasing.
    """
    W = _matrix(W, "W", "(..., K, D)")
    C = _matrix(C, "C", "(..., D, D)", like=W)
    check_square(C, "C")
    if C.shape[-1] != W.shape[-1]:
        raise ValueError(f"C must have shape (..., {W.shape[-1]}, {W.shape[-1]}) (D = {W.shape[-1]}, the columns "
                         f"of W); got shape {tuple(C.shape)}")
    check_symmetric(C, "C")
    check_same_device(W=W, C=C)
    broadcast_batch_shapes(W=W.shape[:-2], C=C.shape[:-2])
    W, C = promote_float(W, C)
    F = W @ C @ _t(W)
    return torch.linalg.eigvalsh(0.5 * (F + _t(F))).flip(-1)


class Alignment(NamedTuple):
    """What :func:`eigen_alignment` returns.

    Attributes:
        commutator: ``(...)`` ‖W_pF − FW_p‖_F / (√2 ‖W_p‖_F ‖F‖_F) ∈ [0, 1]; 0 when they commute.
        asymmetry: ``(...)`` ‖(W_p − W_pᵀ)/2‖_F / ‖W_p‖_F ∈ [0, 1]; 0 for a symmetric W_p.
        cosines: ``(..., K, K)`` |u_iᵀ v_j|, u_i the eigenvectors of ½(W_p + W_pᵀ) and v_j those of F,
            both ordered by decreasing eigenvalue (a permutation matrix when aligned, up to
            degenerate eigenvalues).
    """

    commutator: torch.Tensor
    asymmetry: torch.Tensor
    cosines: torch.Tensor


def eigen_alignment(Wp, F) -> Alignment:
    r"""How well the predictor's eigenspaces align with those of a symmetric F (e.g. WXWᵀ).

    The paper predicts that under SimSiam's flow (symmetric views, X = I, X' = σ²I, weight decay)
    W_p becomes symmetric and shares its eigenvectors with F = WXWᵀ: the commutator
    [W_p, F] = W_pF − FW_p → 0. The commutator is normalised by √2 ‖W_p‖_F‖F‖_F, its largest
    possible value (Böttcher & Wenzel 2008: ‖AB − BA‖_F ≤ √2 ‖A‖_F‖B‖_F), so it lies in [0, 1];
    NaN when W_p or F is zero.

    Args:
        Wp: ``(..., K, K)``; F: ``(..., K, K)`` symmetric.

    Returns:
        :class:`Alignment` ``(commutator, asymmetry, cosines)``.
    """
    Wp = _matrix(Wp, "Wp", "(..., K, K)")
    _check_square_predictor(Wp)
    F = _matrix(F, "F", "(..., K, K)", like=Wp)
    check_square(F, "F")
    if F.shape[-1] != Wp.shape[-1]:
        raise ValueError(f"F must have shape (..., {Wp.shape[-1]}, {Wp.shape[-1]}) like Wp; got shape "
                         f"{tuple(F.shape)}")
    check_symmetric(F, "F")
    check_same_device(Wp=Wp, F=F)
    broadcast_batch_shapes(Wp=Wp.shape[:-2], F=F.shape[:-2])
    Wp, F = promote_float(Wp, F)
    norm_p = torch.linalg.matrix_norm(Wp)
    comm = torch.linalg.matrix_norm(Wp @ F - F @ Wp) / (math.sqrt(2) * norm_p * torch.linalg.matrix_norm(F))
    asym = torch.linalg.matrix_norm(0.5 * (Wp - _t(Wp))) / norm_p
    _, U = torch.linalg.eigh(0.5 * (Wp + _t(Wp)))
    _, V = torch.linalg.eigh(0.5 * (F + _t(F)))
    cos = (_t(U.flip(-1)) @ V.flip(-1)).abs()
    return Alignment(comm, asym, cos)


# --------------------------------------------------------------------------------------------
# a small non-linear SimSiam
# --------------------------------------------------------------------------------------------


def _with_batch_norm(net: nn.Sequential) -> nn.Sequential:
    """Insert a BatchNorm1d after every Linear layer but the last (before its activation)."""
    layers = list(net)
    last = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear))
    out: list[nn.Module] = []
    for i, layer in enumerate(layers):
        out.append(layer)
        if isinstance(layer, nn.Linear) and i != last:
            out.append(nn.BatchNorm1d(layer.out_features, dtype=layer.weight.dtype, device=layer.weight.device))
    return nn.Sequential(*out)


class SimSiamNet(nn.Module):
    r"""SimSiam's two networks: an encoder f (MLP, ``depth`` hidden layers) and a predictor h.

    z = f(x) ∈ R^K is the representation, p = h(z) the prediction; h is an MLP with one hidden
    layer of width ``pred_hidden`` (SimSiam's bottleneck), or the identity when
    ``predictor=False``. With ``batch_norm=True`` every hidden layer is Linear → BatchNorm → ReLU
    (as in SimSiam's projector and predictor; the output layer has no BatchNorm, so a collapse to
    a constant stays possible). Without it, a small SimSiam on the digits loses most of its
    directions even with stop-gradient. Linear weights are drawn from ``generator`` as in
    :func:`dgm.nets.mlp` (torch's global RNG when None); BatchNorm starts at γ = 1, β = 0.
    ``net(x)`` returns ``(z, p)``; evaluate in ``net.eval()`` mode (BatchNorm's running statistics).

    Args:
        in_dim: D; hidden: encoder width; out_dim: K; pred_hidden: predictor width.
        depth: the encoder's number of hidden layers.
        predictor: with (True) or without (False, h = identity) a predictor.
        batch_norm: BatchNorm in the hidden layers.
        generator, dtype, device: as in :func:`dgm.nets.mlp`.
    """

    def __init__(self, in_dim: int, hidden: int = 64, out_dim: int = 32, pred_hidden: int = 16, *,
                 depth: int = 2, predictor: bool = True, batch_norm: bool = True,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        for name, flag in (("predictor", predictor), ("batch_norm", batch_norm)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False; got {flag!r}")
        opts = {"generator": generator, "dtype": dtype, "device": device}
        encoder = mlp(in_dim, hidden, out_dim, depth, "relu", **opts)
        head = mlp(out_dim, pred_hidden, out_dim, 1, "relu", **opts) if predictor else nn.Identity()
        self.encoder = _with_batch_norm(encoder) if batch_norm else encoder
        self.predictor = _with_batch_norm(head) if batch_norm and predictor else head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.predictor(z)


def noise_augment(x, *, noise_std: float = 0.2, mask_prob: float = 0.3,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    r"""A random view x' = m ⊙ x + σ ε: drop each coordinate with probability q, add N(0, σ²) noise.

    m_d ~ Bernoulli(1 − q) and ε ~ N(0, I) independent, drawn from ``generator``. Its moments given
    x: E[x' | x] = (1 − q)x and Cov(x' | x) = q(1 − q) diag(x ⊙ x) + σ²I, so two such views have
    X = (1 − q)² E[xxᵀ] and X' = q(1 − q) diag(E[x ⊙ x]) + σ²I in the linear theory.

    Args:
        x: ``(B, D)`` points; noise_std: σ ≥ 0; mask_prob: q ∈ [0, 1).
        generator: ``torch.Generator`` (any device: the draws are made there, then moved to x's).

    Returns:
        ``(B, D)`` augmented points.
    """
    x = _matrix(x, "x", "(B, D)")
    noise_std = check_number(noise_std, "noise_std", low=0)
    mask_prob = check_number(mask_prob, "mask_prob", low=0, high=1, closed_high=False)
    where = generator.device if generator is not None else x.device
    keep = (torch.rand(x.shape, generator=generator, dtype=x.dtype, device=where) >= mask_prob).to(x.device)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=where).to(x.device)
    return x * keep + noise_std * eps


def simsiam_cosine_loss(p1, p2, z1, z2, *, stop_gradient: bool = True) -> torch.Tensor:
    r"""SimSiam's symmetrised loss L = −½ cos(p₁, sg(z₂)) − ½ cos(p₂, sg(z₁)), averaged over the batch.

    cos(a, b) = aᵀb / (‖a‖‖b‖), by ``torch.nn.functional.cosine_similarity`` (eps = 1e-8 against 0/0).
    L ∈ [−1, 1]; −1 when every prediction points along the other view's representation. With
    ``stop_gradient=False`` the targets z are not detached (the collapsing variant).

    Args:
        p1, p2: ``(B, K)`` predictions of the two views; z1, z2: ``(B, K)`` their representations.
        stop_gradient: detach z₁ and z₂ in the targets.

    Returns:
        0-dim tensor L.
    """
    p1 = _matrix(p1, "p1", "(B, K)")
    tensors = {"p1": p1}
    for name, value in (("p2", p2), ("z1", z1), ("z2", z2)):
        t = _matrix(value, name, "(B, K)", like=p1)
        if t.shape != p1.shape:
            raise ValueError(f"{name} must have the shape of p1 {tuple(p1.shape)}; got shape {tuple(t.shape)}")
        tensors[name] = t
    check_same_device(**tensors)
    p1, p2, z1, z2 = promote_float(*tensors.values())
    if stop_gradient:
        z1, z2 = z1.detach(), z2.detach()
    cos = nn.functional.cosine_similarity
    return -0.5 * (cos(p1, z2, dim=-1).mean() + cos(p2, z1, dim=-1).mean())


class SimSiamRun(NamedTuple):
    """What :func:`train_simsiam` records.

    Attributes:
        net: the trained :class:`SimSiamNet`.
        steps: the steps at which the representations were evaluated (a list of ints, 0 first).
        effective_rank: :func:`effective_rank` of the encoder's outputs Z on the evaluation points at
            those steps (a list of floats).
        output_std: the mean over coordinates of the standard deviation over points of z/‖z‖
            (Chen & He's collapse indicator: ≈ 1/√K for spread-out outputs, 0 after a collapse).
        loss: the training loss at every step (a list of floats).
    """

    net: nn.Module
    steps: list
    effective_rank: list
    output_std: list
    loss: list


def train_simsiam(data, augment: Callable | None = None, steps: int = 150, *, stop_gradient: bool = True,
                  predictor: bool = True, generator: torch.Generator | None = None, net: SimSiamNet | None = None,
                  hidden: int = 64, out_dim: int = 32, pred_hidden: int = 16, batch_norm: bool = True,
                  batch_size: int = 128, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4,
                  eval_every: int = 50, num_eval: int = 512, progress: bool = False) -> SimSiamRun:
    r"""Train a small SimSiam with the cosine loss, with or without stop-gradient and predictor.

    Each step draws a minibatch (with replacement), two views x₁ = a(x), x₂ = a(x) with the
    augmentation a, computes (z_i, p_i) = net(x_i) and takes an SGD step (momentum, weight decay)
    on :func:`simsiam_cosine_loss`. Every ``eval_every`` steps (and at 0 and the end) the
    effective rank and the output spread of the encoder on the first ``num_eval`` points of
    ``data`` (no augmentation) are recorded. Every random number (initial weights when ``net`` is
    None, minibatches, augmentations) comes from ``generator``.

    Args:
        data: ``(N, D)`` training points (e.g. :func:`dgm.data.load_digits`).
        augment: ``augment(x, generator) -> x'``; None uses :func:`noise_augment`'s defaults.
        steps: the number of SGD steps (≥ 1).
        stop_gradient: detach the targets (SimSiam) or not (collapses).
        predictor: with the MLP predictor or with p = z; ignored when ``net`` is given.
        generator: CPU ``torch.Generator`` for all randomness.
        net: a :class:`SimSiamNet` to train in place; None builds one from ``hidden``, ``out_dim``,
            ``pred_hidden``, ``predictor`` and ``batch_norm`` with weights from ``generator``.
        batch_size, lr, momentum, weight_decay: the minibatch size and SGD's settings.
        eval_every: evaluation period in steps; num_eval: how many points are evaluated.
        progress: show a tqdm text bar.

    Returns:
        :class:`SimSiamRun` ``(net, steps, effective_rank, output_std, loss)``.
    """
    x = _matrix(data, "data", "(N, D)")
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"data must have shape (N, D) with N >= 2; got shape {tuple(x.shape)}")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable as augment(x, generator) or None; got {type(augment).__name__}")
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=2)
    eval_every = check_int(eval_every, "eval_every", low=1)
    num_eval = check_int(num_eval, "num_eval", low=2)
    lr = check_number(lr, "lr", low=0, closed_low=False)
    momentum = check_number(momentum, "momentum", low=0, high=1, closed_high=False)
    weight_decay = check_number(weight_decay, "weight_decay", low=0)
    for name, flag in (("stop_gradient", stop_gradient), ("predictor", predictor), ("batch_norm", batch_norm),
                       ("progress", progress)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False; got {flag!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    if net is None:
        net = SimSiamNet(x.shape[1], hidden, out_dim, pred_hidden, predictor=predictor, batch_norm=batch_norm,
                         generator=generator, dtype=x.dtype, device=x.device)
    elif not isinstance(net, SimSiamNet):
        raise TypeError(f"net must be a SimSiamNet or None; got {type(net).__name__}")
    if augment is None:
        def augment(batch, gen):
            return noise_augment(batch, generator=gen)

    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    evaluation = x[:num_eval]
    run = SimSiamRun(net, [], [], [], [])

    def evaluate(step):
        net.eval()
        with torch.no_grad():
            z = net.encoder(evaluation)
        net.train()
        run.steps.append(step)
        run.effective_rank.append(float(effective_rank(z)))
        unit = z / z.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        run.output_std.append(float(unit.std(0).mean()))

    evaluate(0)
    from tqdm import tqdm

    for step in tqdm(range(1, steps + 1), disable=not progress, desc="SimSiam"):
        idx = torch.randint(x.shape[0], (batch_size,), generator=generator).to(x.device)
        batch = x[idx]
        z1, p1 = net(augment(batch, generator))
        z2, p2 = net(augment(batch, generator))
        loss = simsiam_cosine_loss(p1, p2, z1, z2, stop_gradient=stop_gradient)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        run.loss.append(float(loss.detach()))
        if step % eval_every == 0 or step == steps:
            evaluate(step)
    return run
