"""The checks of Exercise 4 (coursework/ch04.py): the references they compare with agree with dgm.flows
(AffineCoupling, rescaled_log_prob, bits_per_dim, made_masks), autograd's log|det| of the Jacobian and
scipy's log-normal; right answers (two ways of writing each) pass both suites for a sweep of seeds; each
known slip fails with the promised diagnosis; the solution notebook's answers pass with the rule on; the
rule catches calls to dgm.flows.
"""

from __future__ import annotations

import math

import pytest
import scipy.stats
import sympy as sp
import torch
from conftest import expect_check_fails as _fails
from conftest import (expect_concepts_graded, expect_detached_answer_fails, expect_right_answer_passes,
                      expect_task_inventory)

from coursework import CheckFailed, check, run_check
from coursework import ch04
from coursework.ch04 import lognormal_derivation_start, lognormal_symbols, scale_shift_net
from dgm import flows

SUITES = ("visible", "hidden")
SEEDS = range(8)
F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the references against independent values ------------------------------------------------------

def test_coupling_reference_matches_dgm_affine_coupling():
    """dgm.flows.AffineCoupling with its conditioner wrapped as a (..., D) → (s, t) map (zeros at the passive
    coordinates) gives the reference's y and log-det, forward and inverse."""
    layer = flows.AffineCoupling(5, mask=torch.tensor([True, False, True, False, False]), hidden=16,
                                 generator=_gen(1), dtype=F64)
    passive, active = layer.passive, layer.active
    mask = layer.mask.to(F64)

    def scale_shift(u):
        s_b, t_b = layer.scale_and_shift(u[..., passive])
        s = torch.zeros_like(u)
        t = torch.zeros_like(u)
        s[..., active] = s_b
        t[..., active] = t_b
        return s, t

    x = torch.randn(4, 3, 5, generator=_gen(2), dtype=F64)
    for mine, theirs in zip(ch04.ref_coupling_forward(x, mask, scale_shift), layer(x)):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(ch04.ref_coupling_inverse(x, mask, scale_shift), layer.inverse(x)):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)


def test_coupling_log_det_against_autograd_and_round_trip():
    net = scale_shift_net(4, 7, gain=5.0)
    mask = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=F64)
    x = torch.randn(6, 4, generator=_gen(3), dtype=F64)
    y, ld = ch04.ref_coupling_forward(x, mask, net)
    torch.testing.assert_close(ld, ch04.log_abs_det_jacobian(lambda r: ch04.ref_coupling_forward(r, mask, net)[0], x),
                               rtol=1e-10, atol=1e-10)
    # dgm.flows.log_det_autograd, the library's own Jacobian route
    torch.testing.assert_close(ld, flows.log_det_autograd(lambda r: ch04.ref_coupling_forward(r, mask, net)[0], x),
                               rtol=1e-10, atol=1e-10)
    back, ld_inv = ch04.ref_coupling_inverse(y, mask, net)
    torch.testing.assert_close(back, x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ld_inv, -ld, rtol=1e-12, atol=1e-12)


def test_scale_shift_net_is_clamped_and_keeps_the_dtype():
    net = scale_shift_net(3, 1, gain=50.0)
    u = 1e3 * torch.randn(10, 3, generator=_gen(4), dtype=F64)
    s, t = net(u)
    assert s.shape == t.shape == (10, 3) and bool((s.abs() < 2.5 + 1e-12).all())
    s32, _ = net(u.float())
    assert s32.dtype == torch.float32


def test_bpd_reference_matches_dgm_flows():
    lp = torch.tensor([-100.0, 32.5, 1e4], dtype=F64)
    for D, a in ((1024, 1 / 127.5), (64, 1 / 8.5), (3, -2.0)):
        want = flows.bits_per_dim(flows.rescaled_log_prob(lp, a, D), D)
        torch.testing.assert_close(ch04.ref_rescaled_bits_per_dim(lp, D, a), want, rtol=1e-12, atol=1e-12)
    # the page's numbers: 32.5 nats on [-1, 1]^1024 is -4931.97 nats on [0, 255]^1024
    assert float(ch04.ref_rescaled_bits_per_dim(torch.tensor(32.5, dtype=F64), 1024, 1 / 127.5)) == pytest.approx(
        (1024 * math.log(127.5) - 32.5) / (1024 * math.log(2)), rel=1e-12)


