"""Plain-data encoding of the values that cross the grading sandbox's boundary.

When a notebook is graded, the student's code runs in a sandboxed worker and the checks run in
the grader (:mod:`autograder.sandbox`). The two exchange JSON only — never pickle — in the form
this module defines:

* :func:`encode` turns a value into JSON-able data: tensors (dtype, shape, base64 of the raw
  little-endian bytes), ``int``/``float``/``bool``/``str``/``None``, tuples and lists, ``torch.dtype``,
  fresh ``torch.Generator`` objects (by seed), SymPy expressions (as a tree of class names), and
  objects built by a whitelisted *factory* of :mod:`coursework` (a critic network, a toy noise
  model: sent as "call this factory with these arguments"). Anything else — a function, an object
  of a student's own class, a subclass of ``torch.Tensor`` — becomes ``{"$": "other", "type": ...}``.
* :func:`decode` rebuilds values. With ``strict=True`` (the grader reading what the sandbox sent)
  nothing runs: no factories, no imports, only exact ``torch.Tensor``\\ s of whitelisted dtypes,
  Python scalars, strings, containers, and SymPy trees made of whitelisted classes, all under size
  limits; an object that could not cross becomes an :class:`Opaque` whose class name is the type
  the sandbox reported, so a check of the exact type fails with a readable message.
"""

from __future__ import annotations

import base64
import importlib
import keyword
import math
import re
import sys
import threading
from typing import Any

import torch

#: dtypes that cross the boundary, by name
DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
    "uint8": torch.uint8, "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}

MAX_DEPTH = 12            # nesting of containers
MAX_ITEMS = 10_000        # items in one tuple/list
MAX_NUMEL = 4_000_000     # elements of one tensor
MAX_STR = 20_000          # characters of one string
MAX_SYMPY_NODES = 20_000  # nodes of one SymPy tree
MAX_INT_DIGITS = 40       # digits of an integer (Python int or SymPy Integer/Rational part)

#: where factories may live: objects built by these modules' functions can be sent to a sandbox
FACTORY_PREFIX = "coursework."

#: SymPy classes a derivation may use, by class name (the decoder builds nothing else)
SYMPY_CLASSES = ("Add", "Mul", "Pow", "exp", "log", "Integral", "Tuple", "Abs", "sin", "cos", "tan",
                 "erf", "erfc", "gamma", "loggamma", "sinh", "cosh", "tanh", "atan", "Max", "Min",
                 "sign", "Heaviside")
_SYMBOL_ASSUMPTIONS = ("positive", "negative", "nonnegative", "nonpositive", "real", "nonzero",
                       "integer", "finite", "zero")


class WireError(ValueError):
    """Data from the other side of the boundary breaks the format or its limits."""


class Opaque:
    """Stands in for a value that could not cross the boundary; ``reported_type`` is the type the
    sandbox reported (a function, an object of the student's class, a Tensor subclass), sanitised
    and cut to 80 characters. Messages name it through :func:`type_name`."""

    __slots__ = ("reported_type",)

    def __init__(self, type_name: str = "object") -> None:
        self.reported_type = re.sub(r"[^A-Za-z0-9_.()<> -]", "_", str(type_name)[:200])[:80] or "object"

    def __repr__(self) -> str:
        return f"<{self.reported_type} (not sent to the grader)>"


def type_name(value: Any) -> str:
    """The type a message should name: the sandbox's report for an :class:`Opaque`, else ``type(value).__name__``."""
    return value.reported_type if isinstance(value, Opaque) else type(value).__name__


# --------------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------------


def factory_object(obj: Any, path: str, *args: Any) -> Any:
    """Tag ``obj`` as built by ``path`` (``"coursework.chNN:function"``) from ``args``, so that
    :func:`encode` sends the recipe instead of the object; returns ``obj``."""
    if not path.startswith(FACTORY_PREFIX) or ":" not in path:
        raise ValueError(f"factories must live in {FACTORY_PREFIX}*; got {path!r}")
    obj._dgm_factory = (path, args)
    return obj


def encode(obj: Any, _depth: int = 0) -> Any:
    """``obj`` as JSON-able data (see the module docstring). Never raises: whatever cannot be
    encoded (even an object whose attributes raise) becomes ``{"$": "other", ...}``, and whatever
    this function emits, :func:`decode` reads."""
    try:
        return _encode(obj, _depth)
    except Exception:  # noqa: BLE001 - a hostile object (raising __class__, __getattr__, ...)
        return {"$": "other", "type": _type_name(type(obj))}


