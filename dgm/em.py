r"""Gaussian mixtures fitted by EM, k-means, PCA and probabilistic PCA (Chapter 2).

The mixture of Chapter 2 has K components with full, diagonal or spherical covariances:

.. math::
    p(z = k) = \pi_k, \qquad p(x \mid z = k) = \mathcal N(x;\ \mu_k,\ \Sigma_k), \qquad
    p(x) = \sum_k \pi_k\, \mathcal N(x;\ \mu_k,\ \Sigma_k)

with Σ_k = σ_k² I (``"spherical"``), diag(σ_k1², ..., σ_kD²) (``"diag"``) or any symmetric positive
definite matrix (``"full"``). :mod:`dgm.mixtures` keeps Chapter 1's diagonal mixture in log-variances;
this module stores the covariances themselves (what EM estimates) in a
:class:`GaussianMixtureParams`.

EM alternates two steps from parameters θ_t (derived in Chapter 2):

* **E-step** — the posterior over the component of every point, the *responsibilities*
  r_nk = p(z = k | x⁽ⁿ⁾; θ_t) = π_k N(x⁽ⁿ⁾; μ_k, Σ_k) / Σ_j π_j N(x⁽ⁿ⁾; μ_j, Σ_j), in log space with
  ``logsumexp``. With q = r the ELBO equals the log-likelihood, ELBO(r, θ_t) = log p(x; θ_t).
* **M-step** — the θ maximising Σ_n Σ_k r_nk log p(x⁽ⁿ⁾, z = k; θ) with r fixed: with
  N_k = Σ_n r_nk,

  .. math::
      \pi_k = \frac{N_k}{N}, \quad \mu_k = \frac{1}{N_k}\sum_n r_{nk} x^{(n)}, \quad
      \Sigma_k = \frac{1}{N_k}\sum_n r_{nk} (x^{(n)} - \mu_k)(x^{(n)} - \mu_k)^\top + \epsilon I

  with the diagonal of Σ_k for ``"diag"`` and σ_k² = Σ_n r_nk ‖x⁽ⁿ⁾ − μ_k‖² / (D N_k) + ε for
  ``"spherical"`` (the 1/D: one variance shared by D coordinates). ε = ``reg_covar`` is the
  *variance floor*: a component that collapses onto one point keeps variance ε instead of 0
  (whose density, and the likelihood, would be infinite).

The conventions follow scikit-learn's ``GaussianMixture`` so that the two can be compared number
for number: ``reg_covar`` is added to the diagonal of every estimated covariance (to each variance
for ``"diag"``, once to the averaged variance for ``"spherical"``); N_k gets 10 machine epsilons
(so an empty component has a finite mean); the weights are N_k / Σ_j N_j; the Cholesky factor U_k of
the precision Σ_k⁻¹ = U_k U_kᵀ is kept (U_k = C_k⁻ᵀ for Σ_k = C_k C_kᵀ, upper triangular); and the
"lower bound" of an iteration is the mean log-likelihood at the parameters of its E-step. The code
is this course's own: one batched code path, no loop over components.

**How EM is made fast** (:func:`fit_em`). Both steps are linear in a fixed feature vector of each
point: with x̃ = x − c (c the data mean, so numbers stay small),

.. math::
    \phi(x) = [\,\tilde x_i \tilde x_j\ (i \le j)\ \text{or}\ \tilde x_d^2,\ \ \tilde x,\ \ 1\,],\qquad
    \log \pi_k\mathcal N(x; \mu_k, \Sigma_k) = \phi(x)^\top a_k, \qquad
    \textstyle\sum_n r_{nk}\,\phi(x^{(n)})
    = N_k\,\big(\mathbb E_{r}[\tilde x\tilde x^\top],\ \mathbb E_{r}[\tilde x],\ 1\big)

(a_k holds −½P_k, P_k μ̃_k and the constant, P_k = Σ_k⁻¹). So the E-step is one matrix product
Φ A, ``(N, F) @ (F, K)``, then one pass of ``exp`` over ``(N, K)``, and the M-step is one product
Rᵀ Φ, ``(K, N) @ (N, F)``; Φ is computed once and reused by every iteration, the responsibilities
are computed in place in a reused buffer (in blocks of rows for very large N). The
expansions (x̃ − μ̃)ᵀP(x̃ − μ̃) = x̃ᵀPx̃ − 2x̃ᵀPμ̃ + μ̃ᵀPμ̃ and Σ = E_r[x̃x̃ᵀ] − μ̃μ̃ᵀ cost some rounding
(scikit-learn expands them too, for ``"diag"`` and ``"spherical"``): about ε_mach·(R/σ)², with R
the distance of a point or a mean from the data mean and σ the component's smallest standard
deviation — in float64 below 1e-9 (nats, or relative to σ²) while R/σ < 2000. Everything runs in
the dtype of ``x``. Float64 reproduces
scikit-learn's parameters and lower bounds to ~1e-12 after 30 iterations on 200 000 points, and is
the precision to compare with. Float32 is 1.5–2 times faster on a CPU; on the same problem it stays
within ~3e-6 (relative) of float64 for ``"diag"`` and ``"spherical"``, but drifts to ~1e-3 for
``"full"`` (the second moments E_r[x̃x̃ᵀ] − μ̃μ̃ᵀ cancel in 7 digits).

Also here: k-means (Lloyd's algorithm, the hard-assignment limit of EM with σ² → 0), PCA (the
best rank-K linear encoder/decoder) and probabilistic PCA (Tipping & Bishop's maximum-likelihood
solution), the linear-Gaussian model of :mod:`dgm.linear_gaussian` with W of shape ``(D, K)``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from dgm._validate import (
    as_float_tensor,
    check_int,
    check_last_dim,
    check_min_ndim,
    check_number,
    check_positive,
    check_probabilities,
    check_same_device,
    check_square,
    check_symmetric,
    promote_float,
)
from dgm.distributions import mvn_log_prob
from dgm.mixtures import _weights_and_means

__all__ = [
    "COVARIANCE_TYPES",
    "GaussianMixtureParams",
    "log_joint",
    "log_likelihood",
    "e_step",
    "elbo",
    "m_step",
    "fit_em",
    "kmeans_plusplus",
    "kmeans",
    "pca",
    "pca_reconstruct",
    "ppca",
    "ppca_log_likelihood",
    "ppca_posterior_mean",
]

#: The covariance structures of a component: one variance, one per coordinate, or a full matrix.
COVARIANCE_TYPES = ("spherical", "diag", "full")

_LOG_2PI = math.log(2 * math.pi)
#: Rows of Φ handled at once: bounds the memory of the responsibilities to (B, K). Not smaller: on a
#: busy 2-core machine every operation on a block waits for both threads, and blocks of 32 768 rows
#: (cache-sized) made EM up to 10 times slower there, for no gain on an idle machine.
_BLOCK_ROWS = 1 << 18


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GaussianMixtureParams:
    r"""The parameters θ = (π, μ, Σ) of a K-component Gaussian mixture in D dimensions.

    Build it with :meth:`from_covariances` (which validates and factorises); the fields are read-only.

    Attributes:
        weights: ``(K,)`` mixing proportions π_k ≥ 0, Σ_k π_k = 1.
        means: ``(K, D)`` component means μ_k.
        covariances: ``(K,)`` variances σ_k² (``"spherical"``), ``(K, D)`` variances (``"diag"``),
            or ``(K, D, D)`` covariance matrices Σ_k (``"full"``).
        precisions_cholesky: the same shape as ``covariances``: 1/σ (``"spherical"``, ``"diag"``) or
            the upper-triangular U_k with Σ_k⁻¹ = U_k U_kᵀ (``"full"``), scikit-learn's
            ``precisions_cholesky_``. The E-step needs only these and the means.
        covariance_type: one of :data:`COVARIANCE_TYPES`.
    """

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    precisions_cholesky: torch.Tensor
    covariance_type: str

    @classmethod
    def from_covariances(cls, weights, means, covariances, covariance_type: str = "full") -> GaussianMixtureParams:
        r"""Validate (π, μ, Σ) and compute the precision Cholesky factors.

        Args:
            weights: ``(K,)`` probability vector.
            means: ``(K, D)``.
            covariances: ``(K,)`` / ``(K, D)`` positive variances, or ``(K, D, D)`` symmetric positive
                definite matrices, for ``covariance_type`` ``"spherical"`` / ``"diag"`` / ``"full"``.
            covariance_type: one of :data:`COVARIANCE_TYPES`.

        Returns:
            A :class:`GaussianMixtureParams` in the common dtype of the inputs, on their device.
            Gradients flow from its fields to the inputs.
        """
        covariance_type = _check_covariance_type(covariance_type)
        weights, means = _weights_and_means(weights, means)
        K, D = means.shape
        covariances = as_float_tensor(covariances, "covariances", like=means)
        expected = {"spherical": (K,), "diag": (K, D), "full": (K, D, D)}[covariance_type]
        if tuple(covariances.shape) != expected:
            raise ValueError(
                f"covariances must have shape {expected} for covariance_type={covariance_type!r} with means of "
                f"shape ({K}, {D}); got shape {tuple(covariances.shape)}"
            )
        check_same_device(weights=weights, means=means, covariances=covariances)
        if covariance_type == "full":
            check_square(covariances, "covariances")
            check_symmetric(covariances, "covariances")
        else:
            check_positive(covariances, "covariances")
        weights, means, covariances = promote_float(weights, means, covariances)
        precisions_cholesky = _precision_cholesky(covariances, covariance_type)
        if precisions_cholesky is None:
            raise ValueError("covariances must be symmetric positive definite; the Cholesky factorisation of "
                             f"component(s) {_failed_components(covariances)} failed")
        return cls(weights, means, covariances, precisions_cholesky, covariance_type)

    @property
    def n_components(self) -> int:
        """K, the number of components."""
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        """D, the dimension of x."""
        return self.means.shape[1]

    def precisions(self) -> torch.Tensor:
        """The precisions Σ_k⁻¹ in the shape of ``covariances`` (1/σ² or U_k U_kᵀ)."""
        u = self.precisions_cholesky
        return u @ u.transpose(-1, -2) if self.covariance_type == "full" else u * u

    def full_covariances(self) -> torch.Tensor:
        """``(K, D, D)``: the covariance matrices Σ_k, whatever the covariance type."""
        K, D = self.means.shape
        if self.covariance_type == "full":
            return self.covariances
        variances = self.covariances if self.covariance_type == "diag" else self.covariances[:, None].expand(K, D)
        return torch.diag_embed(variances)


def _check_covariance_type(covariance_type) -> str:
    if not isinstance(covariance_type, str) or covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {', '.join(repr(c) for c in COVARIANCE_TYPES)}; got {covariance_type!r}"
        )
    return covariance_type


def _check_params(params) -> GaussianMixtureParams:
    if not isinstance(params, GaussianMixtureParams):
        raise TypeError(
            "params must be a GaussianMixtureParams (build one with GaussianMixtureParams.from_covariances); "
            f"got {type(params).__name__}"
        )
    return params


def _precision_cholesky(covariances: torch.Tensor, covariance_type: str) -> torch.Tensor | None:
    """1/√σ² (spherical, diag) or U = C⁻ᵀ with Σ = C Cᵀ (full); None when a factorisation fails."""
    if covariance_type != "full":
        if not bool((covariances > 0).all()):
            return None
        return torch.rsqrt(covariances)
    chol, info = torch.linalg.cholesky_ex(covariances)
    if bool((info != 0).any()):
        return None
    eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
    return torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).transpose(-1, -2)


def _failed_components(covariances: torch.Tensor) -> list[int]:
    if covariances.dim() == 3:
        _, info = torch.linalg.cholesky_ex(covariances)
        bad = info != 0
    else:
        bad = ~(covariances > 0).reshape(covariances.shape[0], -1).all(-1)
    return torch.nonzero(bad).flatten().tolist()


# --------------------------------------------------------------------------------------------
# the feature form: log π_k N(x; μ_k, Σ_k) = φ(x)ᵀ a_k, and Σ_n r_nk φ(x⁽ⁿ⁾) holds the M-step's sums
# --------------------------------------------------------------------------------------------


def _n_quadratic(D: int, covariance_type: str) -> int:
    return D * (D + 1) // 2 if covariance_type == "full" else D


def _features(x: torch.Tensor, covariance_type: str, shift: torch.Tensor) -> torch.Tensor:
    """Φ ``(N, F)``: [x̃ᵢx̃ⱼ (i ≤ j, full) or x̃_d² (diag, spherical), x̃, 1] with x̃ = x − shift.

    The pairs (i, j) come in the order of ``torch.triu_indices``: (0, 0), (0, 1), ..., (0, D−1), (1, 1), ...
    """
    xc = x - shift
    if covariance_type == "full":
        quad = [xc[:, d:d + 1] * xc[:, d:] for d in range(x.shape[1])]   # D products, faster than a gather
    else:
        quad = [xc * xc]
    return torch.cat([*quad, xc, torch.ones_like(xc[:, :1])], dim=1)


def _coefficients(params: GaussianMixtureParams, shift: torch.Tensor) -> torch.Tensor:
    r"""A ``(F, K)`` with Φ A = log π_k + log N(x; μ_k, Σ_k).

    log N = −½ x̃ᵀPx̃ + x̃ᵀPμ̃ − ½ μ̃ᵀPμ̃ + log|U| − D/2 log 2π, with μ̃ = μ − shift, P = U Uᵀ.
    """
    K, D = params.means.shape
    mu = params.means - shift
    u = params.precisions_cholesky
    if params.covariance_type == "full":
        prec = u @ u.transpose(-1, -2)
        i, j = torch.triu_indices(D, D, device=mu.device)
        # x̃ᵀPx̃ = Σ_i P_ii x̃_i² + 2 Σ_{i<j} P_ij x̃_i x̃_j
        quad = prec[:, i, j] * torch.where(i == j, -0.5, -1.0).to(prec.dtype)
        lin = (prec @ mu.unsqueeze(-1)).squeeze(-1)
        log_det_u = torch.log(torch.diagonal(u, dim1=-2, dim2=-1)).sum(-1)
    else:
        prec = u * u if params.covariance_type == "diag" else (u * u)[:, None].expand(K, D)
        quad = -0.5 * prec
        lin = prec * mu
        log_det_u = torch.log(u).sum(-1) if params.covariance_type == "diag" else D * torch.log(u)
    const = torch.log(params.weights) - 0.5 * (lin * mu).sum(-1) + log_det_u - 0.5 * D * _LOG_2PI
    return torch.cat([quad, lin, const[:, None]], dim=1).T


def _params_from_sums(sums: torch.Tensor, covariance_type: str, reg_covar: float, shift: torch.Tensor,
                      D: int) -> GaussianMixtureParams:
    r"""The M-step from S = Rᵀ Φ ``(K, F)``: N_k, N_k E_r[x̃] and N_k E_r[x̃x̃ᵀ] give π, μ and Σ.

    Raises ValueError when a covariance is not positive definite (a variance floor of 0 and a
    collapsed component).
    """
    Q = _n_quadratic(D, covariance_type)
    nk = sums[:, -1] + 10 * torch.finfo(sums.dtype).eps
    mu = sums[:, Q:Q + D] / nk[:, None]
    if covariance_type == "full":
        i, j = torch.triu_indices(D, D, device=sums.device)
        second = sums.new_empty(sums.shape[0], D, D)
        second[:, i, j] = sums[:, :Q]
        second[:, j, i] = sums[:, :Q]
        cov = second / nk[:, None, None] - mu[:, :, None] * mu[:, None, :]
        cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    else:
        cov = sums[:, :D] / nk[:, None] - mu * mu + reg_covar
        if covariance_type == "spherical":
            cov = cov.mean(-1)
    prec_chol = _precision_cholesky(cov, covariance_type)
    if prec_chol is None:
        raise ValueError(
            f"the M-step's covariance of component(s) {_failed_components(cov)} is not positive definite "
            f"with reg_covar={reg_covar:g}: a component collapsed onto too few points; increase reg_covar "
            "(e.g. 1e-6) or use fewer components"
        )
    weights = nk / nk.sum()
    return GaussianMixtureParams(weights, mu + shift, cov, prec_chol, covariance_type)


def _responsibilities_(block: torch.Tensor) -> torch.Tensor:
    """Turn log π_k N(x; ·) ``(B, K)`` into r ``(B, K)`` in place; returns log p(x) ``(B,)``.

    One ``exp`` pass: r = exp(a − m) / Σ_k exp(a_k − m), log p(x) = m + log Σ_k exp(a_k − m), m = max_k a_k.
    a − m is clamped at log(smallest normal number) + 1 (−707 in float64): below it ``exp`` would
    return 0 or a subnormal number — 15 to 100 times slower on a CPU — and the clamped value,
    about 1e-307 (1e-38 in float32), is below rounding next to the maximum term 1.
    """
    m = block.amax(dim=1, keepdim=True)   # finite: the parameters are finite and some π_k > 0
    block.sub_(m).clamp_(min=math.log(torch.finfo(block.dtype).tiny) + 1).exp_()
    total = block.sum(dim=1, keepdim=True)
    block.mul_(total.reciprocal())
    return (m + torch.log(total)).squeeze(1)


def _em_iteration(phi: torch.Tensor, coef: torch.Tensor, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One E-step and the sums of the M-step: returns (Σ_n log p(x⁽ⁿ⁾), S = Rᵀ Φ ``(K, F)``).

    Works through Φ in row blocks, reusing ``buffer`` ``(B, K)`` for the responsibilities.
    """
    N = phi.shape[0]
    B = buffer.shape[0]
    sums = phi.new_zeros(coef.shape[1], phi.shape[1])
    total = phi.new_zeros(())
    for start in range(0, N, B):
        rows = phi[start:start + B]
        block = buffer[: rows.shape[0]]
        torch.mm(rows, coef, out=block)
        total += _responsibilities_(block).sum()
        sums.addmm_(block.T, rows)
    return total, sums


