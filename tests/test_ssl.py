"""Tests of dgm.ssl: SimSiam's two-layer linear model, its flows, the collapse bound, a non-linear SimSiam.

Independent routes used here: Monte Carlo over sampled views (5 standard errors, from the sample);
autograd in float64 of objectives written below from their definition (the stop-gradient as
``.detach()``, the expectation as a mean over explicit samples), including the full Hessian and
Hessian-vector products; ``torch.kron`` and NumPy's column-major ``flatten(order="F")`` for the
vec/Kronecker identities; ``torch.linalg.matrix_exp`` for linear ODEs; the conserved quantity
s − p²/α_p of the aligned one-dimensional reduction (derived in the comments below); SciPy's
entropy; NumPy eigenvalues; closed forms of the effective rank and the commutator bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from conftest import K_SE, requires_cuda
from dgm import ssl
from dgm.data import load_digits
from dgm.device import manual_seed

f64 = torch.float64
SEEDS = range(8)


@pytest.fixture(autouse=True)
def one_thread():
    """Small matrices and networks gain nothing from intra-op threads and lose much when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# helpers (written independently of dgm.ssl)
# --------------------------------------------------------------------------------------------


def spd(g, D, lo=0.3, hi=2.0, dtype=f64):
    """A random symmetric positive definite matrix with eigenvalues in [lo, hi]."""
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=f64))
    ev = lo + (hi - lo) * torch.rand(D, generator=g, dtype=f64)
    return ((Q * ev) @ Q.T).to(dtype)


def setting(seed, D=5, K=3, symmetric=False, general=False, dtype=f64):
    """Random data covariance, noises (anisotropic, full), mean, weights, and the moments by hand.

    ``general``: the views are x_i = A_i x + ε_i with random A_i near I, so that C₁₂ = A₁XA₂ᵀ is not
    symmetric (additive noise alone gives C₁₂ = X, which would hide a C₁₂/C₁₂ᵀ slip)."""
    g = manual_seed(seed)
    cov = spd(g, D)
    N1 = spd(g, D, 0.1, 1.0)
    N2 = N1 if symmetric else spd(g, D, 0.1, 1.0)
    mean = 0.5 * torch.randn(D, generator=g, dtype=f64)
    W = torch.randn(K, D, generator=g, dtype=f64) / math.sqrt(D)
    Wp = torch.randn(K, K, generator=g, dtype=f64) / math.sqrt(K)
    A1 = A2 = torch.eye(D, dtype=f64)
    if general:
        A1 = A1 + 0.3 * torch.randn(D, D, generator=g, dtype=f64)
        A2 = A2 + 0.3 * torch.randn(D, D, generator=g, dtype=f64)
    X = cov + torch.outer(mean, mean)
    out = dict(cov=cov, N1=N1, N2=N2, mean=mean, W=W, Wp=Wp, A1=A1, A2=A2,
               C1=A1 @ X @ A1.T + N1, C2=A2 @ X @ A2.T + N2, C12=A1 @ X @ A2.T)
    return {k: v.to(dtype) for k, v in out.items()}


def sample_general_views(s, N, g):
    """x ~ N(m, Σ), x_i = A_i x + ε_i, ε_i ~ N(0, N_i), by Cholesky factors (not dgm.ssl's sampler)."""
    D = s["cov"].shape[0]
    x = s["mean"] + torch.randn(N, D, generator=g, dtype=f64) @ torch.linalg.cholesky(s["cov"]).T
    e1 = torch.randn(N, D, generator=g, dtype=f64) @ torch.linalg.cholesky(s["N1"]).T
    e2 = torch.randn(N, D, generator=g, dtype=f64) @ torch.linalg.cholesky(s["N2"]).T
    return x @ s["A1"].T + e1, x @ s["A2"].T + e2


def col_vec(M):
    """Column-major vec via NumPy's Fortran order."""
    return torch.from_numpy(M.detach().numpy().flatten(order="F").copy())


def col_unvec(w, K, D):
    return w.reshape(D, K).T


def empirical_loss(W_online, W_target, Wp, x1, x2):
    """½ mean_n ‖Wp W_online x1 − W_target x2‖² (Wp None: no predictor)."""
    pred = x1 @ W_online.T if Wp is None else x1 @ W_online.T @ Wp.T
    return 0.5 * ((pred - x2 @ W_target.T) ** 2).sum(-1).mean()


def expected_loss(W_online, W_target, Wp, C1, C2, C12):
    """The same expectation from second moments, expanded by hand term by term."""
    A = W_online if Wp is None else Wp @ W_online
    quad = torch.einsum("ki,ij,kj->", A, C1, A)          # E‖A x1‖²
    cross = torch.einsum("ki,ij,kj->", A, C12, W_target)  # E[(A x1)ᵀ (W_t x2)]
    target = torch.einsum("ki,ij,kj->", W_target, C2, W_target)
    return 0.5 * quad - cross + 0.5 * target


def moments(s):
    return s["C1"], s["C2"], s["C12"]


# --------------------------------------------------------------------------------------------
# vec and Kronecker conventions
# --------------------------------------------------------------------------------------------


def test_vec_is_column_major_and_satisfies_the_kronecker_identity():
    g = manual_seed(0)
    K, D = 3, 4
    A = torch.randn(K, K, generator=g, dtype=f64)
    X = torch.randn(K, D, generator=g, dtype=f64)
    B = torch.randn(D, D, generator=g, dtype=f64)
    torch.testing.assert_close(ssl.vec(X), col_vec(X))
    torch.testing.assert_close(ssl.unvec(ssl.vec(X), K, D), X)
    # vec(AXB) = (Bᵀ ⊗ A) vec(X) in the column-major convention ...
    torch.testing.assert_close(ssl.vec(A @ X @ B), torch.kron(B.T.contiguous(), A) @ ssl.vec(X))
    # ... and the row-major flatten needs the other order, (A ⊗ Bᵀ): using (Bᵀ ⊗ A) with it is a slip
    torch.testing.assert_close((A @ X @ B).reshape(-1), torch.kron(A, B.T.contiguous()) @ X.reshape(-1))
    assert not torch.allclose((A @ X @ B).reshape(-1), torch.kron(B.T.contiguous(), A) @ X.reshape(-1))
    # batched
    Xs = torch.randn(2, 5, K, D, generator=g, dtype=f64)
    torch.testing.assert_close(ssl.vec(Xs)[1, 3], col_vec(Xs[1, 3]))


# --------------------------------------------------------------------------------------------
# moments and sampled views
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_view_moments_match_sampled_views(seed):
    s = setting(seed)
    C1, C2, C12 = ssl.view_moments(s["cov"], s["N1"], s["N2"], mean=s["mean"])
    for got, want in ((C1, s["C1"]), (C2, s["C2"]), (C12, s["C12"])):
        torch.testing.assert_close(got, want)
    x1, x2 = ssl.sample_views(20000, s["cov"], s["N1"], s["N2"], mean=s["mean"], generator=manual_seed(100 + seed))
    N = x1.shape[0]
    for a, b, want in ((x1, x1, C1), (x2, x2, C2), (x1, x2, C12)):
        prods = a[:, :, None] * b[:, None, :]                 # (N, D, D)
        est, se = prods.mean(0), prods.std(0) / math.sqrt(N)
        assert bool(((est - want).abs() <= K_SE * se).all()), float(((est - want).abs() / se).max())