def _factory_recipe(obj: Any) -> Any:
    """The factory tag of ``obj``, read from its instance dictionary without running its
    ``__getattr__``/``__getattribute__``."""
    try:
        return object.__getattribute__(obj, "__dict__").get("_dgm_factory")
    except Exception:  # noqa: BLE001 - no __dict__, or a hostile one
        return None


def _encode(obj: Any, _depth: int) -> Any:
    if _depth > MAX_DEPTH:  # the placeholder sits one level deeper than any value decode reads
        return {"$": "other", "type": "(nested too deeply)"}
    kind = type(obj)
    if obj is None:
        return {"$": "none"}
    if kind is bool:
        return {"$": "bool", "v": obj}
    if kind is int:
        return {"$": "int", "v": str(obj)} if len(str(abs(obj))) <= MAX_INT_DIGITS else {"$": "other", "type": "int (too large)"}
    if kind is float:
        return {"$": "float", "v": repr(obj)}
    if kind is str:
        return {"$": "str", "v": obj[:MAX_STR], "truncated": len(obj) > MAX_STR}
    if kind is tuple or kind is list:
        if len(obj) > MAX_ITEMS:
            return {"$": "other", "type": f"{kind.__name__} of {len(obj)} items (too many)"}
        return {"$": kind.__name__, "items": [encode(x, _depth + 1) for x in obj]}
    if kind is torch.dtype:
        name = _DTYPE_NAMES.get(obj)
        return {"$": "dtype", "name": name} if name else {"$": "other", "type": f"{obj} (not supported)"}
    if kind is torch.Generator:
        return {"$": "generator", "seed": str(obj.initial_seed())}
    recipe = _factory_recipe(obj)
    if type(recipe) is tuple and len(recipe) == 2:
        path, args = recipe
        return {"$": "factory", "path": path, "args": [encode(a, _depth + 1) for a in args]}
    if isinstance(obj, torch.Tensor):
        return _encode_tensor(obj, exact=kind is torch.Tensor)
    sympy = sys.modules.get("sympy")
    if sympy is not None and isinstance(obj, sympy.Basic):
        try:
            counter = [0]
            return {"$": "sympy", "tree": _sympy_tree(obj, sympy, counter)}
        except WireError as err:
            return {"$": "other", "type": f"sympy expression ({err})"}
    return {"$": "other", "type": _type_name(kind)}


def _type_name(kind: type) -> str:
    try:
        module = getattr(kind, "__module__", "") or ""
        name = getattr(kind, "__qualname__", None) or getattr(kind, "__name__", "object")
        return str(name) if module in ("builtins", "__main__", "") else f"{module}.{name}"
    except Exception:  # noqa: BLE001 - a hostile metaclass
        return "object"


def _encode_tensor(t: torch.Tensor, exact: bool) -> dict:
    if not exact:
        return {"$": "other", "type": f"{_type_name(type(t))} (a subclass of torch.Tensor)"}
    name = _DTYPE_NAMES.get(t.dtype)
    if name is None:
        return {"$": "other", "type": f"torch.Tensor of dtype {t.dtype} (not supported)"}
    if t.numel() > MAX_NUMEL:
        return {"$": "other", "type": f"torch.Tensor of {t.numel()} elements (too large)"}
    data = t.detach().to("cpu").contiguous()
    if data.is_conj():
        data = data.resolve_conj()
    raw = data.view(-1).numpy().tobytes() if data.numel() else b""
    return {"$": "tensor", "dtype": name, "shape": list(t.shape), "device": str(t.device),
            "requires_grad": bool(t.requires_grad), "data": base64.b64encode(raw).decode("ascii")}


