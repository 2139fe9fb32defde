"""Tests of Exercise 7's checks (coursework/ch07.py).

Correct answers (built from dgm.diffusion, with the exercise's rule against calling it lifted) pass
both suites; each known-wrong answer fails, with the promised diagnosis where the check makes one;
the solution notebook's own answers pass with the rule on; and the rule catches a call of
dgm.diffusion. The notebook-level version (solutions pass, mutants lose marks) is in
tests/test_grading.py.
"""

from __future__ import annotations


import pytest
import sympy as sp
import torch
from conftest import expect_check_fails as _fails

import coursework.ch07 as ch07
from coursework import CheckFailed
from coursework.ch07 import POSTERIOR_REPORT_POINT, check, derivation_report, posterior_derivation_start, posterior_symbols
from dgm.diffusion import GaussianDiffusion

SUITES = ("visible", "hidden")


def _d(betas):
    return GaussianDiffusion(betas)


def q_sample(x0, t, noise, betas):
    return _d(betas).q_sample(x0, t, noise=noise)


def posterior(x0, xt, t, betas):
    mean, var, _ = _d(betas).q_posterior_mean_variance(x0, xt, t)
    return mean, var


def p_sample_step(model, xt, t, betas, noise, variance):
    return _d(betas).p_sample(model, xt, t, noise=noise, variance=variance)


def vlb_weights(betas, variance):
    return _d(betas).vlb_weights(variance)


def optimal_eps(xt, t, data, betas):
    return _d(betas).optimal_eps(xt, t, data, dtype=torch.float64).to(xt.dtype)


CORRECT = {
    "q_sample_closed_form": q_sample,
    "posterior_mean_variance": posterior,
    "p_sample_step": p_sample_step,
    "vlb_weights": vlb_weights,
    "optimal_eps": optimal_eps,
}


def posterior_steps(*, complete=True, break_precision=False):
    x, x_t, x_0, beta, abar = posterior_symbols()
    P = (sp.sqrt(1 - beta) if break_precision else (1 - beta)) / beta + 1 / (1 - abar)
    L = sp.sqrt(1 - beta) * x_t / beta + sp.sqrt(abar) * x_0 / (1 - abar)
    C = -x_t**2 / (2 * beta) - abar * x_0**2 / (2 * (1 - abar))
    steps = [posterior_derivation_start(), -P / 2 * x**2 + L * x + C]
    if complete:
        steps.append(-P / 2 * (x - L / P) ** 2 + L**2 / (2 * P) + C)
    else:
        steps.append(-(1 - beta) * x**2 / (2 * beta) - x**2 / (2 * (1 - abar)) + L * x + C)
    return steps


# --- correct answers pass -------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("task", sorted(CORRECT))
def test_correct_functions_pass(task, suite, capsys):
    check(task, CORRECT[task], suite=suite)
    assert f"{task}: all {suite} checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("suite", SUITES)
def test_correct_derivation_passes(suite, capsys):
    check("posterior_derivation_steps", posterior_steps(), suite=suite)
    derivation_report(posterior_steps(), POSTERIOR_REPORT_POINT)
    assert "differs" not in capsys.readouterr().out


@pytest.mark.parametrize(("task", "right"), [("concept_prior_term", "c"), ("concept_reverse_learned", "b"),
                                             ("concept_large_t", "b")])
def test_concepts(task, right):
    check(task, right, suite="hidden", expected=right)
    wrong = "a" if right != "a" else "b"
    with pytest.raises(CheckFailed, match="not correct"):
        check(task, wrong, suite="hidden", expected=right)
    _fails(task, None, match="no answer yet")


# --- wrong answers fail, with the promised diagnosis ----------------------------------------


def _sched(betas, t, like):
    return ch07._sched(betas, t, like.dtype, like)


@pytest.mark.parametrize("suite", SUITES)
def test_q_sample_variance_for_std_is_diagnosed(suite):
    def wrong(x0, t, noise, betas):
        _, _, abar, _ = _sched(betas, t, x0)
        return torch.sqrt(abar) * x0 + (1 - abar) * noise
    _fails("q_sample_closed_form", wrong, suite, "variance 1 - abar_t instead of the standard deviation")


@pytest.mark.parametrize("suite", SUITES)
def test_q_sample_alpha_for_abar_is_diagnosed(suite):
    def wrong(x0, t, noise, betas):
        alpha, _, _, _ = _sched(betas, t, x0)
        return torch.sqrt(alpha) * x0 + torch.sqrt(1 - alpha) * noise
    _fails("q_sample_closed_form", wrong, suite, "alpha_t is used where abar_t")


def test_q_sample_off_by_one_is_diagnosed():
    def wrong(x0, t, noise, betas):
        _, _, _, abar_prev = _sched(betas, t, x0)
        return torch.sqrt(abar_prev) * x0 + torch.sqrt(1 - abar_prev) * noise
    _fails("q_sample_closed_form", wrong, match="one step too early")