def test_view_moments_noise_forms():
    D = 4
    cov = spd(manual_seed(1), D)
    C1, C2, C12 = ssl.view_moments(cov, 0.3)
    torch.testing.assert_close(C1, cov + 0.3 * torch.eye(D, dtype=f64))
    torch.testing.assert_close(C2, C1)
    torch.testing.assert_close(C12, cov)
    var = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=f64)
    C1, C2, _ = ssl.view_moments(cov, var, 0.0)
    torch.testing.assert_close(C1, cov + torch.diag(var))
    torch.testing.assert_close(C2, cov)
    # a singular covariance (and noise) can still be sampled
    flat = torch.diag(torch.tensor([1.0, 0.0, 2.0, 0.0], dtype=f64))
    x1, x2 = ssl.sample_views(10, flat, 0.0, generator=manual_seed(2))
    assert torch.equal(x1, x2) and bool((x1[:, [1, 3]] == 0).all())


def test_sample_views_is_reproducible_with_its_generator():
    cov = spd(manual_seed(3), 3)
    a = ssl.sample_views(5, cov, 0.2, generator=manual_seed(4))
    b = ssl.sample_views(5, cov, 0.2, generator=manual_seed(4))
    c = ssl.sample_views(5, cov, 0.2, generator=manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


# --------------------------------------------------------------------------------------------
# the objective: trace form against Monte Carlo
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("general", [False, True])
def test_trace_form_matches_monte_carlo(seed, general):
    s = setting(seed, general=general)
    if general:
        x1, x2 = sample_general_views(s, 20000, manual_seed(250 + seed))
    else:
        x1, x2 = ssl.sample_views(20000, s["cov"], s["N1"], s["N2"], mean=s["mean"],
                                  generator=manual_seed(200 + seed))
    for Wp in (s["Wp"], None):
        est, se = ssl.simsiam_objective_mc(s["W"], Wp, x1, x2)
        exact = ssl.simsiam_objective_trace(s["W"], Wp, *moments(s))
        assert abs(float(est - exact)) <= K_SE * float(se), (float(est), float(exact), float(se))
        # the standard error is the sample's: std of the per-pair losses / √N
        P = torch.eye(3, dtype=f64) if Wp is None else Wp
        losses = 0.5 * ((x1 @ s["W"].T @ P.T - x2 @ s["W"].T) ** 2).sum(-1)
        torch.testing.assert_close(se, losses.std() / math.sqrt(len(losses)))


@pytest.mark.parametrize("seed", SEEDS)
def test_trace_form_equals_the_seeds_representation_form(seed):
    """½[tr(WpᵀWpF1) − tr(WpF12) − tr(F12Wp) + tr F2] with F = WCWᵀ (Q4.1's eq. 6, which is right)."""
    s = setting(seed, general=True)
    W, Wp = s["W"], s["Wp"]
    F1, F2, F12 = (W @ C @ W.T for C in moments(s))
    seeds = 0.5 * (torch.trace(Wp.T @ Wp @ F1) - torch.trace(Wp @ F12) - torch.trace(F12 @ Wp) + torch.trace(F2))
    torch.testing.assert_close(ssl.simsiam_objective_trace(W, Wp, *moments(s)), seeds)
    torch.testing.assert_close(ssl.simsiam_objective_trace(W, Wp, *moments(s)), expected_loss(W, W, Wp, *moments(s)))
    for got, want in zip(ssl.representation_moments(W, *moments(s)), (F1, F2, F12)):
        torch.testing.assert_close(got, want)


def test_objectives_broadcast_over_batches():
    ss = [setting(k) for k in range(3)]
    W = torch.stack([s["W"] for s in ss])
    Wp = torch.stack([s["Wp"] for s in ss])
    C = [torch.stack([s[k] for s in ss]) for k in ("C1", "C2", "C12")]
    got = ssl.simsiam_objective_trace(W, Wp, *C)
    assert got.shape == (3,)
    for i, s in enumerate(ss):
        torch.testing.assert_close(got[i], ssl.simsiam_objective_trace(s["W"], s["Wp"], *moments(s)))
    x1, x2 = ssl.sample_views(50, ss[0]["cov"], 0.1, generator=manual_seed(6))
    est, se = ssl.simsiam_objective_mc(W, Wp, x1[:, None, :], x2[:, None, :])
    assert est.shape == se.shape == (3,)
    torch.testing.assert_close(est[2], ssl.simsiam_objective_mc(W[2], Wp[2], x1, x2)[0])


# --------------------------------------------------------------------------------------------
# flows against autograd
# --------------------------------------------------------------------------------------------


def sample_moments(x1, x2):
    N = x1.shape[0]
    return x1.T @ x1 / N, x2.T @ x2 / N, x1.T @ x2 / N


@pytest.mark.parametrize("seed", SEEDS)
def test_flows_are_minus_the_autograd_gradients(seed):
    """On a finite sample the flows at the sample moments are exactly −∇ of the mean loss; the
    stop-gradient is a ``.detach()`` of the target branch."""
    s = setting(seed)
    x1, x2 = ssl.sample_views(300, s["cov"], s["N1"], s["N2"], mean=s["mean"], generator=manual_seed(300 + seed))
    C = sample_moments(x1, x2)
    eta, alpha = 0.03, 2.5
    W = s["W"].clone().requires_grad_(True)
    Wp = s["Wp"].clone().requires_grad_(True)

    g_sg = torch.autograd.grad(empirical_loss(W, W.detach(), Wp, x1, x2), (W, Wp))
    g_full = torch.autograd.grad(empirical_loss(W, W, Wp, x1, x2), (W, Wp))
    for flow, (gW, gWp) in ((ssl.flow_stopgrad, g_sg), (ssl.flow_no_stopgrad, g_full)):
        dW, dWp = flow(s["W"], s["Wp"], *C)
        torch.testing.assert_close(dW, -gW)
        torch.testing.assert_close(dWp, -gWp)
        dW, dWp = flow(s["W"], s["Wp"], *C, weight_decay=eta, predictor_rate=alpha)
        torch.testing.assert_close(dW, -gW - eta * s["W"])
        torch.testing.assert_close(dWp, -alpha * gWp - eta * s["Wp"])
        # the same through the library's Monte Carlo objective (its stop_gradient flag)
        est, _ = ssl.simsiam_objective_mc(W, Wp, x1, x2, stop_gradient=flow is ssl.flow_stopgrad)
        gW2, gWp2 = torch.autograd.grad(est, (W, Wp))
        torch.testing.assert_close(dW + eta * s["W"], -gW2)

    # no predictor: W_p = I fixed
    g_np_full = torch.autograd.grad(empirical_loss(W, W, None, x1, x2), W)[0]
    g_np_sg = torch.autograd.grad(empirical_loss(W, W.detach(), None, x1, x2), W)[0]
    torch.testing.assert_close(ssl.flow_no_stopgrad_no_predictor(s["W"], *C), -g_np_full)
    torch.testing.assert_close(ssl.flow_stopgrad_no_predictor(s["W"], *C), -g_np_sg)
    torch.testing.assert_close(ssl.flow_no_stopgrad_no_predictor(s["W"], *C, weight_decay=eta),
                               -g_np_full - eta * s["W"])


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_flows_match_autograd_of_the_expectation(seed):
    s = setting(seed, general=True)
    W = s["W"].clone().requires_grad_(True)
    Wp = s["Wp"].clone().requires_grad_(True)
    g_sg = torch.autograd.grad(expected_loss(W, W.detach(), Wp, *moments(s)), (W, Wp))
    g_full = torch.autograd.grad(ssl.simsiam_objective_trace(W, Wp, *moments(s)), (W, Wp))
    for got, want in zip(ssl.flow_stopgrad(s["W"], s["Wp"], *moments(s)), g_sg):
        torch.testing.assert_close(got, -want)
    for got, want in zip(ssl.flow_no_stopgrad(s["W"], s["Wp"], *moments(s)), g_full):
        torch.testing.assert_close(got, -want)
    # the paper's Lemma (symmetric views, C1 = X + X', C12 = X)
    t = setting(seed, symmetric=True)
    X, Xa, W0, P = t["C12"], t["N1"], t["W"], t["Wp"]
    dW, dWp = ssl.flow_stopgrad(W0, P, *moments(t), weight_decay=0.1, predictor_rate=3.0)
    torch.testing.assert_close(dW, P.T @ (-P @ W0 @ (X + Xa) + W0 @ X) - 0.1 * W0)
    torch.testing.assert_close(dWp, 3.0 * (-P @ W0 @ (X + Xa) + W0 @ X) @ W0.T - 0.1 * P)


def test_linear_flow_equals_the_flow_functions():
    s = setting(7, general=True)
    C = moments(s)
    for kind, fn in (("stopgrad", ssl.flow_stopgrad), ("no_stopgrad", ssl.flow_no_stopgrad)):
        got = ssl.linear_flow(kind, *C, weight_decay=0.2, predictor_rate=1.5)(s["W"], s["Wp"])
        want = fn(s["W"], s["Wp"], *C, weight_decay=0.2, predictor_rate=1.5)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)
    for kind, fn in (("stopgrad_no_predictor", ssl.flow_stopgrad_no_predictor),
                     ("no_stopgrad_no_predictor", ssl.flow_no_stopgrad_no_predictor)):
        torch.testing.assert_close(ssl.linear_flow(kind, *C, weight_decay=0.2)(s["W"]),
                                   fn(s["W"], *C, weight_decay=0.2))


