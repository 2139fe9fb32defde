"""The numeric evaluation behind every derivation check (coursework._core).

``numeric_at`` compiles an expression once and evaluates it at many points; its expected values
come from the other route, point by point (parameters substituted, each integral lambdified at
that point, ``sympy.N`` for the rest — what ``numeric`` did before it was compiled), and from
closed forms. ``_Evaluator`` (the integral bookkeeping's 50-digit evaluation through mpmath) is
compared with ``sympy.N`` at 40 digits.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import sympy as sp

from coursework._core import _Evaluator, _numeric_nested, numeric, numeric_at
from coursework.ch01 import kl_derivation_start, kl_symbols
from coursework.ch05 import cg_derivation_start
from coursework.ch07 import posterior_derivation_start, posterior_symbols

from test_checks import kl_steps

KL_POINTS = [{"mu_q": mq, "mu_p": mp, "sigma_q": sq, "sigma_p": spp}
             for mq, mp, sq, spp in [(0.3, -0.2, 0.7, 1.3), (-2.0, 1.5, 0.05, 3.0), (4.0, 4.0, 2.5, 0.4),
                                     (0.0, -7.0, 1.0, 1.0), (1e-3, 2e-3, 0.9, 0.9), (-0.5, 0.5, 6.0, 0.2)]]


def _kl(p):
    mq, mp, sq, spp = p["mu_q"], p["mu_p"], p["sigma_q"], p["sigma_p"]
    return math.log(spp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * spp**2) - 0.5


def _agree(expr, points, rel=1e-10):
    got = numeric_at(expr, points)
    want = [_numeric_nested(expr, p) for p in points]
    assert len(got) == len(points)
    for g, w in zip(got, want):
        assert math.isclose(g, w, rel_tol=rel, abs_tol=1e-12), (expr, g, w)
    return got


@pytest.mark.parametrize("index", range(4))
def test_every_kl_step_compiled_equals_point_by_point_and_the_closed_form(index):
    got = _agree(kl_steps()[index], KL_POINTS)
    for g, p in zip(got, KL_POINTS):
        assert math.isclose(g, _kl(p), rel_tol=1e-8, abs_tol=1e-10)


def test_a_broken_step_differs_in_both_routes():
    got = _agree(kl_steps(break_step=True)[2], KL_POINTS)
    assert not any(math.isclose(g, _kl(p), rel_tol=1e-7) for g, p in zip(got, KL_POINTS))


def test_other_chapters_starts_agree():
    _agree(cg_derivation_start(), [{"s": s} for s in (0.3, 1.0, 2.5, 40.0)])
    names = [s.name for s in posterior_symbols()]
    points = [{"x": 0.4, "x_t": -0.7, "x_0": 1.1, "beta": 0.15, "abar": 0.6},
              {"x": -2.0, "x_t": 1.3, "x_0": -0.2, "beta": 0.02, "abar": 0.95}]
    assert set(points[0]) <= set(names) | {"x"}
    _agree(posterior_derivation_start(), points)


def test_symbols_named_like_functions_or_sharing_a_name_are_kept_apart():
    z, exp_, pi_ = sp.Symbol("z"), sp.Symbol("exp"), sp.Symbol("pi")
    a_real, a_plain = sp.Symbol("a", real=True), sp.Symbol("a")
    expr = sp.Integral(sp.exp(-(z - exp_) ** 2 / 2), (z, -sp.oo, sp.oo)) * pi_ + a_real * a_plain
    point = {"exp": 0.7, "pi": 3.0, "a": 2.0}
    got = _agree(expr, [point])[0]
    assert math.isclose(got, 3.0 * math.sqrt(2 * math.pi) + 4.0, rel_tol=1e-9)


def test_the_integration_variable_may_share_a_parameters_name():
    mu = sp.Symbol("mu_q")
    expr = sp.Integral(sp.exp(-mu**2 / 2), (mu, -sp.oo, sp.oo)) + mu  # bound inside, free outside
    assert math.isclose(numeric(expr, {"mu_q": 1.5}), math.sqrt(2 * math.pi) + 1.5, rel_tol=1e-9)


def test_limits_with_parameters_and_nested_integrals():
    x, s = sp.Symbol("x"), sp.Symbol("s", positive=True)
    assert math.isclose(numeric(sp.Integral(x, (x, 0, s)), {"s": 3.0}), 4.5, rel_tol=1e-10)
    y = sp.Symbol("y")
    nested = sp.Integral(x * sp.Integral(y, (y, 0, 1)), (x, 0, 2))  # evaluated point by point
    assert math.isclose(numeric(nested, {}), 1.0, rel_tol=1e-9)


def test_a_symbol_without_a_value_gives_nan_and_no_points_gives_nothing():
    assert math.isnan(numeric(sp.Symbol("q") + 1, {"s": 1.0}))
    assert numeric_at(sp.Integer(1), []) == []


def test_a_multiple_integral_is_refused():
    x, y = sp.symbols("x y")
    from coursework import CheckFailed

    with pytest.raises(CheckFailed, match="definite single integrals"):
        numeric(sp.Integral(x * y, (x, 0, 1), (y, 0, 1)), {})


# --- the bookkeeping's 50-digit evaluation ---------------------------------------------------


def test_evaluator_matches_sympy_at_forty_digits():
    z, mq, mp, sq, spp = kl_symbols()
    evaluate = _Evaluator("z")
    q = kl_derivation_start().function
    exprs = [q, q * (z - mq) ** 2, sp.log(spp / sq) + sp.erf(z) - sp.sqrt(2) * sp.pi, sp.Integer(3), (z - mp) ** 2]
    point = {"mu_q": 0.3, "mu_p": -1.2, "sigma_q": 0.7, "sigma_p": 1.3}
    for expr in exprs:
        for zv in (-2.1, 0.0, 1.7):
            got = evaluate(expr, point, zv)
            subs = {s: sp.Float({**point, "z": zv}[s.name], 45) for s in expr.free_symbols}
            want = sp.N(expr.xreplace(subs), 40)
            assert isinstance(got, mpmath.mpf)
            with mpmath.workdps(50):
                assert abs(got - mpmath.mpf(want._mpf_)) <= mpmath.mpf("1e-35") * (1 + abs(got)), expr


@pytest.mark.parametrize("bad", ["complex", "nan", "infinite", "leftover"])
def test_evaluator_refuses_what_is_not_a_finite_real_number(bad):
    z = sp.Symbol("z")
    expr = {"complex": sp.sqrt(z - 5), "nan": sp.log(z) * 0 + sp.nan, "infinite": sp.log(z - 1),
            "leftover": z + sp.Symbol("w")}[bad]
    evaluate = _Evaluator("z")
    with pytest.raises((ValueError, ArithmeticError)):
        evaluate(expr, {}, 1.0)


def test_evaluator_falls_back_to_sympy_for_functions_mpmath_lacks():
    z = sp.Symbol("z")
    expr = sp.Piecewise((z, z > 0), (-z, True)) + sp.Heaviside(z - 1)
    evaluate = _Evaluator("z")
    with mpmath.workdps(50):
        assert abs(evaluate(expr, {}, -2.0) - 2) < mpmath.mpf("1e-40")
        assert abs(evaluate(expr, {}, 3.0) - 4) < mpmath.mpf("1e-40")