def test_q_sample_detached_fails_the_gradient_check():
    _fails("q_sample_closed_form", lambda *a: q_sample(*a).detach(), "hidden", "differentiabl")


def test_q_sample_wrong_dtype_fails():
    _fails("q_sample_closed_form", lambda *a: q_sample(*a).float(), match="dtype")


@pytest.mark.parametrize("suite", SUITES)
def test_posterior_square_root_slip_is_diagnosed(suite):
    def wrong(x0, xt, t, betas):
        mean, _ = posterior(x0, xt, t, betas)
        _, beta, abar, abar_prev = _sched(betas, t, x0)
        return mean, torch.ones_like(x0) * (1 - torch.sqrt(abar_prev)) / (1 - torch.sqrt(abar)) * beta
    _fails("posterior_mean_variance", wrong, suite, "square roots are put on abar")


@pytest.mark.parametrize("suite", SUITES)
def test_posterior_swapped_coefficients_are_diagnosed(suite):
    def wrong(x0, xt, t, betas):
        mean, var = posterior(xt, x0, t, betas)
        return mean, var
    _fails("posterior_mean_variance", wrong, suite, "swapped")


def test_posterior_returning_beta_is_diagnosed():
    def wrong(x0, xt, t, betas):
        mean, _ = posterior(x0, xt, t, betas)
        _, beta, _, _ = _sched(betas, t, x0)
        return mean, torch.ones_like(x0) * beta
    _fails("posterior_mean_variance", wrong, match="forward step")


def test_posterior_must_return_a_pair():
    _fails("posterior_mean_variance", lambda *a: posterior(*a)[0], match="tuple of two")


@pytest.mark.parametrize("suite", SUITES)
def test_p_sample_noise_at_t1_is_diagnosed(suite):
    def wrong(model, xt, t, betas, noise, variance):
        mean, _, logvar = _d(betas).p_mean_variance(model, xt, t, variance=variance)
        return mean + torch.exp(0.5 * logvar) * noise
    _fails("p_sample_step", wrong, suite, "noise is added at t = 1")


@pytest.mark.parametrize("suite", SUITES)
def test_p_sample_swapped_variance_is_diagnosed(suite):
    def wrong(model, xt, t, betas, noise, variance):
        other = "beta_tilde" if variance == "beta" else "beta"
        return p_sample_step(model, xt, t, betas, noise, other)
    _fails("p_sample_step", wrong, suite, "is used where variance")


@pytest.mark.parametrize("suite", SUITES)
def test_p_sample_alpha_for_abar_is_diagnosed(suite):
    def wrong(model, xt, t, betas, noise, variance):
        d = _d(betas)
        alpha, beta, _, _ = _sched(betas, t, xt)
        _, _, logvar = d.p_mean_variance(model, xt, t, variance=variance)
        keep = (t > 1).to(xt.dtype).reshape(-1, *([1] * (xt.dim() - 1)))
        return (xt - beta / torch.sqrt(1 - alpha) * model(xt, t)) / torch.sqrt(alpha) + keep * torch.exp(0.5 * logvar) * noise
    _fails("p_sample_step", wrong, suite, "alpha_t is used where abar_t")


@pytest.mark.parametrize("suite", SUITES)
def test_vlb_sigma4_is_diagnosed(suite):
    def wrong(betas, variance):
        d = _d(betas)
        s2 = torch.exp(d.log_betas if variance == "beta" else d.posterior_log_variance_clipped)
        return betas**2 / (2 * s2**2 * d.alphas * d.one_minus_alphas_cumprod)
    _fails("vlb_weights", wrong, suite, "sigma_t\\^4")


@pytest.mark.parametrize("suite", SUITES)
def test_vlb_alpha_for_abar_is_diagnosed(suite):
    def wrong(betas, variance):
        d = _d(betas)
        s2 = torch.exp(d.log_betas if variance == "beta" else d.posterior_log_variance_clipped)
        return betas**2 / (2 * s2 * d.alphas * betas)
    _fails("vlb_weights", wrong, suite, "1 - alpha_t is used where 1 - abar_t")


def test_vlb_missing_half_is_diagnosed():
    _fails("vlb_weights", lambda b, v: 2 * vlb_weights(b, v), match="1/2 is missing")


def test_optimal_eps_naive_normalisation_fails_far_from_the_data():
    def naive(xt, t, data, betas):
        d = _d(betas)
        x, dd = xt.reshape(xt.shape[0], -1), data.reshape(data.shape[0], -1)
        _, _, abar, _ = _sched(betas, t, x)
        dens = torch.exp(-(x[:, None] - torch.sqrt(abar)[:, :, None] * dd[None]).pow(2).sum(-1) / (2 * (1 - abar)))
        w = dens / dens.sum(1, keepdim=True)
        return ((x - torch.sqrt(abar) * (w @ dd)) / torch.sqrt(1 - abar)).reshape(xt.shape) + 0 * d.betas[0]
    _fails("optimal_eps", naive, match="NaN or infinity")