# --------------------------------------------------------------------------------------------
# H: the Hessian without stop-gradient; M: the stop-gradient operator
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_hessian_operator_against_autograd(seed):
    s = setting(seed, general=True)
    K, D = s["W"].shape
    C = moments(s)

    def J(w):  # no stop-gradient: the target's W is the same variable
        W = col_unvec(w, K, D)
        return expected_loss(W, W, s["Wp"], *C)

    w = col_vec(s["W"])
    H = ssl.hessian_operator(s["Wp"], *C)
    torch.testing.assert_close(H, torch.autograd.functional.hessian(J, w))
    V = torch.randn(K * D, generator=manual_seed(400 + seed), dtype=f64)
    torch.testing.assert_close(H @ V, torch.autograd.functional.hvp(J, w, V)[1])
    # H vec(W) = −vec(Ẇ) of the flow without stop-gradient; with weight decay H + ηI
    dW, _ = ssl.flow_no_stopgrad(s["W"], s["Wp"], *C)
    torch.testing.assert_close(H @ w, -col_vec(dW))
    dW, _ = ssl.flow_no_stopgrad(s["W"], s["Wp"], *C, weight_decay=0.4)
    torch.testing.assert_close(ssl.hessian_operator(s["Wp"], *C, weight_decay=0.4) @ w, -col_vec(dW))
    # J = ½ wᵀHw: a quadratic form
    torch.testing.assert_close(0.5 * w @ H @ w, ssl.simsiam_objective_trace(s["W"], s["Wp"], *C))
    # symmetric PSD for any W_p
    torch.testing.assert_close(H, H.T)
    assert float(torch.linalg.eigvalsh(H)[0]) >= -1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_seeds_hessian_formula_and_its_lower_bound(seed):
    """Symmetric views: H = X' ⊗ (WpᵀWp + I) + X ⊗ (Wp − I)ᵀ(Wp − I) (Q4.3, right in the column-major
    convention), hence λ_min(H) ≥ λ_min(X') whatever W_p is."""
    t = setting(seed, symmetric=True)
    X, Xa, Wp = t["C12"], t["N1"], t["Wp"]
    K = Wp.shape[0]
    eye = torch.eye(K, dtype=f64)
    seeds = torch.kron(Xa, Wp.T @ Wp + eye) + torch.kron(X, (Wp - eye).T @ (Wp - eye))
    H = ssl.hessian_operator(Wp, *moments(t))
    torch.testing.assert_close(H, seeds)
    assert float(torch.linalg.eigvalsh(H)[0]) >= float(torch.linalg.eigvalsh(Xa)[0]) - 1e-12
    # without predictor (W_p = I): H = 2X' ⊗ I, λ_min = 2 λ_min(X') exactly
    H0 = ssl.hessian_operator(eye, *moments(t))
    torch.testing.assert_close(H0, torch.kron(2 * Xa, eye))


@pytest.mark.parametrize("seed", SEEDS)
def test_stopgrad_operator_against_autograd(seed):
    s = setting(seed, general=True)
    K, D = s["W"].shape
    C = moments(s)
    M = ssl.stopgrad_operator(s["Wp"], *C)

    def grad_sg(W):  # the stop-gradient update direction is linear in W
        W = W.clone().requires_grad_(True)
        return torch.autograd.grad(expected_loss(W, W.detach(), s["Wp"], *C), W)[0]

    columns = [col_vec(grad_sg(col_unvec(e, K, D))) for e in torch.eye(K * D, dtype=f64)]
    torch.testing.assert_close(M, torch.stack(columns, dim=1))
    dW, _ = ssl.flow_stopgrad(s["W"], s["Wp"], *C, weight_decay=0.2)
    torch.testing.assert_close(ssl.stopgrad_operator(s["Wp"], *C, weight_decay=0.2) @ col_vec(s["W"]), -col_vec(dW))
    assert not torch.allclose(M, M.T)


def test_stopgrad_operator_can_push_away_from_zero():
    """W_p = pI, X = I, X' = σ²I: M = (p²(1 + σ²) − p) I, negative for 0 < p < 1/(1 + σ²)."""
    D, K, sigma2 = 4, 3, 0.25
    C = ssl.view_moments(torch.eye(D, dtype=f64), sigma2)
    for p in (0.5, -0.5, 2.0):
        M = ssl.stopgrad_operator(p * torch.eye(K, dtype=f64), *C)
        torch.testing.assert_close(M, (p * p * (1 + sigma2) - p) * torch.eye(K * D, dtype=f64))


# --------------------------------------------------------------------------------------------
# the integrator
# --------------------------------------------------------------------------------------------


