"""Tests of dgm.em: Gaussian mixtures by EM, k-means, PCA and probabilistic PCA.

Independent routes used here: scikit-learn (``GaussianMixture`` started from the same parameters,
``KMeans`` from the same centres, ``PCA``); an EM written below with NumPy loops and
``scipy.stats.multivariate_normal`` (no vectorisation, no feature trick); ``scipy.stats`` densities;
NumPy eigen-decompositions; :mod:`dgm.mixtures` and :mod:`dgm.linear_gaussian` (Chapter 1's
functions, written separately); autograd. Invariants: EM never lowers the log-likelihood, k-means
never raises its inertia, the ELBO at the posterior is the log-likelihood and its gradient too.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from conftest import requires_cuda
from dgm import em, linear_gaussian, mixtures
from dgm.device import manual_seed
from dgm.divergences import categorical_kl

f64 = torch.float64
TYPES = ("spherical", "diag", "full")


def blobs(seed=0, N=300, D=2, K=3, spread=4.0, dtype=f64):
    """N points from K well-separated Gaussian blobs with random shapes, and their labels."""
    g = manual_seed(seed)
    centres = spread * torch.randn(K, D, generator=g, dtype=f64)
    scales = torch.eye(D, dtype=f64) + 0.4 * torch.randn(K, D, D, generator=g, dtype=f64)
    z = torch.randint(K, (N,), generator=g)
    x = centres[z] + (scales[z] @ torch.randn(N, D, 1, generator=g, dtype=f64)).squeeze(-1)
    return x.to(dtype), z


def start(x, K, covariance_type, seed=0):
    """θ_0: uniform weights, K distinct data points as means, the data's (co)variance everywhere."""
    g = manual_seed(seed + 100)
    N, D = x.shape
    means = x[torch.randperm(N, generator=g)[:K]]
    cov = torch.cov(x.T.double(), correction=0).to(x.dtype).reshape(D, D)
    covariances = {"spherical": torch.diagonal(cov).mean().repeat(K), "diag": torch.diagonal(cov).repeat(K, 1),
                   "full": cov.repeat(K, 1, 1)}[covariance_type]
    weights = torch.full((K,), 1 / K, dtype=x.dtype)
    return em.GaussianMixtureParams.from_covariances(weights, means, covariances, covariance_type)


def random_params(seed, K=3, D=2, covariance_type="full", dtype=f64):
    g = manual_seed(seed)
    weights = torch.softmax(torch.randn(K, generator=g, dtype=f64), 0)
    means = 2 * torch.randn(K, D, generator=g, dtype=f64)
    A = torch.randn(K, D, D, generator=g, dtype=f64)
    full = A @ A.transpose(-1, -2) + 0.5 * torch.eye(D, dtype=f64)
    covariances = {"full": full, "diag": torch.diagonal(full, dim1=-2, dim2=-1).clone(),
                   "spherical": torch.diagonal(full, dim1=-2, dim2=-1).mean(-1)}[covariance_type]
    return em.GaussianMixtureParams.from_covariances(weights.to(dtype), means.to(dtype), covariances.to(dtype),
                                                     covariance_type)


