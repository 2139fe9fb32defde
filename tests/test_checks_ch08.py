"""The checks of Exercise 8 (coursework/ch08.py): the references they compare with agree with dgm.ssl,
autograd (the gradient and Hessian of a Monte Carlo objective written with .detach() as the
stop-gradient) and scipy; right answers (two ways of writing each) pass both suites for a sweep of
seeds; each known slip fails with the promised diagnosis; the rule catches calls to dgm.ssl.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import sympy as sp
import torch
from conftest import expect_check_fails as _fails
from conftest import (expect_concepts_graded, expect_detached_answer_fails, expect_right_answer_passes,
                      expect_task_inventory)

from coursework import CheckFailed, check, run_check
from coursework import ch08
from coursework.ch08 import hess_derivation_start, hess_symbols
from dgm import ssl

SUITES = ("visible", "hidden")
SEEDS = range(8)
F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _problem(seed=0, K=3, D=4):
    g = _gen(seed)
    W = torch.randn(K, D, generator=g, dtype=F64)
    Wp = torch.randn(K, K, generator=g, dtype=F64)
    A1 = torch.eye(D, dtype=F64) + 0.4 * torch.randn(D, D, generator=g, dtype=F64)
    A2 = torch.eye(D, dtype=F64) + 0.4 * torch.randn(D, D, generator=g, dtype=F64)
    B = torch.randn(D, D, generator=g, dtype=F64)
    sigma = B @ B.T / D + 0.3 * torch.eye(D, dtype=F64)
    n1, n2 = 0.2 * torch.eye(D, dtype=F64), 0.3 * torch.eye(D, dtype=F64)
    return W, Wp, A1, A2, sigma, n1, n2


# --- the references against independent values ------------------------------------------------------

def test_references_match_dgm_ssl():
    W, Wp, A1, A2, sigma, n1, n2 = _problem(1)
    C1, C2, C12 = A1 @ sigma @ A1.T + n1, A2 @ sigma @ A2.T + n2, A1 @ sigma @ A2.T
    torch.testing.assert_close(ch08.ref_objective(W, Wp, C1, C2, C12), ssl.simsiam_objective_trace(W, Wp, C1, C2, C12),
                               rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(ch08.ref_stopgrad_flow(W, Wp, C1, C12, 0.07),
                            ssl.flow_stopgrad(W, Wp, C1, C2, C12, weight_decay=0.07)):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ch08.ref_hessian(Wp, C1, C2, C12), ssl.hessian_operator(Wp, C1, C2, C12),
                               rtol=1e-12, atol=1e-12)
    Z = torch.randn(12, 5, generator=_gen(2), dtype=F64)
    torch.testing.assert_close(ch08.ref_effective_rank(Z), ssl.effective_rank(Z), rtol=1e-12, atol=1e-12)


def _sample_loss(W, Wp, x1, x2, W_target):
    """½ mean ‖W_p W x₁ − W_target x₂‖² over the samples: the sample objective (exact at the sample moments)."""
    return 0.5 * ((x1 @ W.T @ Wp.T - x2 @ W_target.T) ** 2).sum(-1).mean()


def test_references_against_autograd_of_the_sample_objective():
    """At the sample moments, the trace form is the sample loss exactly; the stop-gradient flow is minus its
    autograd gradient with the target detached; the Hessian is autograd's Hessian without the detach,
    reordered to the column-major vec."""
    W, Wp, A1, A2, sigma, n1, n2 = _problem(3, K=2, D=3)
    g = _gen(4)
    x = torch.randn(500, 3, generator=g, dtype=F64) @ torch.linalg.cholesky(sigma).T
    x1 = x @ A1.T + torch.randn(500, 3, generator=g, dtype=F64) @ n1.sqrt()
    x2 = x @ A2.T + torch.randn(500, 3, generator=g, dtype=F64) @ n2.sqrt()
    C1, C2, C12 = x1.T @ x1 / 500, x2.T @ x2 / 500, x1.T @ x2 / 500
    torch.testing.assert_close(ch08.ref_objective(W, Wp, C1, C2, C12), _sample_loss(W, Wp, x1, x2, W),
                               rtol=1e-12, atol=1e-12)
    Wr, Wpr = W.clone().requires_grad_(), Wp.clone().requires_grad_()
    gW, gWp = torch.autograd.grad(_sample_loss(Wr, Wpr, x1, x2, Wr.detach()), (Wr, Wpr))
    eta = 0.05
    dW, dWp = ch08.ref_stopgrad_flow(W, Wp, C1, C12, eta)
    torch.testing.assert_close(dW, -gW - eta * W, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dWp, -gWp - eta * Wp, rtol=1e-10, atol=1e-12)
    # the Hessian in W without stop-gradient: autograd on vec(W) (column-major: W = unvec(w) = w.reshape(D, K).T)
    K, D = W.shape
    hess = torch.autograd.functional.hessian(lambda w: _sample_loss(w.reshape(D, K).T, Wp, x1, x2, w.reshape(D, K).T),
                                             W.T.reshape(-1))
    torch.testing.assert_close(ch08.ref_hessian(Wp, C1, C2, C12), hess, rtol=1e-10, atol=1e-10)


def test_trace_form_is_the_expectation_within_monte_carlo_error():
    """With the population moments, the trace form equals E[½‖W_pWx₁ − Wx₂‖²] within 5 standard errors of a
    Monte Carlo average over 200 000 draws."""
    W, Wp, A1, A2, sigma, n1, n2 = _problem(5)
    C1, C2, C12 = A1 @ sigma @ A1.T + n1, A2 @ sigma @ A2.T + n2, A1 @ sigma @ A2.T
    g = _gen(6)
    n = 200_000
    x = torch.randn(n, 4, generator=g, dtype=F64) @ torch.linalg.cholesky(sigma).T
    x1 = x @ A1.T + torch.randn(n, 4, generator=g, dtype=F64) @ n1.sqrt()
    x2 = x @ A2.T + torch.randn(n, 4, generator=g, dtype=F64) @ n2.sqrt()
    per = 0.5 * ((x1 @ W.T @ Wp.T - x2 @ W.T) ** 2).sum(-1)
    se = float(per.std() / math.sqrt(n))
    assert abs(float(per.mean()) - float(ch08.ref_objective(W, Wp, C1, C2, C12))) < 5 * se


def test_effective_rank_reference_against_scipy_entropy():
    for seed in SEEDS:
        Z = torch.randn(15, 6, generator=_gen(seed), dtype=F64)
        s = np.linalg.svd(Z.numpy(), compute_uv=False)
        assert float(ch08.ref_effective_rank(Z)) == pytest.approx(math.exp(scipy.stats.entropy(s / s.sum())), rel=1e-12)
    assert float(ch08.ref_effective_rank(torch.eye(5, dtype=F64))) == pytest.approx(5.0, rel=1e-12)
    assert float(ch08.ref_effective_rank(torch.outer(torch.arange(1.0, 4.0, dtype=F64), torch.ones(6, dtype=F64)))) \
        == pytest.approx(1.0, rel=1e-12)
    assert float(ch08.ref_effective_rank(torch.diag(torch.tensor([2.0, 1.0, 0.0], dtype=F64)))) == pytest.approx(
        math.exp(scipy.stats.entropy([2 / 3, 1 / 3])), rel=1e-12)


def test_derivation_target_is_the_hessian_and_the_start_equals_it():
    p, s, t = hess_symbols()
    start = hess_derivation_start()
    for point in ({"p": 0.5, "s": 2.0, "t": 0.25}, {"p": -3.0, "s": 0.1, "t": 4.0}, {"p": 7.0, "s": 1.0, "t": 1e-3}):
        want = ch08._hess_target(point)
        got = float(start.subs({p: point["p"], s: point["s"], t: point["t"]}))
        assert got == pytest.approx(want, rel=1e-12)
        # and dgm.ssl's 1×1 Hessian
        H = ssl.hessian_operator(torch.tensor([[point["p"]]], dtype=F64), *(torch.tensor([[v]], dtype=F64) for v in (
            point["s"] + point["t"], point["s"] + point["t"], point["s"])))
        assert float(H[0, 0]) == pytest.approx(want, rel=1e-12)


# --- right answers pass --------------------------------------------------------------------------------

def _kron(a, b):
    return torch.kron(a.contiguous(), b.contiguous())


CORRECT = {
    "simsiam_objective": [
        lambda W, Wp, C1, C2, C12: (0.5 * torch.trace(Wp @ W @ C1 @ W.T @ Wp.T) - torch.trace(Wp @ W @ C12 @ W.T)
                                    + 0.5 * torch.trace(W @ C2 @ W.T)),
        lambda W, Wp, C1, C2, C12: 0.5 * ((Wp @ W @ C1) * (Wp @ W)).sum() - ((Wp @ W @ C12) * W).sum()
        + 0.5 * ((W @ C2) * W).sum(),
    ],
    "stopgrad_flow": [
        lambda W, Wp, C1, C12, eta: (lambda G: (-Wp.T @ G - eta * W, -G @ W.T - eta * Wp))(Wp @ W @ C1 - W @ C12.T),
        lambda W, Wp, C1, C12, eta: (-(Wp.T @ Wp @ W @ C1) + Wp.T @ W @ C12.T - eta * W,
                                     -(Wp @ W @ C1 @ W.T) + W @ C12.T @ W.T - eta * Wp),
    ],
    "hessian_no_stopgrad": [
        lambda Wp, C1, C2, C12: (_kron(C1, Wp.T @ Wp) - _kron(C12, Wp.T) - _kron(C12.T, Wp)
                                 + _kron(C2, torch.eye(Wp.shape[0], dtype=Wp.dtype))),
        # block by block: block (i, j) (K×K) of H is C1[i,j] WpᵀWp − C12[i,j] Wpᵀ − C12[j,i] Wp + C2[i,j] I
        lambda Wp, C1, C2, C12: torch.cat([torch.cat([
            C1[i, j] * (Wp.T @ Wp) - C12[i, j] * Wp.T - C12[j, i] * Wp
            + C2[i, j] * torch.eye(Wp.shape[0], dtype=Wp.dtype) for j in range(C1.shape[0])], dim=1)
            for i in range(C1.shape[0])], dim=0),
    ],
    "effective_rank": [
        lambda Z: (lambda p: torch.exp(-torch.special.xlogy(p, p).sum()))(torch.linalg.svdvals(Z) / torch.linalg.svdvals(Z).sum()),
        lambda Z: (lambda p: torch.exp(-torch.where(p > 0, p * torch.log(torch.where(p > 0, p, torch.ones_like(p))),
                                                    torch.zeros_like(p)).sum()))(
            torch.linalg.svdvals(Z) / torch.linalg.svdvals(Z).sum()),
    ],
}
CONCEPTS = {"concept_what_prevents_collapse": "c", "concept_norm_bound": "b", "concept_row_major": "c",
            "concept_singular_noise": "b"}


def hess_steps():
    p, s, t = hess_symbols()
    return [hess_derivation_start(), s * (p ** 2 - 2 * p + 1) + t * (p ** 2 + 1), s * (p - 1) ** 2 + t * (p ** 2 + 1)]


def test_every_chapter8_task_is_tested_here():
    expect_task_inventory("08-simsiam", CORRECT, "hessian_derivation_steps", CONCEPTS)


@pytest.mark.parametrize("task,index", [(t, i) for t in sorted(CORRECT) for i in range(2)])
def test_right_answers_pass_for_a_sweep_of_seeds(task, index):
    expect_right_answer_passes(task, CORRECT[task][index], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_passes(suite):
    check("hessian_derivation_steps", hess_steps(), suite=suite)
    p, s, t = hess_symbols()
    steps = hess_steps()
    check("hessian_derivation_steps", [steps[0], steps[1], s * (1 - p) ** 2 + t * (1 + p ** 2)], suite=suite)


def test_concept_checks():
    expect_concepts_graded(CONCEPTS)


# --- known slips, diagnosed -------------------------------------------------------------------------

def _objective(half=True, cross_t=False, target=True, c1_for_c2=False, right_pred=False):
    def fn(W, Wp, C1, C2, C12):
        A = W @ Wp if right_pred else Wp @ W
        k = 0.5 if half else 1.0
        c = C12.T if cross_t else C12
        out = k * torch.trace(A @ C1 @ A.T) - 2 * k * torch.trace(A @ c @ W.T)
        if target:
            out = out + k * torch.trace(W @ (C1 if c1_for_c2 else C2) @ W.T)
        return out
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (_objective(half=False), "½ in front"),
    (_objective(cross_t=True), "transposed in the cross term"),
    (_objective(target=False), "½ tr\\(W C₂ Wᵀ\\) is dropped"),
    (_objective(c1_for_c2=True), "C₁ is used in the last term"),
])
def test_objective_slips_are_diagnosed(wrong, match, suite):
    _fails("simsiam_objective", wrong, suite, match)


def test_objective_with_the_predictor_on_the_right_fails_and_is_named_when_k_equals_d():
    """W W_p raises for K ≠ D (a failure, whatever its message) and is named where K = D (the hidden 3×3 case)."""
    wrong = _objective(right_pred=True)
    with pytest.raises(CheckFailed):
        run_check("simsiam_objective", wrong, suite="hidden", seed=0)

    def only_square(W, Wp, C1, C2, C12):   # the right answer except where W W_p is defined
        return wrong(W, Wp, C1, C2, C12) if W.shape[0] == W.shape[1] else CORRECT["simsiam_objective"][0](W, Wp, C1, C2, C12)
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="applied on the right"):
            run_check("simsiam_objective", only_square, suite="hidden", seed=seed)


def _flow(sg=True, c12_t=True, wp_t=True, sign=1.0, wd_sign=-1.0, wd=True):
    def fn(W, Wp, C1, C12, eta):
        G = Wp @ W @ C1 - W @ (C12.T if c12_t else C12)
        P = Wp.T if wp_t else Wp
        dW = sign * (-P @ G) + (wd_sign * eta * W if wd else 0 * W)
        dWp = sign * (-G @ W.T) + (wd_sign * eta * Wp if wd else 0 * Wp)
        if not sg:
            dW = dW + Wp @ W @ C12 - W @ C1
        return dW, dWp
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("wrong,match", [
    (_flow(sg=False), "flows through the target branch"),
    (_flow(c12_t=False), "C₁₂ is used where C₁₂ᵀ belongs"),
    (_flow(wp_t=False), "W_p is used where W_pᵀ belongs"),
])
def test_flow_slips_are_diagnosed(wrong, match, suite):
    _fails("stopgrad_flow", wrong, suite, match)


@pytest.mark.parametrize("wrong,match", [
    (_flow(wd_sign=1.0), "weight decay has the wrong sign"),
    (_flow(wd=False), "weight decay is left out"),
    (_flow(sign=-1.0, wd_sign=1.0), "sign is flipped"),
])
def test_flow_weight_decay_and_sign_slips_are_diagnosed(wrong, match):
    _fails("stopgrad_flow", wrong, "visible", match)   # the visible η = 0.1 example
    _fails("stopgrad_flow", wrong, "hidden", match)


def _hess(kind):
    def fn(Wp, C1, C2, C12):
        eye = torch.eye(Wp.shape[0], dtype=Wp.dtype)
        if kind == "row":
            return _kron(Wp.T @ Wp, C1) - _kron(Wp.T, C12) - _kron(Wp, C12.T) + _kron(eye, C2)
        if kind == "stopgrad":
            return _kron(C1, Wp.T @ Wp) - _kron(C12, Wp.T)
        if kind == "unsym":
            return _kron(C1, Wp.T @ Wp) - 2 * _kron(C12, Wp.T) + _kron(C2, eye)
        if kind == "swap":
            return _kron(C1, Wp.T @ Wp) - _kron(C12.T, Wp.T) - _kron(C12, Wp) + _kron(C2, eye)
        if kind == "wpwpt":
            return _kron(C1, Wp @ Wp.T) - _kron(C12, Wp.T) - _kron(C12.T, Wp) + _kron(C2, eye)
        return 2 * (_kron(C1, Wp.T @ Wp) - _kron(C12, Wp.T) - _kron(C12.T, Wp) + _kron(C2, eye))
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("row", "row-major"), ("stopgrad", "not differentiated"),
                                        ("unsym", "not symmetrised"), ("swap", "swapped in the cross terms"),
                                        ("wpwpt", "W_p W_pᵀ is used"), ("twice", "twice the Hessian")])
def test_hessian_slips_are_diagnosed(kind, match, suite):
    _fails("hessian_no_stopgrad", _hess(kind), suite, match)


def _erank(kind):
    def fn(Z):
        s = torch.linalg.svdvals(Z)
        if kind == "squared":
            s = s ** 2
        p = s / (s.max() if kind == "max" else s.sum())
        if kind == "nan":
            H = -(p * torch.log(p)).sum()
        else:
            H = -torch.special.xlogy(p, p).sum()
        if kind == "no_exp":
            return H
        if kind == "bits":
            return torch.exp(H / math.log(2))
        return torch.exp(H)
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("no_exp", "without the exp"), ("squared", "squared singular values"),
                                        ("bits", "in bits"), ("max", "largest instead of their sum"),
                                        ("nan", "NaN")])
def test_effective_rank_slips_are_diagnosed(kind, match, suite):
    _fails("effective_rank", _erank(kind), suite, match)


def test_centred_effective_rank_is_caught():
    _fails("effective_rank", lambda Z: ch08.ref_effective_rank(Z - Z.mean(0)), "hidden", "centred")


@pytest.mark.parametrize("task", sorted(CORRECT))
def test_detached_answers_fail_the_hidden_gradient_check(task):
    expect_detached_answer_fails(task, CORRECT[task][0], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_must_end_in_the_completed_square(suite):
    steps = hess_steps()
    p, s, t = hess_symbols()
    _fails("hessian_derivation_steps", [steps[0], p ** 2 * s + p ** 2 * t - 2 * p * s + s + t, steps[1]], suite,
           "complete the square")
    _fails("hessian_derivation_steps", [steps[0], steps[2]], suite, "at least 3")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_with_a_wrong_step_names_it(suite):
    steps = hess_steps()
    p, s, t = hess_symbols()
    _fails("hessian_derivation_steps", [steps[0], steps[1], s * (p + 1) ** 2 + t * (p ** 2 + 1)], suite,
           "step 2 is not equal to step 1")


# --- found by the red team (a helper that had not read the checks) ------------------------------------------

def _erank_cut(relative, cutoff):
    def fn(Z):
        s = torch.linalg.svdvals(Z)
        s = s[s > cutoff * (s.max() if relative else 1.0)]
        p = s / s.sum()
        return torch.exp(-torch.special.xlogy(p, p).sum())
    return fn


@pytest.mark.parametrize("relative,cutoff", [(True, 1e-1), (True, 1e-2), (True, 1e-3), (True, 1e-6), (False, 1e-6),
                                             (False, 1e-10)])
def test_effective_rank_with_a_cut_off_fails_for_every_seed(relative, cutoff):
    """Dropping small singular values (relative to the largest or absolute) changes the rank of a spread
    spectrum, of a nearly collapsed Z (five of 5e-7 beside 1) or of a Z near 1e-9 or 1e-13 by more than the
    tolerance, for every seed; the feedback names the cut-off."""
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="small singular values are dropped"):
            run_check("effective_rank", _erank_cut(relative, cutoff), suite="hidden", seed=seed)


def test_effective_rank_through_eigenvalues_of_the_gram_matrix_passes():
    """sqrt(eigvalsh(ZᵀZ)) loses half the digits of small singular values but is a right answer; the
    hidden cases with singular values down to 3e-7 of the largest keep it within the tolerance."""
    def via_gram(Z):
        gram = Z.T @ Z if Z.shape[0] >= Z.shape[1] else Z @ Z.T
        s = torch.linalg.eigvalsh(gram).clamp(min=0).sqrt()
        p = s / s.sum()
        return torch.exp(-torch.special.xlogy(p, p).sum())
    check("effective_rank", via_gram)
    for seed in SEEDS:
        run_check("effective_rank", via_gram, suite="hidden", seed=seed)


@pytest.mark.parametrize("task", ["simsiam_objective", "stopgrad_flow", "hessian_no_stopgrad"])
def test_second_moments_written_transposed_pass(task):
    """C₁ and C₂ are symmetric (second moments): a right answer may use C₁ᵀ for C₁. Its gradient differs from
    the reference's in the antisymmetric part only, which the checks do not compare."""
    right = CORRECT[task][0]
    if task == "stopgrad_flow":
        def transposed(W, Wp, C1, C12, eta):
            return right(W, Wp, C1.T, C12, eta)
    elif task == "hessian_no_stopgrad":
        def transposed(Wp, C1, C2, C12):
            return right(Wp, C1.T, C2.T, C12)
    else:
        def transposed(W, Wp, C1, C2, C12):
            return right(W, Wp, C1.T, C2.T, C12)
    check(task, transposed)
    for seed in SEEDS:
        run_check(task, transposed, suite="hidden", seed=seed)


