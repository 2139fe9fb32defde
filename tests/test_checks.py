"""Tests of coursework, the API every exercise test cell calls.

Correct answers (dgm's own reference functions, or an implementation written here) must pass both
suites; each known-wrong answer must fail, and where the check promises a diagnosis (arguments
swapped, a missing 1/2, ...) the message must contain it. The notebook-level version of these
tests (solutions pass, mutants lose marks) lives in tests/test_grading.py.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch
from conftest import expect_check_fails as _fails

from dgm import divergences as dv
from dgm import linear_gaussian as lg
from dgm import mixtures
from coursework import TASKS, CheckFailed
from coursework.ch01 import check, derivation_report, kl_derivation_start, kl_symbols
from dgm.distributions import gaussian_log_prob

SUITES = ("visible", "hidden")


def kl_mc(mq, lq, mp, lp, S, generator, *, from_p=False, se_scale=1.0):
    """A Monte Carlo KL written for these tests (sampling and averaging done by hand)."""
    shape = torch.broadcast_shapes(mq.shape, lq.shape)
    eps = torch.randn((S, *shape), generator=generator, dtype=mq.dtype)
    z = (mp + torch.exp(0.5 * lp) * eps) if from_p else (mq + torch.exp(0.5 * lq) * eps)
    f = gaussian_log_prob(z, mq, lq) - gaussian_log_prob(z, mp, lp)
    return f.mean(0), se_scale * f.std(0) / math.sqrt(S)


def kl_steps(final_factor=sp.Rational(1, 2), swap_final=False, break_step=False):
    z, mq, mp, sq, spp = kl_symbols()
    q = sp.exp(-(z - mq) ** 2 / (2 * sq**2)) / sp.sqrt(2 * sp.pi * sq**2)
    half = sp.Rational(1, 2)
    step1 = sp.Integral(q * (sp.log(spp / sq) - (z - mq) ** 2 / (2 * sq**2) + (z - mp) ** 2 / (2 * spp**2)),
                        (z, -sp.oo, sp.oo))
    step2 = sp.log(spp / sq) - (1 if break_step else half) + sp.Integral(q * (z - mp) ** 2, (z, -sp.oo, sp.oo)) / (
        2 * spp**2)
    if swap_final:
        final = sp.log(sq / spp) + (spp**2 + (mq - mp) ** 2) / (2 * sq**2) - half
    else:
        final = sp.log(spp / sq) + (sq**2 + (mq - mp) ** 2) * final_factor / spp**2 - half
    return [kl_derivation_start(), step1, step2, final]


# --- correct answers pass -------------------------------------------------------------------

CORRECT = {
    "gaussian_kl_diag": dv.gaussian_kl,
    "kl_monte_carlo": kl_mc,
    "lg_posterior": lg.posterior,
    "lg_elbo": lg.elbo,
    "mixture_responsibilities": mixtures.posterior,
}


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("task", sorted(CORRECT))
def test_correct_functions_pass(task, suite, capsys):
    check(task, CORRECT[task], suite=suite)
    assert f"{task}: all {suite} checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("suite", SUITES)
def test_correct_derivation_passes(suite):
    check("kl_derivation_steps", kl_steps(), suite=suite)


def test_every_task_of_exercise_1_is_tested_here():
    from autograder.course import REPO_ROOT
    from autograder.program import build_program, tasks_table

    concepts = {"concept_vae_sampling", "concept_kl_asymmetry", "concept_two_image_elbo"}
    tested = set(CORRECT) | {"kl_derivation_steps"} | concepts
    graded = {t["name"] for t in tasks_table(build_program(REPO_ROOT, "01-elbo")) if not t["manual"]}
    assert graded == tested
    assert tested <= set(TASKS)


# --- wrong answers fail, with the promised diagnosis ----------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_kl_swapped_arguments_is_diagnosed(suite):
    _fails("gaussian_kl_diag", lambda mq, lq, mp, lp: dv.gaussian_kl(mp, lp, mq, lq), suite, "swapped")


@pytest.mark.parametrize("suite", SUITES)
def test_kl_missing_half_is_diagnosed(suite):
    _fails("gaussian_kl_diag", lambda *a: 2 * dv.gaussian_kl(*a), suite, "1/2 is missing")


def test_kl_variance_for_logvariance_is_caught():
    def wrong(mq, lq, mp, lp):  # treats log-variances as variances
        return 0.5 * (torch.log(lp / lq) + (lq + (mq - mp) ** 2) / lp - 1).sum(-1)
    _fails("gaussian_kl_diag", wrong)


def test_not_implemented_says_so():
    def stub(*args):
        raise NotImplementedError()
    _fails("gaussian_kl_diag", stub, match="not implemented yet")


def test_exceptions_become_readable_failures():
    _fails("gaussian_kl_diag", lambda *a: 1 / 0, match="ZeroDivisionError")


def test_in_place_modification_is_caught():
    def mutating(mq, lq, mp, lp):
        out = dv.gaussian_kl(mq, lq, mp, lp)
        mq.add_(1.0)
        return out
    _fails("gaussian_kl_diag", mutating, match="in place")


def test_detached_result_fails_the_gradient_check():
    _fails("gaussian_kl_diag", lambda *a: dv.gaussian_kl(*[t.detach() for t in a]), "hidden", "differentiabl")


def test_wrong_dtype_fails():
    _fails("gaussian_kl_diag", lambda *a: dv.gaussian_kl(*a).float(), match="dtype")


def test_tensor_subclass_is_rejected():
    class Sneaky(torch.Tensor):
        pass
    _fails("gaussian_kl_diag", lambda *a: dv.gaussian_kl(*a).as_subclass(Sneaky), match="torch.Tensor")


def test_numpy_result_is_rejected():
    _fails("gaussian_kl_diag", lambda *a: dv.gaussian_kl(*a).numpy(), match="torch.Tensor")


@pytest.mark.parametrize("suite", SUITES)
def test_monte_carlo_from_p_fails(suite):
    _fails("kl_monte_carlo", lambda *a: kl_mc(*a, from_p=True), suite, "standard errors from the exact KL")


@pytest.mark.parametrize("suite", SUITES)
def test_monte_carlo_standard_error_without_sqrt_fails(suite):
    def no_sqrt(mq, lq, mp, lp, S, gen):
        est, se = kl_mc(mq, lq, mp, lp, S, gen)
        return est, se * math.sqrt(S)
    _fails("kl_monte_carlo", no_sqrt, suite, "standard error is off")


def test_monte_carlo_ignoring_the_generator_fails():
    def global_rng(mq, lq, mp, lp, S, gen):
        return kl_mc(mq, lq, mp, lp, S, torch.Generator().manual_seed(int(torch.randint(0, 10**6, (1,)))))
    _fails("kl_monte_carlo", global_rng, match="generator")


def test_monte_carlo_must_return_a_pair():
    _fails("kl_monte_carlo", lambda *a: kl_mc(*a)[0], match="tuple of two")


@pytest.mark.parametrize("suite", SUITES)
def test_posterior_without_prior_identity_is_diagnosed(suite):
    def wrong(x, W, b, s2):
        cov = torch.linalg.inv(W.T @ W / s2)
        return (x - b) @ W @ cov / s2, cov
    _fails("lg_posterior", wrong, suite, "identity")


def test_posterior_mean_without_covariance_is_diagnosed():
    def wrong(x, W, b, s2):
        mean, cov = lg.posterior(x, W, b, s2)
        return (x - b) @ W / s2, cov
    _fails("lg_posterior", wrong, match="covariance factor S")


@pytest.mark.parametrize("suite", SUITES)
def test_elbo_without_trace_is_diagnosed(suite):
    def wrong(x, m, S, W, b, s2):
        return lg.elbo(x, m, S, W, b, s2) + torch.einsum("dk,...kl,dl->...", W, S, W) / (2 * s2)
    _fails("lg_elbo", wrong, suite, "trace term")


@pytest.mark.parametrize("suite", SUITES)
def test_responsibilities_naive_exp_fails_far_away(suite):
    def naive(x, w, m, lv):
        joint = w * torch.exp(gaussian_log_prob(x.unsqueeze(-2), m, lv))
        return joint / joint.sum(-1, keepdim=True)
    _fails("mixture_responsibilities", naive, suite, "NaN or infinity")


@pytest.mark.parametrize("suite", SUITES)
def test_responsibilities_ignoring_weights_is_diagnosed(suite):
    def no_weights(x, w, m, lv):
        return torch.softmax(gaussian_log_prob(x.unsqueeze(-2), m, lv), -1)
    _fails("mixture_responsibilities", no_weights, suite, "weights are ignored")


# --- derivations -----------------------------------------------------------------------------

@pytest.mark.parametrize("suite", SUITES)
def test_derivation_with_a_broken_step_names_it(suite):
    _fails("kl_derivation_steps", kl_steps(break_step=True), suite, "step 2 is not equal to step 1")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_with_swapped_result_fails(suite):
    steps = kl_steps()
    # A chain that is internally consistent but ends at KL(p || q): every step equal, wrong target.
    swapped = [s.subs({kl_symbols()[1]: kl_symbols()[2], kl_symbols()[2]: kl_symbols()[1],
                       kl_symbols()[3]: kl_symbols()[4], kl_symbols()[4]: kl_symbols()[3]}, simultaneous=True)
               for s in steps]
    _fails("kl_derivation_steps", swapped, suite, "step 0 must be the starting expression")


def test_derivation_final_step_must_be_closed_form():
    steps = kl_steps()[:3]
    _fails("kl_derivation_steps", steps, match="closed form")


def test_derivation_needs_three_steps_and_known_symbols():
    _fails("kl_derivation_steps", [kl_derivation_start(), kl_steps()[-1]], match="at least 3 steps")
    steps = kl_steps()
    steps[-1] = steps[-1] * sp.Symbol("fudge")
    _fails("kl_derivation_steps", steps, match="symbols outside")
    _fails("kl_derivation_steps", "1/2", match="list of SymPy expressions")


def test_derivation_report_points_at_the_broken_step(capsys):
    derivation_report(kl_steps(break_step=True))
    lines = capsys.readouterr().out.splitlines()
    assert "differs" in lines[2] and "differs" not in lines[1]


# --- concept checks and the API itself --------------------------------------------------------

def test_concept_checks():
    check("concept_vae_sampling", True)
    check("concept_vae_sampling", False)  # the visible suite only checks the format
    check("concept_kl_asymmetry", "b", suite="hidden", expected="b")
    with pytest.raises(CheckFailed, match="not correct"):
        check("concept_kl_asymmetry", "a", suite="hidden", expected="b")
    with pytest.raises(CheckFailed, match="one of"):
        check("concept_kl_asymmetry", "B")
    with pytest.raises(CheckFailed, match="one of"):
        check("concept_vae_sampling", 1)  # 1 == True in Python, but it is not a bool
    with pytest.raises(CheckFailed, match="no answer yet"):
        check("concept_two_image_elbo", None)
    with pytest.raises(ValueError, match="expected="):
        check("concept_two_image_elbo", "d", suite="hidden")


def test_bad_calls_raise_value_errors():
    with pytest.raises(ValueError, match="unknown task 'nope'; known tasks"):
        check("nope", dv.gaussian_kl)
    with pytest.raises(ValueError, match="suite must be"):
        check("gaussian_kl_diag", dv.gaussian_kl, suite="secret")


def test_hidden_suite_draws_a_fresh_seed_each_time(monkeypatch):
    import coursework.registry as checks

    seeds = iter([1, 2])
    drawn = []

    def fake_randbits(k):
        drawn.append(next(seeds))
        return drawn[-1]

    monkeypatch.setattr(checks.secrets, "randbits", fake_randbits)
    seen = []

    def spy(mq, lq, mp, lp):
        seen.append(mq.detach().clone())
        return dv.gaussian_kl(mq, lq, mp, lp)

    check("gaussian_kl_diag", spy, suite="hidden")
    first = seen[0]
    seen.clear()
    check("gaussian_kl_diag", spy, suite="hidden")
    assert drawn == [1, 2]
    assert not torch.equal(first, seen[0])


def test_visible_suite_is_deterministic():
    seen = []

    def spy(mq, lq, mp, lp, S, gen):
        seen.append((mq.clone(), torch.randn(3, generator=gen)))
        return kl_mc(mq, lq, mp, lp, S, gen)

    check("kl_monte_carlo", spy)
    first = list(seen)
    seen.clear()
    check("kl_monte_carlo", spy)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, seen))


# --- the rule against calling the reference implementations -----------------------------------

import dgm  # noqa: E402  (module-level name the rule must see through)


@pytest.mark.forbid_rule
@pytest.mark.parametrize("suite", SUITES)
def test_calling_the_reference_implementation_fails(suite):
    _fails("gaussian_kl_diag", dv.gaussian_kl, suite, "dgm.divergences")


@pytest.mark.forbid_rule
def test_reference_under_another_name_or_attribute_path_fails():
    alias = dv.gaussian_kl

    def via_closure(mq, lq, mp, lp):
        return alias(mq, lq, mp, lp)

    def via_attributes(mq, lq, mp, lp):
        return dgm.divergences.gaussian_kl(mq, lq, mp, lp)

    def via_torch_distributions(mq, lq, mp, lp):
        q = torch.distributions.Normal(mq, torch.exp(0.5 * lq))
        p = torch.distributions.Normal(mp, torch.exp(0.5 * lp))
        return torch.distributions.kl_divergence(q, p).sum(-1)

    def helper(x, W, b, s2):
        return lg.posterior(x, W, b, s2)

    def via_helper(x, W, b, s2):
        return helper(x, W, b, s2)

    _fails("gaussian_kl_diag", via_closure, match="dgm.divergences")
    _fails("gaussian_kl_diag", via_attributes, match="dgm.divergences")
    _fails("gaussian_kl_diag", via_torch_distributions, match="torch.distributions")
    _fails("lg_posterior", via_helper, match="dgm.linear_gaussian")


def test_derivation_that_skips_the_work_fails():
    steps = kl_steps()
    _fails("kl_derivation_steps", [steps[0], steps[0], steps[-1]], match="repeats")
    _fails("kl_derivation_steps", [steps[0], steps[-1], steps[-1]], match="repeats")
    _fails("kl_derivation_steps", [steps[0], sp.expand(steps[-1]), steps[-1]], match="still contain an integral")


@pytest.mark.parametrize("suite", SUITES)
def test_monte_carlo_returning_the_closed_form_fails(suite):
    def closed(mq, lq, mp, lp, S, gen):
        est, se = kl_mc(mq, lq, mp, lp, S, gen)
        return dv.gaussian_kl(mq, lq, mp, lp), se
    _fails("kl_monte_carlo", closed, suite, "different seeds gave identical estimates")


@pytest.mark.parametrize("suite", SUITES)
def test_monte_carlo_variance_for_standard_deviation_fails(suite):
    def var_se(mq, lq, mp, lp, S, gen):
        est, se = kl_mc(mq, lq, mp, lp, S, gen)
        return est, se ** 2 * math.sqrt(S)
    _fails("kl_monte_carlo", var_se, suite, "standard error is off")


def test_monte_carlo_wrong_dtype_fails():
    _fails("kl_monte_carlo", lambda *a: tuple(t.float() for t in kl_mc(*a)), match="dtype")


def test_a_derivation_step_that_only_wraps_the_previous_one_is_no_step():
    """[start, 1·start (unevaluated), result] repeats the start: SymPy's own evaluation undoes it."""
    import sympy as sp

    steps = kl_steps()
    for wrapped in (sp.Mul(1, steps[0], evaluate=False), sp.Add(steps[0], 0, evaluate=False)):
        with pytest.raises(CheckFailed, match="repeats step 0"):
            check("kl_derivation_steps", [steps[0], wrapped, steps[-1]])
