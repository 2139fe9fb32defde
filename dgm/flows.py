r"""Normalizing flows and autoregressive models (Chapter 4).

**Change of variables.** A flow is an invertible map z = f(x) from the data to a base variable
z ~ p_Z, here N(0, I_D) (the book's convention: f goes from data to latent; samples are
x = f⁻¹(z)). Its density follows from the change of variables, in 1-D p_X(x) = p_Z(f(x)) |f'(x)|
and in D dimensions

.. math::
    \log p_X(x) = \log p_Z\big(f(x)\big) + \log\Big|\det \frac{\partial f(x)}{\partial x}\Big|
    = \log p_Z(z) - \log\Big|\det \frac{\partial f^{-1}(z)}{\partial z}\Big|_{z = f(x)} .

For a composition f = f_1 ∘ ⋯ ∘ f_K the log-determinants add (the Jacobian is a product). Examples:
X = exp(Y), Y ~ N(μ, σ²) is log-normal, p_X(x) = N(ln x; μ, σ²)/x (:func:`lognormal_log_prob`);
Z ~ U[−2, 3], X = exp(Z) has p_X(5) = (1/5)·(1/5) = 1/25 (:func:`change_of_variables_1d`).
Rescaling the data, y = a·x + b, shifts every log-likelihood by the same constant,
log p_X(x) = log p_Y(y) + D log|a| (:func:`rescaled_log_prob`): pixels in [0, 255] mapped to
[−1, 1] by y = x/127.5 − 1 lose D·log 127.5 nats per image. :func:`bits_per_dim` reports
−log p(x) / (D ln 2). Discrete data get a density by *dequantisation* (:func:`dequantize`):
y = x + u, u ~ U[0, 1)^D, and E_u[log p(x + u)] ≤ log ∫_{[0,1)^D} p(x + u) du = log P(x).

**Direction convention.** Every layer of this module maps *towards the base*: ``layer(x)``
returns ``(y, log|det ∂y/∂x|)`` (data side to base side) and ``layer.inverse(y)`` returns
``(x, log|det ∂x/∂y|)`` = minus the former at the same pair. A :class:`Flow` applies its layers in
order, so ``flow(x) = (z, Σ_k log|det J_k|)`` and log p(x) = log N(z; 0, I) + Σ_k log|det J_k|;
sampling runs the inverses in reverse order from z ~ N(0, I).

**Triangular Jacobians.** The layers are built so that the log-determinant costs O(D) instead of
the O(D³) of a general Jacobian (:func:`log_det_autograd` computes that one, for checks):

* :class:`AffineCoupling` (RealNVP, Dinh et al. 2017): with a split of the coordinates into a
  passive part a (copied) and an active part b, y_a = x_a, y_b = x_b ⊙ exp(s(x_a)) + t(x_a).
  The Jacobian is triangular with diagonal (1, …, 1, e^{s}), so log|det| = Σ_j s_j(x_a), and the
  inverse x_b = (y_b − t(y_a)) ⊙ exp(−s(y_a)) needs no inversion of s or t. The log-scale is
  soft-clamped, s = c·tanh(ŝ/c), so that |s| < c = ``max_log_scale`` whatever the network says.
* :class:`Permutation` (|det| = 1, log-det 0) between couplings lets every coordinate be
  transformed; :class:`FixedLinear` (e.g. a rotation, log-det 0) and :class:`LULinear` (Glow's
  W = P L (U + diag(e^{σ}·sign)), log-det Σ σ) are linear layers.
* Autoregressive layers (MAF, Papamakarios et al. 2017; IAF, Kingma et al. 2016) use one
  autoregressive affine map built on a :class:`MADE` conditioner (μ_d, α_d) that depends on
  a_{<d} only:

  .. math::
      T(a)_d = \big(a_d - \mu_d(a_{<d})\big)\, e^{-\alpha_d(a_{<d})}, \qquad
      \log|\det \partial T/\partial a| = -\textstyle\sum_d \alpha_d(a_{<d}).

  T costs one pass of the MADE (it reads its own input); T⁻¹ costs D passes
  (a_d = μ_d + e^{α_d} b_d needs a_{<d} first). :class:`MAFLayer` uses T from data to base
  (density of any x in one pass, sampling in D passes); :class:`IAFLayer` uses the same T from
  base to data, x = T(z) (sampling in one pass, and the density of its own samples, whose z is
  known; the density of an arbitrary x needs z = T⁻¹(x): D passes).

**MADE** (Germain et al. 2015). Every unit gets a *degree*: input d has m(d) = order[d] + 1, a
hidden unit k a degree m(k) ∈ {1, …, D−1}; a hidden weight k ← j is kept iff m(k) ≥ m(j) and an
output weight d ← k iff m(d) > m(k). Then output d depends only on the inputs j with
order[j] < order[d]: the network computes every conditional p(x_d | x_{<d}) of
p(x) = Π_d p(x_d | x_{<d}) in one pass. Different orderings give different models of the same
data; their equal-weight mixture (an *ensemble over orderings*) has
log p_ens(x) = log (1/K) Σ_k p_k(x) (log-mean-exp, :func:`ensemble_log_prob`), which by Jensen
is never below the mean of the log p_k(x).

Data: two moons and a ring of Gaussians come from :mod:`dgm.data`; here :func:`checkerboard` (with
its exact density) and :func:`binarize` (8×8 digits → 64 bits). :func:`train_flow` fits any model
with a ``log_prob`` (a :class:`Flow`, a :class:`MADE`) by maximum likelihood.

Conventions. ``order`` is a permutation of 0..D−1 giving each coordinate's *position*: x_d is
conditioned on the x_j with order[j] < order[d] (``MADE.sequence`` lists the coordinates in
generation order, argsort(order)). Modules take ``dtype`` and ``device`` and draw their initial
weights on the CPU, in float64, from ``generator`` (torch's global RNG when it is None), then cast
and move: the same seed gives the same network on every device and, up to rounding, in float32
and float64. Inputs must have the module's dtype and device;
sampling takes ``generator=`` (noise drawn on the generator's device, then moved to the model's).
Log-densities are in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dgm._validate import (
    as_float_tensor,
    check_float_dtype,
    check_generator,
    check_int,
    check_last_dim,
    check_min_ndim,
    check_number,
    check_positive,
    check_same_device,
    promote_float,
)
from dgm.distributions import bernoulli_log_prob
from dgm.nets import ACTIVATIONS, mlp

__all__ = [
    "FlowLayer",
    "AffineCoupling",
    "Permutation",
    "FixedLinear",
    "LULinear",
    "MaskedLinear",
    "MADE",
    "MAFLayer",
    "IAFLayer",
    "Flow",
    "RealNVP",
    "MAF",
    "IAF",
    "TrainingHistory",
    "train_flow",
    "standard_normal_log_prob",
    "log_det_autograd",
    "change_of_variables_1d",
    "lognormal_log_prob",
    "rescaled_log_prob",
    "bits_per_dim",
    "dequantize",
    "made_degrees",
    "made_masks",
    "random_orders",
    "random_rotation",
    "log_mean_exp",
    "ensemble_log_prob",
    "binarize",
    "checkerboard",
    "checkerboard_log_prob",
]

_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------
# small helpers: argument checks shared by the classes
# --------------------------------------------------------------------------------------------


def _check_init_generator(generator) -> torch.Generator | None:
    """Initial weights are drawn on the CPU (then moved), so their generator must live there."""
    generator = check_generator(generator)
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must live on the CPU (initial weights are drawn there, then moved); "
                         f"got one on {generator.device}")
    return generator


def _check_max_log_scale(value) -> float | None:
    if value is None:
        return None
    return check_number(value, "max_log_scale", low=0, closed_low=False)


def _soft_clamp(raw: torch.Tensor, bound: float | None) -> torch.Tensor:
    """c·tanh(raw / c): ≈ raw near 0, never beyond ±c (``bound`` None: raw itself)."""
    return raw if bound is None else bound * torch.tanh(raw / bound)


def _check_order(order, dim: int, name: str = "order") -> torch.Tensor:
    """A permutation of 0..dim−1 as an int64 CPU tensor, or raise naming ``name``."""
    if isinstance(order, torch.Tensor):
        if order.dtype.is_floating_point or order.dtype == torch.bool or order.dtype.is_complex:
            raise TypeError(f"{name} must hold integers (a permutation of 0..{dim - 1}); got dtype {order.dtype}")
        t = order.detach().to("cpu", torch.int64)
    else:
        try:
            values = list(order)
        except TypeError:
            raise TypeError(f"{name} must be a sequence or tensor of integers (a permutation of 0..{dim - 1}); "
                            f"got {type(order).__name__}") from None
        for v in values:
            check_int(v, f"every entry of {name}", expected=f"an integer (a permutation of 0..{dim - 1})")
        t = torch.tensor([int(v) for v in values], dtype=torch.int64)
    if t.dim() != 1 or t.numel() != dim or not torch.equal(torch.sort(t).values, torch.arange(dim)):
        shown = t.tolist() if t.numel() <= 12 else f"a tensor of shape {tuple(t.shape)}"
        raise ValueError(f"{name} must be a permutation of 0..{dim - 1} (each once); got {shown}")
    return t


def _reference(module: nn.Module) -> torch.Tensor | None:
    """The module's first floating parameter or buffer (its dtype and device), else any buffer."""
    fallback = None
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t
        fallback = t if fallback is None else fallback
    return fallback