def test_a_wrong_gradient_is_named_by_its_argument():
    """A target that is detached (a stop-gradient the objective does not have) keeps the values and breaks the
    gradient with respect to W: the feedback names W and the likely cause."""
    def detached_target(W, Wp, C1, C2, C12):
        return (0.5 * torch.trace(Wp @ W @ C1 @ W.T @ Wp.T) - torch.trace(Wp @ W @ C12 @ W.detach().T)
                + 0.5 * torch.trace(W @ C2 @ W.T))
    _fails("simsiam_objective", detached_target, "hidden", r"argument 1 \(W\) is wrong; .*\.detach\(\)")


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("half_first", "missing in the first term"),
                                        ("half_last", "missing in the last term"),
                                        ("double_cross", "cross term is doubled"),
                                        ("sum", "summed instead of taking their traces")])
def test_more_objective_slips_are_named(kind, match, suite):
    def fn(W, Wp, C1, C2, C12):
        A = Wp @ W
        t1, t2, t3 = torch.trace(A @ C1 @ A.T), torch.trace(A @ C12 @ W.T), torch.trace(W @ C2 @ W.T)
        if kind == "sum":
            return 0.5 * (A @ C1 @ A.T).sum() - (A @ C12 @ W.T).sum() + 0.5 * (W @ C2 @ W.T).sum()
        return {"half_first": t1 - t2 + 0.5 * t3, "half_last": 0.5 * t1 - t2 + t3,
                "double_cross": 0.5 * t1 - 2 * t2 + 0.5 * t3}[kind]
    _fails("simsiam_objective", fn, suite, match)


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("half", "½ is left on the first term"), ("plus", "cross terms have a \\+ sign"),
                                        ("one_cross", "one of the two cross terms is missing"),
                                        ("other_cross", "one of the two cross terms is missing")])
