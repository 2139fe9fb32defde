"""The checks of Exercise 2 (coursework/ch02.py): the references they compare with agree with dgm.em,
scikit-learn and naive loops; right answers (several ways of writing them) pass both suites for a sweep of
seeds; each known slip fails with the promised diagnosis; the rule catches calls to dgm.em.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from conftest import expect_check_fails as _fails
from conftest import (expect_concepts_graded, expect_detached_answer_fails, expect_right_answer_passes,
                      expect_task_inventory)

from coursework import CheckFailed, check, run_check
from coursework import ch02
from coursework.ch02 import resp_derivation_start, resp_symbols
from dgm import em

SUITES = ("visible", "hidden")
SEEDS = range(8)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the references against independent values ------------------------------------------------------

def test_e_step_reference_matches_dgm_em_and_a_loop():
    g = _gen(1)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    w = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    mu = 2 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    var = 0.5 + torch.rand(4, generator=g, dtype=torch.float64)
    log_r, log_l = ch02.ref_e_step(x, w, mu, var)
    params = em.GaussianMixtureParams.from_covariances(w, mu, var, "spherical")
    want_r, want_l = em.e_step(x, params)
    torch.testing.assert_close(log_r, want_r, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(log_l, want_l, rtol=1e-10, atol=1e-10)
    from scipy.stats import multivariate_normal
    loop = np.array([[math.log(float(w[k])) + multivariate_normal(mu[k].numpy(), float(var[k]) * np.eye(3)).logpdf(
        x[n].numpy()) for k in range(4)] for n in range(30)])
    np.testing.assert_allclose(log_l.numpy(), np.logaddexp.reduce(loop, axis=1), rtol=1e-10)


def test_m_step_reference_matches_dgm_em():
    g = _gen(2)
    x = 3 * torch.randn(40, 3, generator=g, dtype=torch.float64)
    resp = torch.softmax(torch.randn(40, 4, generator=g, dtype=torch.float64), 1)
    w, mu, var = ch02.ref_m_step_spherical(x, resp, 1e-3)
    p = em.m_step(x, resp, "spherical", 1e-3)
    torch.testing.assert_close(w, p.weights, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mu, p.means, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(var, p.covariances, rtol=1e-10, atol=1e-10)


def test_kmeans_reference_matches_scikit_learn_one_iteration():
    from sklearn.cluster import KMeans

    g = _gen(3)
    x = torch.cat([torch.randn(30, 2, generator=g, dtype=torch.float64) + c for c in (0.0, 5.0, -5.0)])
    c0 = x[torch.randperm(90, generator=g)[:3]].clone()
    new, labels, inertia = ch02.ref_kmeans_step(x, c0)
    # inertia and labels of the given centres; scikit-learn's predict and score on the same centres
    km = KMeans(3, init=c0.numpy(), n_init=1, max_iter=1, algorithm="lloyd", tol=0).fit(x.numpy())
    d = ((x[:, None] - c0[None]) ** 2).sum(-1)
    assert torch.equal(labels, d.argmin(1))
    assert inertia.item() == pytest.approx(float(d.min(1).values.sum()), rel=1e-12)
    np.testing.assert_allclose(new.numpy(), km.cluster_centers_, rtol=1e-10)
    centres, _, history = em.kmeans(x, c0, n_iter=1)
    torch.testing.assert_close(new, centres)
    assert history[0].item() == pytest.approx(inertia.item(), rel=1e-12)


def test_ppca_reference_matches_dgm_em_and_scikit_learn():
    from sklearn.decomposition import PCA

    g = _gen(4)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    mean, W, s2 = ch02.ref_ppca(x, 2)
    m2, W2, s22 = em.ppca(x, 2)
    torch.testing.assert_close(mean, m2)
    torch.testing.assert_close(W @ W.T, W2 @ W2.T)
    torch.testing.assert_close(s2, s22)
    pca = PCA(2).fit(x.numpy())  # noise_variance_ divides by N - 1
    assert s2.item() == pytest.approx(pca.noise_variance_ * 199 / 200, rel=1e-10)


def test_derivation_target_is_the_responsibility():
    p = ch02.RESP_REPORT_POINT
    na = math.exp(-((p["x1"] - p["a1"]) ** 2 + (p["x2"] - p["a2"]) ** 2) / (2 * p["v"]))
    nb = math.exp(-((p["x1"] - p["b1"]) ** 2 + (p["x2"] - p["b2"]) ** 2) / (2 * p["v"]))
    assert ch02._resp_target(p) == pytest.approx(p["w"] * na / (p["w"] * na + (1 - p["w"]) * nb), rel=1e-12)


# --- right answers, written several ways, pass for a sweep of seeds ---------------------------------

def e_step_log_softmax(x, w, mu, var):
    D = x.shape[1]
    j = w.log() - D / 2 * torch.log(2 * math.pi * var) - ((x[:, None] - mu) ** 2).sum(-1) / (2 * var)
    return torch.log_softmax(j, 1), torch.logsumexp(j, 1)


def m_step_loop(x, r, reg):
    nk = r.sum(0)
    mu = (r[:, :, None] * x[:, None]).sum(0) / nk[:, None]
    var = torch.stack([(r[:, k] * ((x - mu[k]) ** 2).sum(1)).sum() / (nk[k] * x.shape[1])
                       for k in range(r.shape[1])]) + reg
    return nk / nk.sum(), mu, var


def kmeans_cdist(x, c):
    d = torch.cdist(x, c, compute_mode="donot_use_mm_for_euclid_dist")
    labels = d.argmin(1)
    new = c.clone()
    for k in range(c.shape[0]):
        mask = labels == k
        if mask.any():
            new[k] = x[mask].mean(0)
    return new, labels, (d.min(1).values ** 2).sum()


def ppca_svd(x, K):
    mu = x.mean(0)
    _, S, Vh = torch.linalg.svd(x - mu, full_matrices=False)
    ev = torch.cat([S ** 2 / x.shape[0], S.new_zeros(x.shape[1] - S.shape[0])])
    s2 = ev[K:].mean()
    rotation = torch.linalg.qr(torch.arange(1.0, K * K + 1, dtype=x.dtype).reshape(K, K) + torch.eye(K, dtype=x.dtype))[0]
    return mu, (Vh[:K].T * torch.sqrt(ev[:K] - s2)) @ rotation, s2   # any rotation R


CORRECT = {
    "gmm_e_step": [ch02.ref_e_step, e_step_log_softmax],
    "m_step_spherical": [ch02.ref_m_step_spherical, m_step_loop],
    "kmeans_step": [ch02.ref_kmeans_step, kmeans_cdist],
    "ppca_fit": [ch02.ref_ppca, ppca_svd],
}
CONCEPTS = {"concept_identical_init": "b", "concept_kmeans_limit": "a", "concept_em_monotone": "b",
            "concept_collapse": "c"}


def resp_steps():
    x1, x2, a1, a2, b1, b2, v, w = resp_symbols()
    sq_a = (x1 - a1) ** 2 + (x2 - a2) ** 2
    sq_b = (x1 - b1) ** 2 + (x2 - b2) ** 2
    return [resp_derivation_start(), 1 / (1 + (1 - w) / w * sp.exp((sq_a - sq_b) / (2 * v))),
            1 / (1 + sp.exp(sp.expand((sq_a - sq_b) / (2 * v)) + sp.log((1 - w) / w)))]


def test_every_chapter2_task_is_tested_here():
    expect_task_inventory("02-em", CORRECT, "resp_derivation_steps", CONCEPTS)


@pytest.mark.parametrize("task,index", [(t, i) for t in sorted(CORRECT) for i in range(2)])
def test_right_answers_pass_for_a_sweep_of_seeds(task, index, capsys):
    expect_right_answer_passes(task, CORRECT[task][index], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_passes(suite):
    check("resp_derivation_steps", resp_steps(), suite=suite)


def test_concept_checks():
    expect_concepts_graded(CONCEPTS)


# --- known slips, diagnosed -------------------------------------------------------------------------

def _e_step_with(log_norm_factor=None, square_var=False, weights=True, naive=False):
    def fn(x, w, mu, var):
        D = x.shape[1]
        v = var ** 2 if square_var else var
        sq = ((x[:, None] - mu) ** 2).sum(-1)
        if naive:
            dens = w * torch.exp(-sq / (2 * v)) / (2 * math.pi * v) ** (D / 2)
            return torch.log(dens / dens.sum(1, keepdim=True)), torch.log(dens.sum(1))
        j = (w.log() if weights else 0) - (D if log_norm_factor is None else log_norm_factor) / 2 \
            * torch.log(2 * math.pi * v) - sq / (2 * v)
        return j - torch.logsumexp(j, 1, keepdim=True), torch.logsumexp(j, 1)
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (_e_step_with(log_norm_factor=1), "instead of -\\(D/2\\)"),
    (_e_step_with(square_var=True), "standard deviations"),
    (_e_step_with(weights=False), "weights are left out"),
    (_e_step_with(naive=True), "logsumexp"),
])
def test_e_step_slips_are_diagnosed(wrong, match, suite):
    _fails("gmm_e_step", wrong, suite, match)


def test_e_step_returning_responsibilities_is_diagnosed():
    _fails("gmm_e_step", lambda *a: (ch02.ref_e_step(*a)[0].exp(), ch02.ref_e_step(*a)[1]), match="instead of their log")


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (lambda x, r, e: (r.sum(0) / len(x), r.T @ x / len(x), ch02.ref_m_step_spherical(x, r, e)[2]), "divide by N instead"),
    (lambda x, r, e: (*ch02.ref_m_step_spherical(x, r, e)[:2],
                      (ch02.ref_m_step_spherical(x, r, 0.0)[2]) * x.shape[1] + e), "1/D is missing"),
    (lambda x, r, e: (r.sum(0), *ch02.ref_m_step_spherical(x, r, e)[1:]), "not divided by N"),
])
def test_m_step_slips_are_diagnosed(wrong, match, suite):
    _fails("m_step_spherical", wrong, suite, match)


def test_m_step_expanded_second_moment_fails_far_from_the_origin():
    def expanded(x, r, e):
        nk = r.sum(0)
        mu = r.T @ x / nk[:, None]
        return nk / len(x), mu, ((r.T @ (x * x)).sum(1) / nk - (mu * mu).sum(1)) / x.shape[1] + e
    check("m_step_spherical", expanded)   # the visible examples do not see it...
    for seed in SEEDS:                     # ...the hidden suite does, for every seed, and says why
        with pytest.raises(Exception, match="cancels catastrophically"):
            run_check("m_step_spherical", expanded, suite="hidden", seed=seed)


@pytest.mark.parametrize("suite", SUITES)
def test_kmeans_empty_cluster_nan_is_caught(suite):
    def nan_centre(x, c):
        new, labels, inertia = ch02.ref_kmeans_step(x, c)
        onehot = F.one_hot(labels, c.shape[0]).to(x.dtype)
        return onehot.T @ x / onehot.sum(0)[:, None], labels, inertia
    _fails("kmeans_step", nan_centre, suite, "empty cluster|NaN")


@pytest.mark.parametrize("suite", SUITES)
def test_kmeans_slips_are_diagnosed(suite):
    def not_squared(x, c):
        new, labels, _ = ch02.ref_kmeans_step(x, c)
        return new, labels, ((x[:, None] - c[None]) ** 2).sum(-1).min(1).values.sqrt().sum()
    _fails("kmeans_step", not_squared, suite, "instead of squared distances")

    def argmax(x, c):
        new, _, inertia = ch02.ref_kmeans_step(x, c)
        return new, ((x[:, None] - c[None]) ** 2).sum(-1).argmax(1), inertia
    _fails("kmeans_step", argmax, suite, "labels")

    def int32_labels(x, c):
        new, labels, inertia = ch02.ref_kmeans_step(x, c)
        return new, labels.to(torch.int32), inertia
    _fails("kmeans_step", int32_labels, suite, "int64")


def test_kmeans_with_expanded_distances_fails_far_from_the_origin():
    def expanded(x, c):
        d = torch.cdist(x, c)   # expands ‖x‖² − 2x·c + ‖c‖² for more than 25 points
        labels = d.argmin(1)
        new, _, _ = ch02.ref_kmeans_step(x, c)
        return new, labels, (d.min(1).values ** 2).sum()
    check("kmeans_step", expanded)
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="cancels catastrophically.*cdist"):
            run_check("kmeans_step", expanded, suite="hidden", seed=seed)


def test_ppca_with_an_uncentred_second_moment_fails_far_from_the_origin():
    def uncentred(x, K):
        mu = x.mean(0)
        ev, U = torch.linalg.eigh(x.T @ x / len(x) - mu[:, None] * mu[None])
        ev, U = ev.flip(0), U.flip(1)
        s2 = ev[K:].mean()
        return mu, U[:, :K] * torch.sqrt((ev[:K] - s2).clamp(min=0)), s2
    check("ppca_fit", uncentred)
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="cancels catastrophically"):
            run_check("ppca_fit", uncentred, suite="hidden", seed=seed)


def test_kmeans_ties_go_to_the_lowest_index():
    def last_index(x, c):
        d = ((x[:, None] - c[None]) ** 2).sum(-1)
        labels = c.shape[0] - 1 - d.flip(1).argmin(1)
        new, _, inertia = ch02.ref_kmeans_step(x, c)
        return new, labels, inertia
    _fails("kmeans_step", last_index, "visible", "labels")
    for seed in SEEDS:
        with pytest.raises(Exception, match="halfway|labels"):
            run_check("kmeans_step", last_index, suite="hidden", seed=seed)


def _ppca_with(ascending=False, unbiased=False, subtract=True, s2_sum=False):
    def fn(x, K):
        N = x.shape[0]
        mu = x.mean(0)
        S = (x - mu).T @ (x - mu) / (N - 1 if unbiased else N)
        ev, U = torch.linalg.eigh(S)
        if not ascending:
            ev, U = ev.flip(0), U.flip(1)
        s2 = ev[K:].sum() if s2_sum else ev[K:].mean()
        return mu, U[:, :K] * torch.sqrt((ev[:K] - (s2 if subtract else 0)).clamp(min=0)), s2
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (_ppca_with(ascending=True), "ascending order"),
    (_ppca_with(unbiased=True), "N − 1"),
    (_ppca_with(subtract=False), "must be subtracted"),
    (_ppca_with(s2_sum=True), "sum of the discarded"),
])
def test_ppca_slips_are_diagnosed(wrong, match, suite):
    _fails("ppca_fit", wrong, suite, match)


def test_ppca_w_with_wrong_shape_is_refused():
    _fails("ppca_fit", lambda x, K: (lambda m, W, s: (m, W.T, s))(*ch02.ref_ppca(x, K)), match="W must be a")


@pytest.mark.parametrize("task", sorted(CORRECT))
def test_detached_answers_fail_the_hidden_gradient_check(task):
    expect_detached_answer_fails(task, CORRECT[task][0], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_must_end_in_the_logistic_form(suite):
    steps = resp_steps()
    x1, x2, a1, a2, b1, b2, v, w = resp_symbols()
    unexpanded = 1 / (1 + (1 - w) / w * sp.exp(-((x1 - b1) ** 2 + (x2 - b2) ** 2) / (2 * v))
                      / sp.exp(-((x1 - a1) ** 2 + (x2 - a2) ** 2) / (2 * v)))
    _fails("resp_derivation_steps", [steps[0], steps[1], unexpanded], suite, "x1², x2²|logistic|1/\\(1")
    _fails("resp_derivation_steps", [steps[0], steps[2]], suite, "at least 3")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_with_a_wrong_step_names_it(suite):
    steps = resp_steps()
    x1, x2, a1, a2, b1, b2, v, w = resp_symbols()
    wrong = 1 / (1 + sp.exp(sp.expand(((x1 - a1) ** 2 + (x2 - a2) ** 2 - (x1 - b1) ** 2 - (x2 - b2) ** 2) / (2 * v))))
    _fails("resp_derivation_steps", [steps[0], steps[1], wrong], suite, "step 2 is not equal to step 1")


# --- the rule against calling dgm.em --------------------------------------------------------------------

@pytest.mark.forbid_rule
def test_calling_dgm_em_fails():
    def via_library(x, w, mu, var):
        return em.e_step(x, em.GaussianMixtureParams.from_covariances(w, mu, var, "spherical"))
    _fails("gmm_e_step", via_library, match="dgm.em")