def test_integrator_converges_with_order_4_and_1():
    g = manual_seed(9)
    D, K = 4, 3
    A = spd(g, D, 0.1, 3.0)
    B = spd(g, K, 0.2, 1.0)
    W0 = torch.randn(K, D, generator=g, dtype=f64)
    P0 = torch.randn(K, K, generator=g, dtype=f64)
    T = 2.0
    exact_W = W0 @ torch.linalg.matrix_exp(-T * A)   # Ẇ = −WA
    exact_P = torch.linalg.matrix_exp(-T * B) @ P0    # Ṗ = −BP
    for method, order, dts in (("rk4", 4, (0.1, 0.05, 0.025)), ("euler", 1, (0.01, 0.005, 0.0025))):
        errors = []
        for dt in dts:
            traj = ssl.integrate(lambda W, P: (-W @ A, -B @ P), (W0, P0), dt=dt, steps=round(T / dt), method=method)
            assert traj.times[-1].item() == pytest.approx(T)
            errors.append(max(float((traj.W[-1] - exact_W).abs().max()), float((traj.Wp[-1] - exact_P).abs().max())))
        ratios = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
        assert all(abs(r - order) < 0.25 for r in ratios), (method, errors, ratios)
    # one-tensor state, recording
    traj = ssl.integrate(lambda W: -W @ A, W0, dt=0.05, steps=40, record_every=7)
    assert traj.Wp is None and traj.W.shape == (7, K, D)
    torch.testing.assert_close(traj.times, torch.tensor([0, 7, 14, 21, 28, 35, 40], dtype=f64) * 0.05)
    torch.testing.assert_close(traj.W[-1], exact_W, rtol=0, atol=1e-5)
    torch.testing.assert_close(traj.W[2], W0 @ torch.linalg.matrix_exp(-0.7 * A), rtol=0, atol=1e-5)


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_no_predictor_flows_have_closed_forms(stop_gradient):
    """Symmetric views, W_p = I: Ẇ = −2WX' (no stop-gradient) or −WX' (stop-gradient): W(t) = W(0)exp(−ctX')."""
    t = setting(10, symmetric=True)
    kind = "stopgrad_no_predictor" if stop_gradient else "no_stopgrad_no_predictor"
    c = 1.0 if stop_gradient else 2.0
    traj = ssl.integrate(ssl.linear_flow(kind, *moments(t), weight_decay=0.1), t["W"], dt=0.01, steps=300)
    exact = t["W"] @ torch.linalg.matrix_exp(-3.0 * (c * t["N1"] + 0.1 * torch.eye(5, dtype=f64)))
    torch.testing.assert_close(traj.W[-1], exact, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------------------------
# collapse without stop-gradient, and the norm bound
# --------------------------------------------------------------------------------------------


def batch_inits(D, K, scale_p, seeds=SEEDS):
    Ws, Wps = [], []
    for seed in seeds:
        g = manual_seed(500 + seed)
        Ws.append(torch.randn(K, D, generator=g, dtype=f64) / math.sqrt(D))
        Wps.append(scale_p * torch.randn(K, K, generator=g, dtype=f64) / math.sqrt(K))
    return torch.stack(Ws), torch.stack(Wps)


def anisotropic_symmetric_views(D=6):
    X = torch.diag(torch.linspace(0.5, 2.0, D, dtype=f64))
    X_aug = spd(manual_seed(11), D, 0.2, 0.6)
    return X, X_aug, ssl.view_moments(X, X_aug)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_without_stopgrad_W_collapses_within_the_bound(weight_decay):
    """Seeds 0..7 at once (a batch): X' ≻ 0 ⇒ λ_min(H(t)) ≥ λ_min(X') ⇒ ‖W(t)‖ ≤ ‖W(0)‖e^{−λ_min(X')t} → 0.

    X = diag(0.5 … 2), λ_min(X') = 0.233, W_p(0) ~ N(0, 1/K), t = 40. Observed ‖W(40)‖/‖W(0)‖: 9e-11–2e-8
    (with predictor, η = 0), 2e-9–4e-9 (without), 1e-14–8e-13 and 3e-10–5e-10 (η = 0.05); ‖W(40)‖ over the
    constant-rate bound: 0.002–0.45, never the equality the seeds state."""
    D, K = 6, 4
    X, X_aug, C = anisotropic_symmetric_views(D)
    lam_aug = float(torch.linalg.eigvalsh(X_aug)[0])
    W0, Wp0 = batch_inits(D, K, 1.0)
    T, dt = 40.0, 0.05
    for with_predictor in (True, False):
        if with_predictor:
            traj = ssl.integrate(ssl.linear_flow("no_stopgrad", *C, weight_decay=weight_decay), (W0, Wp0),
                                 dt=dt, steps=round(T / dt), record_every=10)
            H = ssl.hessian_operator(traj.Wp, *C, weight_decay=weight_decay)
            floor = lam_aug + weight_decay
        else:
            traj = ssl.integrate(ssl.linear_flow("no_stopgrad_no_predictor", *C, weight_decay=weight_decay), W0,
                                 dt=dt, steps=round(T / dt), record_every=10)
            H = ssl.hessian_operator(torch.eye(K, dtype=f64), *C, weight_decay=weight_decay)
            floor = 2 * lam_aug + weight_decay
        nb = ssl.norm_bound(traj.times, traj.W, H)
        assert nb.norms.shape == (len(traj.times), 8)
        # the hypothesis of Q4.3 holds by itself, with λ₀ = λ_min(X') (+ η)
        assert bool((nb.lambda_min >= floor - 1e-10).all())
        if not with_predictor:
            torch.testing.assert_close(nb.lambda_min, torch.full_like(nb.lambda_min, floor))
        # the bounds hold at every recorded time (the trapezoid rule's error is far below 1e-6)
        assert bool((nb.norms <= nb.bound * (1 + 1e-6)).all())
        assert bool((nb.norms <= nb.bound_constant * (1 + 1e-9)).all())
        closed = nb.norms[0] * torch.exp(-floor * (traj.times - traj.times[0]))[:, None]
        assert bool((nb.norms <= closed * (1 + 1e-9)).all())
        # collapse: ‖W(T)‖ ≤ e^{−λ₀T}‖W(0)‖ ≤ 4e-4 ‖W(0)‖ here
        assert bool((nb.norms[-1] <= math.exp(-floor * T) * nb.norms[0] * (1 + 1e-9)).all())
        assert bool((nb.norms[-1] < 1e-3 * nb.norms[0]).all())
        # the seeds' "‖w(t)‖ = e^{−λ₀t}‖w(0)‖" is only a bound: every seed ends strictly below it
        assert bool((nb.norms[-1] < 0.9 * nb.bound_constant[-1]).all())


def test_norm_bound_closed_form_and_time_varying_lambda():
    """Constant diagonal H: λ_min is its smallest entry; w along that axis attains the bound exactly."""
    h = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=f64)
    times = torch.linspace(0, 2, 21, dtype=f64)
    w0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=f64)
    W = (torch.exp(-times[:, None] * h) * w0).reshape(21, 2, 2).transpose(-1, -2)   # unvec of (T, 4)
    nb = ssl.norm_bound(times, W, torch.diag(h))
    torch.testing.assert_close(nb.bound, torch.exp(-0.5 * times))
    torch.testing.assert_close(nb.norms, torch.exp(-0.5 * times))
    # λ(t) = 1 + t: ∫₀ᵗλ = t + t²/2 (the trapezoid rule is exact for a linear λ)
    H = (1 + times)[:, None, None] * torch.eye(4, dtype=f64)
    nb = ssl.norm_bound(times, W, H)
    torch.testing.assert_close(nb.bound, torch.exp(-(times + times ** 2 / 2)))
    torch.testing.assert_close(nb.bound_constant, torch.exp(-times))
    # a non-symmetric H: only its symmetric part counts
    skew = torch.tensor([[0.0, 5.0], [-5.0, 0.0]], dtype=f64)
    Hs = torch.block_diag(skew, skew) + torch.eye(4, dtype=f64)
    torch.testing.assert_close(ssl.norm_bound(times, W, Hs).lambda_min, torch.ones(21, dtype=f64))