def _sympy_tree(expr, sympy, counter: list[int]) -> list:
    counter[0] += 1
    if counter[0] > MAX_SYMPY_NODES:
        raise WireError("too many nodes")
    S = sympy.S
    if isinstance(expr, sympy.Symbol):
        if isinstance(expr, (sympy.Dummy, sympy.Wild)):
            raise WireError("dummy symbols are not allowed")
        assumptions = {k: v for k, v in getattr(expr, "_assumptions_orig", {}).items()
                       if k in _SYMBOL_ASSUMPTIONS and isinstance(v, bool)}
        if not _symbol_name_ok(expr.name):
            raise WireError(f"symbol name {expr.name[:20]!r} is not allowed")
        return ["Symbol", expr.name, assumptions]
    if isinstance(expr, sympy.Integer):
        return ["Integer", _digits(int(expr))]
    if isinstance(expr, sympy.Rational):
        return ["Rational", _digits(int(expr.p)), _digits(int(expr.q))]
    if isinstance(expr, sympy.Float):
        return ["Float", repr(float(expr))]
    for atom, value in (("pi", S.Pi), ("E", S.Exp1), ("oo", S.Infinity), ("-oo", S.NegativeInfinity),
                        ("zoo", S.ComplexInfinity), ("nan", S.NaN), ("I", S.ImaginaryUnit),
                        ("EulerGamma", S.EulerGamma)):
        if expr is value:
            return [atom]
    name = type(expr).__name__
    if name not in SYMPY_CLASSES:
        raise WireError(f"{name} is not among the functions a derivation may use")
    return [name, *(_sympy_tree(a, sympy, counter) for a in expr.args)]


def _digits(n: int) -> str:
    text = str(n)
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise WireError(f"an integer of more than {MAX_INT_DIGITS} digits")
    return text


def _symbol_name_ok(name: Any) -> bool:
    """A Python identifier of at most 64 characters that is not a keyword (``x``, ``sigma_q``, ``σ``):
    SymPy's ``lambdify`` turns an integration variable's name into a parameter name."""
    return isinstance(name, str) and 0 < len(name) <= 64 and name.isidentifier() and not keyword.iskeyword(name)


# --------------------------------------------------------------------------------------------
# decode
# --------------------------------------------------------------------------------------------


def decode(data: Any, *, strict: bool = True, sympy: bool = True) -> Any:
    """Rebuild a value from :func:`encode`'s data; raises :class:`WireError` on malformed data.

    ``strict=True`` (the default, for anything that came from a sandbox): no factories and no
    generators are built, and every size limit is enforced. ``sympy=False``: a SymPy expression is
    not rebuilt but becomes an :class:`Opaque` (what a function's reply may not contain). The
    node limit :data:`MAX_SYMPY_NODES` holds for the whole value, not per expression.
    """
    _STATE.counter, _STATE.sympy = [0], sympy
    return _decode(data, strict, 0)


class _DecodeState(threading.local):
    counter: list[int] = [0]
    sympy: bool = True


_STATE = _DecodeState()


def _decode(data: Any, strict: bool, depth: int) -> Any:
    if depth > MAX_DEPTH + 1 or (depth > MAX_DEPTH and not (isinstance(data, dict) and data.get("$") == "other")):
        raise WireError("nested too deeply")
    if not isinstance(data, dict) or not isinstance(data.get("$"), str):
        raise WireError("expected an object with a '$' tag")
    tag = data["$"]
    if tag == "none":
        return None
    if tag == "bool":
        v = data.get("v")
        if type(v) is not bool:
            raise WireError("bad bool")
        return v
    if tag == "int":
        v = data.get("v")
        if not isinstance(v, str) or not re.fullmatch(r"-?[0-9]{1,%d}" % MAX_INT_DIGITS, v):
            raise WireError("bad int")
        return int(v)
    if tag == "float":
        v = data.get("v")
        if not isinstance(v, str) or len(v) > 40:
            raise WireError("bad float")
        try:
            return float(v)
        except ValueError as err:
            raise WireError("bad float") from err
    if tag == "str":
        v = data.get("v")
        if not isinstance(v, str) or len(v) > MAX_STR:
            raise WireError("bad str")
        return v
    if tag in ("tuple", "list"):
        items = data.get("items")
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise WireError(f"bad {tag}")
        values = [_decode(x, strict, depth + 1) for x in items]
        return tuple(values) if tag == "tuple" else values
    if tag == "dtype":
        name = data.get("name")
        if name not in DTYPES:
            raise WireError(f"unknown dtype {name!r}")
        return DTYPES[name]
    if tag == "tensor":
        return _decode_tensor(data)
    if tag == "sympy":
        if not _STATE.sympy:
            return Opaque("sympy expression")
        import sympy

        return _sympy_build(data.get("tree"), sympy, _STATE.counter, 0)
    if tag == "other":
        return Opaque(str(data.get("type", "object")))
    if strict:
        raise WireError(f"{tag!r} values are not accepted from a sandbox")
    if tag == "generator":
        return torch.Generator().manual_seed(int(data["seed"]))
    if tag == "factory":
        path = data.get("path")
        if not isinstance(path, str) or not path.startswith(FACTORY_PREFIX) or ":" not in path:
            raise WireError(f"factory {path!r} is not in {FACTORY_PREFIX}*")
        module, _, name = path.partition(":")
        fn = getattr(importlib.import_module(module), name)
        args = [_decode(a, strict, depth + 1) for a in data.get("args", [])]
        return factory_object(fn(*args), path, *args)
    raise WireError(f"unknown tag {tag!r}")