def test_made_masks_reference_matches_dgm_flows_and_is_autoregressive():
    for order, hidden in (([2, 0, 3, 5, 1, 4], [12, 7]), ([1, 0, 2], [4]), ([0, 1, 2, 3], [])):
        order_t = torch.tensor(order)
        degrees = flows.made_degrees(order_t, hidden)
        mine = ch04.ref_made_masks(order_t, degrees[1:])
        theirs = flows.made_masks(order_t, hidden)
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            assert a.dtype == b.dtype and torch.equal(a, b)
        # the network's Jacobian: output d depends on input j only when order[j] < order[d]
        g = _gen(5)
        weights = [torch.randn(m.shape, generator=g, dtype=F64) * m for m in mine]

        def net(v, weights=weights):
            for w in weights[:-1]:
                v = torch.tanh(w @ v)
            return weights[-1] @ v

        J = torch.autograd.functional.jacobian(net, torch.randn(len(order), generator=g, dtype=F64))
        allowed = order_t[None, :] < order_t[:, None]
        assert bool((J[~allowed] == 0).all())


def test_derivation_start_and_target_agree_with_scipy():
    x, mu, sigma = lognormal_symbols()
    start = lognormal_derivation_start()
    for point in (ch04.LOGNORMAL_REPORT_POINT, {"x": 0.1, "mu": -1.0, "sigma": 2.0}, {"x": 20.0, "mu": 3.0, "sigma": 0.2}):
        want = scipy.stats.lognorm.pdf(point["x"], s=point["sigma"], scale=math.exp(point["mu"]))
        assert ch04._lognormal_target(point) == pytest.approx(want, rel=1e-12)
        got = float(start.subs({x: point["x"], mu: point["mu"], sigma: point["sigma"]}))
        assert got == pytest.approx(want, rel=1e-10)
        lib = flows.lognormal_log_prob(torch.tensor(point["x"], dtype=F64), point["mu"], point["sigma"])
        assert math.exp(float(lib)) == pytest.approx(want, rel=1e-10)


# --- right answers pass --------------------------------------------------------------------------------

def _fwd_a(x, mask, scale_shift):
    s, t = scale_shift(x * mask)
    y = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return y, ((1 - mask) * s).sum(-1)


def _fwd_b(x, mask, scale_shift):
    s, t = scale_shift(x * mask)
    s = torch.where(mask.bool(), torch.zeros_like(s), s)
    y = torch.where(mask.bool(), x, x * torch.exp(s) + t)
    return y, s.sum(dim=-1)


def _inv_a(y, mask, scale_shift):
    s, t = scale_shift(y * mask)
    return mask * y + (1 - mask) * (y - t) * torch.exp(-s), -((1 - mask) * s).sum(-1)


def _inv_b(y, mask, scale_shift):
    s, t = scale_shift(y * mask)
    s = s * (1 - mask)
    x = torch.where(mask.bool(), y, (y - t) / torch.exp(s))
    return x, -torch.sum(s, dim=-1)


def _masks_b(order, hidden_degrees):
    sizes = [order.numel()] + [h.numel() for h in hidden_degrees]
    degs = [order + 1] + list(hidden_degrees)
    masks = []
    for i in range(1, len(degs)):
        m = torch.zeros(sizes[i], sizes[i - 1], dtype=torch.float64)
        for k in range(sizes[i]):
            for j in range(sizes[i - 1]):
                if degs[i][k] >= degs[i - 1][j]:
                    m[k, j] = 1.0
        masks.append(m)
    out = torch.zeros(sizes[0], sizes[-1], dtype=torch.float64)
    for d in range(sizes[0]):
        for k in range(sizes[-1]):
            if degs[0][d] > degs[-1][k]:
                out[d, k] = 1.0
    masks.append(out)
    return masks


CORRECT = {
    "affine_coupling_forward": [_fwd_a, _fwd_b],
    "affine_coupling_inverse": [_inv_a, _inv_b],
    "rescaled_bits_per_dim": [
        lambda log_prob, num_dims, scale: -(log_prob + num_dims * math.log(abs(scale))) / (num_dims * math.log(2)),
        lambda log_prob, num_dims, scale: (-log_prob / num_dims - math.log(abs(scale))) / math.log(2.0),
    ],
    "made_masks": [
        lambda order, hidden_degrees: [
            (b[:, None] >= a[None, :]).to(torch.float64)
            for a, b in zip([order + 1, *hidden_degrees][:-1], [order + 1, *hidden_degrees][1:])]
        + [((order + 1)[:, None] > [order + 1, *hidden_degrees][-1][None, :]).to(torch.float64)],
        _masks_b,
    ],
}
CONCEPTS = {"concept_exp_uniform": "c", "concept_maf_iaf": "a", "concept_rotated_base": "d",
            "concept_rescaled_likelihood": "b"}


def logn_steps():
    x, mu, sigma = lognormal_symbols()
    L = sp.log(x)
    c = sp.sqrt(2 * sp.pi) * sigma
    return [lognormal_derivation_start(),
            sp.exp(-((L - mu) ** 2 + 2 * sigma ** 2 * L) / (2 * sigma ** 2)) / c,
            sp.exp(-(L ** 2 - 2 * (mu - sigma ** 2) * L + mu ** 2) / (2 * sigma ** 2)) / c,
            sp.exp(-(L - mu + sigma ** 2) ** 2 / (2 * sigma ** 2) + sigma ** 2 / 2 - mu) / c]