# --------------------------------------------------------------------------------------------
# with stop-gradient and predictor: no collapse (in a stated setting), eigen-alignment
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_stopgrad_with_predictor_keeps_every_direction(weight_decay):
    """Setting: D = 6, K = 4, X = diag(0.5 … 2), X' = 0.25 I, W(0) ~ N(0, 1/D), W_p(0) ~ 0.1·N(0, 1/K),
    η ∈ {0, 0.01}, t = 100 (RK4, dt = 0.1). Observed over seeds 0..7: λ_min(WXWᵀ) 0.74–1.33 (η = 0) and
    0.72–0.93 (η = 0.01); ‖W(T)‖/‖W(0)‖ 1.22–1.50 (η = 0) and 0.79–1.17 (η = 0.01)."""
    D, K = 6, 4
    X = torch.diag(torch.linspace(0.5, 2.0, D, dtype=f64))
    C = ssl.view_moments(X, 0.25)
    W0, Wp0 = batch_inits(D, K, 0.1)
    traj = ssl.integrate(ssl.linear_flow("stopgrad", *C, weight_decay=weight_decay), (W0, Wp0), dt=0.1, steps=1000,
                         record_every=100)
    spectrum = ssl.representation_spectrum(traj.W[-1], X)
    assert bool((spectrum[:, -1] > 0.3).all()), spectrum[:, -1]
    ratio = torch.linalg.matrix_norm(traj.W[-1]) / torch.linalg.matrix_norm(W0)
    assert bool((ratio > 0.5).all()), ratio


ALPHA, SIGMA2 = 2.0, 0.25
P_INF = 1 / (1 + SIGMA2)


def aligned_draw(seed, D=6, K=4, margin=0.3):
    """W(0) = R diag(√s₀) Q and W_p(0) = R diag(p₀) Rᵀ: every direction evolves on its own.

    With X = I, X' = σ²I and η = 0 the flow of one direction is ṡ = 2ps(1 − (1+σ²)p),
    ṗ = α_p s(1 − (1+σ²)p), so ds/dp = 2p/α_p: s − p²/α_p is conserved. If s stays positive, p → 1/(1+σ²)
    and s → s₀ + (p∞² − p₀²)/α_p; otherwise s → 0 (the direction collapses) and p → ±√(p₀² − α_p s₀).
    Draws too close to the border between the two fates are redrawn (slow convergence)."""
    g = manual_seed(600 + seed)
    Q = torch.linalg.qr(torch.randn(D, K, generator=g, dtype=f64))[0].T
    R = torch.linalg.qr(torch.randn(K, K, generator=g, dtype=f64))[0]
    s0, p0 = [], []
    while len(s0) < K:
        s = 0.2 + 1.8 * float(torch.rand((), generator=g, dtype=f64))
        p = -1.5 + 3.0 * float(torch.rand((), generator=g, dtype=f64))
        path_min = s - p * p / ALPHA if p < 0 else (s + (P_INF ** 2 - p * p) / ALPHA if p > P_INF else s)
        final = s + (P_INF ** 2 - p * p) / ALPHA
        if abs(path_min) < margin or (path_min > 0 and final < margin):
            continue
        s0.append(s)
        p0.append(p)
    fates = [(s + (P_INF ** 2 - p * p) / ALPHA, P_INF)
             if (s - p * p / ALPHA if p < 0 else (s + (P_INF ** 2 - p * p) / ALPHA if p > P_INF else s)) > 0
             else (0.0, math.copysign(math.sqrt(p * p - ALPHA * s), p)) for s, p in zip(s0, p0)]
    s0, p0 = torch.tensor(s0, dtype=f64), torch.tensor(p0, dtype=f64)
    W0 = R @ torch.diag(s0.sqrt()) @ Q
    Wp0 = R @ torch.diag(p0) @ R.T
    return W0, Wp0, R, torch.tensor(fates, dtype=f64)


def test_stopgrad_fate_of_each_direction_follows_the_conserved_quantity():
    """Seeds 0..7 in one batch. Stop-gradient alone does not rule out collapse: a direction whose
    predictor eigenvalue starts too negative (p₀ < −√(α_p s₀)) or too large dies."""
    draws = [aligned_draw(seed) for seed in SEEDS]
    W0 = torch.stack([d[0] for d in draws])
    Wp0 = torch.stack([d[1] for d in draws])
    R = torch.stack([d[2] for d in draws])
    fates = torch.stack([d[3] for d in draws])          # (8, K, 2): final s and p
    C = ssl.view_moments(torch.eye(6, dtype=f64), SIGMA2)
    traj = ssl.integrate(ssl.linear_flow("stopgrad", *C, predictor_rate=ALPHA), (W0, Wp0), dt=0.02, steps=2000,
                         record_every=100)
    F = R.mT @ traj.W @ traj.W.mT @ R                    # (T, 8, K, K), diagonal
    P = R.mT @ traj.Wp @ R
    s, p = torch.diagonal(F, dim1=-2, dim2=-1), torch.diagonal(P, dim1=-2, dim2=-1)
    assert float((F - torch.diag_embed(s)).abs().max()) < 1e-10
    invariant = s - p * p / ALPHA
    assert float((invariant - invariant[0]).abs().max()) < 1e-5
    torch.testing.assert_close(s[-1], fates[..., 0], rtol=0, atol=1e-4)
    torch.testing.assert_close(p[-1], fates[..., 1], rtol=0, atol=1e-4)
    collapsed = int((fates[..., 0] == 0).sum())
    assert 0 < collapsed < fates[..., 0].numel()          # both fates occur in this sweep


@pytest.mark.parametrize("isotropic", [True, False])
def test_weight_decay_aligns_the_predictor_with_F(isotropic):
    """The paper's eigen-alignment: X' = 0.25 I, η = 0.05, W_p(0) ~ 0.5·N(0, 1/K) (not symmetric), t = 100.
    Observed over seeds 0..7: commutator ≤ 1.1e-5 and asymmetry ≤ 2.1e-5 at t = 100, from commutator 0.28–0.49
    and asymmetry 0.45–0.73 at t = 0 (also with the anisotropic X = diag(0.5 … 2))."""
    D, K = 6, 4
    X = torch.eye(D, dtype=f64) if isotropic else torch.diag(torch.linspace(0.5, 2.0, D, dtype=f64))
    C = ssl.view_moments(X, 0.25)
    W0, Wp0 = batch_inits(D, K, 0.5)
    traj = ssl.integrate(ssl.linear_flow("stopgrad", *C, weight_decay=0.05), (W0, Wp0), dt=0.1, steps=1000,
                         record_every=1000)
    F = traj.W @ X @ traj.W.mT
    start, end = ssl.eigen_alignment(traj.Wp[0], F[0]), ssl.eigen_alignment(traj.Wp[-1], F[-1])
    assert bool((start.commutator > 0.05).all()) and bool((start.asymmetry > 0.1).all())
    assert bool((end.commutator < 1e-3).all()), end.commutator
    assert bool((end.asymmetry < 1e-3).all()), end.asymmetry