def _total_log_likelihood(phi: torch.Tensor, coef: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
    """Σ_n log p(x⁽ⁿ⁾), by the E-step of :func:`_em_iteration` without the M-step's sums."""
    total = phi.new_zeros(())
    B = buffer.shape[0]
    for start in range(0, phi.shape[0], B):
        rows = phi[start:start + B]
        block = buffer[: rows.shape[0]]
        torch.mm(rows, coef, out=block)
        total += _responsibilities_(block).sum()
    return total


# --------------------------------------------------------------------------------------------
# E-step, log-likelihood, ELBO, M-step
# --------------------------------------------------------------------------------------------


def _data(x, params: GaussianMixtureParams) -> torch.Tensor:
    x = as_float_tensor(x, "x", like=params.means)
    check_min_ndim(x, "x", 1, "(..., D)")
    D = params.dim
    check_last_dim(x, "x", D, f"(..., {D})")
    check_same_device(x=x, means=params.means)
    return x


def log_joint(x, params: GaussianMixtureParams) -> torch.Tensor:
    r"""log p(x, z=k) = log π_k + log N(x; μ_k, Σ_k), for every component k.

    .. math::
        \log\mathcal N(x;\mu_k,\Sigma_k) = -\tfrac12\big[D\log 2\pi - \log|\Sigma_k^{-1}|
        + (x-\mu_k)^\top\Sigma_k^{-1}(x-\mu_k)\big]

    computed for all k at once as one matrix product (the module's feature form). A component
    with π_k = 0 gives ``-inf``.

    Args:
        x: ``(..., D)`` observations.
        params: a :class:`GaussianMixtureParams` with K components.

    Returns:
        ``(..., K)`` in nats (a density in x, a mass in z). Differentiable in x and in the
        parameters' tensors.
    """
    params = _check_params(params)
    x = _data(x, params)
    x, means = promote_float(x, params.means)
    shift = (params.weights.to(means.dtype) @ means).detach()  # the mixture's mean: keeps x̃ small
    flat = x.reshape(-1, params.dim)
    out = _features(flat, params.covariance_type, shift) @ _coefficients(params, shift).to(x.dtype)
    return out.reshape(*x.shape[:-1], params.n_components)


def log_likelihood(x, params: GaussianMixtureParams) -> torch.Tensor:
    r"""log p(x) = log Σ_k π_k N(x; μ_k, Σ_k), with ``logsumexp``.

    Args:
        x: ``(..., D)`` observations.
        params: a :class:`GaussianMixtureParams`.

    Returns:
        ``(...)`` log-likelihood of each point in nats (average it for the "lower bound" of
        scikit-learn and of :func:`fit_em`'s history).
    """
    return torch.logsumexp(log_joint(x, params), dim=-1)


def e_step(x, params: GaussianMixtureParams) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The E-step: log responsibilities log r_k(x) = log p(z=k | x) and log p(x).

    .. math::
        \log r_k(x) = \log\pi_k\mathcal N(x;\mu_k,\Sigma_k) - \log\sum_j \pi_j\mathcal N(x;\mu_j,\Sigma_j)

    With q = r the ELBO equals log p(x) (:func:`elbo`).

    Args:
        x: ``(..., D)`` observations.
        params: a :class:`GaussianMixtureParams`.

    Returns:
        ``(log_resp, log_lik)``: ``(..., K)`` log responsibilities (``exp`` sums to 1 over K) and
        ``(...)`` log p(x) in nats.
    """
    joint = log_joint(x, params)
    log_lik = torch.logsumexp(joint, dim=-1)
    return joint - log_lik.unsqueeze(-1), log_lik


def elbo(x, q, params: GaussianMixtureParams) -> torch.Tensor:
    r"""ELBO(q, θ) = Σ_k q_k [log p(x, z=k; θ) − log q_k] for a categorical q over the component.

    It equals log p(x; θ) − KL(q ‖ p(z | x; θ)) ≤ log p(x; θ), with equality exactly at the
    posterior q = r (the E-step). Terms with q_k = 0 contribute 0. EM's M-step maximises it in θ
    with q fixed; at q = r(θ_t) its gradient in θ at θ_t equals the gradient of log p(x; θ).

    Args:
        x: ``(..., D)`` observations.
        q: ``(..., K)`` probability vectors (broadcast against x's batch shape).
        params: a :class:`GaussianMixtureParams`.

    Returns:
        ``(...)`` the ELBO in nats.
    """
    params = _check_params(params)
    joint = log_joint(x, params)
    q = as_float_tensor(q, "q", like=joint)
    check_min_ndim(q, "q", 1, "(..., K)")
    check_last_dim(q, "q", params.n_components, f"(..., {params.n_components})")
    check_probabilities(q, "q")
    check_same_device(q=q, means=params.means)
    positive = q > 0
    zero = torch.zeros((), dtype=joint.dtype, device=joint.device)
    safe_joint = torch.where(positive, joint, zero)
    safe_log_q = torch.where(positive, torch.log(torch.where(positive, q, torch.ones_like(q))), zero)
    return (q * (safe_joint - safe_log_q)).sum(-1)


def _fit_data(x) -> torch.Tensor:
    x = as_float_tensor(x, "x")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, D) (N points in D dimensions); got shape {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x must have at least one point and one dimension; got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite; it contains NaN or infinity")
    return x


def m_step(x, resp, covariance_type: str = "full", reg_covar: float = 1e-6) -> GaussianMixtureParams:
    r"""The M-step: the θ maximising Σ_n Σ_k r_nk log p(x⁽ⁿ⁾, z=k; θ) for fixed responsibilities.

    With N_k = Σ_n r_nk (+ 10 machine epsilons) and ε = ``reg_covar``:

    * π_k = N_k / Σ_j N_j (= N_k / N when the rows of r sum to 1);
    * μ_k = Σ_n r_nk x⁽ⁿ⁾ / N_k;
    * ``"full"``: Σ_k = Σ_n r_nk (x⁽ⁿ⁾ − μ_k)(x⁽ⁿ⁾ − μ_k)ᵀ / N_k + ε I;
    * ``"diag"``: σ_kd² = Σ_n r_nk (x_d⁽ⁿ⁾ − μ_kd)² / N_k + ε;
    * ``"spherical"``: σ_k² = Σ_n r_nk ‖x⁽ⁿ⁾ − μ_k‖² / (D N_k) + ε.

    Args:
        x: ``(N, D)`` observations.
        resp: ``(N, K)`` responsibilities, non-negative (rows summing to 1 after an E-step;
            one-hot rows give the hard assignment of k-means).
        covariance_type: one of :data:`COVARIANCE_TYPES`.
        reg_covar: ε ≥ 0, the variance floor added to every variance (scikit-learn's ``reg_covar``).

    Returns:
        The new :class:`GaussianMixtureParams`. Raises ``ValueError`` when a covariance is not
        positive definite (possible only with a tiny ``reg_covar``).
    """
    covariance_type = _check_covariance_type(covariance_type)
    reg_covar = check_number(reg_covar, "reg_covar", low=0)
    x = _fit_data(x)
    resp = as_float_tensor(resp, "resp", like=x)
    if resp.dim() != 2 or resp.shape[0] != x.shape[0] or resp.shape[1] < 1:
        raise ValueError(f"resp must have shape ({x.shape[0]}, K) (one row per point of x); "
                         f"got shape {tuple(resp.shape)}")
    check_same_device(x=x, resp=resp)
    if not bool(torch.isfinite(resp).all()) or bool((resp < 0).any()):
        raise ValueError("resp must be finite and non-negative (responsibilities)")
    x, resp = promote_float(x, resp)
    shift = x.mean(0)
    sums = resp.T @ _features(x, covariance_type, shift)
    return _params_from_sums(sums, covariance_type, reg_covar, shift, x.shape[1])


# --------------------------------------------------------------------------------------------
# the EM loop
# --------------------------------------------------------------------------------------------


def fit_em(x, init, *, covariance_type: str | None = None, n_iter: int = 100, tol: float = 1e-3,
           reg_covar: float = 1e-6, generator: torch.Generator | None = None
           ) -> tuple[GaussianMixtureParams, torch.Tensor]:
    r"""Fit a Gaussian mixture by EM; return the parameters and the log-likelihood of every iterate.

    Iteration t takes θ_t to θ_{t+1}: the E-step computes r = p(z | x; θ_t) and
    ℓ(θ_t) = (1/N) Σ_n log p(x⁽ⁿ⁾; θ_t), the M-step (:func:`m_step`) maximises the ELBO in θ with r
    fixed. Because ELBO(r, θ_t) = ℓ(θ_t) after the E-step, and ℓ ≥ ELBO everywhere,

    .. math::
        \ell(\theta_{t+1}) \ge \mathrm{ELBO}(r, \theta_{t+1}) \ge \mathrm{ELBO}(r, \theta_t) = \ell(\theta_t):

    With ``reg_covar = 0`` EM never lowers the log-likelihood (up to rounding, ~1e-15 relative in
    float64). A variance floor ε > 0 makes the M-step's covariances Σ_k + εI, which no longer
    maximise the ELBO exactly, so ℓ can drop: by rounding-level amounts when ε is tiny against the
    data's variances, visibly when ε is comparable to them (keep ε small). The ELBO at each
    E-step is the log-likelihood itself, so the history below is both.

    EM stops after ``n_iter`` iterations, or after the first iteration t ≥ 1 whose E-step finds
    |ℓ(θ_t) − ℓ(θ_{t−1})| < ``tol`` (that iteration's M-step still runs, as in scikit-learn).

    Args:
        x: ``(N, D)`` observations.
        init: the starting θ_0, a :class:`GaussianMixtureParams`; or K, a positive integer: then
            θ_0 is the M-step of k-means' hard assignment (:func:`kmeans` from :func:`kmeans_plusplus`
            centres drawn with ``generator``), scikit-learn's default initialisation.
        covariance_type: one of :data:`COVARIANCE_TYPES`; by default ``init``'s type, or ``"full"``
            when ``init`` is K. Must equal ``init``'s type when both are given.
        n_iter: the largest number of iterations T (≥ 0).
        tol: ≥ 0; 0 runs all ``n_iter`` iterations.
        reg_covar: ε ≥ 0, the variance floor of the M-step.
        generator: ``torch.Generator`` on x's device, used only when ``init`` is K.

    Returns:
        ``(params, history)``: θ_T (the parameters after the last M-step, in x's dtype) and
        ``(T + 1,)`` the mean log-likelihoods ℓ(θ_0), ..., ℓ(θ_T) in nats, non-decreasing when
        ``reg_covar`` is 0 (see above for a floor).
        ``history[:T]`` is scikit-learn's ``lower_bounds_`` and ``history[T - 1]`` its
        ``lower_bound_``; ``history[T]`` is ℓ of the returned parameters.
    """
    x = _fit_data(x)
    n_iter = check_int(n_iter, "n_iter", low=0)
    tol = check_number(tol, "tol", low=0)
    reg_covar = check_number(reg_covar, "reg_covar", low=0)
    if covariance_type is not None:
        covariance_type = _check_covariance_type(covariance_type)
    if isinstance(init, GaussianMixtureParams):
        if covariance_type is not None and covariance_type != init.covariance_type:
            raise ValueError(f"covariance_type={covariance_type!r} differs from init's covariance_type "
                             f"{init.covariance_type!r}; pass one or make them agree")
        covariance_type = init.covariance_type
        if init.dim != x.shape[1]:
            raise ValueError(f"x must have shape (N, {init.dim}) to match init's means of shape "
                             f"({init.n_components}, {init.dim}); got shape {tuple(x.shape)}")
        check_same_device(x=x, means=init.means)
        params = GaussianMixtureParams(*(t.detach().to(x.dtype) for t in
                                         (init.weights, init.means, init.covariances, init.precisions_cholesky)),
                                       covariance_type)
    else:
        K = check_int(init, "init", low=1, expected="a GaussianMixtureParams or a positive integer K")
        if K > x.shape[0]:
            raise ValueError(f"init asks for K={K} components but x has only {x.shape[0]} points; need N >= K")
        covariance_type = covariance_type or "full"
        _, labels, _ = kmeans(x, K, generator=generator)
        resp = torch.nn.functional.one_hot(labels, K).to(x.dtype)
        params = m_step(x, resp, covariance_type, reg_covar)

    with torch.no_grad():
        N, D = x.shape
        shift = x.mean(0)
        phi = _features(x, covariance_type, shift)
        buffer = x.new_empty(min(_BLOCK_ROWS, N), params.n_components)
        history = []
        for t in range(n_iter):
            total, sums = _em_iteration(phi, _coefficients(params, shift), buffer)
            history.append(total / N)
            params = _params_from_sums(sums, covariance_type, reg_covar, shift, D)
            if tol > 0 and t >= 1 and abs(float(history[-1] - history[-2])) < tol:
                break
        history.append(_total_log_likelihood(phi, _coefficients(params, shift), buffer) / N)
    return params, torch.stack(history)


# --------------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------------


def _squared_distances(xc: torch.Tensor, x2: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """‖x − c_k‖² ``(N, K)`` = ‖x‖² − 2 xᵀc_k + ‖c_k‖², clamped at 0 against rounding."""
    d = torch.addmm((centres * centres).sum(1)[None, :], xc, centres.T, alpha=-2.0)
    return d.add_(x2[:, None]).clamp_(min=0)


def kmeans_plusplus(x, k: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""k-means++ seeding (Arthur & Vassilvitskii 2007): k centres drawn from the data.

    The first centre is a uniformly drawn point; each next one is point n with probability
    D(x⁽ⁿ⁾)² / Σ_m D(x⁽ᵐ⁾)², D the distance to the nearest centre chosen so far (one candidate per
    step; scikit-learn's greedy variant tries several).

    Args:
        x: ``(N, D)`` points, N ≥ k.
        k: the number of centres, a positive integer.
        generator: ``torch.Generator`` on x's device.

    Returns:
        ``(k, D)`` centres, rows of x.
    """
    x = _fit_data(x)
    k = check_int(k, "k", low=1)
    N = x.shape[0]
    if k > N:
        raise ValueError(f"k must be at most the number of points N={N}; got {k}")
    xc = x - x.mean(0)
    x2 = (xc * xc).sum(1)
    first = torch.randint(N, (1,), device=x.device, generator=generator)
    chosen = [first]
    nearest = _squared_distances(xc, x2, xc[first]).squeeze(1)
    for _ in range(1, k):
        total = nearest.sum()
        weights = nearest if bool(total > 0) else torch.ones_like(nearest)  # all points equal: uniform
        idx = torch.multinomial(weights, 1, generator=generator)
        chosen.append(idx)
        nearest = torch.minimum(nearest, _squared_distances(xc, x2, xc[idx]).squeeze(1))
    return x[torch.cat(chosen)]


def kmeans(x, init, *, n_iter: int = 300, generator: torch.Generator | None = None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""k-means by Lloyd's algorithm: the hard-assignment limit of EM.

    Alternates the assignment z⁽ⁿ⁾ = argmin_k ‖x⁽ⁿ⁾ − c_k‖² (the E-step of a mixture with equal
    weights and covariances σ²I as σ² → 0: the responsibilities become one-hot) and the update
    c_k = mean of the points assigned to k (its M-step), which never increases the inertia
    J = Σ_n min_k ‖x⁽ⁿ⁾ − c_k‖². Stops when an assignment repeats (then the centres are a fixed
    point) or after ``n_iter`` updates. A cluster left empty keeps its centre (scikit-learn moves it
    to a far point instead). Ties go to the lowest index. From the same centres scikit-learn's
    ``KMeans(algorithm="lloyd", tol=0)`` gives the same centres, labels and inertia, and its
    ``n_iter_`` is ``len(inertia)`` (it counts the assignment that repeats).

    Args:
        x: ``(N, D)`` points.
        init: ``(K, D)`` initial centres, or K, a positive integer: centres from
            :func:`kmeans_plusplus` drawn with ``generator``.
        n_iter: the largest number of centre updates (≥ 0).
        generator: ``torch.Generator`` on x's device, used only when ``init`` is K.

    Returns:
        ``(centres, labels, inertia)``: ``(K, D)`` centres, ``(N,)`` int64 labels (each point's
        nearest centre among the returned ones) and ``(T + 1,)`` the inertia J after each assignment,
        non-increasing; ``inertia[-1]`` is J of the returned centres and labels.
    """
    x = _fit_data(x)
    n_iter = check_int(n_iter, "n_iter", low=0)
    if isinstance(init, numbers.Integral):  # bool included: check_int refuses it
        centres = kmeans_plusplus(x, check_int(init, "init", low=1), generator=generator)
    else:
        if not isinstance(init, (torch.Tensor, list, tuple)):
            raise TypeError(f"init must be (K, D) initial centres or a positive integer K; got {type(init).__name__}")
        centres = as_float_tensor(init, "init", like=x)
        if centres.dim() != 2 or centres.shape[1] != x.shape[1] or centres.shape[0] < 1:
            raise ValueError(f"init must have shape (K, {x.shape[1]}) (centres like the rows of x) or be an "
                             f"integer K; got shape {tuple(centres.shape)}")
        check_same_device(x=x, init=centres)
        if not bool(torch.isfinite(centres).all()):
            raise ValueError("init must be finite; it contains NaN or infinity")
        x, centres = promote_float(x, centres)
    K = centres.shape[0]
    shift = x.mean(0)
    xc = x - shift
    x2 = (xc * xc).sum(1)
    c = centres - shift

    def assign(c):
        best, labels = _squared_distances(xc, x2, c).min(dim=1)
        return labels, best.sum()

    labels, inertia = assign(c)
    history = [inertia]
    for _ in range(n_iter):
        counts = torch.bincount(labels, minlength=K).to(x.dtype)
        sums = torch.zeros_like(c).index_add_(0, labels, xc)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], c)
        new_labels, inertia = assign(c)
        history.append(inertia)
        repeated = torch.equal(new_labels, labels)
        labels = new_labels
        if repeated:
            break
    return c + shift, labels, torch.stack(history)


# --------------------------------------------------------------------------------------------
# PCA and probabilistic PCA
# --------------------------------------------------------------------------------------------


def _latent_dim(latent_dim, D: int, high: int, why: str) -> int:
    return check_int(latent_dim, "latent_dim", low=1, high=high,
                     expected=f"an integer in [1, {high}] ({why}, D={D})")


def _eigen(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The data mean, the eigenvalues (descending, ≥ 0) and eigenvectors (columns) of S = (1/N) Σ x̃x̃ᵀ."""
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / x.shape[0]
    evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
    evals, evecs = evals.flip(0).clamp(min=0), evecs.flip(1)
    # a deterministic sign: the largest |entry| of each eigenvector is positive (scikit-learn's svd_flip)
    rows = evecs.abs().argmax(0)
    signs = torch.sign(evecs[rows, torch.arange(evecs.shape[1], device=x.device)])
    evecs = evecs * torch.where(signs == 0, torch.ones_like(signs), signs)
    return mean, evals, evecs


def pca(x, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""PCA: the best rank-K linear encoder/decoder, from the eigenvectors of the covariance.

    With S = (1/N) Σ_n (x⁽ⁿ⁾ − x̄)(x⁽ⁿ⁾ − x̄)ᵀ = U Λ Uᵀ (λ_1 ≥ ... ≥ λ_D), the encoder z = U_Kᵀ(x − x̄)
    and decoder x̂ = x̄ + U_K z minimise the mean squared reconstruction error over all rank-K
    linear maps, and the minimum is the sum of the discarded eigenvalues:

    .. math::
        \frac1N \sum_n \|x^{(n)} - \hat x^{(n)}\|^2 = \sum_{d > K} \lambda_d .

    The eigenvalues are those of the 1/N (maximum-likelihood) covariance; scikit-learn's
    ``explained_variance_`` divides by N − 1.

    Args:
        x: ``(N, D)`` data.
        latent_dim: K, an integer in [1, D].

    Returns:
        ``(mean, components, eigenvalues)``: ``(D,)`` x̄, ``(K, D)`` the top eigenvectors as rows
        (orthonormal; sign fixed so each row's largest-magnitude entry is positive) and ``(D,)``
        all eigenvalues λ, descending.
    """
    x = _fit_data(x)
    D = x.shape[1]
    K = _latent_dim(latent_dim, D, D, "at most the dimension of x")
    mean, evals, evecs = _eigen(x)
    return mean, evecs[:, :K].T.contiguous(), evals


def pca_reconstruct(x, mean, components) -> torch.Tensor:
    r"""x̂ = x̄ + U_K U_Kᵀ (x − x̄): encode with the components, decode with their transpose.

    Args:
        x: ``(..., D)`` points.
        mean: ``(D,)``; components: ``(K, D)`` orthonormal rows (from :func:`pca`).

    Returns:
        ``(..., D)`` reconstructions.
    """
    components = as_float_tensor(components, "components")
    if components.dim() != 2:
        raise ValueError(f"components must have shape (K, D); got shape {tuple(components.shape)}")
    D = components.shape[1]
    mean = as_float_tensor(mean, "mean", like=components)
    if mean.shape != (D,):
        raise ValueError(f"mean must have shape ({D},) to match components; got shape {tuple(mean.shape)}")
    x = as_float_tensor(x, "x", like=components)
    check_min_ndim(x, "x", 1, "(..., D)")
    check_last_dim(x, "x", D, f"(..., {D})")
    check_same_device(x=x, mean=mean, components=components)
    x, mean, components = promote_float(x, mean, components)
    return mean + ((x - mean) @ components.T) @ components


def ppca(x, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Probabilistic PCA by maximum likelihood (Tipping & Bishop 1999), in closed form.

    The model p(z) = N(0, I_K), p(x | z) = N(Wz + μ, σ² I_D) has p(x) = N(μ, WWᵀ + σ² I). With the
    eigen-decomposition S = U Λ Uᵀ of the 1/N sample covariance, the likelihood is maximised by

    .. math::
        \mu = \bar x, \qquad \sigma^2 = \frac{1}{D-K}\sum_{d>K}\lambda_d, \qquad
        W = U_K(\Lambda_K - \sigma^2 I)^{1/2} R

    for any rotation R; this returns R = I (columns of W along the principal directions, signs as
    in :func:`pca`).

    Args:
        x: ``(N, D)`` data.
        latent_dim: K, an integer in [1, D − 1] (σ² needs a discarded direction).

    Returns:
        ``(mean, W, sigma2)``: ``(D,)``, ``(D, K)`` and a 0-dim tensor σ² — the parameters
        ``(b, W, sigma2)`` of :mod:`dgm.linear_gaussian` with b = mean. Raises ``ValueError`` when
        the data lie in a K-dimensional subspace (N ≤ K + 1 points, or collinear ones): then σ² = 0.
    """
    x = _fit_data(x)
    D = x.shape[1]
    if D < 2:
        raise ValueError(f"x must have at least 2 dimensions for probabilistic PCA; got shape {tuple(x.shape)}")
    K = _latent_dim(latent_dim, D, D - 1, "below the dimension of x, so that σ² is defined")
    mean, evals, evecs = _eigen(x)
    sigma2 = evals[K:].mean()
    # rounding leaves eigenvalues of about ε·λ_1 where the data have none
    if not bool(sigma2 > 100 * D * torch.finfo(x.dtype).eps * evals[0]):
        raise ValueError(
            f"x lies in a subspace of dimension at most latent_dim={K} (the discarded eigenvalues are 0 up to "
            f"rounding, largest {float(evals[0]):.3g}): σ² = 0 and the likelihood is unbounded; use a smaller "
            f"latent_dim or data with variance in more than {K} directions (N={x.shape[0]} points)")
    W = evecs[:, :K] * torch.sqrt((evals[:K] - sigma2).clamp(min=0))
    return mean, W, sigma2


def _ppca_args(x, mean, W, sigma2):
    W = as_float_tensor(W, "W")
    if W.dim() != 2:
        raise ValueError(f"W must have shape (D, K); got shape {tuple(W.shape)}")
    D, K = W.shape
    mean = as_float_tensor(mean, "mean", like=W)
    if mean.shape != (D,):
        raise ValueError(f"mean must have shape ({D},) to match W of shape ({D}, {K}); got shape {tuple(mean.shape)}")
    sigma2 = as_float_tensor(sigma2, "sigma2", like=W)
    if sigma2.dim() != 0:
        raise ValueError(f"sigma2 must be a scalar (one noise variance); got shape {tuple(sigma2.shape)}")
    check_positive(sigma2, "sigma2")
    x = as_float_tensor(x, "x", like=W)
    check_min_ndim(x, "x", 1, "(..., D)")
    check_last_dim(x, "x", D, f"(..., {D})")
    check_same_device(x=x, mean=mean, W=W, sigma2=sigma2)
    return promote_float(x, mean, W, sigma2)


def ppca_log_likelihood(x, mean, W, sigma2) -> torch.Tensor:
    r"""log p(x) = log N(x; μ, WWᵀ + σ² I) under probabilistic PCA.

    Args:
        x: ``(..., D)`` points.
        mean: ``(D,)``; W: ``(D, K)``; sigma2: positive scalar.

    Returns:
        ``(...)`` log-likelihood in nats.
    """
    x, mean, W, sigma2 = _ppca_args(x, mean, W, sigma2)
    eye = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    return mvn_log_prob(x, mean, W @ W.T + sigma2 * eye)


def ppca_posterior_mean(x, mean, W, sigma2) -> torch.Tensor:
    r"""E[z | x] = M⁻¹ Wᵀ (x − μ) with M = WᵀW + σ² I_K, the probabilistic-PCA encoder.

    (The posterior is N(M⁻¹Wᵀ(x − μ), σ² M⁻¹); :func:`dgm.linear_gaussian.posterior` gives both.)
    As σ² → 0 it becomes PCA's least-squares projection (WᵀW)⁻¹Wᵀ(x − μ).

    Args:
        x: ``(..., D)`` points.
        mean: ``(D,)``; W: ``(D, K)``; sigma2: positive scalar.

    Returns:
        ``(..., K)`` posterior means.
    """
    x, mean, W, sigma2 = _ppca_args(x, mean, W, sigma2)
    K = W.shape[1]
    M = W.T @ W + sigma2 * torch.eye(K, dtype=W.dtype, device=W.device)
    projected = ((x - mean) @ W).reshape(-1, K)
    z = torch.cholesky_solve(projected.T, torch.linalg.cholesky(M)).T  # M symmetric: (M⁻¹ Wᵀ x̃)ᵀ = x̃ᵀ W M⁻¹
    return z.reshape(*x.shape[:-1], K)