def test_more_hessian_slips_are_named(kind, match, suite):
    def fn(Wp, C1, C2, C12):
        eye = torch.eye(Wp.shape[0], dtype=Wp.dtype)
        first, a, b, last = _kron(C1, Wp.T @ Wp), _kron(C12, Wp.T), _kron(C12.T, Wp), _kron(C2, eye)
        return {"half": 0.5 * first - a - b + last, "plus": first + a + b + last, "one_cross": first - a + last,
                "other_cross": first - b + last}[kind]
    _fails("hessian_no_stopgrad", fn, suite, match)


def test_transposed_dwp_is_named():
    def fn(W, Wp, C1, C12, eta):
        dW, dWp = CORRECT["stopgrad_flow"][0](W, Wp, C1, C12, eta)
        return dW, dWp.T
    _fails("stopgrad_flow", fn, "hidden", "dWp is transposed")


def test_effective_rank_with_a_euclidean_normalisation_is_named():
    def fn(Z):
        s = torch.linalg.svdvals(Z)
        p = s / s.norm()
        return torch.exp(-torch.special.xlogy(p, p).sum())
    _fails("effective_rank", fn, "visible", "Euclidean norm")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_steps_may_not_hide_a_term_in_a_piecewise_function(suite):
    """Max(0, p − 10)·t is 0 at every point drawn and not elsewhere; Piecewise and Abs likewise."""
    p, s, t = hess_symbols()
    steps = hess_steps()
    for hidden in (sp.Max(0, p - 10) * t, sp.Max(0, -p - 5) * t, sp.Max(0, t - 100) * s,
                   sp.Piecewise((0, p < 40), (t, True)), (sp.Abs(p - 50) + p - 50) * t):
        _fails("hessian_derivation_steps", [steps[0], steps[1] + hidden, steps[2]], suite, "piecewise function")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_steps_must_be_exactly_equal(suite):
    """A step off by s·t/10⁹ (or 1/10¹²) is equal to about 1e-9 at every point, below the numerical
    comparison; the steps are rational functions, so equality is decided exactly and the difference named."""
    p, s, t = hess_symbols()
    steps = hess_steps()
    _fails("hessian_derivation_steps", [steps[0], steps[1] + s * t / 10**9, steps[2]], suite,
           "step 1 is not exactly equal to step 0: they differ by")
    _fails("hessian_derivation_steps", [steps[0], steps[1] + sp.Rational(1, 10**12), steps[2]], suite,
           "not exactly equal")


