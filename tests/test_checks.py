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
from coursework import TASKS, CheckFailed, run_check
from coursework.ch01 import check, derivation_report, kl_derivation_start, kl_symbols
from dgm.distributions import gaussian_log_prob

SUITES = ("visible", "hidden")


def kl_mc(mq, lq, mp, lp, S, generator, *, from_p=False, se_scale=1.0):
    """A Monte Carlo KL written for these tests (sampling and averaging done by hand)."""
    shape = torch.broadcast_shapes(mq.shape, lq.shape, mp.shape, lp.shape)
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
        seen.append((mq.clone(), torch.tensor(gen.initial_seed())))  # drawing here would change the samples
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


# --- the hidden suite covers the whole specification (issue 11): right alternatives pass, the
# --- reviewer's wrong-but-plausible answers fail ----------------------------------------------------

def _kl_by_variances(mq, lq, mp, lp):
    """The same KL with different algebra: variances first, log of a ratio, means' term apart."""
    vq, vp = torch.exp(lq), torch.exp(lp)
    return 0.5 * (torch.log(vp / vq) + vq / vp + (mq - mp).pow(2) / vp - 1).sum(-1)


def _posterior_by_solve(x, W, b, s2):
    """The posterior through a linear solve and a Cholesky factor instead of an inverse."""
    K = W.shape[1]
    precision = torch.eye(K, dtype=W.dtype) + W.T @ W / s2
    L = torch.linalg.cholesky(precision)
    cov = torch.cholesky_inverse(L)
    mean = torch.linalg.solve(precision, ((x - b) @ W / s2).unsqueeze(-1)).squeeze(-1)
    return mean, cov


def _elbo_by_cholesky(x, m, S, W, b, s2):
    """The ELBO with log det and the trace through a Cholesky factor of q_cov."""
    D, K = W.shape
    L = torch.linalg.cholesky(S)
    trace = (W @ L).pow(2).sum((-1, -2))
    residual = x - m @ W.T - b
    log_lik = -0.5 * D * (math.log(2 * math.pi) + torch.log(s2)) - (residual.pow(2).sum(-1) + trace) / (2 * s2)
    kl = 0.5 * (L.pow(2).sum((-1, -2)) + m.pow(2).sum(-1) - K) - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return log_lik - kl


def _responsibilities_by_logsumexp(x, w, m, lv):
    log_joint = torch.log(w) + gaussian_log_prob(x.unsqueeze(-2), m, lv)
    return torch.exp(log_joint - torch.logsumexp(log_joint, -1, keepdim=True))


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize(("task", "answer"), [("gaussian_kl_diag", _kl_by_variances),
                                              ("lg_posterior", _posterior_by_solve),
                                              ("lg_elbo", _elbo_by_cholesky),
                                              ("mixture_responsibilities", _responsibilities_by_logsumexp)])
def test_equivalent_algebra_passes(task, answer, suite):
    for seed in range(4):
        run_check(task, answer, suite=suite, seed=seed)


def _kl_p_expanded(mq, lq, mp, lp):
    return dv.gaussian_kl(mq, lq, mp.expand_as(mq), lp.expand_as(lq))


def _kl_smaller_expanded(mq, lq, mp, lp):
    if mp.dim() <= mq.dim():
        return dv.gaussian_kl(mq, lq, mp.expand_as(mq), lp.expand_as(mq))
    return dv.gaussian_kl(mq.expand_as(mp), lq.expand_as(mp), mp, lp)


def test_every_broadcast_direction_of_the_kl_is_run():
    """p with the larger batch, and q and p both batched, broadcasting against each other."""
    _fails("gaussian_kl_diag", _kl_p_expanded, "hidden", "one q \\(3,\\) against a batch of p")
    _fails("gaussian_kl_diag", _kl_p_expanded, "visible", "one q against a batch of 4 p")
    _fails("gaussian_kl_diag", _kl_smaller_expanded, "hidden", "both batched")


def _closed_form_plus_noise(mq, lq, mp, lp, S, gen):
    """Exact KL + exact SE times one seeded normal draw: unbiased, reproducible, seed-dependent."""
    vq, vp, d = torch.exp(lq), torch.exp(lp), mq - mp
    exact = dv.gaussian_kl(mq, lq, mp, lp)
    sd = torch.sqrt((0.5 * (vq / vp - 1) ** 2 + d**2 * vq / vp**2).sum(-1))
    se = sd / math.sqrt(S)
    return exact + se * torch.randn(exact.shape, generator=gen, dtype=exact.dtype), se


@pytest.mark.parametrize("suite", SUITES)
def test_monte_carlo_must_be_the_documented_sampling(suite):
    _fails("kl_monte_carlo", _closed_form_plus_noise, suite, "not the average of log q\\(z\\) - log p\\(z\\)")