def test_every_chapter4_task_is_tested_here():
    expect_task_inventory("04-flows", CORRECT, "lognormal_derivation_steps", CONCEPTS)


@pytest.mark.parametrize("task,index", [(t, i) for t in sorted(CORRECT) for i in range(2)])
def test_right_answers_pass_for_a_sweep_of_seeds(task, index):
    expect_right_answer_passes(task, CORRECT[task][index], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_passes(suite):
    check("lognormal_derivation_steps", logn_steps(), suite=suite)
    x, mu, sigma = lognormal_symbols()
    steps = logn_steps()
    # the square written the other way round, the constant in front
    alt = sp.exp(sigma ** 2 / 2 - mu) * sp.exp(-(mu - sigma ** 2 - sp.log(x)) ** 2 / (2 * sigma ** 2)) \
        / (sp.sqrt(2 * sp.pi) * sigma)
    check("lognormal_derivation_steps", [steps[0], steps[1], alt], suite=suite)


def test_concept_checks():
    expect_concepts_graded(CONCEPTS)


# --- known slips, diagnosed -------------------------------------------------------------------------

def _fwd(kind):
    def fn(x, mask, scale_shift):
        s, t = scale_shift(x if kind == "unmasked" else x * mask)
        scale = torch.exp(-s) if kind == "exp_minus" else torch.exp(s)
        y = mask * x + (1 - mask) * ((x + t) * scale if kind == "shift_first" else x * scale + t)
        ld = ((1 - mask) * s).sum(-1)
        if kind == "all":
            ld = s.sum(-1)
        if kind == "sign":
            ld = -ld
        return y, ld
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("all", "passive ones too"), ("unmasked", "fed x instead"),
                                        ("exp_minus", "e\\^\\{−s\\} instead"), ("sign", "wrong sign"),
                                        ("shift_first", "before scaling")])
def test_forward_slips_are_diagnosed(kind, match, suite):
    _fails("affine_coupling_forward", _fwd(kind), suite, match)


def test_inverted_mask_is_diagnosed():
    def fn(x, mask, scale_shift):
        return _fwd_a(x, 1 - mask, scale_shift)
    _fails("affine_coupling_forward", fn, "visible", "other way round")


def _inv(kind):
    def fn(y, mask, scale_shift):
        s, t = scale_shift(y if kind == "unmasked" else y * mask)
        if kind == "exp_plus":
            x = (y - t) * torch.exp(s)
        elif kind == "shift_after":
            x = y * torch.exp(-s) - t
        else:
            x = (y - t) * torch.exp(-s)
        x = mask * y + (1 - mask) * x
        ld = -((1 - mask) * s).sum(-1)
        if kind == "sign":
            ld = -ld
        if kind == "all":
            ld = -s.sum(-1)
        return x, ld
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("exp_plus", "e\\^\\{s\\} instead"), ("shift_after", "wrong order|after undoing"),
                                        ("sign", "forward one"), ("all", "passive ones too"),
                                        ("unmasked", "fed y instead")])
def test_inverse_slips_are_diagnosed(kind, match, suite):
    _fails("affine_coupling_inverse", _inv(kind), suite, match)


def _bpd(kind):
    def fn(log_prob, num_dims, scale):
        la = math.log(abs(scale))
        if kind == "nats":
            return -(log_prob + num_dims * la) / num_dims
        if kind == "no_jacobian":
            return -log_prob / (num_dims * math.log(2))
        if kind == "jacobian_sign":
            return -(log_prob - num_dims * la) / (num_dims * math.log(2))
        if kind == "once":
            return -(log_prob + la) / (num_dims * math.log(2))
        if kind == "no_d":
            return -(log_prob + num_dims * la) / math.log(2)
        return (log_prob + num_dims * la) / (num_dims * math.log(2))
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("nats", "left in nats"), ("no_jacobian", "Jacobian is left out"),
                                        ("jacobian_sign", "wrong sign"), ("once", "counted once"),
                                        ("no_d", "not divided by the number"), ("flip", "sign is flipped")])
def test_bpd_slips_are_diagnosed(kind, match, suite):
    _fails("rescaled_bits_per_dim", _bpd(kind), suite, match)


def test_bpd_with_log_of_a_negative_scale_fails():
    def fn(log_prob, num_dims, scale):
        return -(log_prob + num_dims * torch.log(torch.tensor(scale, dtype=log_prob.dtype))) / (num_dims * math.log(2))
    for seed in SEEDS:
        with pytest.raises(CheckFailed, match="NaN"):
            run_check("rescaled_bits_per_dim", fn, suite="hidden", seed=seed)


