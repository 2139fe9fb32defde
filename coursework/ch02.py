"""Checks of Exercise 2 (Chapter 2: Gaussian mixtures and EM, k-means, probabilistic PCA).

The references the checks compare with are written out here in plain, differentiable torch (so
gradients can be compared too); ``tests/test_checks_ch02.py`` checks them against :mod:`dgm.em`,
scikit-learn and naive loops, so the expected values do not come from one code path alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import
from coursework._core import Ctx, call, expect_derivation, expect_same_gradients, expect_tensor, type_name
from coursework._core import nth_output as _nth, as_f64 as _f64, cast_like as _like, expect_tuple as _expect_tuple

#: what the exercise notebook imports in its set-up cell (one line: ``from coursework.ch02 import ...``)
__all__ = ["check", "derivation_report", "resp_symbols", "resp_derivation_start", "RESP_REPORT_POINT"]

CHAPTER = Chapter(
    number=2,
    assignment="02-em",
    title="Gaussian mixtures and EM",
    forbidden=("dgm.em", "dgm.mixtures"),  # the reference implementations Exercise 2's answers re-build
)

#: prints each derivation step's value at a point (default: this chapter's report point)
derivation_report = CHAPTER.derivation_report

_F32 = (torch.float32, (2e-4, 2e-4))   # float32 tolerances (rtol, atol) against a float64 reference


# --------------------------------------------------------------------------------------------
# The references (float64 inside, differentiable)
# --------------------------------------------------------------------------------------------


def ref_log_joint(x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """log π_k + log N(x_n; μ_k, σ_k² I): ``(N, K)``, from the centred differences (no expansion)."""
    D = x.shape[-1]
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    return torch.log(weights) - 0.5 * D * torch.log(2 * math.pi * variances) - 0.5 * sq / variances


def ref_e_step(x, weights, means, variances):
    """(log r (N, K), log p(x) (N,)) of a spherical mixture, in log space."""
    joint = ref_log_joint(x, weights, means, variances)
    log_lik = torch.logsumexp(joint, dim=-1)
    return joint - log_lik[:, None], log_lik


def ref_m_step_spherical(x, resp, reg_covar):
    """(π (K,), μ (K, D), σ² (K,)): N_k = Σ_n r_nk, π = N_k / Σ_j N_j, μ_k = Σ_n r_nk x_n / N_k,
    σ_k² = Σ_n r_nk ‖x_n − μ_k‖² / (D N_k) + reg_covar (the squares of the centred points)."""
    nk = resp.sum(0)
    means = (resp.T @ x) / nk[:, None]
    sq = (x[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    variances = (resp * sq).sum(0) / (x.shape[1] * nk) + reg_covar
    return nk / nk.sum(), means, variances


def ref_kmeans_step(x, centres):
    """(new centres (K, D), labels (N,) int64, inertia ()) of one Lloyd step: assign each point to its
    nearest centre (lowest index on ties), inertia Σ_n min_k ‖x_n − c_k‖² of the *given* centres, new
    centre = mean of its points; an empty cluster keeps its centre."""
    K = centres.shape[0]
    dist = (x[:, None, :] - centres[None, :, :]).pow(2).sum(-1)
    best, labels = dist.min(dim=1)
    onehot = F.one_hot(labels, K).to(x.dtype)
    counts = onehot.sum(0)
    means = (onehot.T @ x) / counts.clamp(min=1)[:, None]
    return torch.where(counts[:, None] > 0, means, centres), labels, best.sum()


def ref_ppca(x, latent_dim):
    """(μ (D,), W (D, K), σ² ()) of probabilistic PCA by maximum likelihood (Tipping & Bishop):
    μ = x̄, σ² = mean of the D − K smallest eigenvalues of the 1/N covariance S, W = U_K (Λ_K − σ² I)^½."""
    N = x.shape[0]
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / N
    evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
    evals, evecs = evals.flip(0), evecs.flip(1)
    sigma2 = evals[latent_dim:].mean()
    W = evecs[:, :latent_dim] * torch.sqrt(evals[:latent_dim] - sigma2)
    return mean, W, sigma2


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _simplex(ctx: Ctx, K: int, low: float = 0.05) -> torch.Tensor:
    w = ctx.uniform(low, 1.0, K)
    return w / w.sum()


def _mixture(ctx: Ctx, K: int, D: int, *, tiny_variance: bool = False):
    """Weights (K,), means (K, D) (spread 3) and variances (K,) in (0.3, 2); with ``tiny_variance`` one
    component (at a random index) has variance in (1e-6, 1e-5) and a mean 8–10 units from the origin: its
    density at ordinary points underflows, and near its mean the squares ‖x‖² of an expanded distance are
    about 100 (their float32 rounding, divided by the variance, is several nats)."""
    weights, means, variances = _simplex(ctx, K), 3 * ctx.randn(K, D), ctx.uniform(0.3, 2.0, K)
    if tiny_variance:
        k = int(torch.randint(0, K, (1,), generator=ctx.gen))
        variances[k] = ctx.uniform(1e-6, 1e-5, 1)[0]
        direction = ctx.randn(D)
        means[k] = direction / direction.norm() * ctx.uniform(8.0, 10.0, 1)[0]
    return weights, means, variances


def _points_mixed(ctx: Ctx, n: int, means: torch.Tensor, variances: torch.Tensor, far: int) -> torch.Tensor:
    """n >= far + 3 points, ONE batch mixing kinds for every seed, in random order: ``far`` points 100–300 units
    from the origin in a random direction (every density underflows to 0 there: exp(−10⁴) and below), one point
    on the mean of the smallest-variance component and one within a few standard deviations of it (with a
    tiny variance its density there is huge), the rest drawn near the means."""
    K, D = means.shape
    near = n - far - 2
    pick = torch.randint(0, K, (near,), generator=ctx.gen)
    ordinary = means[pick] + variances[pick].sqrt()[:, None].clamp(min=0.3) * ctx.randn(near, D)
    direction = ctx.randn(far, D)
    direction = direction / direction.norm(dim=1, keepdim=True)
    far_points = direction * ctx.uniform(100.0, 300.0, far)[:, None]
    k = int(torch.argmin(variances))
    close = means[k] + 2 * variances[k].sqrt() * ctx.randn(1, D)
    x = torch.cat([ordinary, far_points, means[k][None, :].clone(), close])
    return x[torch.randperm(n, generator=ctx.gen)]


# --------------------------------------------------------------------------------------------
# Task 1: the E-step of a spherical mixture, in log space
# --------------------------------------------------------------------------------------------

_FAR = ("points 100–300 units from every mean, where every density underflows to 0 (compute log π_k + "
        "log N in log space and normalise with torch.logsumexp, never exp then divide)")


@CHAPTER.function("gmm_e_step", references=("dgm.em:e_step", "dgm.em:log_joint", "dgm.em:log_likelihood"))
def _gmm_e_step(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(x, w, mu, var, where, tol=(1e-6, 1e-8), grads=False):
        dtype = x.dtype
        out = _expect_tuple(ctx, call(ctx, fn, x, w, mu, var, where=where), 2, where, "log_resp, log_lik")
        want_r, want_l = (_like(t, dtype) for t in ref_e_step(*_f64(x, w, mu, var)))
        x64, w64, mu64, var64 = _f64(x, w, mu, var)
        D = x.shape[1]
        sq = (x64[:, None, :] - mu64[None]).pow(2).sum(-1)

        def joint_with(log_norm):
            return torch.log(w64) + log_norm - 0.5 * sq / var64

        def as_resp(joint):
            return _like(joint - torch.logsumexp(joint, -1, keepdim=True), dtype)

        if dtype == torch.float32:
            # float32 resolves log r_nk = joint_nk − log p(x_n) only to a few ulps of the terms: far from every mean
            # the joints are −10⁴ and below, where an ulp is 1e-3, so a correct answer may round a log
            # responsibility of −2e-4 to 0. Allow 16 float32 epsilons of |joint_nk| + |log p(x_n)| per element.
            joint64 = ref_log_joint(x64, w64, mu64, var64)
            budget = 16 * torch.finfo(torch.float32).eps * (joint64.abs() + torch.logsumexp(joint64, -1, keepdim=True).abs())
            got = out[0]
            if type(got) is torch.Tensor and got.shape == want_r.shape and got.dtype == dtype and bool(  # noqa: E721
                    torch.isfinite(got).all()) and bool(((got.detach().double() - want_r.double()).abs()
                                                         <= tol[1] + tol[0] * want_r.double().abs() + budget).all()):
                want_r = got.detach().clone()  # within float32's resolution of this batch: no finding
        no_d = joint_with(-0.5 * torch.log(2 * math.pi * var64))
        as_std_joint = torch.log(w64) - 0.5 * D * torch.log(2 * math.pi * var64 ** 2) - 0.5 * sq / var64 ** 2
        no_weights = joint_with(-0.5 * D * torch.log(2 * math.pi * var64)) - torch.log(w64)
        expect_tensor(ctx, out[0], want_r, "log_resp", where, *tol, hints=[
            ("the responsibilities are returned instead of their logarithms", _like(want_r.double().exp(), dtype)),
            ("the normaliser has -½·log(2πσ²) instead of -(D/2)·log(2πσ²): a spherical Gaussian in D dimensions "
             "has D coordinates with variance σ² each", as_resp(no_d)),
            ("the variances are used as standard deviations (σ² squared again)", as_resp(as_std_joint)),
            ("the mixing weights are left out (log π_k missing)", as_resp(no_weights))])
        expect_tensor(ctx, out[1], want_l, "log_lik", where, *tol, hints=[
            ("the normaliser has -½·log(2πσ²) instead of -(D/2)·log(2πσ²)", _like(torch.logsumexp(no_d, -1), dtype)),
            ("the variances are used as standard deviations (σ² squared again)",
             _like(torch.logsumexp(as_std_joint, -1), dtype)),
            ("the mixing weights are left out (log π_k missing)", _like(torch.logsumexp(no_weights, -1), dtype)),
            ("log p(x) is the largest log π_k N_k instead of the log of their sum (max ≤ logsumexp ≤ max + log K)",
             _like(joint_with(-0.5 * D * torch.log(2 * math.pi * var64)).max(-1).values, dtype))])
        if grads:
            for output, name in ((0, "log_resp"), (1, "log_lik")):
                expect_same_gradients(ctx, fn, _nth(ref_e_step, output), [x, w, mu, var], wrt=(0, 1, 2, 3), output=output,
                                      where=f"{where}: gradients of {name} with respect to x, weights, means, variances")

    if not ctx.hidden:
        x = torch.tensor([[0.0, 0.5], [2.0, 1.0], [-1.0, 3.0]], dtype=torch.float64)
        w = torch.tensor([0.3, 0.7], dtype=torch.float64)
        mu = torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
        var = torch.tensor([1.0, 0.5], dtype=torch.float64)
        compare(x, w, mu, var, "example (N=3 points in D=2, K=2 components)")
        compare(torch.tensor([[200.0, -150.0]], dtype=torch.float64), w, mu, var, "a point far from both means: " + _FAR)
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        w, mu, var = _mixture(ctx, 4, 3)
        compare(_points_mixed(ctx, 12, mu, var, 0).to(dtype), w.to(dtype), mu.to(dtype), var.to(dtype),
                f"random mixture, K=4, D=3 ({dtype})", tol)
        w, mu, var = _mixture(ctx, 3, 2)
        compare(_points_mixed(ctx, 12, mu, var, 4).to(dtype), w.to(dtype), mu.to(dtype), var.to(dtype),
                f"{_FAR}, among ordinary points ({dtype})", tol)
        w, mu, var = _mixture(ctx, 3, 2, tiny_variance=True)
        compare(_points_mixed(ctx, 14, mu, var, 4).to(dtype), w.to(dtype), mu.to(dtype), var.to(dtype),
                f"one component of variance below 1e-5, with points on and near its mean, far points and ordinary "
                f"ones in one batch ({dtype}) — square the "
                "differences x − μ_k, do not expand ‖x‖² − 2x·μ_k + ‖μ_k‖² (its rounding, divided by σ² = 1e-6, "
                "moves float32 results by whole nats)", tol)
    w, mu, var = _mixture(ctx, 5, 1)
    compare(_points_mixed(ctx, 9, mu, var, 2), w, mu, var, "D = 1 (points of shape (N, 1)), far points mixed in",
            grads=True)
    w, mu, var = _mixture(ctx, 1, 4)
    compare(_points_mixed(ctx, 6, mu, var, 0), w, mu, var, "K = 1: every log responsibility is 0", grads=True)
    w, mu, var = _mixture(ctx, 3, 2)
    compare(_points_mixed(ctx, 3, mu, var, 0)[:1], w, mu, var, "a single point, N = 1")
    w, mu, var = _mixture(ctx, 3, 5)
    w = torch.cat([ctx.uniform(1e-30, 1e-25, 1), w[1:]])
    w = (w / w.sum())[torch.randperm(3, generator=ctx.gen)]
    compare(_points_mixed(ctx, 8, mu, var, 0), w, mu, var, "a mixing weight near 1e-30 among ordinary ones")
    w, mu, var = _mixture(ctx, 3, 2)
    compare(_points_mixed(ctx, 10, mu, var, 0), w, mu, var, "ordinary points, D = 2", grads=True)
    w, mu, var = _mixture(ctx, 3, 2)
    var = var.clone()
    var[int(torch.randint(0, 3, (1,), generator=ctx.gen))] = 0.05
    compare(_points_mixed(ctx, 10, mu, var, 3), w, mu, var, f"gradients with {_FAR}", grads=True)


# --------------------------------------------------------------------------------------------
# Task 2: the M-step of a spherical mixture
# --------------------------------------------------------------------------------------------


def _resp(ctx: Ctx, N: int, K: int, *, hard: int = 0) -> torch.Tensor:
    """(N, K) responsibilities, rows summing to 1: soft rows (softmax of 2·N(0, 1)), and ``hard`` one-hot rows."""
    soft = torch.softmax(2 * ctx.randn(N, K), dim=1)
    if hard:
        rows = torch.randperm(N, generator=ctx.gen)[:hard]
        labels = torch.randint(0, K, (hard,), generator=ctx.gen)
        soft[rows] = F.one_hot(labels, K).to(soft.dtype)
    return soft


@CHAPTER.function("m_step_spherical", references=("dgm.em:m_step", "dgm.em:_params_from_sums"))
def _m_step_spherical(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(x, resp, reg, where, tol=(1e-6, 1e-8), grads=False):
        dtype = x.dtype
        out = _expect_tuple(ctx, call(ctx, fn, x, resp, reg, where=where), 3, where, "weights, means, variances")
        x64, r64 = _f64(x, resp)
        want_w, want_mu, want_var = (_like(t, dtype) for t in ref_m_step_spherical(x64, r64, reg))
        N, D = x.shape
        nk = r64.sum(0)
        mu64 = r64.T @ x64 / nk[:, None]
        sq = (r64 * (x64[:, None, :] - mu64[None]).pow(2).sum(-1)).sum(0)
        expect_tensor(ctx, out[0], want_w, "weights", where, *tol, hints=[
            ("the weights are the sums N_k, not divided by N", _like(nk, dtype)),
            ("the weights are left uniform (1/K): the Lagrange multiplier gives N_k / N", torch.full_like(want_w, 1 / len(nk)))])
        expect_tensor(ctx, out[1], want_mu, "means", where, *tol, hints=[
            ("the means divide by N instead of by the component's responsibility sum N_k", _like(r64.T @ x64 / N, dtype)),
            ("the means are plain averages of all points (the responsibilities do not weigh them)",
             _like(x64.mean(0).expand_as(mu64), dtype))])
        expect_tensor(ctx, out[2], want_var, "variances", where, *tol, hints=[
            ("the 1/D is missing: σ_k² is the average over the D coordinates, Σ r‖x − μ‖² / (D·N_k)",
             _like(sq / nk + reg, dtype)),
            ("the variances divide by N instead of by N_k", _like(sq / (D * N) + reg, dtype)),
            ("reg_covar is left out (the variance floor)", _like(sq / (D * nk), dtype)),
            ("the square root is taken: these are standard deviations, return variances",
             _like((sq / (D * nk)).sqrt() + reg, dtype)),
            ("the squares are measured from the data's overall mean instead of each component's new mean",
             _like((r64 * (x64 - x64.mean(0)).pow(2).sum(-1)[:, None]).sum(0) / (D * nk) + reg, dtype))])
        if grads:
            # not the weights: N_k / N and N_k / Σ_j N_j agree when the rows sum to 1, but not in their gradient
            for output, name in ((1, "means"), (2, "variances")):
                expect_same_gradients(ctx, fn, _nth(ref_m_step_spherical, output), [x, resp, reg], wrt=(0, 1),
                                      output=output, where=f"{where}: gradients of the {name} with respect to x and resp")

    if not ctx.hidden:
        x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [4.0, 4.0], [5.0, 3.0]], dtype=torch.float64)
        resp = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.0, 1.0]], dtype=torch.float64)
        compare(x, resp, 0.0, "example (N=4 points in D=2, K=2, reg_covar=0)")
        compare(x, resp, 1e-3, "the same with reg_covar=1e-3")
        compare(x, torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64), 0.0,
                "one-hot responsibilities (the k-means M-step)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        x = 2 * ctx.randn(20, 3)
        compare(x.to(dtype), _resp(ctx, 20, 4).to(dtype), 1e-6, f"random soft responsibilities, K=4, D=3 ({dtype})", tol)
        compare(x.to(dtype), _resp(ctx, 20, 3, hard=8).to(dtype), 0.0,
                f"one-hot rows among soft ones, reg_covar=0 ({dtype})", tol)
    # far from the origin with a spread of about 1: E[x²] − μ² cancels (float64: 10⁶, float32: 10³)
    for dtype, offset, tol in ((torch.float64, 1e6, (1e-6, 1e-8)), (torch.float32, 1e3, (2e-3, 2e-3))):
        x = offset + ctx.randn(30, 2)
        compare(x.to(dtype), _resp(ctx, 30, 3).to(dtype), 0.0,
                f"points near {offset:g} in every coordinate, spread about 1 ({dtype}): subtract each mean before "
                "squaring — Σ r x² / N_k − μ² cancels catastrophically", tol)
    resp = _resp(ctx, 15, 3)
    k = int(torch.randint(0, 3, (1,), generator=ctx.gen))
    resp[:, k] = resp[:, k] * ctx.uniform(1e-4, 1e-3, 15)
    resp = resp / resp.sum(1, keepdim=True)
    compare(ctx.randn(15, 2), resp, 1e-6, "a component with almost no responsibility (N_k near 1e-3)")
    compare(ctx.randn(12, 1), _resp(ctx, 12, 3), 0.5, "D = 1, reg_covar = 0.5")
    compare(ctx.randn(7, 4), _resp(ctx, 7, 1), 0.0, "K = 1: weights (1,), the data mean, the data variance / 1")
    one = torch.zeros(9, 3, dtype=torch.float64)
    one[:, 1] = 1.0
    row = int(torch.randint(0, 9, (1,), generator=ctx.gen))
    one[row] = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    one[:, 2] = 1e-3
    one = one / one.sum(1, keepdim=True)
    compare(ctx.randn(9, 2), one, 0.0, "a component holding one point alone: its variance is 0 with reg_covar=0")
    compare(ctx.randn(10, 3), _resp(ctx, 10, 3, hard=3), 1e-3, "gradients, one-hot rows among soft ones", grads=True)
    compare(ctx.randn(8, 1), _resp(ctx, 8, 2), 0.0, "gradients, D = 1", grads=True)


# --------------------------------------------------------------------------------------------
# Task 3: one step of k-means (Lloyd)
# --------------------------------------------------------------------------------------------


@CHAPTER.function("kmeans_step", references=("dgm.em:kmeans", "dgm.em:_squared_distances"))
def _kmeans_step(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(x, c, where, tol=(1e-6, 1e-8), grads=False):
        dtype = x.dtype
        out = _expect_tuple(ctx, call(ctx, fn, x, c, where=where), 3, where, "new_centres, labels, inertia")
        x64, c64 = _f64(x, c)
        want_c, want_l, want_j = ref_kmeans_step(x64, c64)
        dist = (x64[:, None] - c64[None]).pow(2).sum(-1)
        labels = out[1]
        if type(labels) is not torch.Tensor or labels.dtype != torch.int64:  # noqa: E721
            ctx.fail(f"{where}: labels must be an int64 tensor (what torch.argmin returns), got "
                     + (f"dtype {labels.dtype}" if type(labels) is torch.Tensor else type_name(labels)))  # noqa: E721
        expect_tensor(ctx, labels, want_l, "labels", where, 0, 0, hints=[
            ("each point goes to its farthest centre (argmax instead of argmin)", dist.argmax(1))])
        new64 = want_c
        expect_tensor(ctx, out[0], _like(want_c, dtype), "new_centres", where, *tol)
        expect_tensor(ctx, out[2], _like(want_j, dtype), "inertia", where, *tol, hints=[
            ("the inertia adds distances instead of squared distances", _like(dist.min(1).values.sqrt().sum(), dtype)),
            ("the inertia is averaged over the points instead of summed", _like(dist.min(1).values.mean(), dtype)),
            ("the inertia is measured from the new centres (it belongs to the centres you were given)",
             _like((x64[:, None] - new64[None]).pow(2).sum(-1).min(1).values.sum(), dtype))])
        if grads:
            for output, name in ((0, "new_centres"), (2, "inertia")):
                expect_same_gradients(ctx, fn, _nth(ref_kmeans_step, output), [x, c], wrt=(0, 1), output=output,
                                      where=f"{where}: gradients of {name} with respect to x and centres")

    def clustered(n, K, D, spread=0.5):
        centres = 4 * ctx.randn(K, D)
        pick = torch.randint(0, K, (n,), generator=ctx.gen)
        return centres[pick] + spread * ctx.randn(n, D), centres + ctx.randn(K, D)

    if not ctx.hidden:
        x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [6.0, 5.0]], dtype=torch.float64)
        c = torch.tensor([[0.5, 0.5], [5.0, 4.0]], dtype=torch.float64)
        compare(x, c, "example (N=5 points in D=2, K=2)")
        c3 = torch.tensor([[0.5, 0.5], [5.0, 4.0], [-20.0, 30.0]], dtype=torch.float64)
        compare(x, c3, "a centre no point is nearest to: an empty cluster keeps its centre")
        compare(torch.tensor([[1.0], [3.0], [0.0]], dtype=torch.float64), torch.tensor([[0.0], [2.0]], dtype=torch.float64),
                "a point exactly halfway between two centres goes to the lower index")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), _F32):
        x, c = clustered(40, 4, 3)
        compare(x.to(dtype), c.to(dtype), f"40 points in 4 clusters, D=3 ({dtype})", tol)
        x, c = clustered(25, 3, 2)
        c = torch.cat([c, 100 + ctx.uniform(0, 50, 2, 2)])[torch.randperm(5, generator=ctx.gen)]
        compare(x.to(dtype), c.to(dtype), f"two empty clusters among five: they keep their centres ({dtype})", tol)
    # far from the origin (float64 near 10⁶, float32 near 10³): ‖x‖² − 2x·c + ‖c‖² cancels and mislabels points
    for dtype, offset, tol in ((torch.float64, 1e6, (1e-6, 1e-8)), (torch.float32, 1e3, (1e-3, 1e-3))):
        x, c = clustered(40, 3, 2)
        compare((x + offset).to(dtype), (c + offset).to(dtype), f"points and centres near {offset:g} ({dtype}): square "
                "the differences x − c — expanding ‖x‖² − 2x·c + ‖c‖² cancels catastrophically (torch.cdist expands "
                "for more than 25 points unless compute_mode='donot_use_mm_for_euclid_dist')", tol)
    # exact ties on an integer grid (the arithmetic is exact), among points with a nearest centre
    grid = torch.randint(-3, 4, (12, 2), generator=ctx.gen).to(torch.float64)
    a = torch.randint(-3, 4, (2,), generator=ctx.gen).to(torch.float64)
    shift = torch.tensor([2.0, 0.0], dtype=torch.float64)
    mid = a + shift / 2
    x = torch.cat([grid, mid[None], mid[None] + torch.tensor([0.0, 1.0], dtype=torch.float64)])
    compare(x, torch.stack([a, a + shift]), "points exactly halfway between two centres go to the lower index")
    compare(x, torch.stack([a + shift, a]), "the same centres in the other order (ties still go to the lower index)")
    x, c = clustered(10, 3, 1)
    compare(x, c, "D = 1")
    x, c = clustered(8, 1, 3)
    compare(x, c, "K = 1: the new centre is the data mean")
    x, _ = clustered(6, 2, 2)
    compare(x, x.clone(), "as many centres as points, each on a point: nothing moves, the inertia is 0")
    x, c = clustered(15, 3, 2)
    compare(x, c, "gradients", grads=True)
    x, c = clustered(12, 2, 2)
    c = torch.cat([c, 100 + ctx.uniform(0, 50, 1, 2)])
    compare(x, c, "gradients with an empty cluster (its centre passes through unchanged)", grads=True)


# --------------------------------------------------------------------------------------------
# Task 4: probabilistic PCA by maximum likelihood
# --------------------------------------------------------------------------------------------


def _anisotropic(ctx: Ctx, N: int, D: int, offset: float = 0.0) -> torch.Tensor:
    """N points in D dimensions with well-separated principal variances (about 9, 4.4, 2.2, ... ), rotated."""
    scales = 3.0 * torch.pow(torch.tensor(0.7, dtype=torch.float64), torch.arange(D, dtype=torch.float64))
    q, _ = torch.linalg.qr(ctx.randn(D, D))
    return offset + 2 * ctx.randn(D) + (ctx.randn(N, D) * scales) @ q.T


@CHAPTER.function("ppca_fit", references=("dgm.em:ppca", "dgm.em:_eigen"))
def _ppca_fit(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(x, K, where, tol=(1e-6, 1e-8), grads=False):
        dtype = x.dtype
        out = _expect_tuple(ctx, call(ctx, fn, x, K, where=where), 3, where, "mean, W, sigma2")
        x64 = x.detach().double()
        mean, W, s2 = ref_ppca(x64, K)
        N, D = x.shape
        xc = x64 - x64.mean(0)
        evals, evecs = torch.linalg.eigh(xc.T @ xc / N)
        evals, evecs = evals.flip(0), evecs.flip(1)

        def model(ev, U, sigma2):
            return U[:, :K] @ torch.diag(ev[:K] - sigma2) @ U[:, :K].T

        expect_tensor(ctx, out[0], _like(mean, dtype), "mean", where, *tol)
        expect_tensor(ctx, out[2], _like(s2, dtype), "sigma2", where, *tol, hints=[
            ("the covariance divides by N − 1: maximum likelihood divides by N", _like(s2 * N / (N - 1), dtype)),
            ("σ² is the sum of the discarded eigenvalues, not their mean", _like(evals[K:].sum(), dtype)),
            ("σ² is the mean of all D eigenvalues, not of the D − K discarded ones", _like(evals.mean(), dtype)),
            ("the K smallest eigenvalues are kept (torch.linalg.eigh sorts them in ascending order)",
             _like(evals.flip(0)[K:].mean(), dtype))])
        got_W = out[1]
        if type(got_W) is not torch.Tensor or got_W.shape != (D, K):  # noqa: E721
            ctx.fail(f"{where}: W must be a ({D}, {K}) tensor (D rows, latent_dim columns), got "
                     + (f"shape {tuple(got_W.shape)}" if type(got_W) is torch.Tensor else type_name(got_W)))  # noqa: E721
        ok_dtype = got_W.dtype == dtype
        WWt = got_W.detach() @ got_W.detach().T if ok_dtype else got_W.detach()
        expect_tensor(ctx, WWt if ok_dtype else got_W, _like(W @ W.T, dtype) if ok_dtype else _like(W, dtype),
                      "W Wᵀ (W is unique up to a rotation W R; W Wᵀ is not)" if ok_dtype else "W", where, *tol, hints=[
            ("W = U_K Λ_K^½: σ² must be subtracted from the kept eigenvalues, W = U_K (Λ_K − σ² I)^½",
             _like(model(evals, evecs, 0.0), dtype)),
            ("the covariance divides by N − 1: maximum likelihood divides by N", _like(W @ W.T * N / (N - 1), dtype)),
            ("the eigenvectors of the K smallest eigenvalues are used (torch.linalg.eigh sorts them in ascending "
             "order)", _like(evecs.flip(1)[:, :K] @ torch.diag((evals.flip(0)[:K] - evals.flip(0)[K:].mean()).clamp(min=0))
                             @ evecs.flip(1)[:, :K].T, dtype))])
        if grads:
            expect_same_gradients(ctx, fn, _nth(ref_ppca, 0), [x, K], wrt=(0,), output=0,
                                  where=f"{where}: gradient of the mean with respect to x")
            expect_same_gradients(ctx, fn, lambda x_, k_: ref_ppca(x_, k_)[2], [x, K], wrt=(0,), output=2,
                                  where=f"{where}: gradient of sigma2 with respect to x")

    if not ctx.hidden:
        x = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-2.0, 0.5, -1.0], [1.0, -1.0, 0.5], [-1.0, -0.5, -0.5]],
                         dtype=torch.float64)
        compare(x, 1, "example (N=5 points in D=3, latent_dim=1)")
        compare(x, 2, "the same points, latent_dim=2 (σ² is the one smallest eigenvalue)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-3, 1e-4))):
        compare(_anisotropic(ctx, 60, 5).to(dtype), 2, f"N=60 points in D=5, latent_dim=2 ({dtype})", tol)
    compare(_anisotropic(ctx, 40, 4), 3, "latent_dim = D − 1")
    compare(_anisotropic(ctx, 30, 6), 1, "latent_dim = 1")
    compare(_anisotropic(ctx, 5, 4), 2, "few points: N = D + 1")
    # far from the origin: S = E[x xᵀ] − x̄ x̄ᵀ cancels (float64 near 10⁶, float32 near 10³); centre the data first
    compare(_anisotropic(ctx, 50, 2, offset=1e6), 1, "D = 2, data near 10⁶ (float64): subtract the mean before "
            "forming the covariance — E[x xᵀ] − x̄ x̄ᵀ cancels catastrophically")
    compare(_anisotropic(ctx, 60, 4, offset=1e3).to(torch.float32), 2, "data near 10³ (float32): subtract the mean "
            "before forming the covariance — E[x xᵀ] − x̄ x̄ᵀ cancels catastrophically", (1e-3, 1e-4))
    compare(_anisotropic(ctx, 25, 4), 2, "gradients", grads=True)
    compare(_anisotropic(ctx, 20, 3), 2, "gradients, latent_dim = D − 1", grads=True)


# --------------------------------------------------------------------------------------------
# Concept checks (the answers live in the hidden test cells, not here)
# --------------------------------------------------------------------------------------------

CHAPTER.concept("concept_identical_init", ("a", "b", "c", "d"))
CHAPTER.concept("concept_kmeans_limit", ("a", "b", "c", "d"))
CHAPTER.concept("concept_em_monotone", ("a", "b", "c", "d"))
CHAPTER.concept("concept_collapse", ("a", "b", "c", "d"))


# --------------------------------------------------------------------------------------------
# Step-checked derivation: two spherical components with one variance give a logistic responsibility
# --------------------------------------------------------------------------------------------


def resp_symbols() -> tuple:
    """The symbols of the responsibility derivation: ``(x1, x2, a1, a2, b1, b2, v, w)`` — the point
    x = (x1, x2), the means a = (a1, a2) and b = (b1, b2), the shared variance v = σ² > 0 and the weight
    w = π_1 of the first component, 0 < w < 1."""
    import sympy as sp

    x1, x2, a1, a2, b1, b2 = sp.symbols("x1 x2 a1 a2 b1 b2", real=True)
    v = sp.Symbol("v", positive=True)
    w = sp.Symbol("w", positive=True)
    return x1, x2, a1, a2, b1, b2, v, w


def resp_derivation_start():
    r"""r_1(x) = w N(x; a, vI) / (w N(x; a, vI) + (1 − w) N(x; b, vI)) in two dimensions, in SymPy."""
    import sympy as sp

    x1, x2, a1, a2, b1, b2, v, w = resp_symbols()

    def normal(m1, m2):
        return sp.exp(-((x1 - m1) ** 2 + (x2 - m2) ** 2) / (2 * v)) / (2 * sp.pi * v)

    return w * normal(a1, a2) / (w * normal(a1, a2) + (1 - w) * normal(b1, b2))


#: the point at which derivation_report evaluates the steps of Exercise 2
RESP_REPORT_POINT = {"x1": 0.5, "x2": -1.0, "a1": 0.0, "a2": 0.0, "b1": 2.0, "b2": 1.0, "v": 1.5, "w": 0.3}


def _resp_target(point) -> float:
    """r_1 from dgm.em's E-step (an independent route: torch, float64, log space)."""
    from dgm.em import GaussianMixtureParams, e_step

    p = point
    params = GaussianMixtureParams.from_covariances(
        torch.tensor([p["w"], 1 - p["w"]], dtype=torch.float64),
        torch.tensor([[p["a1"], p["a2"]], [p["b1"], p["b2"]]], dtype=torch.float64),
        torch.tensor([p["v"], p["v"]], dtype=torch.float64), "spherical")
    log_resp, _ = e_step(torch.tensor([[p["x1"], p["x2"]]], dtype=torch.float64), params)
    return float(log_resp[0, 0].exp())