def fit_sklearn(x, init, n_iter, tol=0.0, reg_covar=1e-6):
    gmm = GaussianMixture(n_components=init.n_components, covariance_type=init.covariance_type, max_iter=n_iter,
                          tol=tol, reg_covar=reg_covar, init_params="random_from_data", random_state=0,
                          weights_init=init.weights.numpy(), means_init=init.means.numpy(),
                          precisions_init=init.precisions().numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(x.numpy())
    return gmm


def relative(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# --------------------------------------------------------------------------------------------
# EM against scikit-learn and against a naive EM
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", TYPES)
def test_fit_em_matches_sklearn_from_the_same_start(covariance_type):
    x, _ = blobs(seed=1, N=400, D=3, K=4, spread=2.5)
    init = start(x, 4, covariance_type)
    params, history = em.fit_em(x, init, n_iter=25, tol=0)
    gmm = fit_sklearn(x, init, 25)
    assert history.shape == (26,) and params.covariance_type == covariance_type
    for ours, theirs in [(params.weights, gmm.weights_), (params.means, gmm.means_),
                         (params.covariances, gmm.covariances_), (params.precisions_cholesky, gmm.precisions_cholesky_),
                         (history[:-1], gmm.lower_bounds_)]:
        assert relative(ours.numpy(), theirs) < 1e-8
    assert abs(history[-2].item() - gmm.lower_bound_) < 1e-8 * abs(gmm.lower_bound_)
    # the last entry is the log-likelihood of the returned parameters: sklearn's score
    assert abs(history[-1].item() - gmm.score(x.numpy())) < 1e-8 * abs(gmm.score(x.numpy()))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_fit_em_stops_at_tol_like_sklearn(covariance_type):
    x, _ = blobs(seed=2, N=300, D=2, K=3)
    init = start(x, 3, covariance_type, seed=2)
    params, history = em.fit_em(x, init, n_iter=200, tol=1e-4)
    gmm = fit_sklearn(x, init, 200, tol=1e-4)
    assert gmm.converged_ and len(history) - 1 == gmm.n_iter_ < 200
    assert relative(params.means.numpy(), gmm.means_) < 1e-8
    assert relative(params.covariances.numpy(), gmm.covariances_) < 1e-8


def test_fit_em_in_row_blocks_equals_one_block(monkeypatch):
    """For large N the loop works through Φ in row blocks (the last one shorter): the sums must not change."""
    x, _ = blobs(seed=30, N=500, D=3, K=3)
    for covariance_type in TYPES:
        init = start(x, 3, covariance_type, seed=30)
        whole, h_whole = em.fit_em(x, init, n_iter=8, tol=0)
        monkeypatch.setattr(em, "_BLOCK_ROWS", 37)
        blocked, h_blocked = em.fit_em(x, init, n_iter=8, tol=0)
        monkeypatch.undo()
        torch.testing.assert_close(h_blocked, h_whole, rtol=1e-12, atol=0)
        torch.testing.assert_close(blocked.covariances, whole.covariances, rtol=1e-11, atol=1e-14)


def naive_em(x, weights, means, covariances, covariance_type, n_iter, reg_covar):
    """EM with explicit loops over points and components and scipy's density (covariances as full matrices)."""
    x = np.asarray(x, dtype=np.float64)
    N, D = x.shape
    K = len(weights)
    history = []
    for _ in range(n_iter):
        dens = np.zeros((N, K))
        for n in range(N):
            for k in range(K):
                dens[n, k] = weights[k] * scipy.stats.multivariate_normal(means[k], covariances[k]).pdf(x[n])
        history.append(np.mean(np.log(dens.sum(1))))
        resp = dens / dens.sum(1, keepdims=True)
        new_w, new_m, new_c = [], [], []
        for k in range(K):
            nk = sum(resp[n, k] for n in range(N))
            mu = sum(resp[n, k] * x[n] for n in range(N)) / nk
            scatter = sum(resp[n, k] * np.outer(x[n] - mu, x[n] - mu) for n in range(N)) / nk
            if covariance_type == "full":
                cov = scatter + reg_covar * np.eye(D)
            elif covariance_type == "diag":
                cov = np.diag(np.diag(scatter) + reg_covar)
            else:  # one variance: the mean squared distance over D coordinates
                cov = (np.trace(scatter) / D + reg_covar) * np.eye(D)
            new_w.append(nk / N)
            new_m.append(mu)
            new_c.append(cov)
        weights, means, covariances = np.array(new_w), np.array(new_m), np.array(new_c)
    return weights, means, covariances, np.array(history)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_fit_em_matches_a_naive_scipy_em(covariance_type):
    x, _ = blobs(seed=3, N=30, D=2, K=3, spread=2.0)
    init = start(x, 3, covariance_type, seed=3)
    params, history = em.fit_em(x, init, n_iter=4, tol=0, reg_covar=1e-3)
    w, m, c, h = naive_em(x, init.weights.numpy(), init.means.numpy(), init.full_covariances().numpy(),
                          covariance_type, 4, 1e-3)
    np.testing.assert_allclose(params.weights.numpy(), w, rtol=1e-9)
    np.testing.assert_allclose(params.means.numpy(), m, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(params.full_covariances().numpy(), c, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(history[:-1].numpy(), h, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# the pieces: log densities, E-step, ELBO, M-step
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", TYPES)
def test_log_joint_and_e_step_match_scipy(covariance_type):
    params = random_params(4, K=3, D=2, covariance_type=covariance_type)
    x = 3 * torch.randn(2, 5, 2, generator=manual_seed(5), dtype=f64)
    expected = np.stack([np.log(params.weights[k].item())
                         + scipy.stats.multivariate_normal(params.means[k].numpy(),
                                                           params.full_covariances()[k].numpy()).logpdf(x.numpy())
                         for k in range(3)], axis=-1)
    joint = em.log_joint(x, params)
    assert joint.shape == (2, 5, 3)
    np.testing.assert_allclose(joint.numpy(), expected, rtol=1e-11)
    log_resp, log_lik = em.e_step(x, params)
    np.testing.assert_allclose(log_lik.numpy(), scipy.special.logsumexp(expected, axis=-1), rtol=1e-11)
    np.testing.assert_allclose(log_resp.exp().sum(-1).numpy(), 1.0, rtol=1e-12)
    torch.testing.assert_close(em.log_likelihood(x, params), log_lik)


def test_diag_log_likelihood_agrees_with_chapter_1s_mixtures():
    params = random_params(6, K=4, D=3, covariance_type="diag")
    x = torch.randn(20, 3, generator=manual_seed(7), dtype=f64) * 3
    torch.testing.assert_close(em.log_likelihood(x, params),
                               mixtures.log_marginal(x, params.weights, params.means, params.covariances.log()))
    torch.testing.assert_close(em.e_step(x, params)[0].exp(),
                               mixtures.posterior(x, params.weights, params.means, params.covariances.log()))


def test_far_points_and_zero_weights_stay_finite():
    params = random_params(8, K=3, D=2, covariance_type="full")
    x = torch.tensor([[1e3, -1e3], [0.0, 0.0]], dtype=f64)
    log_resp, log_lik = em.e_step(x, params)
    assert torch.isfinite(log_lik).all() and torch.allclose(log_resp.exp().sum(-1), torch.ones(2, dtype=f64))
    zero = em.GaussianMixtureParams.from_covariances(torch.tensor([0.5, 0.5, 0.0], dtype=f64), params.means,
                                                     params.covariances, "full")
    joint = em.log_joint(x, zero)
    assert torch.isinf(joint[:, 2]).all() and torch.isfinite(joint[:, :2]).all()
    q = torch.tensor([0.4, 0.6, 0.0], dtype=f64)
    assert torch.isfinite(em.elbo(x, q, zero)).all()


def test_elbo_is_log_likelihood_minus_kl():
    params = random_params(9, K=4, D=3, covariance_type="full")
    g = manual_seed(10)
    x = torch.randn(30, 3, generator=g, dtype=f64)
    q = torch.softmax(2 * torch.randn(30, 4, generator=g, dtype=f64), -1)
    log_resp, log_lik = em.e_step(x, params)
    torch.testing.assert_close(em.elbo(x, q, params), log_lik - categorical_kl(q, log_resp.exp()))
    torch.testing.assert_close(em.elbo(x, log_resp.exp(), params), log_lik)


def test_elbo_gradient_at_the_posterior_is_the_log_likelihood_gradient():
    """After an E-step, ∇_θ ELBO(r, θ) = ∇_θ log p(x; θ) at θ_t (q held fixed): EM climbs the likelihood."""
    base = random_params(11, K=3, D=2, covariance_type="full")
    x = torch.randn(25, 2, generator=manual_seed(12), dtype=f64) * 2
    leaves = [t.clone().requires_grad_(True) for t in (base.weights, base.means, base.covariances)]
    params = em.GaussianMixtureParams.from_covariances(*leaves, "full")
    r = em.e_step(x, params)[0].exp().detach()
    grads_elbo = torch.autograd.grad(em.elbo(x, r, params).sum(), leaves, retain_graph=True)  # params' factor is shared
    grads_lik = torch.autograd.grad(em.log_likelihood(x, params).sum(), leaves, retain_graph=True)
    for a, b in zip(grads_elbo, grads_lik):
        torch.testing.assert_close(a, b)
    # with another q the gradients differ
    q = torch.full_like(r, 1 / 3)
    other = torch.autograd.grad(em.elbo(x, q, params).sum(), leaves)
    assert not torch.allclose(other[1], grads_lik[1])


@pytest.mark.parametrize("covariance_type", TYPES)
def test_gradcheck_log_likelihood(covariance_type):
    base = random_params(13, K=2, D=2, covariance_type=covariance_type)
    x = torch.randn(4, 2, generator=manual_seed(14), dtype=f64).requires_grad_(True)
    means = base.means.clone().requires_grad_(True)
    cov = base.covariances.clone().requires_grad_(True)

    def f(xx, m, c):
        if covariance_type == "full":
            c = 0.5 * (c + c.transpose(-1, -2))   # gradcheck perturbs one entry at a time
        return em.log_likelihood(xx, em.GaussianMixtureParams.from_covariances(base.weights, m, c, covariance_type))

    assert torch.autograd.gradcheck(f, (x, means, cov))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_m_step_matches_the_formulas(covariance_type):
    x, _ = blobs(seed=15, N=50, D=3, K=2)
    resp = torch.softmax(torch.randn(50, 2, generator=manual_seed(16), dtype=f64), -1)
    params = em.m_step(x, resp, covariance_type, reg_covar=0.01)
    X, R = x.numpy(), resp.numpy()
    nk = R.sum(0)
    mu = (R.T @ X) / nk[:, None]
    np.testing.assert_allclose(params.weights.numpy(), nk / 50, rtol=1e-12)
    np.testing.assert_allclose(params.means.numpy(), mu, rtol=1e-11)
    for k in range(2):
        diff = X - mu[k]
        scatter = (R[:, k, None] * diff).T @ diff / nk[k]
        expected = {"full": scatter + 0.01 * np.eye(3), "diag": np.diag(scatter) + 0.01,
                    "spherical": np.sum(R[:, k] * (diff ** 2).sum(1)) / (3 * nk[k]) + 0.01}[covariance_type]
        np.testing.assert_allclose(params.covariances[k].numpy(), expected, rtol=1e-10)


def test_m_step_with_hard_assignments_gives_cluster_statistics():
    x, z = blobs(seed=17, N=90, D=2, K=3)
    params = em.m_step(x, torch.nn.functional.one_hot(z, 3).to(f64), "full", reg_covar=0.0)
    for k in range(3):
        xs = x[z == k]
        torch.testing.assert_close(params.means[k], xs.mean(0))
        torch.testing.assert_close(params.covariances[k], torch.cov(xs.T, correction=0))


# --------------------------------------------------------------------------------------------
# EM's invariants: monotone likelihood, the variance floor
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("seed", range(8))
def test_em_never_lowers_the_log_likelihood(covariance_type, seed):
    x, _ = blobs(seed=100 + seed, N=200, D=2, K=4, spread=2.0)
    init = random_params(200 + seed, K=4, D=2, covariance_type=covariance_type)
    _, history = em.fit_em(x, init, n_iter=30, tol=0)
    steps = history.diff()
    assert bool((steps >= -1e-12 * history.abs().max()).all()), steps.min()
    _, from_kmeans = em.fit_em(x, 4, covariance_type=covariance_type, n_iter=15, tol=0, generator=manual_seed(seed))
    assert bool((from_kmeans.diff() >= -1e-12 * from_kmeans.abs().max()).all())


@pytest.mark.parametrize("covariance_type", TYPES)
def test_variance_floor_keeps_a_component_on_one_outlier_finite(covariance_type):
    x, _ = blobs(seed=18, N=100, D=2, K=2)
    outlier = torch.tensor([[40.0, -40.0]], dtype=f64)
    x = torch.cat([x, outlier])
    init = random_params(19, K=3, D=2, covariance_type=covariance_type)
    means = init.means.clone()
    means[2] = outlier[0]
    tiny = init.covariances.clone()
    tiny[2] = tiny[2] * 1e-2
    init = em.GaussianMixtureParams.from_covariances(init.weights, means, tiny, covariance_type)
    params, history = em.fit_em(x, init, n_iter=20, tol=0, reg_covar=1e-4)
    assert torch.isfinite(history).all() and torch.isfinite(params.precisions_cholesky).all()
    # the component collapsed onto the outlier: its variance is the floor, its weight 1/N
    torch.testing.assert_close(params.means[2], outlier[0])
    variances = torch.diagonal(params.full_covariances()[2])
    torch.testing.assert_close(variances, torch.full_like(variances, 1e-4), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(params.weights[2], torch.tensor(1 / 101, dtype=f64))
    # the same fit from scikit-learn
    gmm = fit_sklearn(x, init, 20, reg_covar=1e-4)
    assert relative(params.covariances.numpy(), gmm.covariances_) < 1e-7
    # a smaller floor, a higher likelihood: the likelihood is unbounded without it
    _, lower_floor = em.fit_em(x, init, n_iter=20, tol=0, reg_covar=1e-8)
    assert lower_floor[-1] > history[-1] + 0.5 * 2 * math.log(100) / 101


def test_without_a_floor_a_collapsed_full_covariance_is_an_error():
    x, _ = blobs(seed=20, N=20, D=2, K=2)
    resp = torch.zeros(20, 2, dtype=f64)
    resp[0, 1] = 1.0
    resp[1:, 0] = 1.0
    with pytest.raises(ValueError, match=r"component\(s\) \[1\] is not positive definite with reg_covar=0"):
        em.m_step(x, resp, "full", reg_covar=0.0)
    params = em.m_step(x, resp, "full", reg_covar=1e-6)
    torch.testing.assert_close(params.covariances[1], 1e-6 * torch.eye(2, dtype=f64), atol=1e-12, rtol=1e-6)


def test_fit_em_from_k_is_reproducible_and_its_best_start_finds_the_blobs():
    x, z = blobs(seed=21, N=600, D=2, K=3, spread=6.0)
    a, ha = em.fit_em(x, 3, n_iter=50, generator=manual_seed(0))
    b, hb = em.fit_em(x, 3, n_iter=50, generator=manual_seed(0))
    assert torch.equal(a.means, b.means) and torch.equal(ha, hb)
    # some k-means++ starts end in a bad local optimum (two components on one blob); the best of 5 does not
    truth = em.m_step(x, torch.nn.functional.one_hot(z, 3).to(f64))
    finals = [em.fit_em(x, 3, n_iter=50, generator=manual_seed(s))[1][-1] for s in range(5)]
    best = max(range(5), key=lambda s: finals[s])
    assert abs(finals[best] - em.log_likelihood(x, truth).mean()) < 1e-3
    labels = em.e_step(x, em.fit_em(x, 3, n_iter=50, generator=manual_seed(best))[0])[0].argmax(-1)
    assert len({(int(t), int(l)) for t, l in zip(z, labels)}) == 3   # each blob is one component


# --------------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------------


def test_kmeans_matches_sklearn_from_the_same_centres():
    x, _ = blobs(seed=22, N=500, D=3, K=5, spread=3.0)
    init = x[:5].clone()
    centres, labels, inertia = em.kmeans(x, init, n_iter=300)
    km = KMeans(n_clusters=5, init=init.numpy(), n_init=1, algorithm="lloyd", tol=0.0, max_iter=300).fit(x.numpy())
    np.testing.assert_allclose(centres.numpy(), km.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert np.array_equal(labels.numpy(), km.labels_)
    assert abs(inertia[-1].item() - km.inertia_) < 1e-9 * km.inertia_
    assert len(inertia) == km.n_iter_   # sklearn counts the assignment that repeats as an iteration
    assert bool((inertia.diff() <= 1e-9 * inertia[0]).all())   # Lloyd never raises the inertia


def test_kmeans_plusplus_and_reproducibility():
    x, _ = blobs(seed=23, N=300, D=2, K=4, spread=5.0)
    c1 = em.kmeans_plusplus(x, 4, generator=manual_seed(1))
    c2 = em.kmeans_plusplus(x, 4, generator=manual_seed(1))
    assert torch.equal(c1, c2) and c1.shape == (4, 2)
    # the centres are distinct rows of x
    assert all(bool((x == c).all(-1).any()) for c in c1) and len({tuple(c.tolist()) for c in c1}) == 4
    a = em.kmeans(x, 4, generator=manual_seed(2))
    b = em.kmeans(x, 4, generator=manual_seed(2))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    # the returned labels are the nearest returned centre, and inertia[-1] their inertia
    d = torch.cdist(x, a[0]) ** 2
    assert torch.equal(d.argmin(-1), a[1])
    torch.testing.assert_close(a[2][-1], d.min(-1).values.sum())


def test_kmeans_is_em_with_hard_assignments():
    """A k-means step = an M-step with one-hot responsibilities (the means)."""
    x, _ = blobs(seed=24, N=120, D=2, K=3)
    init = x[:3].clone()
    centres, labels, _ = em.kmeans(x, init, n_iter=1)
    first_labels = torch.cdist(x, init).argmin(-1)
    params = em.m_step(x, torch.nn.functional.one_hot(first_labels, 3).to(f64), "spherical")
    torch.testing.assert_close(centres, params.means)


# --------------------------------------------------------------------------------------------
# PCA and probabilistic PCA
# --------------------------------------------------------------------------------------------


def correlated(seed=25, N=400, D=5, dtype=f64):
    g = manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=f64) * torch.linspace(2.0, 0.2, D, dtype=f64)
    return (torch.randn(N, D, generator=g, dtype=f64) @ A.T + torch.randn(D, generator=g, dtype=f64)).to(dtype)


def test_pca_matches_sklearn():
    x = correlated()
    N = x.shape[0]
    mean, components, eigenvalues = em.pca(x, 3)
    sk = PCA(n_components=3).fit(x.numpy())
    signs = np.sign(np.sum(components.numpy() * sk.components_, axis=1))
    np.testing.assert_allclose(components.numpy() * signs[:, None], sk.components_, atol=1e-10)
    np.testing.assert_allclose(eigenvalues[:3].numpy() * N / (N - 1), sk.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(mean.numpy(), sk.mean_, rtol=1e-12)
    np.testing.assert_allclose(eigenvalues.numpy(), np.linalg.eigvalsh(np.cov(x.numpy().T, bias=True))[::-1],
                               rtol=1e-10)
    torch.testing.assert_close(components @ components.T, torch.eye(3, dtype=f64))


@pytest.mark.parametrize("K", [1, 2, 4, 5])
def test_pca_reconstruction_error_is_the_sum_of_discarded_eigenvalues(K):
    x = correlated()
    mean, components, eigenvalues = em.pca(x, K)
    error = ((x - em.pca_reconstruct(x, mean, components)) ** 2).sum(-1).mean()
    torch.testing.assert_close(error, eigenvalues[K:].sum(), atol=1e-10, rtol=1e-10)
    # and no other rank-K projection does better: a random orthonormal basis
    Q, _ = torch.linalg.qr(torch.randn(x.shape[1], K, generator=manual_seed(K), dtype=f64))
    other = ((x - em.pca_reconstruct(x, mean, Q.T)) ** 2).sum(-1).mean()
    assert other >= error - 1e-12


def test_ppca_matches_the_closed_form_and_sklearn():
    x = correlated()
    N, D = x.shape
    mean, W, sigma2 = em.ppca(x, 2)
    evals, evecs = np.linalg.eigh(np.cov(x.numpy().T, bias=True))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    np.testing.assert_allclose(sigma2.item(), evals[2:].mean(), rtol=1e-10)
    # WWᵀ = U_2 (Λ_2 − σ² I) U_2ᵀ, which does not depend on the rotation R or the signs
    expected = evecs[:, :2] @ np.diag(evals[:2] - evals[2:].mean()) @ evecs[:, :2].T
    np.testing.assert_allclose((W @ W.T).numpy(), expected, atol=1e-10)
    sk = PCA(n_components=2).fit(x.numpy())
    np.testing.assert_allclose(sigma2.item() * N / (N - 1), sk.noise_variance_, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ppca_refuses_data_in_a_k_dimensional_subspace(dtype):
    g = torch.Generator().manual_seed(5)
    basis = torch.randn(2, 5, generator=g, dtype=torch.float64)
    flat = (torch.randn(50, 2, generator=g, dtype=torch.float64) @ basis + 3.0).to(dtype)  # rank 2 after centring
    with pytest.raises(ValueError, match="subspace of dimension at most latent_dim=2"):
        em.ppca(flat, 2)
    with pytest.raises(ValueError, match="latent_dim=3"):
        em.ppca(torch.randn(4, 6, generator=g, dtype=torch.float64).to(dtype), 3)   # N = 4 points span 3 dimensions
    mean, W, sigma2 = em.ppca(flat, 1)   # one direction of variance is discarded: fine
    assert float(sigma2) > 0


def test_ppca_log_likelihood_matches_scipy_and_linear_gaussian():
    x = correlated(N=50)
    mean, W, sigma2 = em.ppca(x, 2)
    cov = (W @ W.T).numpy() + sigma2.item() * np.eye(5)
    got = em.ppca_log_likelihood(x, mean, W, sigma2)
    np.testing.assert_allclose(got.numpy(), scipy.stats.multivariate_normal(mean.numpy(), cov).logpdf(x.numpy()),
                               rtol=1e-11)
    torch.testing.assert_close(got, linear_gaussian.log_marginal(x, W, mean, sigma2))


def test_ppca_maximum_likelihood_is_a_maximum():
    x = correlated(N=300)
    mean, W, sigma2 = em.ppca(x, 2)
    best = em.ppca_log_likelihood(x, mean, W, sigma2).mean()
    g = manual_seed(26)
    for _ in range(5):
        dW = 0.05 * torch.randn(W.shape, generator=g, dtype=f64)
        assert em.ppca_log_likelihood(x, mean, W + dW, sigma2).mean() < best
        dm = 0.05 * torch.randn(mean.shape, generator=g, dtype=f64)
        assert em.ppca_log_likelihood(x, mean + dm, W, sigma2).mean() < best
    for factor in (0.9, 1.1):
        assert em.ppca_log_likelihood(x, mean, W, sigma2 * factor).mean() < best
    # a rotation of the latent space changes nothing
    R, _ = torch.linalg.qr(torch.randn(2, 2, generator=g, dtype=f64))
    torch.testing.assert_close(em.ppca_log_likelihood(x, mean, W @ R, sigma2).mean(), best)


def test_ppca_posterior_mean():
    x = correlated(N=40)
    mean, W, sigma2 = em.ppca(x, 3)
    z = em.ppca_posterior_mean(x, mean, W, sigma2)
    Wn, s2 = W.numpy(), sigma2.item()
    M = Wn.T @ Wn + s2 * np.eye(3)
    np.testing.assert_allclose(z.numpy(), np.linalg.solve(M, Wn.T @ (x.numpy() - mean.numpy()).T).T, rtol=1e-10)
    torch.testing.assert_close(z, linear_gaussian.posterior(x, W, mean, sigma2)[0])
    # σ² → 0: PCA's projection (WᵀW)⁻¹Wᵀ(x − μ)
    small = em.ppca_posterior_mean(x, mean, W, torch.tensor(1e-12, dtype=f64))
    torch.testing.assert_close(small, torch.linalg.lstsq(W, (x - mean).T).solution.T)


# --------------------------------------------------------------------------------------------
# dtypes, devices, bad inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", TYPES)
def test_float32_follows_float64(covariance_type):
    x, _ = blobs(seed=27, N=300, D=2, K=3)
    init = start(x, 3, covariance_type, seed=27)
    p64, h64 = em.fit_em(x, init, n_iter=10, tol=0)
    p32, h32 = em.fit_em(x.float(), init, n_iter=10, tol=0)
    assert p32.means.dtype == torch.float32 and h32.dtype == torch.float32
    for a, b in [(p32.weights, p64.weights), (p32.means, p64.means), (p32.covariances, p64.covariances), (h32, h64)]:
        assert relative(a.numpy(), b.numpy()) < 1e-4
    x32 = x[:10].float()
    params32 = random_params(28, covariance_type=covariance_type, dtype=torch.float32)
    params64 = random_params(28, covariance_type=covariance_type)
    torch.testing.assert_close(em.log_likelihood(x32, params32).double(), em.log_likelihood(x[:10], params64),
                               rtol=1e-5, atol=1e-5)
    mean32, W32, s32 = em.ppca(correlated(dtype=torch.float32), 2)
    mean64, W64, s64 = em.ppca(correlated(), 2)
    assert W32.dtype == torch.float32
    torch.testing.assert_close((W32 @ W32.T).double(), W64 @ W64.T, rtol=1e-4, atol=1e-4)


def good_args():
    return dict(weights=[0.4, 0.6], means=[[0.0, 0.0], [1.0, 1.0]], covariances=[[[1.0, 0.0], [0.0, 1.0]]] * 2,
                covariance_type="full")


BAD_PARAMS = [
    (dict(weights=[0.5, 0.6]), ValueError, "weights must sum to 1"),
    (dict(weights=[1.0]), ValueError, r"weights must have shape \(2,\)"),
    (dict(means=[0.0, 1.0]), ValueError, r"means must have shape \(K, D\)"),
    (dict(covariances=[[1.0, 1.0], [1.0, 1.0]]), ValueError,
     r"covariances must have shape \(2, 2, 2\) for covariance_type='full'"),
    (dict(covariances=[[[1.0, 2.0], [0.0, 1.0]]] * 2), ValueError, "covariances must be symmetric"),
    (dict(covariances=[[[1.0, 2.0], [2.0, 1.0]]] * 2), ValueError, "covariances must be symmetric positive definite"),
    (dict(covariances=[[1.0, -1.0], [1.0, 1.0]], covariance_type="diag"), ValueError,
     "covariances must be a positive variance"),
    (dict(covariances=[1.0, 1.0], covariance_type="tied"), ValueError,
     "covariance_type must be one of 'spherical', 'diag', 'full'; got 'tied'"),
    (dict(means=torch.zeros(2, 2, dtype=torch.int64)), TypeError, "means must be a floating-point tensor"),
]


@pytest.mark.parametrize("override, error, match", BAD_PARAMS)
def test_bad_parameters(override, error, match):
    args = good_args()
    args.update(override)
    with pytest.raises(error, match=match):
        em.GaussianMixtureParams.from_covariances(**args)


def _params():
    return em.GaussianMixtureParams.from_covariances(**good_args())


Z = torch.zeros(5, 2, dtype=f64)
P = "PARAMS"   # replaced by good parameters when the row runs

BAD_CALLS = [  # (function, args, kwargs, error, match)
    (em.log_joint, ([[0.0, 0.0, 0.0]], P), {}, ValueError, r"x must have shape \(\.\.\., 2\)"),
    (em.log_joint, ([[0.0, 0.0]], {"weights": [1.0]}), {}, TypeError, "params must be a GaussianMixtureParams"),
    (em.log_likelihood, (torch.zeros(2, 2, dtype=torch.int64), P), {}, TypeError, "x must be a floating-point tensor"),
    (em.e_step, ("x", P), {}, TypeError, "x must be a tensor"),
    (em.elbo, ([[0.0, 0.0]], [0.5, 0.6], P), {}, ValueError, "q must sum to 1"),
    (em.elbo, ([[0.0, 0.0]], [0.2, 0.3, 0.5], P), {}, ValueError, r"q must have shape \(\.\.\., 2\)"),
    (em.m_step, (torch.zeros(3, 2, dtype=f64), torch.ones(2, 2, dtype=f64)), {}, ValueError,
     r"resp must have shape \(3, K\)"),
    (em.m_step, (Z[:2], -torch.ones(2, 2, dtype=f64)), {}, ValueError, "resp must be finite and non-negative"),
    (em.m_step, (Z[:2], torch.ones(2, 2, dtype=f64)), {"reg_covar": -1.0}, ValueError,
     "reg_covar must be a finite non-negative number; got -1.0"),
    (em.m_step, (Z[:2], torch.ones(2, 2, dtype=f64), "tied"), {}, ValueError, "covariance_type must be one of"),
    (em.fit_em, (Z, 2.0), {}, TypeError, r"init must be a GaussianMixtureParams or a positive integer K; got 2\.0"),
    (em.fit_em, (Z, 6), {}, ValueError, "init asks for K=6 components but x has only 5"),
    (em.fit_em, (torch.zeros(5, 3, dtype=f64), P), {}, ValueError, r"x must have shape \(N, 2\)"),
    (em.fit_em, (Z, P), {"covariance_type": "diag"}, ValueError,
     "covariance_type='diag' differs from init's covariance_type 'full'"),
    (em.fit_em, (Z, P), {"n_iter": -1}, ValueError, "n_iter must be a non-negative integer; got -1"),
    (em.fit_em, (Z, P), {"tol": float("nan")}, ValueError, "tol must be a finite non-negative number; got nan"),
    (em.fit_em, (torch.zeros(5, dtype=f64), 2), {}, ValueError, r"x must have shape \(N, D\)"),
    (em.fit_em, (torch.tensor([[0.0, float("inf")]], dtype=f64), 1), {}, ValueError, "x must be finite"),
    (em.kmeans, (Z, torch.zeros(2, 3, dtype=f64)), {}, ValueError, r"init must have shape \(K, 2\)"),
    (em.kmeans, (Z, True), {}, TypeError, "init must be a positive integer; got True"),
    (em.kmeans, (Z, "k"), {}, TypeError, "init must be .K, D. initial centres or a positive integer K; got str"),
    (em.kmeans, (Z, 2), {"n_iter": 1.5}, TypeError, "n_iter must be a non-negative integer; got 1.5"),
    (em.kmeans_plusplus, (Z, 6), {}, ValueError, "k must be at most the number of points N=5; got 6"),
    (em.kmeans_plusplus, (Z, 0), {}, ValueError, "k must be a positive integer; got 0"),
    (em.pca, (Z, 3), {}, ValueError, r"latent_dim must be an integer in \[1, 2\] .* got 3"),
    (em.ppca, (Z, 2), {}, ValueError, r"latent_dim must be an integer in \[1, 1\] .* got 2"),
    (em.ppca_log_likelihood, (Z, torch.zeros(2, dtype=f64), torch.ones(2, 1, dtype=f64), 0.0), {}, ValueError,
     "sigma2 must be a positive variance"),
    (em.ppca_log_likelihood, (Z, torch.zeros(2, dtype=f64), torch.ones(2, 1, dtype=f64), [1.0, 1.0]), {}, ValueError,
     "sigma2 must be a scalar"),
    (em.ppca_posterior_mean, (Z, torch.zeros(3, dtype=f64), torch.ones(2, 1, dtype=f64), 1.0), {}, ValueError,
     r"mean must have shape \(2,\)"),
    (em.ppca_posterior_mean, (Z, torch.zeros(2, dtype=f64), torch.ones(2, dtype=f64), 1.0), {}, ValueError,
     r"W must have shape \(D, K\)"),
    (em.pca_reconstruct, (Z, torch.zeros(2, dtype=f64), torch.ones(2, dtype=f64)), {}, ValueError,
     r"components must have shape \(K, D\)"),
    (em.pca_reconstruct, (torch.zeros(5, 3, dtype=f64), torch.zeros(2, dtype=f64), torch.eye(2, dtype=f64)), {},
     ValueError, r"x must have shape \(\.\.\., 2\)"),
]


@pytest.mark.parametrize("fn, args, kwargs, error, match", BAD_CALLS,
                         ids=[f"{row[0].__name__}-{i}" for i, row in enumerate(BAD_CALLS)])
def test_bad_inputs(fn, args, kwargs, error, match):
    args = tuple(_params() if a is P else a for a in args)
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_every_public_function_has_bad_input_rows():
    public = {name for name in em.__all__ if callable(getattr(em, name))}
    assert {row[0].__name__ for row in BAD_CALLS} | {"GaussianMixtureParams"} == public


def test_the_benchmark_gives_sklearns_answer_on_a_small_problem():
    """benchmarks/em.py's same-answer check at N = 2000 (no time is asserted)."""
    from benchmarks import em as bench

    rows = bench.em_rows(n=2000, repeats=1)
    differences = [r for r in rows if "difference" in r.item]
    ratios = [r for r in rows if "fit_em / scikit-learn" in r.item]
    assert len(differences) == len(ratios) == 2 and all(r.error is None for r in rows)
    assert all(r.measured < bench.SAME_ANSWER_BUDGET for r in differences)
    assert all(r.measured > 0 and r.budget == pytest.approx(1 / 3) for r in ratios)


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("covariance_type", TYPES)
def test_cuda_matches_cpu(covariance_type):
    x, _ = blobs(seed=29, N=2000, D=3, K=4)
    init = start(x, 4, covariance_type, seed=29)
    cpu, h_cpu = em.fit_em(x, init, n_iter=20, tol=0)
    xg = x.cuda()
    init_g = em.GaussianMixtureParams.from_covariances(init.weights.cuda(), init.means.cuda(),
                                                       init.covariances.cuda(), covariance_type)
    gpu, h_gpu = em.fit_em(xg, init_g, n_iter=20, tol=0)
    assert gpu.means.device.type == "cuda" and h_gpu.device.type == "cuda"
    pairs = [(gpu.weights, cpu.weights), (gpu.means, cpu.means), (gpu.covariances, cpu.covariances), (h_gpu, h_cpu)]
    for a, b in pairs:
        assert relative(a.cpu().numpy(), b.numpy()) < 1e-9
    c, labels, inertia = em.kmeans(xg, x[:4].cuda())
    c_cpu, labels_cpu, _ = em.kmeans(x, x[:4])
    torch.testing.assert_close(c.cpu(), c_cpu)
    assert torch.equal(labels.cpu(), labels_cpu) and inertia.device.type == "cuda"
    log_resp, log_lik = em.e_step(xg[:50], gpu)
    torch.testing.assert_close(log_resp.cpu(), em.e_step(x[:50], cpu)[0], rtol=1e-7, atol=1e-9)
    fit_k, _ = em.fit_em(xg, 4, n_iter=5, generator=torch.Generator(device="cuda").manual_seed(0))
    assert fit_k.means.device.type == "cuda"
    mean, W, sigma2 = em.ppca(xg, 2)
    torch.testing.assert_close(em.ppca_log_likelihood(xg, mean, W, sigma2).cpu(),
                               em.ppca_log_likelihood(x, *(t.cpu() for t in (mean, W, sigma2))))