def _check_points(x, name: str, dim: int, module: nn.Module) -> torch.Tensor:
    """``x`` as a finite floating ``(..., dim)`` tensor with the module's dtype and device."""
    ref = _reference(module)
    like = ref if ref is not None and ref.is_floating_point() else None
    x = as_float_tensor(x, name, like=like)
    check_min_ndim(x, name, 1, f"(..., {dim})")
    check_last_dim(x, name, dim, f"(..., {dim})")
    if ref is not None:
        check_same_device(**{name: x, "the model's parameters": ref})
        if ref.is_floating_point() and x.dtype != ref.dtype:
            raise TypeError(f"{name} must have the model's dtype {ref.dtype}; got {x.dtype}. Convert it with "
                            f"{name}.to({ref.dtype}) or build the model with dtype={x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    return x


def _model_dtype_device(module: nn.Module) -> tuple[torch.dtype, torch.device]:
    ref = _reference(module)
    if ref is None or not ref.is_floating_point():
        return torch.get_default_dtype(), (ref.device if ref is not None else torch.device("cpu"))
    return ref.dtype, ref.device


def _noise(kind: str, n: int, dim: int, generator: torch.Generator | None, dtype: torch.dtype,
           device: torch.device) -> torch.Tensor:
    """``(n, dim)`` N(0, I) (``kind="normal"``) or U[0, 1) draws, made in float64 on the generator's
    device (the model's without one), then cast and moved: float32 and float64 models given the same
    seed get the same noise, up to rounding."""
    where = generator.device if generator is not None else device
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(n, dim, generator=generator, dtype=torch.float64, device=where).to(device=device, dtype=dtype)


def _uniform_init_(weight: torch.Tensor, bias: torch.Tensor, fan_in: int, generator) -> None:
    """U(−1/√fan_in, 1/√fan_in), torch.nn.Linear's default, drawn in float64 on the CPU from
    ``generator`` and cast (the same seed gives the same weights, up to rounding, in any dtype)."""
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    with torch.no_grad():
        for p in (weight, bias):
            p.copy_(torch.empty(p.shape, dtype=torch.float64).uniform_(-bound, bound, generator=generator))


def standard_normal_log_prob(z) -> torch.Tensor:
    r"""log N(z; 0, I_D) = −½ Σ_d z_d² − (D/2) log 2π, the base density of every flow here.

    Args:
        z: ``(..., D)`` points.

    Returns:
        ``(...)`` log-density in nats.
    """
    z = as_float_tensor(z, "z")
    check_min_ndim(z, "z", 1, "(..., D)")
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * _LOG_2PI


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------


class FlowLayer(nn.Module):
    r"""An invertible map of ``(..., D)`` points towards the base, with its log-determinant.

    ``layer(x)`` returns ``(y, log|det ∂y/∂x|)`` and ``layer.inverse(y)`` returns
    ``(x, log|det ∂x/∂y|)``, shapes ``(..., D)`` and ``(...)``. Subclasses implement
    ``_forward`` and ``_inverse`` (no argument checks; :class:`Flow` calls them after checking
    once) and set ``self.dim``.
    """

    dim: int

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log|det ∂y/∂x|)`` of shapes ``(..., D)`` and ``(...)`` for ``x`` ``(..., D)``."""
        return self._forward(_check_points(x, "x", self.dim, self))

    def inverse(self, y) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, log|det ∂x/∂y|)`` of shapes ``(..., D)`` and ``(...)`` for ``y`` ``(..., D)``: the inverse map."""
        return self._inverse(_check_points(y, "y", self.dim, self))


def _coupling_mask(mask, dim: int) -> torch.Tensor:
    """The passive coordinates (copied) as a boolean ``(D,)`` CPU tensor."""
    if mask is None:
        mask = dim // 2
    if isinstance(mask, bool):
        raise TypeError(f"mask must be an integer k (the first k coordinates are copied) or a (D,) boolean mask; "
                        f"got {mask!r}")
    if isinstance(mask, int) or (hasattr(mask, "__index__") and not isinstance(mask, torch.Tensor)):
        k = check_int(mask, "mask", low=1, high=dim - 1,
                      expected=f"an integer in [1, {dim - 1}] (how many leading coordinates are copied, D={dim})")
        return torch.arange(dim) < k
    if isinstance(mask, torch.Tensor):
        t = mask.detach().cpu()
    else:
        try:
            t = torch.tensor(list(mask))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"mask must be an integer or a (D,) boolean mask; got {type(mask).__name__}") from None
    if t.dtype != torch.bool:
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError("mask must hold only True/False (or 1/0): True marks a copied coordinate")
        t = t.bool()
    if t.shape != (dim,):
        raise ValueError(f"mask must have shape ({dim},); got shape {tuple(t.shape)}")
    n_passive = int(t.sum())
    if n_passive == 0 or n_passive == dim:
        raise ValueError(f"mask must copy at least one coordinate and transform at least one; it marks "
                         f"{n_passive} of {dim} as copied")
    return t