def test_eigen_alignment_closed_forms():
    g = manual_seed(12)
    K = 4
    U = torch.linalg.qr(torch.randn(K, K, generator=g, dtype=f64))[0]
    Wp = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=f64)) @ U.T
    F = U @ torch.diag(torch.tensor([0.1, 4.0, 2.0, 1.0], dtype=f64)) @ U.T
    al = ssl.eigen_alignment(Wp, F)
    assert float(al.commutator) < 1e-12 and float(al.asymmetry) < 1e-12
    # by decreasing eigenvalue, W_p's eigenvectors are u0, u1, u2, u3 and F's u1, u2, u3, u0: a permutation
    perm = torch.zeros(K, K, dtype=f64)
    perm[0, 3] = perm[1, 0] = perm[2, 1] = perm[3, 2] = 1
    torch.testing.assert_close(al.cosines, perm, atol=1e-10, rtol=0)
    # Böttcher–Wenzel: the normalised commutator is ≤ 1, with equality for this pair
    A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=f64)
    B = torch.diag(torch.tensor([1.0, -1.0], dtype=f64))
    al = ssl.eigen_alignment(A, B)
    assert float(al.commutator) == pytest.approx(1.0) and float(al.asymmetry) == pytest.approx(1.0)
    rand = ssl.eigen_alignment(torch.randn(50, K, K, generator=g, dtype=f64), spd(g, K))
    assert bool((rand.commutator <= 1).all()) and bool((rand.commutator > 0).all())


# --------------------------------------------------------------------------------------------
# diagnostics
# --------------------------------------------------------------------------------------------


def test_effective_rank_closed_forms():
    for d in (1, 3, 7):
        assert float(ssl.effective_rank(torch.eye(d, dtype=f64))) == pytest.approx(d, rel=1e-12)
    g = manual_seed(13)
    u, v = torch.randn(6, 1, generator=g, dtype=f64), torch.randn(1, 4, generator=g, dtype=f64)
    assert float(ssl.effective_rank(u @ v)) == pytest.approx(1.0, abs=1e-6)
    sigma = np.array([3.0, 2.0, 0.5, 0.0])
    Q1 = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=f64))[0]
    Q2 = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=f64))[0]
    A = Q1[:, :4] @ torch.diag(torch.from_numpy(sigma)) @ Q2
    expected = math.exp(scipy.stats.entropy(sigma / sigma.sum()))
    assert float(ssl.effective_rank(A)) == pytest.approx(expected, rel=1e-10)
    assert float(ssl.effective_rank(7.0 * A)) == pytest.approx(expected, rel=1e-10)   # scale-free
    # of Z versus of ZᵀZ: singular values σ versus σ²
    Z = torch.diag(torch.tensor([2.0, 1.0], dtype=f64))
    assert float(ssl.effective_rank(Z)) == pytest.approx(math.exp(scipy.stats.entropy([2 / 3, 1 / 3])))
    assert float(ssl.effective_rank(Z.T @ Z)) == pytest.approx(math.exp(scipy.stats.entropy([4 / 5, 1 / 5])))
    batch = ssl.effective_rank(torch.stack([torch.eye(3, dtype=f64), torch.zeros(3, 3, dtype=f64)]))
    assert batch.shape == (2,) and float(batch[0]) == pytest.approx(3.0) and math.isnan(float(batch[1]))


def test_spectra_match_numpy():
    g = manual_seed(14)
    Wp = torch.randn(5, 5, generator=g, dtype=f64)
    got = ssl.predictor_spectrum(Wp).numpy()
    want = np.linalg.eigvals(Wp.numpy())
    want = want[np.argsort(-want.real, kind="stable")]
    np.testing.assert_allclose(np.sort_complex(got), np.sort_complex(want), rtol=1e-10)
    assert np.all(np.diff(got.real) <= 1e-12)
    s = setting(15)
    got = ssl.representation_spectrum(s["W"], s["C1"]).numpy()
    np.testing.assert_allclose(got, np.linalg.eigvalsh((s["W"] @ s["C1"] @ s["W"].T).numpy())[::-1], rtol=1e-10)


# --------------------------------------------------------------------------------------------
# the non-linear SimSiam
# --------------------------------------------------------------------------------------------


def test_cosine_loss_matches_its_definition_and_stops_gradients():
    g = manual_seed(16)
    p1, p2, z1, z2 = (torch.randn(7, 5, generator=g, dtype=f64).requires_grad_(True) for _ in range(4))
    P1, P2, Z1, Z2 = (t.detach().numpy() for t in (p1, p2, z1, z2))

    def cos(a, b):
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    loss = ssl.simsiam_cosine_loss(p1, p2, z1, z2)
    assert float(loss.detach()) == pytest.approx(-0.5 * (cos(P1, Z2).mean() + cos(P2, Z1).mean()), rel=1e-12)
    grads = torch.autograd.grad(loss, (p1, z1), allow_unused=True)
    assert grads[1] is None                                   # z₁ only enters as a detached target
    loss_full = ssl.simsiam_cosine_loss(p1, p2, z1, z2, stop_gradient=False)
    gz1 = torch.autograd.grad(loss_full, z1)[0]
    # −½ ∂cos(p₂, z₁)/∂z₁ = −½ (p₂/(‖p₂‖‖z₁‖) − cos · z₁/‖z₁‖²)/7, by hand
    n2, nz = np.linalg.norm(P2, axis=1, keepdims=True), np.linalg.norm(Z1, axis=1, keepdims=True)
    by_hand = -0.5 * (P2 / (n2 * nz) - cos(P2, Z1)[:, None] * Z1 / nz ** 2) / 7
    np.testing.assert_allclose(gz1.numpy(), by_hand, rtol=1e-10)
    same = ssl.simsiam_cosine_loss(z1, z1, z1, z1)
    assert float(same.detach()) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_augment_moments(seed):
    """E[x' | x] = (1 − q)x and Var(x' | x) = q(1 − q)x² + σ², per coordinate (5 SE)."""
    x = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=f64)
    q, sigma = 0.3, 0.2
    views = ssl.noise_augment(x.expand(40000, 4), noise_std=sigma, mask_prob=q, generator=manual_seed(700 + seed))
    N = views.shape[0]
    mean, se_mean = views.mean(0), views.std(0) / math.sqrt(N)
    assert bool(((mean - (1 - q) * x).abs() <= K_SE * se_mean).all())
    centred2 = (views - (1 - q) * x) ** 2
    var, se_var = centred2.mean(0), centred2.std(0) / math.sqrt(N)
    assert bool(((var - (q * (1 - q) * x * x + sigma ** 2)).abs() <= K_SE * se_var).all())