@pytest.mark.parametrize("suite", SUITES)
def test_optimal_eps_returning_x0_is_diagnosed(suite):
    _fails("optimal_eps", lambda xt, t, data, betas: _d(betas).optimal_x0(xt, t, data, dtype=torch.float64).to(xt.dtype),
           suite, "E\\[x_0 \\| x_t\\] is returned")


def test_optimal_eps_uniform_weights_are_diagnosed():
    def wrong(xt, t, data, betas):
        _, _, abar, _ = _sched(betas, t, xt)
        return (xt - torch.sqrt(abar) * data.mean(0)) / torch.sqrt(1 - abar)
    _fails("optimal_eps", wrong, match="weighted equally")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_with_a_broken_step_fails(suite):
    _fails("posterior_derivation_steps", posterior_steps(break_precision=True), suite, "step 1 is not equal to step 0")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_without_a_completed_square_fails(suite):
    _fails("posterior_derivation_steps", posterior_steps(complete=False), suite, "completed square")


def test_derivation_with_a_wrong_completed_square_fails():
    x, x_t, x_0, beta, abar = posterior_symbols()
    steps = posterior_steps()
    # a final step that equals the chain but reads off a wrong variance is impossible; a wrong final step breaks the chain
    wrong = steps[:-1] + [-(x - x_t) ** 2 / (2 * beta) + x_0]
    _fails("posterior_derivation_steps", wrong, match="not equal")
    _fails("posterior_derivation_steps", steps[:2], match="at least 3 steps")


# --- the rule -------------------------------------------------------------------------------------


@pytest.mark.forbid_rule
def test_the_rule_catches_calling_dgm_diffusion():
    _fails("q_sample_closed_form", q_sample, match="dgm.diffusion")


# --- the hidden suite covers the whole specification (issue 11) ------------------------------------

def _vlb_by_precision(betas, variance):
    """The weights with beta~ from the precision form 1 / (alpha_t / beta_t + 1 / (1 - abar_(t-1)))."""
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    if variance == "beta":
        sigma2 = betas
    elif len(betas) == 1:
        sigma2 = betas
    else:
        abar_prev = torch.cat([torch.ones(1, dtype=betas.dtype), abar[:-1]])
        bt = 1 / (alphas / betas + 1 / (1 - abar_prev))          # 1 / inf = 0 at t = 1
        sigma2 = torch.where(torch.arange(len(betas)) == 0, bt[1], bt)
    return betas**2 / (2 * sigma2 * alphas * (1 - abar))


def _optimal_eps_by_logsumexp(xt, t, data, betas):
    B, N = xt.shape[0], data.shape[0]
    x, d = xt.reshape(B, -1), data.reshape(N, -1)
    abar = torch.cumprod(1 - betas, 0)[t - 1].to(xt.dtype)[:, None]
    log_w = -((x[:, None, :] - torch.sqrt(abar)[:, :, None] * d[None]) ** 2).sum(-1) / (2 * (1 - abar))
    w = torch.exp(log_w - torch.logsumexp(log_w, 1, keepdim=True))
    return ((x - torch.sqrt(abar) * (w @ d)) / torch.sqrt(1 - abar)).reshape(xt.shape)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize(("task", "answer"), [("vlb_weights", _vlb_by_precision),
                                              ("optimal_eps", _optimal_eps_by_logsumexp)])
def test_equivalent_formulas_pass(task, answer, suite):
    from coursework import run_check

    for seed in range(4):
        run_check(task, answer, suite=suite, seed=seed)


def test_vlb_weights_run_the_edge_case_T_1():
    def no_T1(betas, variance):
        d = _d(betas)
        if variance == "beta":
            return vlb_weights(betas, variance)
        bt = d.posterior_variance
        s2 = torch.cat([bt[1:2], bt[1:]])                         # beta~_1 -> beta~_2, no T = 1 case
        return betas**2 / (2 * s2 * d.alphas * d.one_minus_alphas_cumprod)
    check("vlb_weights", no_T1)                                   # the visible suite has T = 10 only
    _fails("vlb_weights", no_T1, "hidden", "T = 1, beta_tilde")