class AffineCoupling(FlowLayer):
    r"""RealNVP's affine coupling: y_a = x_a, y_b = x_b ⊙ exp(s(x_a)) + t(x_a), log|det| = Σ_j s_j(x_a).

    a are the *passive* coordinates (``mask`` True), b the active ones. The conditioner is an
    :func:`dgm.nets.mlp` from the |a| passive coordinates to 2|b| outputs (ŝ, t), and
    s = c·tanh(ŝ/c) with c = ``max_log_scale`` (no clamp when None). The Jacobian ∂y/∂x is
    triangular once a comes first: ∂y_a/∂x_b = 0, diag(∂y_b/∂x_b) = e^{s}, whatever ∂y_b/∂x_a is.
    Inverse: x_a = y_a, x_b = (y_b − t(y_a)) ⊙ exp(−s(y_a)), log|det ∂x/∂y| = −Σ_j s_j.

    Args:
        dim: D ≥ 2.
        mask: an integer k (the first k coordinates are copied; default ⌊D/2⌋) or a ``(D,)``
            boolean mask (True = copied), with at least one copied and one transformed coordinate.
        hidden, depth, activation: the conditioner's width, number of hidden layers, activation.
        max_log_scale: c > 0 of the soft clamp, or None.
        generator: CPU ``torch.Generator`` for the initial weights; dtype, device: of the parameters.
    """

    def __init__(self, dim: int, mask=None, hidden: int = 64, depth: int = 2, *, max_log_scale: float | None = 3.0,
                 activation: str = "relu", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", low=2, expected="an integer >= 2 (a coupling needs two parts)")
        passive = _coupling_mask(mask, self.dim)
        self.max_log_scale = _check_max_log_scale(max_log_scale)
        _check_init_generator(generator)
        check_float_dtype(dtype)
        self.register_buffer("passive", torch.nonzero(passive).flatten().to(device))
        self.register_buffer("active", torch.nonzero(~passive).flatten().to(device))
        self.n_active = int((~passive).sum())
        # drawn in float64, then cast: the same seed gives the same network in float32 and float64
        self.conditioner = mlp(int(passive.sum()), hidden, 2 * self.n_active, depth, activation,
                               generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)

    @property
    def mask(self) -> torch.Tensor:
        """``(D,)`` boolean: True where the coordinate is copied."""
        m = torch.zeros(self.dim, dtype=torch.bool, device=self.passive.device)
        m[self.passive] = True
        return m

    def scale_and_shift(self, x_passive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s, t)``, each ``(..., |b|)``, from the passive coordinates ``(..., |a|)``; s is clamped."""
        raw_s, t = self.conditioner(x_passive).split(self.n_active, dim=-1)
        return _soft_clamp(raw_s, self.max_log_scale), t

    def _forward(self, x):
        s, t = self.scale_and_shift(x[..., self.passive])
        y = x.clone()
        y[..., self.active] = x[..., self.active] * torch.exp(s) + t
        return y, s.sum(-1)

    def _inverse(self, y):
        s, t = self.scale_and_shift(y[..., self.passive])
        x = y.clone()
        x[..., self.active] = (y[..., self.active] - t) * torch.exp(-s)
        return x, -s.sum(-1)


class Permutation(FlowLayer):
    r"""y = x[..., perm]: a fixed permutation of the coordinates, |det| = 1, log-det 0.

    Its Jacobian is a permutation matrix (det ±1: a swap of two coordinates has det −1, so it is
    |det| that is 1). Between couplings it lets the copied coordinates of one coupling be
    transformed by the next.

    Args:
        perm: ``(D,)`` a permutation of 0..D−1: y_i = x_{perm[i]}.
        device: where its index buffers live.
    """

    def __init__(self, perm, *, device=None) -> None:
        super().__init__()
        if isinstance(perm, torch.Tensor):
            dim = perm.numel()
        else:
            try:
                dim = len(perm)
            except TypeError:
                raise TypeError(f"perm must be a sequence or tensor of integers; got {type(perm).__name__}") from None
        if dim < 1:
            raise ValueError("perm must hold at least one index")
        perm = _check_order(perm, dim, "perm")
        self.dim = dim
        self.register_buffer("perm", perm.to(device))
        self.register_buffer("inverse_perm", torch.argsort(perm).to(device))

    @classmethod
    def reverse(cls, dim: int, *, device=None) -> Permutation:
        """The reversal y = (x_{D−1}, …, x_0)."""
        dim = check_int(dim, "dim", low=1)
        return cls(torch.arange(dim - 1, -1, -1), device=device)

    @classmethod
    def random(cls, dim: int, generator: torch.Generator | None = None, *, device=None) -> Permutation:
        """A uniformly drawn permutation (``torch.randperm`` with a CPU ``generator``)."""
        dim = check_int(dim, "dim", low=1)
        _check_init_generator(generator)
        return cls(torch.randperm(dim, generator=generator), device=device)

    def _forward(self, x):
        return x[..., self.perm], x.new_zeros(x.shape[:-1])

    def _inverse(self, y):
        return y[..., self.inverse_perm], y.new_zeros(y.shape[:-1])


def random_rotation(dim: int, generator: torch.Generator | None = None, *, dtype: torch.dtype = torch.float64,
                    device=None) -> torch.Tensor:
    r"""A uniformly (Haar) distributed rotation R ∈ SO(D): RᵀR = I, det R = +1.

    From the QR factorisation of a matrix of N(0, 1) entries, A = QR, with the signs of R's
    diagonal moved into Q (Mezzadri 2007), then one column negated if det Q = −1.

    Args:
        dim: D ≥ 1; generator: CPU ``torch.Generator``; dtype, device: of the result.

    Returns:
        ``(D, D)`` orthogonal matrix with determinant +1.
    """
    dim = check_int(dim, "dim", low=1)
    _check_init_generator(generator)
    check_float_dtype(dtype)
    a = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype=dtype, device=device)


class FixedLinear(FlowLayer):
    r"""y = W x with a fixed invertible W ``(D, D)``: log|det ∂y/∂x| = log|det W| (0 for a rotation).

    The inverse solves W x = y. With W = Rᵀ for a rotation R, appending this layer to a flow f
    gives the flow g(z) = f(Rz) (see the chapter: same likelihood under a N(0, I) base).

    Args:
        weight: ``(D, D)`` invertible matrix (stored as a buffer, not trained).
    """

    def __init__(self, weight) -> None:
        super().__init__()
        w = as_float_tensor(weight, "weight")
        if w.dim() != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 1:
            raise ValueError(f"weight must be a square matrix (D, D); got shape {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()):
            raise ValueError("weight must be finite; it contains NaN or infinity")
        sign, logabsdet = torch.linalg.slogdet(w.detach())
        if sign == 0 or not math.isfinite(float(logabsdet)):
            raise ValueError("weight must be invertible; its determinant is 0")
        self.dim = w.shape[0]
        self.register_buffer("weight", w.detach().clone())
        self.register_buffer("log_abs_det", logabsdet)

    def _forward(self, x):
        return x @ self.weight.T, self.log_abs_det.expand(x.shape[:-1])

    def _inverse(self, y):
        x = torch.linalg.solve(self.weight, y.reshape(-1, self.dim).T).T.reshape(y.shape)
        return x, (-self.log_abs_det).expand(y.shape[:-1])


class LULinear(FlowLayer):
    r"""A trainable invertible linear layer y = W x with W = P L (U + diag(sign ⊙ e^{σ})) (Glow).

    P is a fixed permutation, L unit lower triangular, U strictly upper triangular, sign ∈ {±1}
    fixed: det W = ±Π_d e^{σ_d}, so log|det ∂y/∂x| = Σ_d σ_d in O(D). The inverse is two
    triangular solves and a permutation. Initialised at the LU factorisation of a
    :func:`random_rotation` (drawn from ``generator``), so it starts volume-preserving.

    Args:
        dim: D ≥ 1; generator: CPU ``torch.Generator``; dtype, device: of the parameters.
    """

    def __init__(self, dim: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                 device=None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        _check_init_generator(generator)
        check_float_dtype(dtype)
        p, lower, upper = torch.linalg.lu(random_rotation(self.dim, generator, dtype=torch.float64))
        diag = torch.diagonal(upper)
        self.register_buffer("permutation", p.to(dtype=dtype, device=device))
        self.register_buffer("sign", torch.sign(diag).to(dtype=dtype, device=device))
        self.register_buffer("lower_mask", torch.tril(torch.ones(self.dim, self.dim), -1).to(dtype=dtype, device=device))
        self.lower = nn.Parameter(torch.tril(lower, -1).to(dtype=dtype, device=device))
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype=dtype, device=device))
        self.log_scale = nn.Parameter(torch.log(diag.abs()).to(dtype=dtype, device=device))

    def factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(P, L, U')`` with W = P L U', L unit lower and U' upper triangular (its diagonal sign·e^{σ})."""
        eye = torch.eye(self.dim, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_scale))
        return self.permutation, lower, upper

    def weight(self) -> torch.Tensor:
        """``(D, D)``: W = P L U'."""
        p, lower, upper = self.factors()
        return p @ lower @ upper

    def _forward(self, x):
        return x @ self.weight().T, self.log_scale.sum().expand(x.shape[:-1])

    def _inverse(self, y):
        p, lower, upper = self.factors()
        rhs = (y.reshape(-1, self.dim) @ p).T  # Pᵀ y, column per example
        v = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper, v, upper=True).T.reshape(y.shape)
        return x, (-self.log_scale.sum()).expand(y.shape[:-1])


