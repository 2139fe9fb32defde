"""The checks of Exercise 6 (coursework/ch06.py): the references and the checks' objects agree with
dgm.sampling, dgm.score, scipy and torch.distributions; right answers (two ways of writing each) pass both
suites for a sweep of seeds; each known slip fails with the promised diagnosis (a wrong sampler by the
statistical test); the rule catches calls to dgm.sampling and dgm.score.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import sympy as sp
import torch
from conftest import expect_check_fails as _fails
from conftest import expect_concepts_graded, expect_right_answer_passes, expect_task_inventory

from coursework import CheckFailed, check, run_check
from coursework import ch06
from coursework.ch06 import ula_derivation_start, ula_symbols
from dgm import sampling, score

SUITES = ("visible", "hidden")
SEEDS = range(8)
F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the references and the checks' objects against independent values ----------------------------------

def test_inverse_cdf_reference_draws_the_distribution():
    """Uniform draws through the reference follow the weights: chi-square p > 1e-6 (a false alarm once in a million)."""
    w = torch.tensor([0.5, 0.0, 2.0, 1.0, 0.25], dtype=F64)
    u = 1 - torch.rand(200_000, generator=_gen(1), dtype=F64)       # (0, 1]
    k = ch06.ref_inverse_cdf(u, w)
    counts = torch.bincount(k, minlength=5).numpy()
    assert counts[1] == 0
    expected = (w / w.sum()).numpy() * len(u)
    keep = expected > 0
    assert scipy.stats.chisquare(counts[keep], expected[keep]).pvalue > 1e-6


def test_inverse_cdf_reference_at_the_steps_and_at_one():
    w = torch.tensor([0.25, 0.25, 0.5], dtype=F64)
    u = torch.tensor([0.25, 0.5, 1.0, 0.2500001], dtype=F64)
    assert ch06.ref_inverse_cdf(u, w).tolist() == [0, 1, 2, 1]
    w = torch.full((10,), 0.1, dtype=F64)
    assert float(torch.cumsum(w / w.sum(), 0)[-1]) <= 1.0
    assert ch06.ref_inverse_cdf(torch.ones(1, dtype=F64), w).tolist() == [9]


def test_log_acceptance_reference_is_the_mh_rule_of_dgm_sampling():
    """dgm.sampling.metropolis_hastings with a one-step chain accepts with the same probability: the acceptance
    rate of 200 000 one-step chains from one point matches exp(log α) within 5 binomial SE."""
    target = lambda x: -0.5 * (x ** 2).sum(-1)                                          # noqa: E731
    x0 = torch.full((200_000, 1), 0.3, dtype=F64)
    res = sampling.metropolis_hastings(target, x0, steps=1, step_size=1.0, generator=_gen(2))
    moved = float(res.acceptance_rate.mean())
    # the expected acceptance of a N(x, 1) random walk from 0.3 on N(0, 1), by quadrature over y
    ys = np.linspace(-12, 12, 200_001)
    la = ch06.ref_log_acceptance(torch.tensor(-0.045, dtype=F64), torch.as_tensor(-0.5 * ys ** 2),
                                 torch.zeros(1, dtype=F64), torch.zeros(1, dtype=F64)).numpy()
    rate = np.trapezoid(np.exp(la) * scipy.stats.norm.pdf(ys, 0.3, 1.0), ys)
    assert abs(moved - rate) < 5 * math.sqrt(rate * (1 - rate) / 200_000)


def test_dsm_reference_matches_dgm_score():
    net = ch06.score_net(3, 5)
    x = torch.randn(50, 3, generator=_gen(3), dtype=F64)
    eps = torch.randn(50, 3, generator=_gen(4), dtype=F64)
    want = score.denoising_score_matching_loss(net, x, 0.4, noise=eps)
    torch.testing.assert_close(ch06.ref_dsm_loss(net, x, 0.4, eps), want, rtol=1e-10, atol=1e-12)
    # independently: the loss is ½ mean ‖s + ε/σ‖², whose minimiser for a fixed input is −ε/σ
    assert float(ch06.ref_dsm_loss(lambda t: -(t - x) / 0.4 ** 2, x, 0.4, eps)) == pytest.approx(0.0, abs=1e-20)


def test_mixture_target_against_scipy():
    for name in ("bimodal", "skewed", "correlated"):
        t = ch06.mixture_target(name)
        x = t.sample(20_000, _gen(5))
        for d in range(t.dim):
            assert scipy.stats.kstest(x[:, d].numpy(), lambda v: t.marginal_cdf(torch.as_tensor(v), d).numpy()).pvalue > 1e-6
        # log-density integrates to 1 (1-D: quadrature; 2-D: grid)
        if t.dim == 1:
            grid = torch.linspace(-15, 20, 200_001, dtype=F64)[:, None]
            assert float(torch.trapezoid(torch.exp(t(grid)), grid[:, 0])) == pytest.approx(1.0, abs=1e-8)
        else:
            g = torch.linspace(-8, 8, 801, dtype=F64)
            X, Y = torch.meshgrid(g, g, indexing="ij")
            dens = torch.exp(t(torch.stack([X.reshape(-1), Y.reshape(-1)], -1))).reshape(801, 801)
            assert float(torch.trapezoid(torch.trapezoid(dens, g), g)) == pytest.approx(1.0, abs=1e-6)
            assert scipy.stats.kstest(x.sum(-1).numpy(), lambda v: t.sum_cdf(torch.as_tensor(v)).numpy()).pvalue > 1e-6
            diff = (x[:, 0] - x[:, 1]).numpy()
            assert scipy.stats.kstest(diff, lambda v: t.diff_cdf(torch.as_tensor(v)).numpy()).pvalue > 1e-6


def test_drift_proposal_log_prob_against_scipy():
    q = ch06.drift_proposal(0.8, 0.6)
    qlog = ch06.proposal_log_prob(0.8, 0.6)
    x = torch.randn(10, 2, generator=_gen(6), dtype=F64)
    y = q(x, _gen(7))
    want = scipy.stats.norm.logpdf(y.numpy(), x.numpy() + 0.8, 0.6).sum(-1)
    np.testing.assert_allclose(qlog(y, x).numpy(), want, rtol=1e-12)
    assert not torch.allclose(qlog(y, x), qlog(x, y))                   # asymmetric


def test_derivation_target_is_the_stationary_variance():
    """The Lyapunov solution equals the start's closed form and the variance of a long simulated AR(1) chain
    (batched, 4000 chains × 2000 steps, within 5 SE)."""
    h_, v_ = ula_symbols()
    start = ula_derivation_start()
    for point in (ch06.ULA_REPORT_POINT, {"h": 3.0, "v": 1.0}, {"h": 1e-3, "v": 25.0}):
        want = ch06._ula_target(point)
        assert float(start.subs({h_: point["h"], v_: point["v"]})) == pytest.approx(want, rel=1e-9)
    eps, s = 0.5, 1.0
    g = _gen(8)
    x = torch.zeros(4000, dtype=F64)
    for _ in range(2000):
        x = (1 - eps / (2 * s * s)) * x + math.sqrt(eps) * torch.randn(4000, generator=g, dtype=F64)
    v = ch06._ula_target({"h": eps, "v": s * s})
    se = v * math.sqrt(2 / 3999)
    assert abs(float(x.var()) - v) < 5 * se
    assert v > s * s                                                    # the bias


# --- right answers pass --------------------------------------------------------------------------------

def _icdf_1(u, weights):
    cdf = torch.cumsum(weights / weights.sum(), 0)
    return torch.searchsorted(cdf, u.contiguous()).clamp(max=int(torch.nonzero(weights > 0).max()))


def _icdf_2(u, weights):
    cdf = torch.cumsum(weights, 0) / weights.sum()
    last = int((weights > 0).nonzero().max())
    return (cdf[None, :] < u.reshape(-1, 1)).sum(-1).clamp(max=last).reshape(u.shape)


def _mh_1(x, log_target, propose, proposal_log_prob, generator):
    y = propose(x, generator)
    la = log_target(y) - log_target(x) + proposal_log_prob(x, y) - proposal_log_prob(y, x)
    u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
    return torch.where((torch.log(u) < la)[:, None], y, x)


def _mh_2(x, log_target, propose, proposal_log_prob, generator):
    y = propose(x, generator)
    la = torch.clamp(log_target(y) - log_target(x) + proposal_log_prob(x, y) - proposal_log_prob(y, x), max=0)
    u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
    out = x.clone()
    accept = u < torch.exp(la)
    out[accept] = y[accept]
    return out


CORRECT = {
    "discrete_inverse_cdf": [_icdf_1, _icdf_2],
    "mh_log_acceptance": [
        lambda a, b, c, d: torch.clamp(b - a + d - c, max=0.0),
        lambda a, b, c, d: torch.minimum((b + d) - (a + c), torch.zeros(())),
    ],
    "mh_step": [_mh_1, _mh_2],
    "dsm_loss": [
        lambda s, x, sigma, eps: 0.5 * ((s(x + sigma * eps) + eps / sigma) ** 2).sum(-1).mean(),
        lambda s, x, sigma, eps: ((sigma * s(x + sigma * eps) + eps) ** 2).sum(1).mean() / (2 * sigma ** 2),
    ],
}
CONCEPTS = {"concept_rejection_rate": "b", "concept_periodic_chain": "c", "concept_ula_bias": "d",
            "concept_dsm_optimum": "a"}


def ula_steps():
    h, v = ula_symbols()
    return [ula_derivation_start(), h / (h / v - h ** 2 / (4 * v ** 2)), v / (1 - h / (4 * v))]


def test_every_chapter6_task_is_tested_here():
    expect_task_inventory("06-score", CORRECT, "ula_variance_steps", CONCEPTS)


@pytest.mark.parametrize("task,index", [(t, i) for t in sorted(CORRECT) for i in range(2)])
def test_right_answers_pass_for_a_sweep_of_seeds(task, index):
    expect_right_answer_passes(task, CORRECT[task][index], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_passes(suite):
    check("ula_variance_steps", ula_steps(), suite=suite)
    h, v = ula_symbols()
    steps = ula_steps()
    check("ula_variance_steps", [steps[0], 1 / (1 / v - h / (4 * v ** 2)), v * (1 - h / (4 * v)) ** -1], suite=suite)


def test_concept_checks():
    expect_concepts_graded(CONCEPTS)


# --- known slips, diagnosed -------------------------------------------------------------------------

@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (lambda u, w: torch.searchsorted(torch.cumsum(w / w.sum(), 0), u.contiguous(), right=True).clamp(max=len(w) - 1),
     "compared with the CDF strictly"),
    (lambda u, w: torch.searchsorted(torch.cumsum(w, 0), u.contiguous()).clamp(max=len(w) - 1), "not normalised"),
])
def test_inverse_cdf_slips_are_diagnosed(wrong, match, suite):
    _fails("discrete_inverse_cdf", wrong, suite, match)


def test_unclamped_inverse_cdf_is_named():
    """For every seed: the hidden weights are drawn so that the computed CDF ends below 1 (both normalisation
    orders), so an answer without a clamp always meets u = 1 past the end."""
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="not clamped"):
            run_check("discrete_inverse_cdf", lambda u, w: torch.searchsorted(torch.cumsum(w / w.sum(), 0),
                                                                              u.contiguous()), suite="hidden", seed=seed)


def test_clamping_to_the_last_index_is_named():
    """Clamping to K − 1 returns a zero-weight last category at u = 1 when the CDF rounds below 1."""
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="weight 0"):
            run_check("discrete_inverse_cdf", lambda u, w: torch.searchsorted(torch.cumsum(w / w.sum(), 0),
                                                                              u.contiguous()).clamp(max=len(w) - 1),
                      suite="hidden", seed=seed)


def test_shifting_u_is_caught():
    def shifted(u, w):
        return torch.searchsorted(torch.cumsum(w / w.sum(), 0), (u - 1e-12).contiguous()).clamp(
            max=int(torch.nonzero(w > 0).max()))
    for seed in SEEDS:
        with pytest.raises(CheckFailed):
            run_check("discrete_inverse_cdf", shifted, suite="hidden", seed=seed)


def test_mh_kernels_that_keep_p_invariant_but_are_not_mh_are_caught():
    """Barker's acceptance r/(1 + r) leaves p invariant (the KS tests pass) but moves at another rate; shuffling
    the chains keeps every law but breaks row n = chain n."""
    def barker(x, log_target, propose, proposal_log_prob, generator):
        y = propose(x, generator)
        la = log_target(y) - log_target(x) + proposal_log_prob(x, y) - proposal_log_prob(y, x)
        u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
        return torch.where((u < torch.sigmoid(la))[:, None], y, x)

    def shuffled(x, *args):
        return _mh_1(x, *args)[torch.randperm(x.shape[0], generator=args[-1])]
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="moved, but the Metropolis–Hastings kernel moves with probability"):
            run_check("mh_step", barker, suite="hidden", seed=seed)
        with pytest.raises(CheckFailed, match="mixed up"):
            run_check("mh_step", shuffled, suite="hidden", seed=seed)


def test_log_acceptance_through_exp_is_caught_for_every_seed():
    def via_exp(a, b, c, d):
        return torch.log(torch.clamp(torch.exp(b - a + d - c), max=1.0))
    for seed in SEEDS:
        with pytest.raises(CheckFailed):
            run_check("mh_log_acceptance", via_exp, suite="hidden", seed=seed)


def test_dsm_recovering_the_noise_is_caught():
    def recovered(s, x, sigma, eps):
        xt = x + sigma * eps
        return 0.5 * ((s(xt) + (xt - x) / sigma ** 2) ** 2).sum(-1).mean()
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="loses most of its digits"):
            run_check("dsm_loss", recovered, suite="hidden", seed=seed)


def test_decimal_in_the_derivation_is_named():
    h, v = ula_symbols()
    steps = ula_steps()
    _fails("ula_variance_steps", [steps[0], steps[1], v / (1 - 0.25 * h / v)], "visible", "exactly")


def test_a_step_off_by_an_exact_tiny_term_is_caught():
    """+ 1/10¹² in one step is far below the numerical comparison; the ULA steps are rational functions of h
    and v, so the steps are compared exactly as well (coursework._core._exact_difference)."""
    h, v = ula_symbols()
    steps = ula_steps()
    for suite in SUITES:
        _fails("ula_variance_steps", [steps[0], steps[1] + sp.Rational(1, 10**12), steps[2]], suite,
               "not exactly equal")


def test_inverse_cdf_must_return_int64():
    _fails("discrete_inverse_cdf", lambda u, w: _icdf_1(u, w).double(), "visible", "int64")


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (lambda a, b, c, d: torch.clamp(b - a, max=0.0), "proposal correction is left out"),
    (lambda a, b, c, d: torch.clamp(b - a + c - d, max=0.0), "upside down"),
    (lambda a, b, c, d: b - a + d - c, "min with 1"),
    (lambda a, b, c, d: torch.clamp(a - b + c - d, max=0.0), "whole ratio is upside down"),
])
def test_log_acceptance_slips_are_diagnosed(wrong, match, suite):
    _fails("mh_log_acceptance", wrong, suite, match)


def test_log_acceptance_through_exp_fails_on_extremes():
    def via_exp(a, b, c, d):
        return torch.log(torch.clamp(torch.exp(b + d) / torch.exp(a + c), max=1.0))
    with pytest.raises(CheckFailed, match="NaN or infinity|wrong value"):
        run_check("mh_log_acceptance", via_exp, suite="hidden", seed=0)


def _mh_wrong(kind):
    def fn(x, log_target, propose, proposal_log_prob, generator):
        y = propose(x, generator)
        la = log_target(y) - log_target(x)
        if kind != "no_correction":
            corr = proposal_log_prob(x, y) - proposal_log_prob(y, x)
            la = la - corr if kind == "swapped" else la + corr
        if kind == "per_coordinate":
            u = torch.rand(x.shape, generator=generator, dtype=x.dtype)
            return torch.where(torch.log(u) < la[:, None], y, x)
        u = torch.rand(x.shape[0], dtype=x.dtype) if kind == "global" else \
            torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
        accept = torch.log(u) > la if kind == "greater" else torch.log(u) < la
        return torch.where(accept[:, None], y, x)
    return fn


@pytest.mark.parametrize("kind", ["no_correction", "swapped", "greater"])
def test_wrong_mh_kernels_fail_the_distribution_test_for_every_seed(kind):
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="Kolmogorov–Smirnov"):
            run_check("mh_step", _mh_wrong(kind), suite="hidden", seed=seed)


def test_accepting_coordinates_separately_is_named():
    """Per-coordinate acceptance keeps every marginal right (a KS test of each coordinate cannot see it) but moves
    a chain in some coordinates only, which a right kernel never does with a continuous proposal."""
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="some coordinates and stayed in others"):
            run_check("mh_step", _mh_wrong("per_coordinate"), suite="hidden", seed=seed)


def test_mh_with_the_global_generator_is_named():
    _fails("mh_step", _mh_wrong("global"), "visible", "same seed")


def test_mh_modifying_the_states_in_place_is_named():
    def in_place(x, log_target, propose, proposal_log_prob, generator):
        new = _mh_1(x, log_target, propose, proposal_log_prob, generator)
        x.copy_(new)
        return x
    _fails("mh_step", in_place, "visible", "in place")


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (lambda s, x, sg, e: 0.5 * ((s(x + sg * e) - e / sg) ** 2).sum(-1).mean(), "wrong sign"),
    (lambda s, x, sg, e: 0.5 * ((s(x + sg * e) + e / sg ** 2) ** 2).sum(-1).mean(), "σ² divides ε"),
    (lambda s, x, sg, e: 0.5 * ((s(x) + e / sg) ** 2).sum(-1).mean(), "clean x"),
    (lambda s, x, sg, e: ((s(x + sg * e) + e / sg) ** 2).sum(-1).mean(), "½ is missing"),
    (lambda s, x, sg, e: 0.5 * ((s(x + sg * e) + e / sg) ** 2).mean(), "averaged over the coordinates"),
    (lambda s, x, sg, e: 0.5 * ((s(x + sg * e) + e / sg) ** 2).sum(), "summed over the batch"),
])
def test_dsm_slips_are_diagnosed(wrong, match, suite):
    _fails("dsm_loss", wrong, suite, match)


def test_dsm_without_parameter_gradients_fails():
    def detached(s, x, sigma, eps):
        with torch.no_grad():
            out = s(x + sigma * eps)
        return 0.5 * ((out + eps / sigma) ** 2).sum(-1).mean()
    _fails("dsm_loss", detached, "visible", "parameters|gradient")


def test_detached_log_acceptance_fails_the_gradient_check():
    def detached(*args):
        return CORRECT["mh_log_acceptance"][0](*[a.detach() for a in args])
    for seed in SEEDS:
        with pytest.raises(Exception, match="differentiabl"):
            run_check("mh_log_acceptance", detached, suite="hidden", seed=seed)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_slips(suite):
    steps = ula_steps()
    h, v = ula_symbols()
    _fails("ula_variance_steps", [steps[0], steps[2]], suite, "at least 3")
    _fails("ula_variance_steps", [steps[0], h / (h / v + h ** 2 / (4 * v ** 2)), v / (1 + h / (4 * v))],
           suite, "step 1 is not equal")
    _fails("ula_variance_steps", [steps[0], steps[1], v], suite, "step 2 is not equal|not the quantity")
    _fails("ula_variance_steps", [steps[0], steps[1], 4 * v ** 2 / (4 * v - h)], suite, "v times")


def test_derivation_must_not_keep_the_square():
    h, v = ula_symbols()
    steps = ula_steps()
    kept = v * (h / (v - v * (1 - h / (2 * v)) ** 2))
    assert sp.simplify(kept - steps[0]) == 0
    _fails("ula_variance_steps", [steps[0], steps[1], kept], "visible", "no square left")


# --- the rule against calling dgm.sampling and dgm.score ---------------------------------------------------

@pytest.mark.forbid_rule
def test_calling_dgm_score_fails():
    def via_library(net, x, sigma, eps):
        return score.denoising_score_matching_loss(net, x, sigma)
    _fails("dsm_loss", via_library, match="dgm.score")