def _decode_tensor(data: dict) -> torch.Tensor:
    dtype = DTYPES.get(data.get("dtype"))
    shape = data.get("shape")
    raw = data.get("data")
    if dtype is None or not isinstance(shape, list) or not isinstance(raw, str):
        raise WireError("bad tensor")
    if len(shape) > 16 or not all(type(s) is int and 0 <= s <= MAX_NUMEL for s in shape):
        raise WireError("bad tensor shape")
    numel = math.prod(shape)
    if numel > MAX_NUMEL:
        raise WireError("tensor too large")
    try:
        buf = base64.b64decode(raw.encode("ascii"), validate=True)
    except ValueError as err:
        raise WireError("bad tensor data") from err
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(buf) != numel * itemsize:
        raise WireError("tensor data does not match its shape")
    t = torch.frombuffer(bytearray(buf), dtype=dtype).clone().reshape(shape) if numel else torch.empty(shape, dtype=dtype)
    if data.get("requires_grad") is True and t.is_floating_point():
        t.requires_grad_(True)
    return t


def _sympy_build(node: Any, sympy, counter: list[int], depth: int):
    counter[0] += 1
    if counter[0] > MAX_SYMPY_NODES or depth > 400:
        raise WireError("SymPy expression too large")
    if not isinstance(node, list) or not node or not isinstance(node[0], str):
        raise WireError("bad SymPy node")
    head, rest = node[0], node[1:]
    S = sympy.S
    atoms = {"pi": S.Pi, "E": S.Exp1, "oo": S.Infinity, "-oo": S.NegativeInfinity, "zoo": S.ComplexInfinity,
             "nan": S.NaN, "I": S.ImaginaryUnit, "EulerGamma": S.EulerGamma}
    if head in atoms and not rest:
        return atoms[head]
    if head == "Symbol":
        if len(rest) != 2 or not _symbol_name_ok(rest[0]) or not isinstance(rest[1], dict):
            raise WireError("bad symbol")
        assumptions = {k: v for k, v in rest[1].items() if k in _SYMBOL_ASSUMPTIONS and type(v) is bool}
        return sympy.Symbol(rest[0], **assumptions)
    digits = re.compile(r"-?[0-9]{1,%d}" % MAX_INT_DIGITS)
    if head == "Integer":
        if len(rest) != 1 or not isinstance(rest[0], str) or not digits.fullmatch(rest[0]):
            raise WireError("bad integer")
        return sympy.Integer(int(rest[0]))
    if head == "Rational":
        if len(rest) != 2 or not all(isinstance(r, str) and digits.fullmatch(r) for r in rest) or int(rest[1]) == 0:
            raise WireError("bad rational")
        return sympy.Rational(int(rest[0]), int(rest[1]))
    if head == "Float":
        if len(rest) != 1 or not isinstance(rest[0], str) or len(rest[0]) > 40:
            raise WireError("bad float")
        try:
            return sympy.Float(float(rest[0]))
        except ValueError as err:
            raise WireError("bad float") from err
    if head not in SYMPY_CLASSES:
        raise WireError(f"{head} is not among the functions a derivation may use")
    args = [_sympy_build(a, sympy, counter, depth + 1) for a in rest]
    cls = getattr(sympy, head)
    try:
        if head in ("Tuple", "Integral"):
            return cls(*args)
        return cls(*args, evaluate=False)
    except Exception as err:  # noqa: BLE001 - malformed arguments for the class
        raise WireError(f"bad {head} node: {type(err).__name__}") from err