def test_monte_carlo_samples_of_q_shape_alone_fail_when_p_has_the_larger_batch():
    def q_shape(mq, lq, mp, lp, S, gen):
        eps = torch.randn((S, *torch.broadcast_shapes(mq.shape, lq.shape)), generator=gen, dtype=mq.dtype)
        z = mq + torch.exp(0.5 * lq) * eps
        f = gaussian_log_prob(z, mq, lq) - gaussian_log_prob(z, mp, lp)
        return f.mean(0), f.std(0) / math.sqrt(S)
    check("kl_monte_carlo", q_shape)   # every visible case has q's batch: the same samples
    _fails("kl_monte_carlo", q_shape, "hidden", "against a batch of p")


@pytest.mark.parametrize("suite", SUITES)
def test_monte_carlo_biased_standard_deviation_fails(suite):
    def biased(mq, lq, mp, lp, S, gen):
        est, se = kl_mc(mq, lq, mp, lp, S, gen)
        return est, se * math.sqrt((S - 1) / S)
    _fails("kl_monte_carlo", biased, suite, "unbiased")


def test_monte_carlo_gradients_of_estimate_and_standard_error_are_checked():
    _fails("kl_monte_carlo", lambda *a: tuple(t.detach() for t in kl_mc(*a)), "hidden", "differentiabl")
    def se_detached(*args):
        est, se = kl_mc(*args)
        return est, se.detach()
    _fails("kl_monte_carlo", se_detached, "hidden", "gradients of the standard error")


def test_sigma2_as_a_python_float_loses_its_gradient():
    def posterior_float(x, W, b, s2):
        return lg.posterior(x, W, b, float(s2.detach()))

    def elbo_float(x, m, S, W, b, s2):
        return lg.elbo(x, m, S, W, b, float(s2.detach()))

    _fails("lg_posterior", posterior_float, "hidden", "gradients of the mean: the gradient with respect to argument 4")
    _fails("lg_elbo", elbo_float, "hidden", "the gradient with respect to argument 6")
    check("lg_posterior", posterior_float)   # the visible suite sees values only
    check("lg_elbo", elbo_float)


def test_gradients_of_w_and_b_are_checked():
    _fails("lg_posterior", lambda x, W, b, s2: lg.posterior(x, W.detach(), b, s2), "hidden", "argument 2")
    _fails("lg_elbo", lambda x, m, S, W, b, s2: lg.elbo(x, m, S, W, b.detach(), s2), "hidden", "argument 5")


def test_responsibilities_with_a_batch_level_switch_fail_on_mixed_batches():
    def switch(x, w, m, lv):
        log_joint = torch.log(w) + gaussian_log_prob(x.unsqueeze(-2), m, lv)
        if bool((log_joint.max(-1).values < -700).all()):   # every point far: log space
            return torch.softmax(log_joint, -1)
        joint = torch.exp(log_joint)
        return joint / joint.sum(-1, keepdim=True)
    for seed in range(8):
        with pytest.raises(CheckFailed, match="far points among ordinary ones"):
            run_check("mixture_responsibilities", switch, suite="hidden", seed=seed)


# --- derivations: what a step may do with integrals ------------------------------------------------

def _kl_parts():
    z, mq, mp, sq, spp = kl_symbols()
    q = sp.exp(-(z - mq) ** 2 / (2 * sq**2)) / sp.sqrt(2 * sp.pi * sq**2)
    result = sp.log(spp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * spp**2) - sp.Rational(1, 2)
    return z, mq, mp, sq, spp, q, (lambda f: sp.Integral(f, (z, -sp.oo, sp.oo))), result


@pytest.mark.parametrize("suite", SUITES)
def test_honest_kl_derivations_of_other_shapes_pass(suite):
    z, mq, mp, sq, spp, q, integral, result = _kl_parts()
    start, step1, step2, _ = kl_steps()
    half = sp.Rational(1, 2)
    split = (sp.log(spp / sq) * integral(q) - integral(q * (z - mq) ** 2) / (2 * sq**2)
             + integral(q * (z - mp) ** 2) / (2 * spp**2))
    chains = [
        [start, split, result],                                                         # split into the facts
        [start, split, step2, result],                                                  # ... then one at a time
        [start, sp.log(spp / sq) - half + integral(q * (z - mp) ** 2) / (2 * spp**2), result],  # two facts at once
        [start, step1, sp.log(spp / sq) - half + integral(q * (z - mp) ** 2 / (2 * spp**2)), result],  # factor inside
        [start, step1, step2, step2.doit()],                                            # SymPy evaluates one fact
    ]
    for steps in chains:
        run_check("kl_derivation_steps", steps, suite=suite, seed=1)