def test_p_sample_step_runs_T_1_and_checks_gradients():
    def clipped(model, xt, t, betas, noise, variance):
        d = _d(betas)
        if variance == "beta_tilde":
            bt = d.posterior_variance
            s2 = torch.cat([bt[1:2], bt[1:]])[t - 1].to(xt.dtype).reshape(-1, *([1] * (xt.dim() - 1)))
            mean, _, _ = d.p_mean_variance(model, xt, t, variance=variance)
            keep = (t > 1).to(xt.dtype).reshape(-1, *([1] * (xt.dim() - 1)))
            return mean + keep * torch.sqrt(s2) * noise
        return p_sample_step(model, xt, t, betas, noise, variance)
    _fails("p_sample_step", clipped, "hidden", "T = 1")
    _fails("p_sample_step", lambda m, xt, t, b, z, v: p_sample_step(m, xt, t, b, z.detach(), v), "hidden",
           "gradients with respect to xt and noise")


def test_optimal_eps_gradients_are_checked():
    def detached_weights(xt, t, data, betas):
        B, N = xt.shape[0], data.shape[0]
        x, d = xt.reshape(B, -1), data.reshape(N, -1)
        abar = torch.cumprod(1 - betas, 0)[t - 1].to(xt.dtype)[:, None]
        with torch.no_grad():
            w = torch.softmax(-(x[:, None] - torch.sqrt(abar)[:, :, None] * d[None]).pow(2).sum(-1) / (2 * (1 - abar)), 1)
        return ((x - torch.sqrt(abar) * (w @ d)) / torch.sqrt(1 - abar)).reshape(xt.shape)
    check("optimal_eps", detached_weights)
    _fails("optimal_eps", detached_weights, "hidden", "gradients with respect to xt and data")


def test_data_without_event_dimensions_and_extreme_schedules():
    def two_d_only(x0, t, noise, betas):
        _, _, abar, _ = _sched(betas, t, x0)
        return (torch.sqrt(abar) * x0.reshape(len(x0), -1) + torch.sqrt(1 - abar) * noise.reshape(len(x0), -1)) \
            .reshape(x0.shape)
    _fails("q_sample_closed_form", two_d_only, "hidden", "no event dimensions")

    def float32_schedule(x0, xt, t, betas):                       # the schedule computed in float32
        alpha, beta, abar, abar_prev = ch07._sched(betas.float(), t, torch.float32, x0)
        x0_, xt_ = x0.float(), xt.float()
        mean = torch.sqrt(abar_prev) * beta / (1 - abar) * x0_ + torch.sqrt(alpha) * (1 - abar_prev) / (1 - abar) * xt_
        return mean.to(x0.dtype), ((1 - abar_prev) / (1 - abar) * beta).expand(x0.shape).to(x0.dtype)
    _fails("posterior_mean_variance", float32_schedule, "hidden")


@pytest.mark.parametrize("suite", SUITES)
def test_posterior_derivation_must_start_from_the_start(suite):
    x, x_t, x_0, beta, abar = posterior_symbols()
    final = posterior_steps()[-1]
    _fails("posterior_derivation_steps", [final, sp.expand(final), final], suite, "itself, unchanged")


def test_posterior_derivation_points_cover_both_signs():
    """sqrt(abar * x_0**2) is sqrt(abar) |x_0|: right for x_0 > 0 only. SymPy writes it with Abs, which the
    steps may not bring in (a piecewise function); and every seed draws x, x_t and x_0 of both signs, so that
    a step right for one sign only is not equal at some point."""
    from coursework import run_check
    from coursework._core import Ctx
    from coursework.ch07 import _posterior_points

    x, x_t, x_0, beta, abar = posterior_symbols()
    P = (1 - beta) / beta + 1 / (1 - abar)
    L = sp.sqrt(1 - beta) * x_t / beta + sp.sqrt(abar * x_0**2) / (1 - abar)
    C = -x_t**2 / (2 * beta) - abar * x_0**2 / (2 * (1 - abar))
    steps = [posterior_derivation_start(), -P / 2 * x**2 + L * x + C, -P / 2 * (x - L / P) ** 2 + L**2 / (2 * P) + C]
    for seed in range(16):
        with pytest.raises(CheckFailed, match="uses Abs"):
            run_check("posterior_derivation_steps", steps, suite="hidden", seed=seed)
        points = _posterior_points(Ctx("posterior_derivation_steps", True, torch.Generator().manual_seed(seed)))
        for name in ("x", "x_t", "x_0"):
            assert {pt[name] > 0 for pt in points} == {True, False}, (seed, name)


@pytest.mark.parametrize("suite", SUITES)
def test_posterior_derivation_alternatives_pass(suite):
    x, x_t, x_0, beta, abar = posterior_symbols()
    steps = posterior_steps()
    expanded = sp.expand(steps[0])
    check("posterior_derivation_steps", [steps[0], expanded, steps[1], steps[2]], suite=suite)
    _fails("posterior_derivation_steps", [steps[0], steps[1] + sp.Integral(0 * x, (x, 0, 1)), steps[2]], suite,
           "has none")
