"""The checks of Exercise 3 (coursework/ch03.py): the references they compare with agree with dgm.vae,
torch.distributions and Monte Carlo; right answers (two ways of writing each) pass both suites for a sweep
of seeds; each known slip fails with the promised diagnosis; detached answers fail; the rule catches calls to
dgm.vae.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from conftest import expect_check_fails as _fails
from conftest import (expect_concepts_graded, expect_detached_answer_fails, expect_right_answer_passes,
                      expect_task_inventory)
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from coursework import check
from coursework import ch03
from coursework.ch03 import score_derivation_start, score_symbols
from dgm import vae

SUITES = ("visible", "hidden")
SEEDS = range(8)
F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _q(seed, batch=(5,), L=3):
    g = _gen(seed)
    return torch.randn(*batch, L, generator=g, dtype=F64), -2 + 2.5 * torch.rand(*batch, L, generator=g, dtype=F64)


# --- the references against independent values ------------------------------------------------------

def test_kl_reference_against_torch_distributions_and_dgm():
    for seed in SEEDS:
        mean, logvar = _q(seed)
        q = Independent(Normal(mean, torch.exp(0.5 * logvar)), 1)
        p = Independent(Normal(torch.zeros_like(mean), torch.ones_like(mean)), 1)
        torch.testing.assert_close(ch03.ref_gaussian_kl(mean, logvar), kl_divergence(q, p), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ch03.ref_gaussian_kl(mean, logvar), vae.gaussian_kl_standard(mean, logvar),
                                   rtol=1e-12, atol=1e-12)


def test_reparameterize_reference_matches_dgm_and_has_the_right_law():
    mean, logvar = _q(1, batch=(2,), L=2)
    eps = torch.randn(200_000, 2, 2, generator=_gen(2), dtype=F64)
    z = ch03.ref_reparameterize(mean, logvar, eps)
    torch.testing.assert_close(z, vae.reparameterize(mean, logvar, noise=eps, n_samples=200_000), rtol=1e-12, atol=1e-12)
    n = z.shape[0]
    std = torch.exp(0.5 * logvar)
    assert bool(((z.mean(0) - mean).abs() < 5 * std / math.sqrt(n)).all())          # mean within 5 SE
    var_se = std ** 2 * math.sqrt(2 / (n - 1))
    assert bool(((z.var(0) - std ** 2).abs() < 5 * var_se).all())                    # variance within 5 SE


def test_bernoulli_reference_against_torch_distributions_and_dgm():
    g = _gen(3)
    logits = 4 * torch.randn(6, 10, generator=g, dtype=F64)
    x = (torch.rand(6, 10, generator=g, dtype=F64) > 0.5).to(F64)
    want = Independent(Bernoulli(logits=logits), 1).log_prob(x)
    torch.testing.assert_close(ch03.ref_bernoulli(x, logits), want, rtol=1e-12, atol=1e-12)
    grey = torch.rand(6, 10, generator=g, dtype=F64)
    torch.testing.assert_close(ch03.ref_bernoulli(grey, logits), -F.binary_cross_entropy_with_logits(
        logits, grey, reduction="none").sum(-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ch03.ref_bernoulli(grey, logits), vae.bernoulli_log_likelihood(grey, logits),
                               rtol=1e-12, atol=1e-12)
    big = torch.tensor([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=F64)
    torch.testing.assert_close(ch03.ref_bernoulli(torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64), big),
                               torch.tensor([0.0, -2000.0], dtype=F64))


def test_iwae_reference_against_torch_distributions_and_dgm():
    mean, logvar = _q(4, batch=(3,), L=2)
    g = _gen(5)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(7, 3, 2, generator=g, dtype=F64)
    log_px = -30 * torch.rand(7, 3, generator=g, dtype=F64)
    q = Independent(Normal(mean, torch.exp(0.5 * logvar)), 1)
    prior = Independent(Normal(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)), 1)
    log_w = log_px + prior.log_prob(z) - q.log_prob(z)
    torch.testing.assert_close(ch03.ref_log_weights(log_px, z, mean, logvar), log_w, rtol=1e-12, atol=1e-12)
    want = torch.log(torch.exp(log_w).mean(0))   # moderate values: the plain formula is exact enough here
    torch.testing.assert_close(ch03.ref_iwae(log_px, z, mean, logvar), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ch03.ref_iwae(log_px, z, mean, logvar),
                               vae.iwae_from_log_weights(vae.importance_log_weights(log_px, z, mean, logvar)),
                               rtol=1e-12, atol=1e-12)


def test_iwae_reference_converges_to_the_evidence_of_a_linear_gaussian_model():
    """x = z + noise, z ~ N(0, 1), noise ~ N(0, s²): log p(x) = log N(x; 0, 1 + s²). With q = N(0, 1) (the prior),
    the IWAE estimate with K = 200 000 is within 5 of its standard errors (delta method) of log p(x)."""
    s2, x = 0.5, 1.3
    K = 200_000
    z = torch.randn(K, 1, 1, generator=_gen(6), dtype=F64)
    log_px = Normal(z[..., 0], math.sqrt(s2)).log_prob(torch.tensor(x, dtype=F64))
    mean, logvar = torch.zeros(1, 1, dtype=F64), torch.zeros(1, 1, dtype=F64)
    est = float(ch03.ref_iwae(log_px, z, mean, logvar)[0])
    w = torch.exp(log_px[:, 0])
    se = float(w.std() / w.mean()) / math.sqrt(K)
    truth = float(Normal(0.0, math.sqrt(1 + s2)).log_prob(torch.tensor(x)))
    assert abs(est - truth) < 5 * se


def test_score_target_is_the_exact_gradient_and_the_start_equals_it():
    a, f0, f1, c = score_symbols()
    start = score_derivation_start()
    for point in (ch03.SCORE_REPORT_POINT, {"a": -4.0, "f0": 2.0, "f1": -1.0, "c": 30.0},
                  {"a": 6.0, "f0": 0.3, "f1": 0.1, "c": -5.0}):
        s = 1 / (1 + math.exp(-point["a"]))
        exact = s * (1 - s) * (point["f1"] - point["f0"])           # d/da [s f1 + (1 - s) f0]
        assert ch03._score_target(point) == pytest.approx(exact, rel=1e-12)
        got = float(start.subs({a: point["a"], f0: point["f0"], f1: point["f1"], c: point["c"]}))
        assert got == pytest.approx(exact, rel=1e-10)


def test_score_function_estimator_mean_by_monte_carlo():
    """The estimator (f(ξ) − c) ∂_a log p(ξ) averaged over 400 000 draws is within 5 SE of the exact gradient for
    any baseline c — the property the derivation proves."""
    a, f = 0.7, {0: 1.0, 1: 3.0}
    s = 1 / (1 + math.exp(-a))
    xi = (torch.rand(400_000, generator=_gen(7), dtype=F64) < s).to(F64)
    fx = f[0] + (f[1] - f[0]) * xi
    score = xi - s                                                    # ∂_a log p(ξ) = ξ − σ(a)
    for c in (0.0, 2.0, -10.0):
        est = (fx - c) * score
        se = float(est.std()) / math.sqrt(len(est))
        assert abs(float(est.mean()) - s * (1 - s) * (f[1] - f[0])) < 5 * se


# --- right answers pass --------------------------------------------------------------------------------

def _iwae_right(log_px, z, mean, logvar):
    log_2pi = math.log(2 * math.pi)
    log_w = log_px - 0.5 * (z ** 2 + log_2pi).sum(-1) + 0.5 * ((z - mean) ** 2 * torch.exp(-logvar) + logvar
                                                              + log_2pi).sum(-1)
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def _iwae_right_2(log_px, z, mean, logvar):
    eps = (z - mean) * torch.exp(-0.5 * logvar)
    log_w = log_px - 0.5 * (z ** 2).sum(-1) + 0.5 * (eps ** 2).sum(-1) + (0.5 * logvar).sum(-1)
    m = log_w.max(0).values.detach()
    return m + torch.log(torch.exp(log_w - m).mean(0))


CORRECT = {
    "gaussian_kl": [
        lambda mean, logvar: 0.5 * (mean ** 2 + torch.exp(logvar) - 1 - logvar).sum(-1),
        lambda mean, logvar: (0.5 * mean.pow(2) + 0.5 * logvar.exp() - 0.5 - 0.5 * logvar).sum(dim=-1),
    ],
    "reparameterize": [
        lambda mean, logvar, eps: mean + torch.exp(0.5 * logvar) * eps,
        lambda mean, logvar, eps: torch.addcmul(mean, torch.exp(logvar / 2), eps),
    ],
    "bernoulli_log_likelihood": [
        lambda x, logits: (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1),
        lambda x, logits: (x * logits - F.softplus(logits)).sum(-1),
    ],
    "iwae_bound": [_iwae_right, _iwae_right_2],
}
CONCEPTS = {"concept_naive_mc": "c", "concept_iwae_k": "b", "concept_discrete_latent": "d",
            "concept_posterior_collapse": "a"}


def score_steps():
    a, f0, f1, c = score_symbols()
    s = 1 / (1 + sp.exp(-a))
    return [score_derivation_start(), s * (f1 - c) * (1 - s) - (1 - s) * (f0 - c) * s, s * (1 - s) * (f1 - f0)]


def test_every_chapter3_task_is_tested_here():
    expect_task_inventory("03-vaes", CORRECT, "score_function_steps", CONCEPTS)


@pytest.mark.parametrize("task,index", [(t, i) for t in sorted(CORRECT) for i in range(2)])
def test_right_answers_pass_for_a_sweep_of_seeds(task, index):
    expect_right_answer_passes(task, CORRECT[task][index], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_passes(suite):
    check("score_function_steps", score_steps(), suite=suite)
    a, f0, f1, c = score_symbols()
    steps = score_steps()
    check("score_function_steps", [steps[0], sp.factor(steps[0]), (f1 - f0) * sp.exp(-a) / (1 + sp.exp(-a)) ** 2],
          suite=suite)


def test_concept_checks():
    expect_concepts_graded(CONCEPTS)


# --- known slips, diagnosed -------------------------------------------------------------------------

@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (lambda m, lv: (m ** 2 + torch.exp(lv) - 1 - lv).sum(-1), "½ is missing"),
    (lambda m, lv: 0.5 * (m ** 2 + torch.exp(0.5 * lv) - 1 - lv).sum(-1), "standard deviation e\\^\\{ℓ/2\\} is used"),
    (lambda m, lv: 0.5 * (m ** 2 + torch.exp(lv) - lv).sum(-1), "−1 is missing"),
    (lambda m, lv: 0.5 * (m ** 2 + torch.exp(lv) - 1 + lv).sum(-1), "log-variance has a \\+ sign"),
    (lambda m, lv: 0.5 * (m ** 2 + torch.exp(lv) - 1 - lv).mean(-1), "averaged instead of summed"),
    (lambda m, lv: 0.5 * (lv + (1 + m ** 2) * torch.exp(-lv) - 1).sum(-1), "other way round"),
    (lambda m, lv: 0.5 * (torch.exp(lv) - 1 - lv).sum(-1), "mean's square is missing"),
])
def test_kl_slips_are_diagnosed(wrong, match, suite):
    _fails("gaussian_kl", wrong, suite, match)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (lambda m, lv, e: m + torch.exp(lv) * e, "variance e\\^ℓ multiplies"),
    (lambda m, lv, e: m + lv * e, "ℓ itself multiplies"),
    (lambda m, lv, e: m - torch.exp(0.5 * lv) * e, "ε is subtracted"),
    (lambda m, lv, e: torch.exp(0.5 * lv) * (m + e), "multiplies the mean too"),
])
def test_reparameterize_slips_are_diagnosed(wrong, match, suite):
    _fails("reparameterize", wrong, suite, match)


def test_sqrt_of_exp_overflows_and_is_named():
    _fails("reparameterize", lambda m, lv, e: m + torch.sqrt(torch.exp(lv)) * e, "hidden", "sqrt\\(exp\\(ℓ\\)\\)")


def _bern(kind):
    def fn(x, a):
        if kind == "bce":
            return -(x * F.logsigmoid(a) + (1 - x) * F.logsigmoid(-a)).sum(-1)
        if kind == "mean":
            return (x * F.logsigmoid(a) + (1 - x) * F.logsigmoid(-a)).mean(-1)
        if kind == "swap":
            return ((1 - x) * F.logsigmoid(a) + x * F.logsigmoid(-a)).sum(-1)
        if kind == "naive":
            return (x * torch.log(torch.sigmoid(a)) + (1 - x) * torch.log(1 - torch.sigmoid(a))).sum(-1)
        if kind == "eps":
            return (x * torch.log(torch.sigmoid(a) + 1e-7) + (1 - x) * torch.log(1 - torch.sigmoid(a) + 1e-7)).sum(-1)
        raise ValueError(kind)
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("bce", "cross-entropy"), ("mean", "averaged instead of summed"),
                                        ("swap", "x and 1 − x are swapped")])
def test_bernoulli_slips_are_diagnosed(kind, match, suite):
    _fails("bernoulli_log_likelihood", _bern(kind), suite, match)


@pytest.mark.parametrize("suite", SUITES)
def test_unstable_bernoulli_is_named(suite):
    """log(sigmoid(a)) is −inf at the visible ±50 example (float64 sigmoid(−50) is not 0, but 1 − sigmoid(50) is)
    and at the hidden ±1000 logits; log(σ + 1e-7) is finite but wrong there."""
    _fails("bernoulli_log_likelihood", _bern("naive"), suite, "underflows")
    _fails("bernoulli_log_likelihood", _bern("eps"), suite, "small constant")


def _iwae(kind):
    def fn(log_px, z, mean, logvar):
        log_2pi = math.log(2 * math.pi)
        log_prior = -0.5 * (z ** 2 + log_2pi).sum(-1)
        lv = {"halfvar": 0.5 * logvar, "doublevar": 2 * logvar}.get(kind, logvar)
        log_q = -0.5 * ((z - mean) ** 2 * torch.exp(-lv) + lv + log_2pi).sum(-1)
        if kind == "swap":
            log_w = log_px - log_prior + log_q
        elif kind == "noprior":
            log_w = log_px - log_q
        elif kind == "const":
            log_w = log_px + log_prior + 0.5 * ((z - mean) ** 2 * torch.exp(-lv) + lv).sum(-1)
        else:
            log_w = log_px + log_prior - log_q
        if kind == "elbo":
            return log_w.mean(0)
        if kind == "nolog_k":
            return torch.logsumexp(log_w, 0)
        if kind == "naive":
            return torch.log(torch.exp(log_w).mean(0))
        return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("elbo", "log-weights are averaged"), ("nolog_k", "log K is missing"),
                                        ("swap", "swapped signs"), ("noprior", "prior log p\\(z\\) is missing"),
                                        ("halfvar", "e\\^\\{ℓ/2\\} as the variance"),
                                        ("doublevar", "e\\^\\{2ℓ\\} as the variance"),
                                        ("const", "2π constants")])
def test_iwae_slips_are_diagnosed(kind, match, suite):
    _fails("iwae_bound", _iwae(kind), suite, match)


def test_naive_log_mean_exp_is_named():
    _fails("iwae_bound", _iwae("naive"), "hidden", "logsumexp")


@pytest.mark.parametrize("task", sorted(CORRECT))
def test_detached_answers_fail_the_hidden_gradient_check(task):
    expect_detached_answer_fails(task, CORRECT[task][0], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_slips(suite):
    steps = score_steps()
    a, f0, f1, c = score_symbols()
    s = 1 / (1 + sp.exp(-a))
    _fails("score_function_steps", [steps[0], steps[2]], suite, "at least 3")
    # the baseline kept: not c-free (and not equal)
    _fails("score_function_steps", [steps[0], steps[1], s * (1 - s) * (f1 - f0 - c)], suite, "step 2 is not equal")
    # the score of ξ = 0 taken as +σ(a) (sign slip): the chain breaks at step 1
    _fails("score_function_steps", [steps[0], s * (f1 - c) * (1 - s) + (1 - s) * (f0 - c) * s, s * (1 - s) * (f1 + f0 - 2 * c)],
           suite, "step 1 is not equal")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_must_end_without_the_baseline(suite):
    steps = score_steps()
    _fails("score_function_steps", [steps[0], sp.factor(steps[0]), steps[1]], suite, "c")


# --- the rule against calling dgm.vae --------------------------------------------------------------------

@pytest.mark.forbid_rule
def test_calling_dgm_vae_fails():
    def via_library(mean, logvar):
        return vae.gaussian_kl_standard(mean, logvar)
    _fails("gaussian_kl", via_library, match="dgm.vae")