# --------------------------------------------------------------------------------------------
# MADE
# --------------------------------------------------------------------------------------------


def made_degrees(order, hidden_sizes: Sequence[int]) -> list[torch.Tensor]:
    r"""The degrees of MADE's units: inputs m(d) = order[d] + 1, then each hidden layer's.

    A hidden layer's degrees cycle through {lo, …, D−1}, lo = min(previous layer's degrees,
    D − 1), so every degree is present when the layer has at least D − lo units (deterministic,
    where Germain et al. draw them at random; D = 1 gives degree 0: no input reaches the output).

    Args:
        order: ``(D,)`` permutation of 0..D−1 (coordinate d's position in the ordering).
        hidden_sizes: the width of each hidden layer (positive integers).

    Returns:
        ``[m_in (D,), m_1 (H_1,), …]``, int64 CPU tensors.
    """
    if isinstance(order, torch.Tensor):
        dim = order.numel()
    else:
        try:
            dim = len(order)
        except TypeError:
            raise TypeError(f"order must be a sequence or tensor of integers; got {type(order).__name__}") from None
    order = _check_order(order, dim)
    degrees = [order + 1]
    for i, h in enumerate(hidden_sizes):
        h = check_int(h, f"hidden_sizes[{i}]", low=1)
        lo = min(int(degrees[-1].min()), dim - 1)
        degrees.append(torch.arange(h) % (dim - lo) + lo)
    return degrees