def _resp_points(ctx: Ctx) -> list[dict[str, float]]:
    """Random points over the domain, each kind present for every seed: ordinary; a small variance (a sharp,
    almost hard responsibility); a large variance; a weight near 0 and near 1."""
    points = []
    for v_lo, v_hi, w_lo, w_hi in ((0.5, 3.0, 0.1, 0.9), (0.05, 0.2, 0.1, 0.9), (5.0, 50.0, 0.1, 0.9),
                                   (0.5, 3.0, 1e-4, 1e-2), (0.5, 3.0, 0.99, 0.9999)):
        xs = ctx.uniform(-2.0, 2.0, 6)
        points.append({"x1": float(xs[0]), "x2": float(xs[1]), "a1": float(xs[2]), "a2": float(xs[3]),
                       "b1": float(xs[4]), "b2": float(xs[5]),
                       "v": float(ctx.uniform(v_lo, v_hi)), "w": float(ctx.uniform(w_lo, w_hi))})
    return points


_LOGISTIC_FORM = ("1/(1 + exp(s)) or 1/(1 + c·exp(s)), with s linear in x1 and x2 (the quadratic terms "
                  "x1² + x2² cancel because the two components share one variance) and no π left")


@CHAPTER.derivation("resp_derivation_steps", start=resp_derivation_start, point=RESP_REPORT_POINT)
def _resp_steps(ctx: Ctx, steps: Any, expected: Any) -> None:
    import sympy as sp

    symbols = resp_symbols()
    points = _resp_points(ctx) if ctx.hidden else [
        RESP_REPORT_POINT, {"x1": -1.0, "x2": 2.0, "a1": 1.0, "a2": -0.5, "b1": -1.5, "b2": 0.5, "v": 0.25, "w": 0.6},
        {"x1": 0.2, "x2": 0.1, "a1": -1.0, "a2": 1.0, "b1": 1.0, "b2": -1.0, "v": 20.0, "w": 0.05}]
    expect_derivation(ctx, steps, start=resp_derivation_start(), symbols=symbols, points=points,
                      target=_resp_target, start_name="resp_derivation_start()")
    last = steps[-1]
    x1, x2 = symbols[0], symbols[1]
    if last.has(sp.pi):
        ctx.fail(f"the last step still contains π: the normalisers 1/(2πv) cancel; the result must be {_LOGISTIC_FORM}")
    exps = [e for e in sp.preorder_traversal(last) if isinstance(e, sp.exp)]
    if not exps or not last.has(x1) or not last.has(x2):
        ctx.fail(f"the last step must be {_LOGISTIC_FORM}")
    for e in exps:
        try:
            degree = sp.Poly(sp.expand(e.args[0]), x1, x2).total_degree()
        except sp.PolynomialError:
            degree = None
        if degree is None or degree > 1:
            ctx.fail(f"the last step must be {_LOGISTIC_FORM}: an exponent still has x1², x2² or another "
                     "non-linear function of x — expand the squares and cancel")
