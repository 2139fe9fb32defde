"""Input checks shared by every ``dgm`` function.

Every public function validates its arguments (tensors, counts, numbers) with these helpers, so a bad input fails
early with a message that names the argument, says what was expected and what came instead.
No bare ``assert``: these checks survive ``python -O``.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from typing import Any

import torch

__all__ = [
    "check_int",
    "check_number",
    "as_float_tensor",
    "check_min_ndim",
    "check_last_dim",
    "check_square",
    "check_symmetric",
    "check_positive",
    "check_probabilities",
    "check_same_device",
    "broadcast_batch",
    "broadcast_batch_shapes",
    "promote_float",
    "probability_pair",
    "diagonal_gaussian_args",
]


def _shown(value: Any) -> str:
    """``repr(value)``, shortened if long (a list or an array passed where a number belongs)."""
    return reprlib.repr(value)


def _int_expectation(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an integer in [{low}, {high}]"
    if low is not None:
        return {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
    if high is not None:
        return f"an integer <= {high}"
    return "an integer"


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None, expected: str | None = None) -> int:
    """Return ``value`` as a Python ``int`` with ``low <= value <= high``, or raise naming ``name``.

    Python ints and NumPy integer scalars are accepted. Everything else raises ``TypeError``:
    floats (even ``3.0``), strings, tensors, and ``bool`` (an ``int`` to Python, but ``True``
    passed as a count is a slip). An integer outside the bounds (both inclusive, ``None`` for
    no bound) raises ``ValueError``. The message says what was expected and what came, e.g.
    ``T must be a positive integer; got 0`` or ``hidden must be a positive integer; got 4.0 (float)``.
    ``expected`` replaces the generated description of what is expected (after "must be"),
    for an argument that also takes other kinds of values or whose range needs explaining.
    """
    if expected is None:
        expected = _int_expectation(low, high)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {expected}; got {_shown(value)} ({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {expected}; got {value}")
    return value


def _number_expectation(low: float | None, high: float | None, closed_low: bool, closed_high: bool) -> str:
    if low is not None and high is not None:
        return f"a number in {'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"
    if low is not None:
        if low == 0:
            return "a finite non-negative number" if closed_low else "a finite positive number"
        return f"a finite number {'>=' if closed_low else '>'} {low:g}"
    if high is not None:
        return f"a finite number {'<=' if closed_high else '<'} {high:g}"
    return "a finite number"


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    closed_low: bool = True,
    closed_high: bool = True,
) -> float:
    """Return ``value`` as a finite Python ``float`` between ``low`` and ``high``, or raise naming ``name``.

    Real numbers are accepted: ints, floats and NumPy scalars of either. Everything else raises
    ``TypeError``: strings, tensors, ``None``, and ``bool``. NaN, ±infinity and a number outside
    the bounds raise ``ValueError``. A bound is included unless ``closed_low`` / ``closed_high`` is
    False (``low=0, closed_low=False`` asks for a positive number); ``None`` means no bound.
    The message says what was expected and what came, e.g.
    ``radius must be a finite positive number; got -1.0`` or
    ``beta_start must be a number in (0, 1); got '0.1' (str)``.
    """
    expected = _number_expectation(low, high, closed_low, closed_high)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}; got {_shown(value)} ({type(value).__name__})")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"{name} must be {expected}; got {_shown(value)}") from None
    ok = math.isfinite(number)
    if low is not None:
        ok = ok and (number >= low if closed_low else number > low)
    if high is not None:
        ok = ok and (number <= high if closed_high else number < high)
    if not ok:
        raise ValueError(f"{name} must be {expected}; got {number!r}")
    return number


def as_float_tensor(value: Any, name: str, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``value`` as a floating-point tensor, or raise ``TypeError`` naming ``name``.

    Tensors keep their dtype and device (integer and boolean tensors are rejected: a silent cast
    would hide a bug such as passing labels where log-variances belong). Python numbers, lists
    and NumPy arrays become tensors of ``like``'s dtype and device, or of torch's default dtype.
    """
    if isinstance(value, torch.Tensor):
        if not torch.is_floating_point(value):
            raise TypeError(
                f"{name} must be a floating-point tensor (float32 or float64); got dtype {value.dtype}. "
                f"Convert it with {name}.double() or {name}.float()."
            )
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a tensor or a number; got {type(value).__name__}")
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    device = like.device if like is not None else None
    try:
        out = torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or array-like of numbers; got {type(value).__name__}") from err
    return out


def check_min_ndim(t: torch.Tensor, name: str, ndim: int, shape_hint: str) -> None:
    """Raise ``ValueError`` unless ``t`` has at least ``ndim`` dimensions."""
    if t.dim() < ndim:
        raise ValueError(
            f"{name} must have shape {shape_hint} (at least {ndim} dimension(s)); got shape {tuple(t.shape)}"
        )


def check_last_dim(t: torch.Tensor, name: str, size: int, shape_hint: str) -> None:
    """Raise ``ValueError`` unless the last dimension of ``t`` equals ``size``."""
    if t.dim() == 0 or t.shape[-1] != size:
        raise ValueError(
            f"{name} must have shape {shape_hint} with last dimension {size}; got shape {tuple(t.shape)}"
        )