@pytest.mark.parametrize("suite", SUITES)
def test_a_result_wrapped_in_an_integral_is_no_step(suite):
    z, mq, mp, sq, spp, q, integral, result = _kl_parts()
    start, step1, _, _ = kl_steps()
    for steps in ([start, integral(q * result), result],       # ∫ q·RESULT dz = RESULT
                  [start, result * integral(q), result],       # RESULT·∫ q dz
                  [start, result - 1 + integral(q), result],   # a dummy fact
                  [start, step1, integral(q * result), result]):
        _fails("kl_derivation_steps", steps, suite, "changes what is integrated")


@pytest.mark.parametrize("suite", SUITES)
def test_sympy_may_not_evaluate_the_whole_integral(suite):
    start = kl_derivation_start()
    expanded = sp.Integral(sp.expand_log(start.function, force=True), start.limits[0])
    _fails("kl_derivation_steps", [start, expanded, expanded.doit()], suite, "last step with integrals")
    _fails("kl_derivation_steps", [start, kl_steps()[1], kl_steps()[1].doit()], suite, "one of the facts")


@pytest.mark.parametrize("suite", SUITES)
def test_the_first_step_is_the_start_itself(suite):
    z, mq, mp, sq, spp, q, integral, result = _kl_parts()
    start = kl_derivation_start()
    _fails("kl_derivation_steps", [result, integral(q * result), result], suite, "itself, unchanged")
    rewritten = sp.Integral(sp.expand_log(start.function, force=True), start.limits[0])
    _fails("kl_derivation_steps", [rewritten] + kl_steps()[1:], suite, "itself, unchanged")


def test_integrals_must_be_linear_over_the_start_range_and_not_come_back():
    z, mq, mp, sq, spp, q, integral, result = _kl_parts()
    start, step1, step2, final = kl_steps()
    u = sp.Symbol("u", real=True)  # the same integral over another variable: equal, but not the start's
    _fails("kl_derivation_steps", [start, step1, sp.Integral((q * (z - mp) ** 2).subs(z, u), (u, -sp.oo, sp.oo))
                                   / (2 * spp**2) + sp.log(spp / sq) - sp.Rational(1, 2), final], match="over z from -oo to oo")
    _fails("kl_derivation_steps", [start, sp.sqrt(step1 ** 2), final], match="only be added")
    _fails("kl_derivation_steps", [start, sp.Abs(step1), final], match="uses Abs: a piecewise function")
    _fails("kl_derivation_steps", [start, step1, final, final + integral(q) - 1, final], match="bring one back")
    odd = integral(step1.function + q * sp.sin(z - mq))   # + ∫ q·sin(z - mu_q) dz = 0: equal, not a quadratic
    _fails("kl_derivation_steps", [start, odd, final], match="every integrand must be")


def test_derivation_points_cover_the_whole_domain():
    """Each hidden seed draws mu_q above and below mu_p and sigma_q below and above sigma_p."""
    from coursework._core import Ctx
    from coursework.ch01 import _kl_points

    for seed in range(16):
        pts = _kl_points(Ctx("kl_derivation_steps", True, torch.Generator().manual_seed(seed)))
        assert {p["mu_q"] > p["mu_p"] for p in pts} == {True, False}
        assert {p["sigma_q"] > p["sigma_p"] for p in pts} == {True, False}
        assert min(abs(p["mu_q"] - p["mu_p"]) for p in pts) >= 0.3


def test_a_list_argument_changed_in_place_counts_as_mutated():
    """An answer that inserts into, removes from or changes a list it was given (MADE's hidden degrees) modifies
    its input — in this process (coursework._core.invoke_local) and as the grader judges a sandboxed call from
    the arguments sent and returned (autograder.runner._changed)."""
    from autograder.runner import _changed
    from coursework import wire
    from coursework._core import invoke_local

    degrees = [torch.tensor([1, 2]), torch.tensor([2, 1])]

    def inserts(order, hidden):
        hidden.insert(0, order)
        return len(hidden)

    def changes_an_item(order, hidden):
        hidden[0] += 1
        return len(hidden)

    def reads(order, hidden):
        return len(list(hidden) + [order])

    order = torch.tensor([0, 1])
    assert invoke_local(inserts, [order, list(degrees)]).mutated
    assert invoke_local(changes_an_item, [order, [d.clone() for d in degrees]]).mutated
    assert not invoke_local(reads, [order, list(degrees)]).mutated
    sent = [order, [d.clone() for d in degrees]]
    assert not _changed(sent, [wire.encode(a) for a in sent])
    assert _changed(sent, [wire.encode(order), wire.encode([order, *sent[1]])])                     # an item added
    assert _changed(sent, [wire.encode(order), wire.encode([sent[1][0] + 1, sent[1][1]])])           # an item changed
    assert _changed(sent, [wire.encode(order), wire.encode("not a list")])