def made_masks(order, hidden_sizes: Sequence[int], n_outputs_per_dim: int = 1) -> list[torch.Tensor]:
    r"""MADE's masks from the degrees: hidden M[k, j] = [m(k) ≥ m(j)], output M[d, k] = [m(d) > m(k)].

    Args:
        order: ``(D,)`` permutation of 0..D−1; hidden_sizes: widths of the hidden layers.
        n_outputs_per_dim: K; the output mask is repeated K times (output unit i·D + d belongs to
            coordinate d).

    Returns:
        One float mask ``(out_features, in_features)`` per linear layer (the last one
        ``(K·D, H_L)``, or ``(K·D, D)`` without hidden layers). The product of the masks counts the
        paths from input j to output d: positive iff order[j] < order[d] (for wide enough layers).
    """
    n_outputs_per_dim = check_int(n_outputs_per_dim, "n_outputs_per_dim", low=1)
    degrees = made_degrees(order, hidden_sizes)
    masks = [(d_out[:, None] >= d_in[None, :]).to(torch.float64) for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    out = (degrees[0][:, None] > degrees[-1][None, :]).to(torch.float64)
    masks.append(out.repeat(n_outputs_per_dim, 1))
    return masks


def random_orders(dim: int, count: int, generator: torch.Generator | None = None, *,
                  include_natural: bool = True) -> torch.Tensor:
    """``(count, D)`` int64 orderings for MADEs: the natural 0..D−1 first (when ``include_natural``),
    then uniformly drawn permutations (``torch.randperm`` with a CPU ``generator``)."""
    dim = check_int(dim, "dim", low=1)
    count = check_int(count, "count", low=1)
    _check_init_generator(generator)
    rows = [torch.arange(dim)] if include_natural else []
    while len(rows) < count:
        rows.append(torch.randperm(dim, generator=generator))
    return torch.stack(rows)


class MaskedLinear(nn.Module):
    r"""y = x (W ⊙ M)ᵀ + b: a linear layer whose weights are multiplied by a fixed 0/1 mask M.

    Args:
        in_features, out_features: sizes; mask: ``(out_features, in_features)`` of 0/1.
        generator: CPU ``torch.Generator`` for U(−1/√in, 1/√in) weights; dtype, device.
    """

    def __init__(self, in_features: int, out_features: int, mask, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features", low=1)
        self.out_features = check_int(out_features, "out_features", low=1)
        _check_init_generator(generator)
        check_float_dtype(dtype)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(self.out_features, dtype=dtype))
        _uniform_init_(self.weight, self.bias, self.in_features, generator)
        self.register_buffer("mask", torch.ones(self.out_features, self.in_features, dtype=dtype))
        self.set_mask(mask)
        if device is not None:
            self.to(device)

    def set_mask(self, mask) -> None:
        """Replace the mask ``(out_features, in_features)`` of 0/1 (kept in the weights' dtype and device)."""
        m = as_float_tensor(mask, "mask")
        if m.shape != (self.out_features, self.in_features):
            raise ValueError(f"mask must have shape ({self.out_features}, {self.in_features}); got {tuple(m.shape)}")
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError("mask must hold only 0 and 1")
        self.mask.copy_(m.to(self.mask.device, self.mask.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., out_features)`` for ``x`` ``(..., in_features)``."""
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""A masked autoencoder for distribution estimation: all D conditionals of an ordering in one pass.

    Hidden layers of width ``hidden`` (``depth`` of them) with masks from :func:`made_masks`; the
    output has K = ``n_outputs_per_dim`` numbers per coordinate, and ``made(x)`` has shape
    ``(..., K, D)``: entry [..., k, d] depends only on the x_j with order[j] < order[d].

    * K = 1: Bernoulli logits a_d, p(x) = Π_d Ber(x_d; σ(a_d(x_{<d}))) for binary data.
    * K = 2: Gaussian conditionals (μ_d, α_d = log σ_d), p(x) = Π_d N(x_d; μ_d, e^{2α_d}) —
      a one-layer MAF (:class:`MAFLayer` with ``max_log_scale=None``).

    Args:
        dim: D ≥ 1; hidden: width of the hidden layers; n_outputs_per_dim: K ≥ 1.
        order: ``(D,)`` permutation of 0..D−1 (default the natural order).
        depth: number of hidden layers (≥ 1); activation: one of :data:`dgm.nets.ACTIVATIONS`.
        generator: CPU ``torch.Generator`` for the initial weights; dtype, device: of the parameters.
    """

    def __init__(self, dim: int, hidden: int = 64, n_outputs_per_dim: int = 1, *, order=None, depth: int = 1,
                 activation: str = "relu", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        hidden = check_int(hidden, "hidden", low=1)
        self.n_outputs_per_dim = check_int(n_outputs_per_dim, "n_outputs_per_dim", low=1)
        depth = check_int(depth, "depth", low=1)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        _check_init_generator(generator)
        check_float_dtype(dtype)
        self.hidden_sizes = [hidden] * depth
        order = torch.arange(self.dim) if order is None else _check_order(order, self.dim)
        self.register_buffer("order", order.clone())
        masks = made_masks(order, self.hidden_sizes, self.n_outputs_per_dim)
        widths = [self.dim] + self.hidden_sizes + [self.n_outputs_per_dim * self.dim]
        self.layers = nn.ModuleList(MaskedLinear(i, o, m, generator=generator, dtype=dtype)
                                    for i, o, m in zip(widths[:-1], widths[1:], masks))
        self.activation = ACTIVATIONS[activation]()
        if device is not None:
            self.to(device)

    @property
    def sequence(self) -> torch.Tensor:
        """``(D,)`` the coordinates in generation order: argsort(order)."""
        return torch.argsort(self.order)

    def set_order(self, order) -> None:
        """Rebuild every mask for a new ordering ``(D,)``, keeping the weights (order-agnostic training)."""
        order = _check_order(order, self.dim)
        for layer, mask in zip(self.layers, made_masks(order, self.hidden_sizes, self.n_outputs_per_dim)):
            layer.set_mask(mask)
        self.order.copy_(order.to(self.order.device))

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        out = self.layers[-1](h)
        return out.reshape(*x.shape[:-1], self.n_outputs_per_dim, self.dim)

    def forward(self, x) -> torch.Tensor:
        """``(..., K, D)`` outputs for ``x`` ``(..., D)``; [..., k, d] depends on x_{<d} only."""
        return self._net(_check_points(x, "x", self.dim, self))

    def _require(self, what: str) -> None:
        if self.n_outputs_per_dim not in (1, 2):
            raise ValueError(f"{what} needs n_outputs_per_dim 1 (Bernoulli logits) or 2 (Gaussian mean and log-std); "
                             f"this MADE has {self.n_outputs_per_dim}")

    def log_prob(self, x) -> torch.Tensor:
        r"""log p(x) = Σ_d log p(x_d | x_{<d}): Bernoulli (K = 1) or Gaussian (K = 2).

        K = 1: Σ_d [x_d log σ(a_d) + (1 − x_d) log(1 − σ(a_d))], x binary.
        K = 2: Σ_d log N(x_d; μ_d, e^{2α_d}) = Σ_d [−½((x_d − μ_d)e^{−α_d})² − α_d − ½ log 2π].

        Args:
            x: ``(..., D)``; for K = 1 only 0 and 1.

        Returns:
            ``(...)`` log-probability (K = 1) or log-density (K = 2), nats.
        """
        self._require("log_prob")
        x = _check_points(x, "x", self.dim, self)
        if self.n_outputs_per_dim == 1 and not bool(((x == 0) | (x == 1)).all()):
            raise ValueError("x must hold only 0 and 1 for a Bernoulli MADE (n_outputs_per_dim=1); binarize the data")
        out = self._net(x)
        if self.n_outputs_per_dim == 1:
            return bernoulli_log_prob(x, out[..., 0, :]).sum(-1)
        mu, alpha = out.unbind(-2)
        return (-0.5 * ((x - mu) * torch.exp(-alpha)) ** 2 - alpha).sum(-1) - 0.5 * self.dim * _LOG_2PI

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""n draws from p(x) = Π_d p(x_d | x_{<d}) by D sequential passes.

        The noise u (uniform for K = 1, standard normal for K = 2) is drawn once; pass i sets
        every coordinate from the outputs at the current x, x_d = [u_d < σ(a_d)] or
        μ_d + e^{α_d} u_d. After pass i the coordinates at positions < i are final, so D passes
        give the exact draw (each pass is a full network evaluation: sampling costs D times a
        density evaluation).

        Args:
            n: number of draws; generator: ``torch.Generator`` (noise drawn on its device, then moved).

        Returns:
            ``(n, D)`` draws in the model's dtype, on its device.
        """
        self._require("sample")
        n = check_int(n, "n", low=1)
        check_generator(generator)
        dtype, device = _model_dtype_device(self)
        with torch.no_grad():
            u = _noise("uniform" if self.n_outputs_per_dim == 1 else "normal", n, self.dim, generator, dtype, device)
            x = torch.zeros(n, self.dim, dtype=dtype, device=device)
            for _ in range(self.dim):
                out = self._net(x)
                if self.n_outputs_per_dim == 1:
                    x = (u < torch.sigmoid(out[:, 0, :])).to(dtype)
                else:
                    x = out[:, 0, :] + torch.exp(out[:, 1, :]) * u
        return x


# --------------------------------------------------------------------------------------------
# MAF and IAF: one autoregressive affine map T, used in the two directions
# --------------------------------------------------------------------------------------------


def _check_gaussian_made(made) -> MADE:
    if not isinstance(made, MADE):
        raise TypeError(f"made must be a dgm.flows.MADE; got {type(made).__name__}")
    if made.n_outputs_per_dim != 2:
        raise ValueError(f"made must have n_outputs_per_dim=2 (a shift μ and a log-scale α per coordinate); "
                         f"got {made.n_outputs_per_dim}")
    return made


def _shift_log_scale(made: MADE, a: torch.Tensor, bound: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    mu, raw = made._net(a).unbind(-2)
    return mu, _soft_clamp(raw, bound)


def _autoregressive_one_pass(made: MADE, a: torch.Tensor, bound):
    """T(a) = (a − μ(a)) e^{−α(a)} and log|det ∂T/∂a| = −Σ α: one pass of the MADE."""
    mu, alpha = _shift_log_scale(made, a, bound)
    return (a - mu) * torch.exp(-alpha), -alpha.sum(-1)


def _autoregressive_d_passes(made: MADE, b: torch.Tensor, bound):
    """T⁻¹(b): a = μ(a) + e^{α(a)} b, fixed by D passes (a coordinate at position i is final after
    pass i + 1); log|det ∂a/∂b| = Σ α(a) from the last pass, which saw every earlier coordinate final."""
    a = torch.zeros_like(b)
    alpha = torch.zeros_like(b)
    for _ in range(made.dim):
        mu, alpha = _shift_log_scale(made, a, bound)
        a = mu + torch.exp(alpha) * b
    return a, alpha.sum(-1)


class MAFLayer(FlowLayer):
    r"""A masked autoregressive flow layer: z = T(x) = (x − μ(x_{<d})) e^{−α(x_{<d})} towards the base.

    Density: one MADE pass, log|det ∂z/∂x| = −Σ_d α_d(x_{<d}). Sampling (``inverse``): x_d =
    μ_d + e^{α_d} z_d coordinate after coordinate, D passes. α = c·tanh(α̂/c) with
    c = ``max_log_scale`` (None: no clamp). Its Jacobian ∂z/∂x is lower triangular once the
    coordinates are sorted by ``made.order``, with diagonal e^{−α}.

    Args:
        made: a :class:`MADE` with ``n_outputs_per_dim=2`` (shared, not copied: an
            :class:`IAFLayer` built on the same MADE uses the same T the other way).
        max_log_scale: c > 0 or None.
    """

    def __init__(self, made: MADE, *, max_log_scale: float | None = 3.0) -> None:
        super().__init__()
        self.made = _check_gaussian_made(made)
        self.dim = made.dim
        self.max_log_scale = _check_max_log_scale(max_log_scale)

    def _forward(self, x):
        return _autoregressive_one_pass(self.made, x, self.max_log_scale)

    def _inverse(self, z):
        return _autoregressive_d_passes(self.made, z, self.max_log_scale)


class IAFLayer(FlowLayer):
    r"""An inverse autoregressive flow layer: the map T of :class:`MAFLayer` used from base to data.

    Sampling (``inverse``): x = T(z) = (z − μ(z_{<d})) e^{−α(z_{<d})}, one MADE pass,
    log|det ∂x/∂z| = −Σ_d α_d(z_{<d}) (Kingma et al.'s x = σ ⊙ z + m with σ = e^{−α},
    m = −μ e^{−α}). Density of an arbitrary x (``forward``): z = T⁻¹(x), D passes,
    log|det ∂z/∂x| = Σ_d α_d(z_{<d}).

    Args:
        made: a :class:`MADE` with ``n_outputs_per_dim=2``; max_log_scale: c > 0 or None.
    """

    def __init__(self, made: MADE, *, max_log_scale: float | None = 3.0) -> None:
        super().__init__()
        self.made = _check_gaussian_made(made)
        self.dim = made.dim
        self.max_log_scale = _check_max_log_scale(max_log_scale)

    def _forward(self, x):
        return _autoregressive_d_passes(self.made, x, self.max_log_scale)

    def _inverse(self, z):
        return _autoregressive_one_pass(self.made, z, self.max_log_scale)


# --------------------------------------------------------------------------------------------
# flows: a stack of layers on a N(0, I) base
# --------------------------------------------------------------------------------------------


class Flow(nn.Module):
    r"""A normalizing flow: layers applied towards a N(0, I_D) base, x → h_1 → ⋯ → z.

    ``flow(x)`` returns ``(z, Σ_k log|det J_k|)``; log p(x) = log N(z; 0, I) + Σ_k log|det J_k|
    (:meth:`log_prob`). Sampling draws z ~ N(0, I) and runs the layers' inverses in reverse order
    (:meth:`sample`); the generator of the chapter, x = f(z), is ``flow.inverse``.

    Args:
        layers: a non-empty sequence of :class:`FlowLayer` of one dimension D.
    """

    def __init__(self, layers: Sequence[FlowLayer]) -> None:
        super().__init__()
        if isinstance(layers, FlowLayer):
            layers = [layers]
        try:
            layers = list(layers)
        except TypeError:
            raise TypeError(f"layers must be a sequence of FlowLayer; got {type(layers).__name__}") from None
        if not layers:
            raise ValueError("layers must hold at least one FlowLayer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, FlowLayer):
                raise TypeError(f"layers[{i}] must be a dgm.flows.FlowLayer; got {type(layer).__name__}")
        dims = {layer.dim for layer in layers}
        if len(dims) != 1:
            raise ValueError(f"layers must all have the same dimension D; got dimensions {[lay.dim for lay in layers]}")
        self.layers = nn.ModuleList(layers)
        self.dim = layers[0].dim

    def _x(self, x, name: str) -> torch.Tensor:
        return _check_points(x, name, self.dim, self)

    def forward(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|det ∂z/∂x|)``, shapes ``(..., D)`` and ``(...)``, for data ``x`` ``(..., D)``."""
        h = self._x(x, "x")
        total = h.new_zeros(h.shape[:-1])
        for layer in self.layers:
            h, log_det = layer._forward(h)
            total = total + log_det
        return h, total

    def inverse(self, z) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, log|det ∂x/∂z|)``, shapes ``(..., D)`` and ``(...)``: the generator x = f(z)."""
        h = self._x(z, "z")
        total = h.new_zeros(h.shape[:-1])
        for layer in reversed(self.layers):
            h, log_det = layer._inverse(h)
            total = total + log_det
        return h, total

    def log_prob(self, x) -> torch.Tensor:
        r"""log p(x) = log N(f⁻¹(x); 0, I) + log|det ∂f⁻¹(x)/∂x|, shape ``(...)`` for ``x`` ``(..., D)``, nats."""
        z, log_det = self.forward(x)
        return -0.5 * (z * z).sum(-1) - 0.5 * self.dim * _LOG_2PI + log_det

    def sample_with_log_prob(self, n: int, generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(x, log p(x))``: x = f(z), z ~ N(0, I), and log p(x) = log N(z; 0, I) − log|det ∂x/∂z|.

        The density of the flow's own samples comes with them, from the same pass (for an IAF,
        one pass, where evaluating the density of an arbitrary x takes D).

        Args:
            n: number of draws; generator: ``torch.Generator`` (noise drawn on its device, then moved).

        Returns:
            ``(n, D)`` samples and ``(n,)`` log-densities, in the model's dtype and on its device.
        """
        n = check_int(n, "n", low=1)
        check_generator(generator)
        dtype, device = _model_dtype_device(self)
        z = _noise("normal", n, self.dim, generator, dtype, device)
        x, log_det = self.inverse(z)
        return x, -0.5 * (z * z).sum(-1) - 0.5 * self.dim * _LOG_2PI - log_det

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, D)`` draws x = f(z), z ~ N(0, I) from ``generator`` (no gradient kept)."""
        with torch.no_grad():
            return self.sample_with_log_prob(n, generator)[0]

    def forward_layers(self, x) -> list[torch.Tensor]:
        """``[x, h_1, …, z]``: the K + 1 points on the way from the data to the base, each ``(..., D)``."""
        h = self._x(x, "x")
        out = [h]
        for layer in self.layers:
            h = layer._forward(h)[0]
            out.append(h)
        return out

    def intermediates(self, z) -> list[torch.Tensor]:
        """``[z, …, x]``: the K + 1 points on the way from the base to the data (the generator, layer by layer)."""
        h = self._x(z, "z")
        out = [h]
        for layer in reversed(self.layers):
            h = layer._inverse(h)[0]
            out.append(h)
        return out


class RealNVP(Flow):
    r"""A RealNVP flow: ``n_layers`` :class:`AffineCoupling` layers with a :class:`Permutation` between each two.

    Every coupling copies the first ⌊D/2⌋ coordinates it receives; the permutations (reversals
    by default) make the next coupling transform the ones just copied. log|det| = Σ over the
    couplings of Σ_j s_j (the permutations contribute 0).

    Args:
        dim: D ≥ 2; n_layers: number of couplings (≥ 1); hidden, depth, activation: of each
            conditioner; max_log_scale: the soft clamp of s (or None).
        permutation: ``"reverse"`` or ``"random"`` (drawn from ``generator``).
        generator: CPU ``torch.Generator`` for the initial weights; dtype, device: of the parameters.
    """

    def __init__(self, dim: int, n_layers: int = 6, hidden: int = 64, *, depth: int = 2,
                 max_log_scale: float | None = 3.0, activation: str = "relu", permutation: str = "reverse",
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device=None) -> None:
        dim = check_int(dim, "dim", low=2, expected="an integer >= 2 (a coupling needs two parts)")
        n_layers = check_int(n_layers, "n_layers", low=1)
        if permutation not in ("reverse", "random"):
            raise ValueError(f"permutation must be 'reverse' or 'random'; got {permutation!r}")
        _check_init_generator(generator)
        layers: list[FlowLayer] = []
        for i in range(n_layers):
            if i > 0:
                layers.append(Permutation.reverse(dim, device=device) if permutation == "reverse"
                              else Permutation.random(dim, generator, device=device))
            layers.append(AffineCoupling(dim, dim // 2, hidden, depth, max_log_scale=max_log_scale,
                                         activation=activation, generator=generator, dtype=dtype, device=device))
        super().__init__(layers)


def _autoregressive_stack(layer_cls, dim, n_layers, hidden, depth, max_log_scale, activation, generator, dtype,
                          device) -> list[FlowLayer]:
    dim = check_int(dim, "dim", low=1)
    n_layers = check_int(n_layers, "n_layers", low=1)
    _check_init_generator(generator)
    layers = []
    for i in range(n_layers):
        order = torch.arange(dim) if i % 2 == 0 else torch.arange(dim - 1, -1, -1)
        made = MADE(dim, hidden, 2, order=order, depth=depth, activation=activation, generator=generator,
                    dtype=dtype, device=device)
        layers.append(layer_cls(made, max_log_scale=max_log_scale))
    return layers


class MAF(Flow):
    r"""A masked autoregressive flow: ``n_layers`` :class:`MAFLayer`, orderings alternately natural and reversed.

    log p(x) costs ``n_layers`` MADE passes; a sample costs ``n_layers``·D.

    Args:
        dim: D ≥ 1; n_layers ≥ 1; hidden, depth, activation: of each MADE; max_log_scale: the
            clamp of α (or None); generator: CPU ``torch.Generator``; dtype, device.
    """

    def __init__(self, dim: int, n_layers: int = 4, hidden: int = 64, *, depth: int = 1,
                 max_log_scale: float | None = 3.0, activation: str = "relu",
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__(_autoregressive_stack(MAFLayer, dim, n_layers, hidden, depth, max_log_scale, activation,
                                               generator, dtype, device))


class IAF(Flow):
    r"""An inverse autoregressive flow: ``n_layers`` :class:`IAFLayer`, orderings alternately natural and reversed.

    A sample and its density cost ``n_layers`` MADE passes; the density of an arbitrary x costs
    ``n_layers``·D.

    Args:
        as :class:`MAF`.
    """

    def __init__(self, dim: int, n_layers: int = 4, hidden: int = 64, *, depth: int = 1,
                 max_log_scale: float | None = 3.0, activation: str = "relu",
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device=None) -> None:
        super().__init__(_autoregressive_stack(IAFLayer, dim, n_layers, hidden, depth, max_log_scale, activation,
                                               generator, dtype, device))


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


@dataclass
class TrainingHistory:
    """What :func:`train_flow` recorded.

    Attributes:
        loss: at each step, the minibatch's mean negative log-likelihood −(1/B) Σ log p(x) before the update, nats.
        eval_steps: the steps at which ``eval_data`` was scored (0 = before training, and the last step).
        eval_log_prob: the mean log-likelihood of ``eval_data`` at those steps, nats.
    """

    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_log_prob: list[float] = field(default_factory=list)


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module) or not callable(getattr(model, "log_prob", None)):
        raise TypeError(f"model must be a torch.nn.Module with a log_prob method (a Flow or a MADE); "
                        f"got {type(model).__name__}")
    return model


def train_flow(model, data, steps: int, batch_size: int = 256, lr: float = 1e-3,
               generator: torch.Generator | None = None, progress: bool = False, eval_data=None,
               eval_every: int | None = None, grad_clip: float | None = None) -> TrainingHistory:
    r"""Maximum likelihood with Adam: minimise −(1/B) Σ_{x ∈ batch} log p(x) over minibatches.

    Minibatches are drawn with replacement, their indices from ``generator`` (on the CPU, then
    moved): with seeded initial weights the run is reproducible.

    Args:
        model: a module with ``log_prob(x) → (B,)`` (a :class:`Flow` or a :class:`MADE`).
        data: ``(N, D)`` training points (the model's dtype and device).
        steps: number of Adam steps; batch_size: B; lr: Adam's learning rate.
        generator: CPU ``torch.Generator`` for the minibatch indices.
        progress: show a tqdm bar.
        eval_data: optional ``(M, D)`` held-out points, scored (mean log p) before training, every
            ``eval_every`` steps (default steps // 10) and after the last step.
        grad_clip: clip the gradient's norm to this value (None: no clipping).

    Returns:
        :class:`TrainingHistory`.
    """
    model = _check_model(model)
    dim = getattr(model, "dim", None)
    x = as_float_tensor(data, "data")
    if x.dim() != 2 or x.shape[0] < 1 or (dim is not None and x.shape[1] != dim):
        shape = f"(N, {dim})" if dim is not None else "(N, D)"
        raise ValueError(f"data must have shape {shape}; got shape {tuple(x.shape)}")
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    lr = check_number(lr, "lr", low=0, closed_low=False)
    if generator is not None:
        _check_init_generator(generator)
    if grad_clip is not None:
        grad_clip = check_number(grad_clip, "grad_clip", low=0, closed_low=False)
    eval_every = max(1, steps // 10) if eval_every is None else check_int(eval_every, "eval_every", low=1)
    held_out = None
    if eval_data is not None:
        held_out = as_float_tensor(eval_data, "eval_data", like=x)
        if held_out.dim() != 2 or held_out.shape[1] != x.shape[1]:
            raise ValueError(f"eval_data must have shape (M, {x.shape[1]}) like data; got {tuple(held_out.shape)}")
    ref = _reference(model)
    if ref is not None and ref.is_floating_point():
        check_same_device(data=x, **{"the model's parameters": ref})
        if x.dtype != ref.dtype:
            raise TypeError(f"data must have the model's dtype {ref.dtype}; got {x.dtype}")
    history = TrainingHistory()

    def score(step: int) -> None:
        if held_out is None:
            return
        with torch.no_grad():
            history.eval_steps.append(step)
            history.eval_log_prob.append(float(model.log_prob(held_out).mean()))

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    opt = torch.optim.Adam(params, lr=lr)
    score(0)
    iterator = range(1, steps + 1)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="maximum likelihood")
    for step in iterator:
        idx = torch.randint(x.shape[0], (batch_size,), generator=generator).to(x.device)
        loss = -model.log_prob(x[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        history.loss.append(float(loss.detach()))
        if step % eval_every == 0 or step == steps:
            score(step)
    return history


# --------------------------------------------------------------------------------------------
# change of variables, units, dequantisation
# --------------------------------------------------------------------------------------------


def log_det_autograd(f: Callable, x) -> torch.Tensor:
    r"""log|det ∂f(x)/∂x| per example from the full Jacobian (autograd), for checks: O(D) backward passes + O(D³).

    f must act on each row separately (the flows here do), so that the Jacobian of Σ_b f(x)_b
    with respect to the batch holds every example's D × D Jacobian:
    J_b = ∂f(x_b)/∂x_b from ``torch.autograd.functional.jacobian``, then ``torch.linalg.slogdet``.

    Args:
        f: maps ``(B, D)`` to ``(B, D)``, or to a tuple whose first entry is that (a layer's
            ``forward`` or ``inverse``).
        x: ``(B, D)`` points.

    Returns:
        ``(B,)`` log|det J_b| (−inf where J_b is singular).
    """
    if not callable(f):
        raise TypeError(f"f must be callable (a function of (B, D) points); got {type(f).__name__}")
    x = as_float_tensor(x, "x")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (B, D); got shape {tuple(x.shape)}")

    def summed(inp: torch.Tensor) -> torch.Tensor:
        out = f(inp)
        out = out[0] if isinstance(out, tuple) else out
        if not isinstance(out, torch.Tensor) or out.shape != inp.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"f must map (B, D) = {tuple(inp.shape)} points to the same shape; got {got}")
        return out.sum(0)

    jac = torch.autograd.functional.jacobian(summed, x.detach())  # (D, B, D)
    return torch.linalg.slogdet(jac.permute(1, 0, 2))[1]


def change_of_variables_1d(x, base_log_prob: Callable, f_inverse: Callable) -> torch.Tensor:
    r"""log p_X(x) = log p_Z(f⁻¹(x)) + log|d f⁻¹(x)/dx| for X = f(Z), f invertible and element-wise.

    The derivative comes from autograd (f⁻¹ acts on each entry alone, so the gradient of
    Σ f⁻¹(x) is the element-wise derivative). Example: Z ~ U[−2, 3], X = e^Z:
    p_X(5) = (1/5)·(1/5) = 1/25 — the uniform density times |d ln x/dx| = 1/x.

    Args:
        x: ``(...)`` points (each entry its own 1-D variable).
        base_log_prob: z ↦ log p_Z(z), element-wise (may be −inf outside the support).
        f_inverse: x ↦ f⁻¹(x), element-wise and differentiable.

    Returns:
        ``(...)`` log p_X(x), nats.
    """
    if not callable(base_log_prob) or not callable(f_inverse):
        raise TypeError("base_log_prob and f_inverse must be callables acting element-wise on tensors")
    x = as_float_tensor(x, "x")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        z = f_inverse(xg)
        if not isinstance(z, torch.Tensor) or z.shape != x.shape:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"f_inverse must return a tensor of the shape of x {tuple(x.shape)}; got {got}")
        (dz,) = torch.autograd.grad(z.sum(), xg)
    return base_log_prob(z.detach()) + torch.log(dz.abs())


def lognormal_log_prob(x, mu, sigma) -> torch.Tensor:
    r"""log LN(x; μ, σ²) = log N(ln x; μ, σ²) − ln x = −(ln x − μ)²/(2σ²) − ln x − ln σ − ½ ln 2π.

    The density of X = e^Y, Y ~ N(μ, σ²), by the change of variables (|d ln x/dx| = 1/x);
    −inf for x ≤ 0 (outside the support).

    Args:
        x: ``(...)`` points; mu: ``(...)`` means of ln X; sigma: ``(...)`` positive standard
            deviations of ln X (all broadcast).

    Returns:
        ``(...)`` log-density, nats.
    """
    x = as_float_tensor(x, "x")
    mu = as_float_tensor(mu, "mu", like=x)
    sigma = as_float_tensor(sigma, "sigma", like=x)
    check_same_device(x=x, mu=mu, sigma=sigma)
    check_positive(sigma, "sigma", "standard deviation")
    x, mu, sigma = promote_float(x, mu, sigma)
    positive = x > 0
    log_x = torch.log(torch.where(positive, x, torch.ones_like(x)))
    value = -0.5 * ((log_x - mu) / sigma) ** 2 - log_x - torch.log(sigma) - 0.5 * _LOG_2PI
    return torch.where(positive, value, torch.full_like(value, -math.inf))


#: the dtype a Python number or list becomes (float64, its own precision); tensors keep theirs
_PYTHON_FLOAT = torch.empty(0, dtype=torch.float64)


def rescaled_log_prob(log_prob_y, scale: float, dim: int) -> torch.Tensor:
    r"""log p_X(x) from log p_Y(y) for y = a·x + b in D dimensions: log p_X(x) = log p_Y(y) + D log|a|.

    The Jacobian of x ↦ a·x + b is a·I_D, |det| = |a|^D. Pixels x ∈ [0, 255] modelled as
    y = x/127.5 − 1 ∈ [−1, 1] (a = 1/127.5): log p_X = log p_Y − D log 127.5.

    Args:
        log_prob_y: ``(...)`` log-densities of the rescaled data, nats.
        scale: a ≠ 0, the factor that maps x to y; dim: D, the number of rescaled coordinates.

    Returns:
        ``(...)`` log-densities of the original data.
    """
    log_prob_y = as_float_tensor(log_prob_y, "log_prob_y", like=_PYTHON_FLOAT)  # numbers stay double precision
    scale = check_number(scale, "scale")
    if scale == 0:
        raise ValueError("scale must be a non-zero number (y = a·x + b with a = 0 is not invertible); got 0.0")
    dim = check_int(dim, "dim", low=1)
    return log_prob_y + dim * math.log(abs(scale))


def bits_per_dim(log_prob_nats, dim: int) -> torch.Tensor:
    r"""Bits per dimension: −log p(x) / (D ln 2), the negative log-likelihood in bits per coordinate.

    Args:
        log_prob_nats: ``(...)`` log-likelihoods in nats; dim: D.

    Returns:
        ``(...)`` bits per dimension.
    """
    log_prob_nats = as_float_tensor(log_prob_nats, "log_prob_nats", like=_PYTHON_FLOAT)
    dim = check_int(dim, "dim", low=1)
    return -log_prob_nats / (dim * math.log(2))


def dequantize(x, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Uniform dequantisation y = x + u, u ~ U[0, 1)^D: integer data made continuous.

    Each integer point becomes a uniform draw in its unit cell, so for any density p,
    E_u[log p(x + u)] ≤ log ∫_{[0,1)^D} p(x + u) du = log P(x) (Jensen): the continuous
    log-likelihood of dequantised data is a lower bound of the discrete one. A model of
    v = y/L ∈ [0, 1)^D (L levels) gives log p_Y(y) = log p_V(v) − D log L
    (:func:`rescaled_log_prob` with a = 1/L).

    Args:
        x: ``(...)`` integer-valued data (an integer tensor, or a floating one holding integers).
        generator: ``torch.Generator`` on x's device.

    Returns:
        ``(...)`` floating tensor (float32 for integer input, else x's dtype), x ≤ y < x + 1.
    """
    if isinstance(x, torch.Tensor) and not x.dtype.is_floating_point:
        if x.dtype == torch.bool or x.dtype.is_complex:
            raise TypeError(f"x must hold integers (an integer or floating tensor); got dtype {x.dtype}")
        x = x.to(torch.get_default_dtype())
    x = as_float_tensor(x, "x")
    if not bool(torch.isfinite(x).all()) or not bool((x == torch.round(x)).all()):
        raise ValueError("x must hold integers (dequantisation spreads each integer over its unit cell)")
    check_generator(generator)
    y = x + torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    # x + u can round up to x + 1 (u within half a spacing of 1): keep y in its cell [x, x + 1)
    top = x + 1
    return torch.where(y < top, y, torch.nextafter(top, x))


# --------------------------------------------------------------------------------------------
# orderings, ensembles, rotations, data
# --------------------------------------------------------------------------------------------


def log_mean_exp(log_values, dim: int = 0) -> torch.Tensor:
    r"""log (1/K) Σ_k exp(v_k) along ``dim``, by logsumexp: the log of an average of probabilities.

    Args:
        log_values: ``(..., K, ...)`` with K along ``dim``.

    Returns:
        The input's shape without ``dim``.
    """
    log_values = as_float_tensor(log_values, "log_values")
    check_min_ndim(log_values, "log_values", 1, "(K, ...)")
    dim = check_int(dim, "dim", low=-log_values.dim(), high=log_values.dim() - 1)
    return torch.logsumexp(log_values, dim) - math.log(log_values.shape[dim])


def ensemble_log_prob(models: Sequence[nn.Module], x) -> torch.Tensor:
    r"""log p_ens(x) = log (1/K) Σ_k p_k(x): the equal-weight mixture of K models (e.g. MADEs with different orderings).

    By Jensen, log p_ens(x) ≥ (1/K) Σ_k log p_k(x) at every x.

    Args:
        models: K ≥ 1 modules with ``log_prob(x) → (...)``; x: ``(..., D)``.

    Returns:
        ``(...)`` log-likelihood of the mixture, nats.
    """
    if not isinstance(models, (list, tuple, nn.ModuleList)) or len(models) == 0:
        raise TypeError("models must be a non-empty list or tuple of modules with a log_prob method")
    for m in models:
        _check_model(m)
    return log_mean_exp(torch.stack([m.log_prob(x) for m in models]), 0)


def binarize(images, threshold: float = 0.5) -> torch.Tensor:
    """``(...)`` 0/1 pixels: 1 where ``images > threshold`` (in the images' dtype), e.g. 8×8 digits in [0, 1] → 64 bits."""
    images = as_float_tensor(images, "images")
    threshold = check_number(threshold, "threshold")
    return (images > threshold).to(images.dtype)


def checkerboard(n: int, generator: torch.Generator | None = None, *, dtype=torch.float32,
                 device=None) -> torch.Tensor:
    r"""n i.i.d. points uniform on the 8 dark squares of a 4 × 4 checkerboard on [−2, 2]².

    Square (i, j) = [−2 + i, −1 + i) × [−2 + j, −1 + j) is dark when i + j is even; a square is
    drawn uniformly, then a point uniformly inside it: the density is 1/8 on the dark squares, 0
    elsewhere (:func:`checkerboard_log_prob`), entropy log 8.

    Args:
        n: number of points; generator: ``torch.Generator`` (on ``device``); dtype, device
            (device defaults to the generator's, else CPU).

    Returns:
        ``(n, 2)`` points.
    """
    n = check_int(n, "n", low=1)
    check_generator(generator)
    check_float_dtype(dtype)
    device = torch.device(device) if device is not None else (generator.device if generator is not None
                                                              else torch.device("cpu"))
    square = torch.randint(8, (n,), generator=generator, device=device)
    i = square // 2
    j = 2 * (square % 2) + (i % 2)   # row i has its dark squares at j ≡ i (mod 2)
    corner = torch.stack([i, j], dim=-1).to(dtype) - 2
    return corner + torch.rand(n, 2, generator=generator, dtype=dtype, device=device)


def checkerboard_log_prob(x) -> torch.Tensor:
    """``(...)`` log density of :func:`checkerboard` at ``x`` ``(..., 2)``: log(1/8) on a dark square, −inf elsewhere."""
    x = as_float_tensor(x, "x")
    check_min_ndim(x, "x", 1, "(..., 2)")
    check_last_dim(x, "x", 2, "(..., 2)")
    cell = torch.floor(x + 2)
    inside = ((cell >= 0) & (cell <= 3)).all(-1)
    dark = inside & (cell.sum(-1).remainder(2) == 0)
    return torch.where(dark, torch.full(x.shape[:-1], -math.log(8), dtype=x.dtype, device=x.device),
                       torch.full(x.shape[:-1], -math.inf, dtype=x.dtype, device=x.device))