@pytest.fixture(scope="module")
def digits():
    return load_digits()[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_nonlinear_simsiam_collapses_without_stopgrad_or_predictor(digits, seed):
    """Digits, the defaults (150 SGD steps, BatchNorm in hidden layers). Observed over seeds 0..7:
    final effective rank 14.0–15.5 with stop-gradient and predictor, 3.1–3.4 without stop-gradient,
    3.6–3.9 without predictor (32 output dimensions; output std of z/‖z‖ 0.146–0.161 versus 0.010–0.012;
    mean loss of the last 20 steps −0.76…−0.70 versus −0.997…−0.995)."""
    full = ssl.train_simsiam(digits, generator=manual_seed(seed))
    no_sg = ssl.train_simsiam(digits, stop_gradient=False, generator=manual_seed(seed))
    no_pred = ssl.train_simsiam(digits, predictor=False, generator=manual_seed(seed))
    assert full.steps == [0, 50, 100, 150] and len(full.loss) == 150
    assert full.effective_rank[-1] > 10, full.effective_rank
    assert no_sg.effective_rank[-1] < 6, no_sg.effective_rank
    assert no_pred.effective_rank[-1] < 6, no_pred.effective_rank
    assert full.output_std[-1] > 0.1 and no_sg.output_std[-1] < 0.05 and no_pred.output_std[-1] < 0.05
    # the cosine loss is lower without stop-gradient: collapse is the easy minimum
    assert np.mean(no_sg.loss[-20:]) < np.mean(full.loss[-20:])


def test_train_simsiam_is_reproducible_and_shows_progress(digits, capsys):
    a = ssl.train_simsiam(digits[:300], steps=4, eval_every=2, generator=manual_seed(0), progress=True)
    b = ssl.train_simsiam(digits[:300], steps=4, eval_every=2, generator=manual_seed(0))
    assert a.loss == b.loss and a.effective_rank == b.effective_rank and a.steps == [0, 2, 4]
    assert "SimSiam" in capsys.readouterr().err
    net = ssl.SimSiamNet(64, 32, 8, 4, predictor=False, generator=manual_seed(1))
    z, p = net(digits[:10])
    assert z.shape == (10, 8) and torch.equal(z, p)
    run = ssl.train_simsiam(digits[:300], None, 3, net=net, generator=manual_seed(2))
    assert run.net is net


# --------------------------------------------------------------------------------------------
# dtypes, devices, bad inputs
# --------------------------------------------------------------------------------------------


def test_float32_follows_float64():
    s64, s32 = setting(17), setting(17, dtype=torch.float32)
    tol = dict(rtol=1e-4, atol=1e-5)
    J32 = ssl.simsiam_objective_trace(s32["W"], s32["Wp"], *moments(s32))
    assert J32.dtype == torch.float32
    torch.testing.assert_close(J32.double(), ssl.simsiam_objective_trace(s64["W"], s64["Wp"], *moments(s64)), **tol)
    for fn in (ssl.flow_stopgrad, ssl.flow_no_stopgrad):
        for a, b in zip(fn(s32["W"], s32["Wp"], *moments(s32)), fn(s64["W"], s64["Wp"], *moments(s64))):
            assert a.dtype == torch.float32
            torch.testing.assert_close(a.double(), b, **tol)
    H32 = ssl.hessian_operator(s32["Wp"], *moments(s32))
    torch.testing.assert_close(H32.double(), ssl.hessian_operator(s64["Wp"], *moments(s64)), **tol)
    traj32 = ssl.integrate(ssl.linear_flow("stopgrad", *moments(s32)), (s32["W"], s32["Wp"]), dt=0.05, steps=40)
    traj64 = ssl.integrate(ssl.linear_flow("stopgrad", *moments(s64)), (s64["W"], s64["Wp"]), dt=0.05, steps=40)
    assert traj32.W.dtype == traj32.times.dtype == torch.float32
    torch.testing.assert_close(traj32.W[-1].double(), traj64.W[-1], **tol)
    x1, x2 = ssl.sample_views(100, s32["cov"], 0.1, generator=manual_seed(18))
    assert x1.dtype == torch.float32
    est, se = ssl.simsiam_objective_mc(s32["W"], s32["Wp"], x1, x2)
    est64, _ = ssl.simsiam_objective_mc(s64["W"], s64["Wp"], x1.double(), x2.double())
    torch.testing.assert_close(est.double(), est64, **tol)
    assert float(ssl.effective_rank(torch.eye(3))) == pytest.approx(3.0, rel=1e-6)
    # mixed dtypes promote like torch arithmetic
    assert ssl.simsiam_objective_trace(s32["W"], s64["Wp"], *moments(s64)).dtype == f64


E = torch.eye(3, dtype=f64)
W23 = torch.ones(2, 3, dtype=f64)
P22 = torch.eye(2, dtype=f64)
GOOD = (E, E, E)

BAD_CALLS = [  # (function, args, kwargs, error, match)
    (ssl.vec, (torch.ones(3, dtype=f64),), {}, ValueError, r"M must have shape \(\.\.\., K, D\)"),
    (ssl.unvec, (torch.ones(5, dtype=f64), 2, 3), {}, ValueError, r"v must have shape \(\.\.\., 6\)"),
    (ssl.unvec, (torch.ones(6, dtype=f64), 2.0, 3), {}, TypeError, "K must be a positive integer; got 2.0"),
    (ssl.view_moments, (torch.ones(3, 3, dtype=f64) - 2 * E, 0.1), {}, ValueError,
     "cov must be positive semi-definite"),
    (ssl.view_moments, (E, -0.1), {}, ValueError, "noise must hold non-negative variances"),
    (ssl.view_moments, (E, torch.ones(2, dtype=f64)), {}, ValueError, r"noise must be a variance .* got shape \(2,\)"),
    (ssl.view_moments, (E, 0.1, torch.tensor([[1.0, 2.0, 0], [0, 1, 0], [0, 0, 1]], dtype=f64)), {}, ValueError,
     "noise2 must be symmetric"),
    (ssl.view_moments, (E, 0.1), {"mean": torch.ones(2, dtype=f64)}, ValueError, r"mean must have shape \(\.\.\., 3\)"),
    (ssl.sample_views, (0, E, 0.1), {}, ValueError, "num_samples must be a positive integer; got 0"),
    (ssl.sample_views, (5, torch.eye(3, dtype=torch.int64), 0.1), {}, TypeError, "cov must be a floating-point"),
    (ssl.representation_moments, (torch.ones(2, 4, dtype=f64), *GOOD), {}, ValueError,
     r"C1 must have shape \(\.\.\., 4, 4\)"),
    (ssl.simsiam_objective_mc, (W23, P22, torch.ones(5, 3, dtype=f64), torch.ones(4, 3, dtype=f64)), {}, ValueError,
     "x1 and x2 must have the same shape"),
    (ssl.simsiam_objective_mc, (W23, P22, torch.ones(5, 2, dtype=f64), torch.ones(5, 2, dtype=f64)), {}, ValueError,
     r"x1 must have shape \(N, \.\.\., 3\)"),
    (ssl.simsiam_objective_trace, (W23, torch.eye(3, dtype=f64), *GOOD), {}, ValueError,
     r"Wp must have shape \(\.\.\., 2, 2\)"),
    (ssl.simsiam_objective_trace, (W23, P22, torch.tensor([[1.0, 2, 0], [0, 1, 0], [0, 0, 1]], dtype=f64), E, E), {},
     ValueError, "C1 must be symmetric"),
    (ssl.simsiam_objective_trace, (W23, P22, E, E, torch.full((3, 3), float("nan"), dtype=f64)), {}, ValueError,
     "C12 must be finite"),
    (ssl.flow_stopgrad, (W23, None, *GOOD), {}, TypeError, "Wp must be a .* tensor"),
    (ssl.flow_stopgrad, (W23, P22, *GOOD), {"weight_decay": -0.1}, ValueError,
     "weight_decay must be a finite non-negative number; got -0.1"),
    (ssl.flow_no_stopgrad, (W23, P22, *GOOD), {"predictor_rate": 0.0}, ValueError,
     "predictor_rate must be a finite positive number; got 0.0"),
    (ssl.flow_no_stopgrad_no_predictor, (torch.ones(3, dtype=f64), *GOOD), {}, ValueError,
     r"W must have shape \(\.\.\., K, D\)"),
    (ssl.flow_stopgrad_no_predictor, (W23, E, E, torch.eye(2, dtype=f64)), {}, ValueError,
     r"C12 must have shape \(\.\.\., 3, 3\)"),
    (ssl.linear_flow, ("sg", *GOOD), {}, ValueError, "kind must be one of 'stopgrad', 'no_stopgrad'"),
    (ssl.hessian_operator, (torch.ones(2, 3, dtype=f64), *GOOD), {}, ValueError,
     r"Wp must have shape \(\.\.\., K, K\) \(a square"),
    (ssl.stopgrad_operator, (P22, E, "E", E), {}, TypeError, "C2 must be a tensor or a number; got str"),
    (ssl.integrate, (None, E), {"dt": 0.1, "steps": 2}, TypeError, "flow_fn must be callable"),
    (ssl.integrate, (lambda w: -w, E), {"dt": 0.0, "steps": 2}, ValueError, "dt must be a finite positive number"),
    (ssl.integrate, (lambda w: -w, E), {"dt": 0.1, "steps": 0}, ValueError, "steps must be a positive integer"),
    (ssl.integrate, (lambda w: -w, E), {"dt": 0.1, "steps": 2, "method": "rk2"}, ValueError,
     "method must be one of 'rk4', 'euler'; got 'rk2'"),
    (ssl.integrate, (lambda w, p: (-w, -p), (E, E, E)), {"dt": 0.1, "steps": 2}, TypeError,
     "state must be a tensor or a pair of tensors"),
    (ssl.integrate, (lambda w, p: -w, (E, E)), {"dt": 0.1, "steps": 2}, ValueError,
     "flow_fn must return a pair of tensors"),
    (ssl.norm_bound, (torch.tensor([0.0, 1.0], dtype=f64), torch.ones(3, 2, 2, dtype=f64), torch.eye(4, dtype=f64)),
     {}, ValueError, r"W must have shape \(T, \.\.\., K, D\) with T = 2"),
    (ssl.norm_bound, (torch.tensor([1.0, 0.0], dtype=f64), torch.ones(2, 2, 2, dtype=f64), torch.eye(4, dtype=f64)),
     {}, ValueError, "times must be strictly increasing"),
    (ssl.norm_bound, (torch.tensor([0.0, 1.0], dtype=f64), torch.ones(2, 2, 2, dtype=f64), torch.eye(3, dtype=f64)),
     {}, ValueError, r"H must have shape \(T, \.\.\., 4, 4\)"),
    (ssl.norm_bound, (torch.tensor([0.0, 1.0], dtype=f64), torch.ones(2, 5, 2, 2, dtype=f64),
                      torch.eye(4, dtype=f64).expand(2, 3, 4, 4)), {}, ValueError, "H's batch shape"),
    (ssl.effective_rank, (torch.ones(3, dtype=f64),), {}, ValueError, r"A must have shape \(\.\.\., M, N\)"),
    (ssl.predictor_spectrum, (torch.ones(2, 3, dtype=f64),), {}, ValueError, r"Wp must have shape \(\.\.\., K, K\)"),
    (ssl.representation_spectrum, (W23, torch.eye(2, dtype=f64)), {}, ValueError,
     r"C must have shape \(\.\.\., 3, 3\)"),
    (ssl.eigen_alignment, (P22, torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=f64)), {}, ValueError,
     "F must be symmetric"),
    (ssl.SimSiamNet, (64,), {"predictor": 1}, TypeError, "predictor must be True or False; got 1"),
    (ssl.SimSiamNet, (0,), {}, ValueError, "in_dim must be a positive integer; got 0"),
    (ssl.noise_augment, (torch.ones(4, 3),), {"mask_prob": 1.0}, ValueError, r"mask_prob must be a number in \[0, 1\)"),
    (ssl.noise_augment, (torch.ones(4, 3),), {"noise_std": -1.0}, ValueError,
     "noise_std must be a finite non-negative"),
    (ssl.simsiam_cosine_loss, (torch.ones(4, 3), torch.ones(4, 3), torch.ones(4, 3), torch.ones(5, 3)), {}, ValueError,
     r"z2 must have the shape of p1 \(4, 3\)"),
    (ssl.train_simsiam, (torch.ones(1, 3),), {}, ValueError, r"data must have shape \(N, D\) with N >= 2"),
    (ssl.train_simsiam, (torch.ones(10, 3), "flip"), {}, TypeError, "augment must be callable"),
    (ssl.train_simsiam, (torch.ones(10, 3),), {"stop_gradient": "yes"}, TypeError,
     "stop_gradient must be True or False"),
    (ssl.train_simsiam, (torch.ones(10, 3),), {"batch_size": 1}, ValueError, "batch_size must be an integer >= 2"),
    (ssl.train_simsiam, (torch.ones(10, 3),), {"net": torch.nn.Linear(3, 3)}, TypeError, "net must be a SimSiamNet"),
]