def _masks(kind):
    def fn(order, hidden_degrees):
        m_in = {"inverse": torch.argsort(order) + 1, "no_plus_one": order}.get(kind, order + 1)
        degs = [m_in] + list(hidden_degrees)
        hid = (lambda a, b: a > b) if kind in ("hidden_strict", "swapped") else (lambda a, b: a >= b)
        out = (lambda a, b: a >= b) if kind in ("output_geq", "swapped") else (lambda a, b: a > b)
        masks = [hid(b[:, None], a[None, :]).to(torch.float64) for a, b in zip(degs[:-1], degs[1:])]
        masks.append(out(m_in[:, None], degs[-1][None, :]).to(torch.float64))
        if kind == "transposed":
            masks = [m.T for m in masks]
        return masks
    return fn


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("kind,match", [("output_geq", "output mask uses ≥"), ("hidden_strict", "hidden masks use >"),
                                        ("inverse", "inverse permutation"), ("no_plus_one", "without the \\+ 1"),
                                        ("transposed", "out_features, in_features")])
def test_made_slips_are_diagnosed(kind, match, suite):
    _fails("made_masks", _masks(kind), suite, match)


def test_made_rules_swapped_fail():
    for suite in SUITES:
        with pytest.raises(CheckFailed):
            check("made_masks", _masks("swapped"), suite=suite)


@pytest.mark.parametrize("task", ["affine_coupling_forward", "affine_coupling_inverse", "rescaled_bits_per_dim"])
def test_detached_answers_fail_the_hidden_gradient_check(task):
    expect_detached_answer_fails(task, CORRECT[task][0], SEEDS)


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_must_end_as_a_gaussian_in_log_x(suite):
    steps = logn_steps()
    _fails("lognormal_derivation_steps", steps[:3], suite, "must appear as a square")
    x, mu, sigma = lognormal_symbols()
    still_over_x = sp.exp(-(sp.log(x) ** 2 - 2 * mu * sp.log(x) + mu ** 2) / (2 * sigma ** 2)) \
        / (sp.sqrt(2 * sp.pi) * sigma * x)
    _fails("lognormal_derivation_steps", [steps[0], steps[1], still_over_x], suite, "only inside log")
    _fails("lognormal_derivation_steps", [steps[0], steps[3]], suite, "at least 3")
    _fails("lognormal_derivation_steps", [steps[3], steps[2], steps[3]], suite, "step 0 must be")


@pytest.mark.parametrize("suite", SUITES)
def test_derivation_with_a_wrong_step_names_it(suite):
    steps = logn_steps()
    x, mu, sigma = lognormal_symbols()
    wrong = sp.exp(-(sp.log(x) - mu - sigma ** 2) ** 2 / (2 * sigma ** 2) + sigma ** 2 / 2 - mu) \
        / (sp.sqrt(2 * sp.pi) * sigma)
    _fails("lognormal_derivation_steps", [steps[0], steps[1], wrong], suite, "step 2 is not equal to step 1")


# --- the solution notebook's answers, with the rule on; the rule against calling dgm.flows -------------

@pytest.mark.forbid_rule
def test_solution_answers_pass_with_the_rule_on():
    from autograder.course import REPO_ROOT
    from autograder.samples import solution_answers

    answers = solution_answers(REPO_ROOT, "04-flows")
    namespace: dict = {}
    exec("import math\nimport sympy as sp\nimport torch\n"  # noqa: S102 - our own notebook
         "from coursework.ch04 import scale_shift_net, lognormal_derivation_start, lognormal_symbols", namespace)
    for gid in ("affine_coupling_forward", "affine_coupling_inverse", "rescaled_bits_per_dim", "made_masks"):
        exec(answers[gid], namespace)  # noqa: S102 - our own notebook
        check(gid, namespace[gid], suite="visible")
        run_check(gid, namespace[gid], suite="hidden", seed=1)


@pytest.mark.forbid_rule
@pytest.mark.parametrize("task", sorted(CORRECT))
def test_calling_dgm_flows_fails(task):
    calls = {
        "affine_coupling_forward": lambda x, mask, scale_shift: flows.standard_normal_log_prob(x),
        "affine_coupling_inverse": lambda y, mask, scale_shift: flows.standard_normal_log_prob(y),
        "rescaled_bits_per_dim": lambda log_prob, num_dims, scale: flows.bits_per_dim(
            flows.rescaled_log_prob(log_prob, scale, num_dims), num_dims),
        "made_masks": lambda order, hidden_degrees: flows.made_masks(order, [h.numel() for h in hidden_degrees]),
    }
    _fails(task, calls[task], match="dgm.flows")