@pytest.mark.parametrize("suite", SUITES)
def test_a_step_that_sympy_evaluates_to_the_one_before_does_not_count_but_is_no_error(suite):
    """½·2·(step 1) is step 1 again once SymPy evaluates it: among three different steps it passes (the red
    team's long right answer lost every mark for it); with only two different steps the chain is too short."""
    p, s, t = hess_symbols()
    steps = hess_steps()
    check("hessian_derivation_steps", [steps[0], steps[1], sp.Rational(1, 2) * 2 * steps[1], steps[2]], suite=suite)
    _fails("hessian_derivation_steps", [steps[0], steps[0] * 1, steps[2]], suite, "repeats step 0")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_steps_hold_no_decimal(suite):
    p, s, t = hess_symbols()
    steps = hess_steps()
    _fails("hessian_derivation_steps", [steps[0], 0.5 * (2 * s * (p - 1) ** 2 + 2 * t * (p ** 2 + 1)), steps[2]], suite,
           "holds a decimal")
    _fails("hessian_derivation_steps", [steps[0], steps[1], 1.0 * s * (p - 1) ** 2 + t * (p ** 2 + 1)], suite,
           "holds a decimal")


# --- the rule against calling dgm.ssl --------------------------------------------------------------------

@pytest.mark.forbid_rule
def test_calling_dgm_ssl_fails():
    def via_library(W, Wp, C1, C2, C12):
        return ssl.simsiam_objective_trace(W, Wp, C1, C2, C12)
    _fails("simsiam_objective", via_library, match="dgm.ssl")