@pytest.mark.parametrize("fn, args, kwargs, error, match", BAD_CALLS,
                         ids=[f"{row[0].__name__}-{i}" for i, row in enumerate(BAD_CALLS)])
def test_bad_inputs(fn, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_every_public_function_has_bad_input_rows():
    public = {name for name in ssl.__all__ if callable(getattr(ssl, name)) and not isinstance(getattr(ssl, name), type)}
    public |= {"SimSiamNet"}
    assert {row[0].__name__ for row in BAD_CALLS} == public


@pytest.mark.cuda
@requires_cuda
def test_cuda_matches_cpu():
    s = setting(19)
    cuda = {k: v.cuda() for k, v in s.items()}
    torch.testing.assert_close(ssl.simsiam_objective_trace(cuda["W"], cuda["Wp"], *moments(cuda)).cpu(),
                               ssl.simsiam_objective_trace(s["W"], s["Wp"], *moments(s)))
    for fn in (ssl.flow_stopgrad, ssl.flow_no_stopgrad):
        for a, b in zip(fn(cuda["W"], cuda["Wp"], *moments(cuda)), fn(s["W"], s["Wp"], *moments(s))):
            assert a.device.type == "cuda"
            torch.testing.assert_close(a.cpu(), b)
    torch.testing.assert_close(ssl.hessian_operator(cuda["Wp"], *moments(cuda)).cpu(),
                               ssl.hessian_operator(s["Wp"], *moments(s)))
    traj = ssl.integrate(ssl.linear_flow("no_stopgrad", *moments(cuda)), (cuda["W"], cuda["Wp"]), dt=0.05, steps=20)
    ref = ssl.integrate(ssl.linear_flow("no_stopgrad", *moments(s)), (s["W"], s["Wp"]), dt=0.05, steps=20)
    assert traj.W.device.type == "cuda"
    torch.testing.assert_close(traj.W.cpu(), ref.W)
    nb = ssl.norm_bound(traj.times, traj.W, ssl.hessian_operator(traj.Wp, *moments(cuda)))
    nb_cpu = ssl.norm_bound(ref.times, ref.W, ssl.hessian_operator(ref.Wp, *moments(s)))
    torch.testing.assert_close(nb.bound.cpu(), nb_cpu.bound)
    x1, x2 = ssl.sample_views(10, cuda["cov"], 0.1, generator=torch.Generator(device="cuda").manual_seed(0))
    assert x1.device.type == "cuda"
    torch.testing.assert_close(ssl.effective_rank(cuda["W"]).cpu(), ssl.effective_rank(s["W"]))
    al = ssl.eigen_alignment(cuda["Wp"], cuda["C1"][:3, :3])
    assert al.commutator.device.type == "cuda"
    digits = load_digits(device="cuda")[0]
    run = ssl.train_simsiam(digits, steps=3, generator=manual_seed(0))
    assert next(run.net.parameters()).device.type == "cuda" and len(run.loss) == 3