def check_square(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``t`` is a (batch of) square matrices ``(..., D, D)``."""
    if t.dim() < 2 or t.shape[-1] != t.shape[-2]:
        raise ValueError(f"{name} must have shape (..., D, D) (square matrices); got shape {tuple(t.shape)}")


def check_symmetric(t: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``t`` equals its transpose (up to rounding).

    Cholesky reads only the lower triangle, so an asymmetric "covariance" would otherwise be
    accepted silently and give a wrong answer.
    """
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    if not bool(torch.allclose(t, t.transpose(-1, -2), rtol=1e-5, atol=1e-8)):
        bad = float((t - t.transpose(-1, -2)).abs().max())
        raise ValueError(f"{name} must be symmetric; it differs from its transpose by up to {bad:.3g}")


def check_positive(t: torch.Tensor, name: str, what: str = "variance") -> None:
    """Raise ``ValueError`` unless every entry of ``t`` is finite and strictly positive."""
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    if not bool((t > 0).all()):
        worst = float(t.min())
        raise ValueError(f"{name} must be a positive {what}; its smallest entry is {worst:g}")


def check_probabilities(p: torch.Tensor, name: str, atol: float | None = None) -> None:
    """Raise ``ValueError`` unless the last dimension of ``p`` is a probability vector."""
    if p.dim() == 0:
        raise ValueError(f"{name} must have shape (..., K) (probability vectors); got a scalar")
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    if bool((p < 0).any()):
        raise ValueError(f"{name} must be non-negative; its smallest entry is {float(p.min()):g}")
    if atol is None:
        atol = 1e-5 if p.dtype == torch.float32 else 1e-10
    total = p.sum(-1)
    if not bool(torch.allclose(total, torch.ones_like(total), atol=atol, rtol=0)):
        bad = float((total - 1).abs().max())
        raise ValueError(f"{name} must sum to 1 over its last dimension; the largest deviation is {bad:.3g}")


def check_same_device(**tensors: torch.Tensor) -> None:
    """Raise ``ValueError`` when the named tensors do not all live on one device."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise ValueError(f"all tensors must be on the same device; got {listing}. Move them with .to(device).")


def broadcast_batch(**tensors: torch.Tensor) -> torch.Size:
    """Return the broadcast shape of the named tensors, or raise ``ValueError`` naming them."""
    try:
        return torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError as err:
        listing = ", ".join(f"{name} {tuple(t.shape)}" for name, t in tensors.items())
        raise ValueError(f"shapes do not broadcast together: {listing}") from err


def broadcast_batch_shapes(**shapes: tuple[int, ...]) -> torch.Size:
    """Return the broadcast of the named batch shapes, or raise ``ValueError`` naming them.

    Use it when the batch dimensions are a prefix, e.g. ``mean=m.shape[:-1], cov=c.shape[:-2]``.
    """
    try:
        return torch.broadcast_shapes(*shapes.values())
    except RuntimeError as err:
        listing = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
        raise ValueError(f"batch shapes do not broadcast together: {listing}") from err


def promote_float(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Cast floating tensors to their common dtype, as torch's arithmetic would (float32 with float64 gives float64).

    Element-wise arithmetic promotes by itself; matrix products and solves do not, so functions
    that use them call this first. The result's dtype then follows the inputs either way.
    """
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(t if t.dtype == dtype else t.to(dtype) for t in tensors)


def probability_pair(p, q, names: tuple[str, str] = ("p", "q")) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two batches of categorical distributions ``(..., K)``: floating, one device,
    probability vectors, broadcastable. Returns them as tensors."""
    p_name, q_name = names
    p = as_float_tensor(p, p_name)
    q = as_float_tensor(q, q_name, like=p)
    check_same_device(**{p_name: p, q_name: q})
    check_probabilities(p, p_name)
    check_probabilities(q, q_name)
    broadcast_batch(**{p_name: p, q_name: q})
    return p, q


def diagonal_gaussian_args(x, mean, logvar) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate a point, a mean and a log-variance ``(..., D)`` of a diagonal Gaussian: floating,
    at least 1-D, one device, broadcastable, finite log-variances. Returns them as tensors."""
    x = as_float_tensor(x, "x")
    mean = as_float_tensor(mean, "mean", like=x)
    logvar = as_float_tensor(logvar, "logvar", like=x)
    for name, t in (("x", x), ("mean", mean), ("logvar", logvar)):
        check_min_ndim(t, name, 1, "(..., D)")
    check_same_device(x=x, mean=mean, logvar=logvar)
    broadcast_batch(x=x, mean=mean, logvar=logvar)
    if not bool(torch.isfinite(logvar).all()):
        raise ValueError("logvar must be finite (it is a log-variance); it contains NaN or infinity")
    return x, mean, logvar


def check_generator(generator: Any, device: torch.device | str | None = None) -> torch.Generator | None:
    """``generator`` itself if it is ``None`` or a ``torch.Generator`` (on ``device``'s type when a device is given);
    else TypeError/ValueError naming the argument, what was expected and what was given."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    if device is not None and generator.device.type != torch.device(device).type:
        raise ValueError(f"generator must be on the device of the states ({device}); got one on {generator.device}")
    return generator


def check_callable(fn: Any, name: str, signature: str) -> None:
    """TypeError naming ``name`` and the expected ``signature`` unless ``fn`` is callable."""
    if not callable(fn):
        raise TypeError(f"{name} must be a callable {signature}; got {type(fn).__name__}")


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is exactly True or False (not 0/1, not a tensor); else TypeError naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")
    return value


def check_float_dtype(dtype: Any, name: str = "dtype") -> torch.dtype:
    """``dtype`` if it is a floating torch dtype; else TypeError naming ``name``."""
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{name} must be a floating torch dtype such as torch.float32; got {dtype!r}")
    return dtype
