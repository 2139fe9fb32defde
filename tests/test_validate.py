"""Tests of dgm._validate, the shared input checks (each helper raises the documented error)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from dgm._validate import (
    as_float_tensor,
    broadcast_batch,
    broadcast_batch_shapes,
    check_bool,
    check_callable,
    check_float_dtype,
    check_generator,
    check_int,
    check_last_dim,
    check_min_ndim,
    check_number,
    check_positive,
    check_probabilities,
    check_same_device,
    check_square,
    check_symmetric,
    promote_float,
)


def test_as_float_tensor_keeps_float_tensors_as_they_are():
    t = torch.zeros(3, dtype=torch.float64)
    assert as_float_tensor(t, "t") is t
    t32 = torch.zeros(3)
    assert as_float_tensor(t32, "t", like=t) is t32  # tensors are not cast to like's dtype


def test_as_float_tensor_converts_numbers_lists_and_arrays():
    assert as_float_tensor(1.5, "a").dtype == torch.get_default_dtype()
    like = torch.zeros(1, dtype=torch.float64)
    out = as_float_tensor([1, 2], "a", like=like)
    assert out.dtype == torch.float64 and out.tolist() == [1.0, 2.0]
    assert as_float_tensor(np.arange(3), "a", like=like).dtype == torch.float64


@pytest.mark.parametrize(
    "value, match",
    [
        (torch.zeros(2, dtype=torch.int64), "a must be a floating-point tensor.*int64.*a.double"),
        (torch.zeros(2, dtype=torch.bool), "a must be a floating-point tensor"),
        ("1.0", "a must be a tensor or a number; got str"),
        (None, "got NoneType"),
        ([[1, 2], [3]], "a must be a tensor or array-like of numbers"),
    ],
)
def test_as_float_tensor_rejects_non_float_values(value, match):
    with pytest.raises(TypeError, match=match):
        as_float_tensor(value, "a")


def test_shape_checks():
    t = torch.zeros(2, 3)
    check_min_ndim(t, "t", 2, "(B, D)")
    with pytest.raises(ValueError, match=r"t must have shape \(B, D, E\) \(at least 3 dimension\(s\)\); got shape \(2, 3\)"):
        check_min_ndim(t, "t", 3, "(B, D, E)")
    check_last_dim(t, "t", 3, "(..., 3)")
    with pytest.raises(ValueError, match="last dimension 4; got shape"):
        check_last_dim(t, "t", 4, "(..., 4)")
    with pytest.raises(ValueError, match="last dimension 1; got shape"):
        check_last_dim(torch.tensor(1.0), "t", 1, "(..., 1)")
    check_square(torch.zeros(5, 2, 2), "m")
    for bad in (torch.zeros(2, 3), torch.zeros(3)):
        with pytest.raises(ValueError, match="m must have shape"):
            check_square(bad, "m")


def test_check_symmetric():
    check_symmetric(torch.eye(3), "c")
    check_symmetric(torch.tensor([[1.0, 0.3], [0.3 + 1e-9, 1.0]], dtype=torch.float64), "c")  # rounding is fine
    with pytest.raises(ValueError, match="c must be symmetric; it differs from its transpose by up to 0.5"):
        check_symmetric(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), "c")
    with pytest.raises(ValueError, match="c must be finite"):
        check_symmetric(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), "c")


@pytest.mark.parametrize(
    "value, match",
    [(0.0, "smallest entry is 0"), (-2.0, "smallest entry is -2"), (float("nan"), "finite"), (float("inf"), "finite")],
)
def test_check_positive(value, match):
    check_positive(torch.tensor([1.0, 2.0]), "s")
    with pytest.raises(ValueError, match=f"s must be .*{match}"):
        check_positive(torch.tensor([1.0, value]), "s")


def test_check_probabilities_tolerance_depends_on_dtype():
    p32 = torch.tensor([0.5, 0.5 + 1e-6])
    check_probabilities(p32, "p")  # float32 rounding is tolerated
    with pytest.raises(ValueError, match="p must sum to 1 over its last dimension"):
        check_probabilities(p32.double(), "p")
    with pytest.raises(ValueError, match="p must be non-negative"):
        check_probabilities(torch.tensor([1.1, -0.1]), "p")
    with pytest.raises(ValueError, match="p must be finite"):
        check_probabilities(torch.tensor([float("nan"), 1.0]), "p")
    with pytest.raises(ValueError, match="got a scalar"):
        check_probabilities(torch.tensor(1.0), "p")


def test_check_same_device_names_each_tensor():
    check_same_device(a=torch.zeros(1), b=torch.zeros(1))
    with pytest.raises(ValueError, match="a on cpu, b on meta"):
        check_same_device(a=torch.zeros(1), b=torch.zeros(1, device="meta"))


def test_broadcast_helpers():
    assert broadcast_batch(a=torch.zeros(3, 1), b=torch.zeros(4)) == (3, 4)
    with pytest.raises(ValueError, match=r"shapes do not broadcast together: a \(3,\), b \(4,\)"):
        broadcast_batch(a=torch.zeros(3), b=torch.zeros(4))
    assert broadcast_batch_shapes(a=(2, 1), b=(5,)) == (2, 5)
    with pytest.raises(ValueError, match=r"batch shapes do not broadcast together: a \(2,\), b \(5,\)"):
        broadcast_batch_shapes(a=(2,), b=(5,))


def test_promote_float():
    a, b = promote_float(torch.zeros(1), torch.zeros(1, dtype=torch.float64))
    assert a.dtype == b.dtype == torch.float64
    c, d = promote_float(torch.zeros(1), torch.zeros(1))
    assert c.dtype == d.dtype == torch.float32


# --------------------------------------------------------------------------------------------
# check_int and check_number: the one integer check and the one real-number check
# --------------------------------------------------------------------------------------------


def test_check_int_returns_python_ints_within_inclusive_bounds():
    assert check_int(3, "n") == 3
    assert check_int(-7, "n") == -7  # no bounds: any integer
    assert check_int(1, "n", low=1) == 1 and check_int(5, "n", low=1, high=5) == 5  # both bounds are inclusive
    out = check_int(np.int64(4), "n", low=1)  # NumPy integer scalars are integers too
    assert out == 4 and type(out) is int


@pytest.mark.parametrize(
    "value, kwargs, error, message",
    [
        (0, dict(low=1), ValueError, "T must be a positive integer; got 0"),
        (-1, dict(low=0), ValueError, "T must be a non-negative integer; got -1"),
        (1, dict(low=2), ValueError, "T must be an integer >= 2; got 1"),
        (6, dict(high=5), ValueError, "T must be an integer <= 5; got 6"),
        (6, dict(low=1, high=5), ValueError, r"T must be an integer in \[1, 5\]; got 6"),
        (0, dict(low=1, high=5), ValueError, r"T must be an integer in \[1, 5\]; got 0"),
        (True, dict(low=1), TypeError, r"T must be a positive integer; got True \(bool\)"),
        (np.True_, dict(), TypeError, r"T must be an integer; got (np\.)?True_? \(bool_?\)"),
        (3.0, dict(low=1), TypeError, r"T must be a positive integer; got 3.0 \(float\)"),
        ("3", dict(), TypeError, r"T must be an integer; got '3' \(str\)"),
        (None, dict(), TypeError, r"T must be an integer; got None \(NoneType\)"),
        (torch.tensor(3), dict(), TypeError, r"T must be an integer; got tensor\(3\) \(Tensor\)"),
        (2.5, dict(expected="an int or a tensor of timesteps"), TypeError, r"T must be an int or a tensor of timesteps; got 2.5 \(float\)"),
        (9, dict(high=5, expected="a timestep in 1..5"), ValueError, "T must be a timestep in 1..5; got 9"),
    ],
)
def test_check_int_names_the_argument_the_expectation_and_the_value(value, kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        check_int(value, "T", **kwargs)


def test_check_int_shortens_a_long_value_in_its_message():
    with pytest.raises(TypeError) as info:
        check_int(list(range(1000)), "n")
    assert len(str(info.value)) < 100 and str(info.value).endswith("(list)")


def test_check_number_returns_finite_floats_within_the_bounds():
    assert check_number(2, "x") == 2.0 and type(check_number(2, "x")) is float  # ints are numbers
    assert type(check_number(np.float32(0.5), "x")) is float
    assert check_number(0.0, "x", low=0) == 0.0  # closed by default
    assert check_number(1.0, "x", low=0, high=1) == 1.0
    assert check_number(-1e300, "x") == -1e300


@pytest.mark.parametrize(
    "value, kwargs, error, message",
    [
        (0.0, dict(low=0, closed_low=False), ValueError, "x must be a finite positive number; got 0.0"),
        (-0.5, dict(low=0), ValueError, "x must be a finite non-negative number; got -0.5"),
        (1.0, dict(low=1, closed_low=False), ValueError, "x must be a finite number > 1; got 1.0"),
        (0.5, dict(low=1), ValueError, "x must be a finite number >= 1; got 0.5"),
        (2.0, dict(high=1), ValueError, "x must be a finite number <= 1; got 2.0"),
        (1.0, dict(high=1, closed_high=False), ValueError, "x must be a finite number < 1; got 1.0"),
        (1.0, dict(low=0, high=1, closed_low=False, closed_high=False), ValueError, r"x must be a number in \(0, 1\); got 1.0"),
        (0.0, dict(low=0, high=1, closed_low=False), ValueError, r"x must be a number in \(0, 1\]; got 0.0"),
        (1.5, dict(low=0, high=1), ValueError, r"x must be a number in \[0, 1\]; got 1.5"),
        (math.nan, dict(), ValueError, "x must be a finite number; got nan"),
        (math.inf, dict(low=0), ValueError, "x must be a finite non-negative number; got inf"),
        (-math.inf, dict(high=1), ValueError, "x must be a finite number <= 1; got -inf"),
        (10**400, dict(), ValueError, "x must be a finite number; got 1000.*"),
        (True, dict(low=0), TypeError, r"x must be a finite non-negative number; got True \(bool\)"),
        ("0.1", dict(), TypeError, r"x must be a finite number; got '0.1' \(str\)"),
        (None, dict(), TypeError, r"x must be a finite number; got None \(NoneType\)"),
        (torch.tensor(0.5), dict(), TypeError, r"x must be a finite number; got tensor\(0.5000\) \(Tensor\)"),
        (1j, dict(), TypeError, r"x must be a finite number; got 1j \(complex\)"),
    ],
)
def test_check_number_names_the_argument_the_expectation_and_the_value(value, kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        check_number(value, "x", **kwargs)


def test_checks_survive_python_dash_O():
    """The checks are not asserts: under ``python -O`` a bad input still raises."""
    code = (
        "import torch; from dgm.divergences import gaussian_kl\n"
        "try:\n"
        "    gaussian_kl(torch.zeros(3), torch.zeros(3), torch.zeros(4), torch.zeros(3))\n"
        "except ValueError as e:\n"
        "    print('raised', e)\n"
    )
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "raised shapes do not broadcast" in out.stdout


def test_check_generator_bool_callable_and_dtype_accept_what_they_document():
    g = torch.Generator()
    assert check_generator(g) is g and check_generator(None) is None
    assert check_generator(g, torch.device("cpu")) is g and check_generator(g, "cpu") is g
    assert check_bool(True, "flag") is True and check_bool(False, "flag") is False
    check_callable(len, "fn", "x -> y")
    assert check_float_dtype(torch.float32) is torch.float32 and check_float_dtype(torch.float64) is torch.float64


@pytest.mark.parametrize("call,error,message", [
    (lambda: check_generator(0), TypeError, "generator must be a torch.Generator or None; got int"),
    (lambda: check_generator(np.random.default_rng(0)), TypeError, "got Generator"),
    (lambda: check_generator(torch.Generator(), "meta"), ValueError, "on the device of the states \\(meta\\); got one on cpu"),
    (lambda: check_bool(1, "persistent"), TypeError, "persistent must be True or False; got 1 \\(int\\)"),
    (lambda: check_bool(torch.tensor(True), "progress"), TypeError, "progress must be True or False"),
    (lambda: check_callable(3, "energy", "x -> E(x)"), TypeError, "energy must be a callable x -> E\\(x\\); got int"),
    (lambda: check_float_dtype(torch.int64), TypeError, "dtype must be a floating torch dtype"),
    (lambda: check_float_dtype("float32", "out_dtype"), TypeError, "out_dtype must be a floating torch dtype"),
])
def test_check_generator_bool_callable_and_dtype_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
