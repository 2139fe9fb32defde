"""The machinery shared by every chapter's checks: failures, contexts, comparisons, derivations.

A chapter's module (``coursework/ch01.py``, ...) writes its tasks' checks with these helpers and
registers each on its :class:`coursework.registry.Chapter`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from coursework.wire import type_name

#: The seed of every visible suite: the same inputs each run, so messages can quote them.
VISIBLE_SEED = 20261123

class CheckFailed(AssertionError):
    """A property of the student's answer does not hold; the message says which.

    In a notebook it shows as its message alone (IPython asks an exception for
    ``_render_traceback_``): the frames of the checks themselves say nothing a student can act on.
    Where the student's own code raised, the message names the line of their cell
    (:attr:`Outcome.error_where`)."""

    def _render_traceback_(self) -> list[str]:
        lines = str(self).splitlines() or [""]
        return [f"CheckFailed: {lines[0]}", *lines[1:]]


@dataclass(frozen=True)
class Ctx:
    task: str
    hidden: bool
    gen: torch.Generator

    def fail(self, message: str) -> None:
        raise CheckFailed(f"[{self.task}] {message}")

    def randn(self, *shape: int, dtype=torch.float64) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.gen, dtype=torch.float64).to(dtype)

    def uniform(self, low: float, high: float, *shape: int, dtype=torch.float64) -> torch.Tensor:
        u = torch.rand(tuple(shape), generator=self.gen, dtype=torch.float64)
        return (low + (high - low) * u).to(dtype)


# --------------------------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradRequest:
    """Which gradients :func:`call` should return along with the output.

    ``inputs``: indices of tensor arguments to differentiate with respect to; ``params_of``: the
    index of an ``nn.Module`` argument whose parameters to differentiate with respect to;
    ``output``: which item of a tuple output to differentiate (None: the first item of a tuple, or
    the output itself); ``weights``: a tensor the selected output is multiplied by, elementwise,
    before summing (None: all ones). The gradient is that of ``(output * weights).sum()``: random
    weights see every element's gradient, where a plain sum can be blind — responsibilities sum to
    1 over the components whatever the inputs, so the gradient of their sum is 0 for right and
    wrong answers alike.
    """

    inputs: tuple[int, ...] = ()
    params_of: int | None = None
    output: int | None = None
    weights: torch.Tensor | None = None

    def as_dict(self) -> dict:
        from coursework import wire

        return {"inputs": list(self.inputs), "params_of": self.params_of, "output": self.output,
                "weights": None if self.weights is None else wire.encode(self.weights)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "GradRequest":
        from coursework import wire

        inputs = tuple(int(i) for i in d.get("inputs", ()))
        params_of = d.get("params_of")
        output = d.get("output")
        weights = d.get("weights")
        if weights is not None:
            weights = wire.decode(weights, strict=False)
            if type(weights) is not torch.Tensor:  # noqa: E721
                raise ValueError("the gradient's weights must be a tensor")
        return cls(inputs, None if params_of is None else int(params_of), None if output is None else int(output),
                   weights)


@dataclass
class Outcome:
    """What calling an answer produced: its value, or the error it raised (type and message), and
    the gradients asked for (None when the output does not depend differentiably on them)."""

    value: Any = None
    error_type: str | None = None
    error_message: str = ""
    error_where: str = ""          # where in the student's own code it was raised (:func:`student_line`)
    stage: str = "call"            # "call" or "grad": where the error happened
    mutated: bool = False          # the function changed one of its input tensors in place
    grads: list | None = None
    differentiable: bool = True


def _snapshot(value: Any) -> Any:
    """What :func:`_changed` compares with after the call: a tensor's copy, or a list's items (tensors copied,
    one level deep); None for anything else (not checked)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().clone())
    if type(value) is list:  # noqa: E721 - exactly a list: the checks pass plain lists of tensors
        return ("list", [v.detach().clone() if isinstance(v, torch.Tensor) else v for v in value])
    return None


def _changed(value: Any, snap: Any) -> bool:
    """Whether ``value`` differs from its :func:`_snapshot`: a tensor changed in place, a list with items added,
    removed, replaced or changed in place."""
    if snap is None:
        return False
    kind, copy = snap
    if kind == "tensor":
        return not same_tensor(value, copy)
    if type(value) is not list or len(value) != len(copy):  # noqa: E721
        return True
    for v, c in zip(value, copy):
        if isinstance(c, torch.Tensor):
            if not isinstance(v, torch.Tensor) or not same_tensor(v, c):
                return True
        elif v is not c:
            return True
    return False


def invoke_local(fn: Callable, args: Sequence[Any], grad: GradRequest | None = None) -> Outcome:
    """Call ``fn(*args)`` in this process (the student's kernel, or a sandbox worker) and record
    what happened; never raises for the student's errors."""
    outcome = Outcome()
    if grad is None:
        copies = [_snapshot(a) for a in args]
        call_args = list(args)
    else:
        call_args = [a.detach().clone().requires_grad_(i in grad.inputs) if isinstance(a, torch.Tensor)
                     and a.is_floating_point() else a for i, a in enumerate(args)]
    try:
        out = fn(*call_args)
    except Exception as err:  # noqa: BLE001 - any student error is recorded, not raised
        outcome.error_type = type(err).__name__
        outcome.error_message = _message(err)
        outcome.error_where = student_line(err)
        return outcome
    outcome.value = out
    if grad is None:
        outcome.mutated = any(_changed(a, c) for a, c in zip(args, copies))
        return outcome
    sel = out
    if isinstance(out, tuple):  # a tuple output: its item ``grad.output``, by default the first
        index = grad.output or 0
        sel = out[index] if len(out) > index else None
    if type(sel) is not torch.Tensor or not sel.requires_grad:  # noqa: E721
        outcome.differentiable = False
        return outcome
    targets = [call_args[i] for i in grad.inputs]
    if grad.params_of is not None:
        targets += list(args[grad.params_of].parameters())
    try:
        total = sel.sum() if grad.weights is None else (sel * grad.weights.to(sel.dtype)).sum()
        outcome.grads = list(torch.autograd.grad(total, targets, allow_unused=True))
    except Exception as err:  # noqa: BLE001
        outcome.error_type, outcome.error_message, outcome.stage = type(err).__name__, _message(err), "grad"
        outcome.error_where = student_line(err)
    return outcome


def _library_dirs() -> tuple[str, ...]:
    """Folders whose code is not the student's: the course's packages, the Python installation
    and every installed package."""
    import os
    import sys
    import sysconfig

    import dgm

    dirs = {os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.abspath(dgm.__file__)),
            sys.prefix, sys.base_prefix, sys.exec_prefix}
    dirs.update(p for p in sysconfig.get_paths().values() if p)
    return tuple(sorted({os.path.realpath(d) for d in dirs}))


def student_line(err: BaseException) -> str:
    """Where in the student's own code ``err`` was raised — ``"line 3 of your cell: `return x[5]`"``
    — from the innermost frame outside the libraries (:func:`_library_dirs`); ``""`` when the error
    came from library code alone (torch raising on a bad shape is still reported at the student's
    line that called it)."""
    import os
    import traceback

    libraries = _library_dirs()
    try:
        frames = traceback.extract_tb(err.__traceback__)
    except Exception:  # noqa: BLE001 - a hostile traceback
        return ""
    mine = [f for f in frames
            if not any(os.path.realpath(f.filename).startswith(d + os.sep) for d in libraries if d != "/")]
    if not mine:
        return ""
    frame = mine[-1]
    text = (frame.line or "").strip()
    return f"line {frame.lineno} of your cell" + (f": `{text[:120]}`" if text else "")


def _message(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:  # noqa: BLE001 - a hostile __str__
        text = ""
    return text[:500]


def invoke(fn: Any, args: Sequence[Any], grad: GradRequest | None = None) -> Outcome:
    """Call an answer: in this process, or — for an answer that lives in a grading sandbox (an
    object with an ``invoke`` method, :class:`autograder.sandbox.RemoteFunction`) — over there."""
    remote = getattr(type(fn), "invoke_remote", None)
    if remote is not None:
        return fn.invoke_remote(list(args), grad)
    return invoke_local(fn, args, grad)


def call(ctx: Ctx, fn: Any, *args: Any, where: str, grad: GradRequest | None = None) -> Any:
    """Call the student's function on ``args``; turn its exceptions into failures.

    Returns the output, or ``(output, grads)`` when ``grad`` is given (``grads`` is None when the
    output does not depend differentiably on what ``grad`` names).
    """
    if getattr(type(fn), "invoke_remote", None) is None and not callable(fn):
        ctx.fail(f"expected a function, got {type_name(fn)}")
    outcome = invoke(fn, args, grad)
    if outcome.error_type == "NotImplementedError":
        ctx.fail("not implemented yet: replace `raise NotImplementedError()` with your code")
    if outcome.error_type is not None:
        stage = "under autograd" if outcome.stage == "grad" else "raised"
        at = f" (at {outcome.error_where})" if outcome.error_where else ""
        if ctx.hidden:  # its message could quote the inputs drawn at grading time: keep only the type
            ctx.fail(f"{where}: your function {stage} {outcome.error_type}{at}")
        ctx.fail(f"{where}: your function {stage} {outcome.error_type}: {outcome.error_message}{at}")
    if outcome.mutated:
        ctx.fail(f"{where}: your function modified one of its inputs in place (a tensor, or a list it was given); "
                 "work on copies")
    if grad is None:
        return outcome.value
    if outcome.differentiable and not _gradients_fit(outcome.grads, args, grad):
        ctx.fail(f"{where}: the gradients of your result could not be read (one per input asked for, each "
                 "a tensor shaped like its input); keep everything in torch")
    return outcome.value, (outcome.grads if outcome.differentiable else None)


def as_f64(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The tensors detached and in float64: a reference's inputs, whatever the student's dtype."""
    return [t.detach().to(torch.float64) for t in tensors]


def cast_like(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A float64 reference value (or a hint) detached and cast to the dtype the answer must return."""
    return t.detach().to(dtype)


def nth_output(ref: Callable, i: int) -> Callable:
    """Item ``i`` of ``ref``'s tuple, as a function of the same arguments (the gradient probe weighs the
    reference's first output by shape, so a tuple-valued reference is probed one output at a time)."""
    def output(*args):
        return ref(*args)[i]

    output.__wrapped__ = ref  # inspect.signature reads the reference's argument names through it
    return output


def expect_tuple(ctx: Ctx, out: Any, n: int, where: str, names: str) -> tuple:
    """``out`` must be a tuple of ``n`` items (``names`` says which, for the message)."""
    if not isinstance(out, tuple) or len(out) != n:
        ctx.fail(f"{where}: return a tuple of {n} tensors ({names}), got {type_name(out)}"
                 + (f" of length {len(out)}" if isinstance(out, tuple) else ""))
    return out


def describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {str(t.dtype).replace('torch.', '')}"


def expect_tensor(ctx: Ctx, got: Any, expected: torch.Tensor, what: str, where: str,
            rtol: float = 1e-6, atol: float = 1e-8, hints: Sequence[tuple[str, torch.Tensor]] = ()) -> None:
    """Exact type, shape, dtype, device, finiteness, then closeness to ``expected``."""
    if type(got) is not torch.Tensor:  # noqa: E721 - exact type: subclasses could fake comparisons
        ctx.fail(f"{where}: {what} must be a torch.Tensor, got {type_name(got)}")
    if got.shape != expected.shape:
        ctx.fail(f"{where}: {what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    if got.dtype != expected.dtype:
        ctx.fail(f"{where}: {what} has dtype {got.dtype}, expected {expected.dtype} (keep the inputs' dtype)")
    if got.device != expected.device:
        ctx.fail(f"{where}: {what} is on {got.device}, expected {expected.device} (keep the inputs' device)")
    got = got.detach()
    expected = expected.detach()
    if not bool(torch.isfinite(got).all()) and bool(torch.isfinite(expected).all()):
        ctx.fail(f"{where}: {what} contains NaN or infinity where the correct value is finite")
    if bool(torch.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)):
        return
    message = f"{where}: wrong value of {what}"
    for label, alt in hints:
        if alt.shape == got.shape and bool(torch.allclose(got, alt.to(got.dtype), rtol=rtol, atol=atol)):
            message += f" — it matches what you get if {label}"
            break
    if not ctx.hidden:
        message += f"\n  expected {short(expected)}\n  got      {short(got)}"
    ctx.fail(message)


def short(t: torch.Tensor) -> str:
    flat = t.flatten()
    body = ", ".join(f"{float(v):.6g}" for v in flat[:6])
    return f"[{body}{', ...' if flat.numel() > 6 else ''}] ({describe(t)})"


def expect_pair(ctx: Ctx, out: Any, where: str) -> tuple[Any, Any]:
    if not isinstance(out, tuple) or len(out) != 2:
        ctx.fail(f"{where}: return a tuple of two tensors, got {type_name(out)}"
                 + (f" of length {len(out)}" if isinstance(out, tuple) else ""))
    return out


def _gradients_fit(grads: Any, args: Sequence[Any], grad: GradRequest) -> bool:
    """Whether ``grads`` — what the student's side reported — has exactly one entry per target of
    ``grad`` (the inputs, then the parameters of ``args[grad.params_of]``), each None (no
    dependence) or a plain tensor of its target's shape and dtype. Checked here, on the grader's
    own copies of the arguments: a patched ``torch.autograd.grad`` in the student's process
    cannot make a missing gradient look checked."""
    targets = [args[i] for i in grad.inputs]
    if grad.params_of is not None:
        targets += list(args[grad.params_of].parameters())
    if type(grads) is not list or len(grads) != len(targets):  # noqa: E721
        return False
    return all(g is None or (type(g) is torch.Tensor and g.shape == t.shape and g.dtype == t.dtype)  # noqa: E721
               for g, t in zip(grads, targets))


def same_tensor(a: Any, b: torch.Tensor) -> bool:
    """``a`` is a plain tensor equal to ``b`` in shape, dtype and every element (NaN equals NaN)."""
    if type(a) is not torch.Tensor or a.shape != b.shape or a.dtype != b.dtype:  # noqa: E721
        return False
    a, b = a.detach().cpu(), b.detach().cpu()
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return bool(torch.equal(a, b))


def _argument_names(ref: Callable, n: int) -> list[str]:
    """The names of ``ref``'s first ``n`` positional parameters (``"argument k"`` where it has none)."""
    import inspect

    try:
        params = [q.name for q in inspect.signature(ref).parameters.values()
                  if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [f"argument {k + 1} ({params[k]})" if k < len(params) else f"argument {k + 1}" for k in range(n)]


def expect_same_gradients(ctx: Ctx, fn: Callable, ref: Callable, args: list[torch.Tensor], wrt: Sequence[int],
                          where: str, output: int | None = None, symmetric: Sequence[int] = ()) -> None:
    """The student's output (item ``output`` of a tuple, if given) is differentiable and the
    gradients of its weighted sum — random weights of the reference output's shape, drawn from
    ``ctx`` (:class:`GradRequest`) — with respect to the arguments ``wrt`` equal those of ``ref``'s.

    ``symmetric``: the arguments that the task defines only as symmetric matrices (second moments,
    covariances). A function of a symmetric C may be written with C or Cᵀ alike; the two agree on
    every symmetric input and differ in the antisymmetric part of the gradient only, which no
    symmetric perturbation can see. So for these arguments the symmetric parts (G + Gᵀ)/2 are
    compared. A failure names the argument by the reference's parameter name.
    """
    probe = invoke_local(ref, args)
    value = probe.value[0] if isinstance(probe.value, tuple) else probe.value
    if probe.error_type is not None or type(value) is not torch.Tensor:  # noqa: E721
        raise RuntimeError(f"the reference of {ctx.task} gave no tensor to weigh ({probe.error_type})")
    weights = ctx.randn(*value.shape, dtype=value.dtype)
    _, mine = call(ctx, fn, *args, where=where, grad=GradRequest(inputs=tuple(wrt), output=output, weights=weights))
    if mine is None:
        ctx.fail(f"{where}: the result does not depend differentiably on the inputs "
                 "(did you use .item(), numpy, or .detach()? keep everything in torch)")
    theirs = invoke_local(ref, args, GradRequest(inputs=tuple(wrt), weights=weights))
    if theirs.grads is None:
        raise RuntimeError(f"the reference of {ctx.task} is not differentiable")
    if len(mine) != len(theirs.grads):  # call() has checked the count: this is the reference's side
        raise RuntimeError(f"the reference of {ctx.task} gave {len(theirs.grads)} gradients for {len(mine)}")
    names = _argument_names(ref, len(args))
    for i, g, r in zip(wrt, mine, theirs.grads):
        g = torch.zeros_like(args[i]) if g is None else g  # no dependence: a zero gradient
        r = torch.zeros_like(args[i]) if r is None else r
        if type(g) is not torch.Tensor or g.shape != r.shape or g.dtype != r.dtype:  # noqa: E721
            ctx.fail(f"{where}: the gradient with respect to {names[i]} has the wrong shape or dtype "
                     f"({type_name(g)})")
        if i in symmetric and g.dim() >= 2 and g.shape[-1] == g.shape[-2]:
            g, r = (g + g.transpose(-1, -2)) / 2, (r + r.transpose(-1, -2)) / 2
        if not bool(torch.allclose(g, r, rtol=1e-6, atol=1e-8)):
            if not bool(g.ne(0).any()) and bool(r.ne(0).any()):
                ctx.fail(f"{where}: the gradient with respect to {names[i]} is wrong: your result does not depend "
                         "on it at all (a .detach() or a constant where it should enter?)")
            ctx.fail(f"{where}: the gradient with respect to {names[i]} is wrong; where the values are right, "
                     "look for what changes only gradients: a .detach() (a stop-gradient the task does not ask "
                     "for), an in-place change, a non-differentiable step (rounding, a comparison, a clamp)")


def forbid_calls(ctx: Ctx, fn: Callable, modules: Sequence[str], allowed: Sequence[str] | None = None, *,
                 depth: int = 3) -> None:
    """Fail when ``fn`` (or what it reaches) uses anything outside its task's allow-list.

    ``allowed``: the modules the task allows (default: :data:`coursework._allowlist.DEFAULT_ALLOWED`,
    ``math`` and ``torch``); ``modules``: the chapter's forbidden ones, refused inside allowed ones
    too (``torch.distributions``). Besides those modules an answer may use the notebook's own names
    and builtins that are not dynamic; dynamic code (``exec``, ``getattr`` with a computed name,
    ``sys.modules``, ``importlib``, ``__dict__``...) fails. The rule is :mod:`coursework._allowlist`:
    an answer in a grading sandbox is judged from its notebook's sources
    (``fn.forbidden_uses(forbidden, allowed)``, :class:`autograder.runner.RemoteFunction`); one in this
    process from its source or byte code and the objects its names are bound to now, the same rule.
    ``depth`` is kept for callers of the old rule: every notebook function reached is read.
    """
    from coursework._allowlist import DEFAULT_ALLOWED, live_uses

    allowed = DEFAULT_ALLOWED if allowed is None else tuple(allowed)
    if getattr(type(fn), "forbidden_uses", None) is not None:  # an answer in a grading sandbox: read its source
        uses = fn.forbidden_uses(tuple(modules), allowed)
    else:
        uses = live_uses(fn, allowed=allowed, forbidden=tuple(modules))
    if uses:
        more = f" (and {len(uses) - 1} more: {'; '.join(uses[1:4])}{'; ...' if len(uses) > 4 else ''})" \
            if len(uses) > 1 else ""
        ctx.fail(f"your answer uses {uses[0]}{more}; implement it yourself (the exercise rules list what you may call)")


# --------------------------------------------------------------------------------------------
# Step-checked SymPy derivations
# --------------------------------------------------------------------------------------------


def numeric(expr, point: Mapping[str, float]) -> float:
    """Evaluate a SymPy expression at ``point`` (symbol name -> value); integrals by scipy.quad.

    Free symbols are matched by name, so the student's symbols and the checker's need only share
    names. Definite single integrals are evaluated numerically after the other symbols are set.
    (:func:`numeric_at` evaluates at many points at once, compiling the integrands once.)
    """
    return numeric_at(expr, [point])[0]


def _quad(f, a: float, b: float) -> float:
    """∫_a^b f by scipy.quad, a point where ``f`` overflows or is undefined counting as 0."""
    from scipy.integrate import quad

    def safe(t):
        try:
            v = f(t)
        except (OverflowError, ValueError, ZeroDivisionError):
            return 0.0
        return 0.0 if math.isnan(v) else v
    val, _ = quad(safe, a, b, epsabs=1e-12, epsrel=1e-11, limit=200)
    return val


def _definite(node):
    """``(var, lower, upper)`` of an integral node, or the derivation fails (one variable, both limits)."""
    if len(node.limits) != 1 or len(node.limits[0]) != 3:
        raise CheckFailed("integrals must be definite single integrals, e.g. Integral(f, (z, -oo, oo))")
    return node.limits[0]


def _numeric_nested(expr, point: Mapping[str, float]) -> float:
    """:func:`numeric` at one point for an expression with integrals inside integrals: the parameters
    substituted first, the innermost integrals evaluated first."""
    import sympy as sp

    e = expr.subs({s: point[s.name] for s in expr.free_symbols if s.name in point})

    def integrate(node):
        var, a, b = _definite(node)
        f = sp.lambdify(var, sp.expand_log(node.function, force=True), "math")
        return sp.Float(_quad(f, float(a), float(b)))

    e = e.replace(lambda n: isinstance(n, sp.Integral), integrate)
    try:
        return float(sp.N(e))
    except (TypeError, ValueError):
        return float("nan")


def _lambdify(symbols: Sequence, expr, module: str):
    """``sympy.lambdify(symbols, expr, module)``, the symbols renamed first (``_arg0``, ``_arg1``...)
    where their names could not stand as the compiled function's arguments: two distinct symbols
    sharing a name, or a name that would shadow a function the compiled code calls (lambdify puts
    the symbols' names in its namespace, so a symbol called ``exp`` or ``beta`` would replace the
    function). Renaming rebuilds the expression, so it is done only then."""
    import sympy as sp

    global _RESERVED
    if _RESERVED is None:
        import builtins
        import keyword

        import mpmath

        _RESERVED = set(dir(math)) | set(dir(mpmath)) | set(dir(builtins)) | set(keyword.kwlist)
    names = [s.name for s in symbols]
    if len(set(names)) < len(set(symbols)) or any(n in _RESERVED or not n.isidentifier() or n.startswith("_")
                                                  for n in names):
        plain = [sp.Symbol(f"_arg{k}") for k in range(len(symbols))]
        expr, symbols = expr.xreplace(dict(zip(symbols, plain))), plain
    return sp.lambdify(list(symbols), expr, module)


_RESERVED: set | None = None


def numeric_at(expr, points: Sequence[Mapping[str, float]]) -> list[float]:
    """:func:`numeric` at each of ``points`` (which name the same symbols), compiling once: each
    integrand becomes one Python function of its variable and the parameters (``sympy.lambdify``
    after ``expand_log``), integrated by scipy.quad at each point; the rest of the expression, the
    integrals' values put in, is evaluated by SymPy (``sympy.N``) at each point. An expression with
    nested integrals, or points that name different symbols, is evaluated point by point."""
    import sympy as sp

    points = list(points)
    if not points:
        return []
    nodes = sorted(expr.atoms(sp.Integral), key=sp.default_sort_key)
    names = set(points[0])
    if any(set(p) != names for p in points) or any(node.atoms(sp.Integral) != {node} for node in nodes):
        return [_numeric_nested(expr, p) for p in points]
    limits = [_definite(node) for node in nodes]
    params = sorted((s for s in expr.free_symbols if s.name in names), key=sp.default_sort_key)
    integrands, bounds = [], []
    for node, (var, a, b) in zip(nodes, limits):
        inner = [s for s in params if s != var]
        integrands.append((_lambdify([var, *inner], sp.expand_log(node.function, force=True), "math"), inner))
        bounds.append((a, b))
    holes = [sp.Dummy(f"I{k}") for k in range(len(nodes))]
    outer = expr.xreplace(dict(zip(nodes, holes)))
    values = []
    for point in points:
        at = {s: point[s.name] for s in params}
        filled = {s: sp.Float(v) for s, v in at.items()}
        for hole, (f, inner), (a, b) in zip(holes, integrands, bounds):
            args = [at[s] for s in inner]
            lo, hi = (float(x.xreplace(filled)) for x in (a, b))
            filled[hole] = sp.Float(_quad(lambda t, f=f, args=args: f(t, *args), lo, hi))
        try:
            values.append(float(sp.N(outer.xreplace(filled))))
        except (TypeError, ValueError):
            values.append(float("nan"))
    return values


def close(a: Sequence[float], b: Sequence[float], rel: float = 1e-7, abs_: float = 1e-9) -> bool:
    return all(math.isfinite(x) and math.isfinite(y) and math.isclose(x, y, rel_tol=rel, abs_tol=abs_)
               for x, y in zip(a, b))


@dataclass(frozen=True)
class IntegralRule:
    """What the steps of a derivation whose start is an integral may do with integrals.

    Every integrand must be ``weight`` times a combination Σ a_k m_k of the ``parts`` m_k (for the KL
    of two Gaussians: q(z) times 1, (z − μ_q)² and (z − μ_p)²), whose integrals ∫ weight·m_k are the
    facts the task text lists. :func:`expect_derivation` reads each step's coefficients a_k (the
    integrals weighed by the factors in front of them) numerically, at the values ``at(point)`` of the
    integration variable, and requires, from one step to the next, each coefficient to stay the same
    (the integral is kept, its integrand maybe rewritten) or to become 0 (that part was worked out with
    its fact). So a step cannot wrap a result in a new integral (``∫ q·RESULT dz``: the coefficient of
    1 changes), and in the last step that has integrals each integral must be one fact alone, so that
    the closed form only substitutes the facts' values (no ``.doit()`` of a whole integral).

    Args:
        var: the name of the integration variable (``"z"``).
        limits: the start's ``(lower, upper)`` limits (SymPy numbers, e.g. ``(-sp.oo, sp.oo)``).
        weight: SymPy expression of the density the integrals average over (``q``; ``1`` on (0, 1)).
        parts: ``((m, fact), ...)``: SymPy expressions m_k of the variable and the parameters, and the
            text of their facts (``"∫ q·(z - mu_q)**2 dz = sigma_q**2"``).
        at: point → the values of the variable at which integrands are compared (at least
            ``len(parts) + 2``, spread where the weight is not negligible).
        describe: what every integrand must be, for messages (``"q(z) times a quadratic in z"``).
    """

    var: str
    limits: tuple
    weight: Any
    parts: tuple
    at: Callable[[Mapping[str, float]], Sequence[float]]
    describe: str


#: Functions that are piecewise (constant on pieces, or glued from pieces): a term such as
#: ``Max(0, p - 10)·t`` is 0 at every point a check draws and wrong elsewhere, so a step may use one
#: only where the start does.
PIECEWISE = ("Piecewise", "Max", "Min", "Heaviside", "Abs", "sign", "floor", "ceiling", "frac", "Mod",
             "DiracDelta", "KroneckerDelta", "re", "im", "arg")


def _piecewise_in(expr) -> set[str]:
    import sympy as sp

    return {type(e).__name__ for e in sp.preorder_traversal(expr) if type(e).__name__ in PIECEWISE}


def _exact_difference(a, b, symbols: Sequence):
    """``a − b`` reduced exactly (SymPy's ``cancel``) when both are rational functions of ``symbols``
    with rational coefficients and small integer powers — there equality is decided exactly, so a
    difference far below any numerical tolerance (an exact ``+ 1/10**12``) is seen. ``None`` when the
    steps are not of that kind (they hold integrals, functions, decimals, π...) or too large."""
    import sympy as sp

    by_name = {x.name: x for x in symbols}
    d = _evaluated(a) - _evaluated(b)
    if not {x.name for x in d.free_symbols} <= set(by_name):
        return None
    d = d.xreplace({x: by_name[x.name] for x in d.free_symbols})
    if d.atoms(sp.Float, sp.NumberSymbol, sp.Function, sp.Integral) or sp.count_ops(d) > 400:
        return None
    for e in sp.preorder_traversal(d):
        if isinstance(e, sp.Pow) and not (e.exp.is_Integer and abs(int(e.exp)) <= 64):
            return None
        if isinstance(e, sp.Number) and not e.is_Rational:
            return None
    if not d.is_rational_function(*symbols):
        return None
    return sp.cancel(d)


def expect_derivation(ctx: Ctx, steps: Any, *, start, symbols: Sequence, points: Sequence[Mapping[str, float]],
                      target: Callable[[Mapping[str, float]], float], start_name: str,
                      not_in_result: Sequence = (), min_steps: int = 3, integrals: IntegralRule | None = None,
                      exact_numbers: bool = False) -> None:
    """A list of SymPy expressions in which every step equals the previous one.

    Checks, in order: a list of at least ``min_steps`` SymPy expressions; only ``symbols`` occur
    free; step 0 is ``start`` itself (the same expression, symbols matched by name); at least
    ``min_steps`` steps differ from the one before (a step that SymPy evaluates to the previous one does
    not count); when the start is an integral, an intermediate step still has one, and once a step has
    none no later step has one (a start without integrals: no step has one); each step
    equals the one before at every point of ``points``; the last step contains no integral and none
    of ``not_in_result``; the integrals follow ``integrals`` (:class:`IntegralRule`: the integrand
    parts only kept or worked out with the facts, one fact per integral before the closed form); and
    the last step's value equals ``target(point)`` (computed by an independent route, e.g. ``dgm``'s
    torch implementation). Besides: no step uses a piecewise function (:data:`PIECEWISE`) the start
    does not use; two consecutive steps that are rational functions with exact coefficients must be
    equal exactly (:func:`_exact_difference`), not only at the points; with ``exact_numbers`` no step
    holds a decimal (``sp.Float``).
    """
    import sympy as sp

    if steps is None or steps is ...:
        ctx.fail("no derivation yet: fill in the list of steps")
    if not isinstance(steps, (list, tuple)) or not all(isinstance(s, sp.Expr) for s in steps):
        ctx.fail("the derivation must be a list of SymPy expressions")
    if len(steps) < min_steps:
        ctx.fail(f"give at least {min_steps} steps (the start, at least one intermediate step, the result); "
                 f"got {len(steps)}")
    allowed = {s.name for s in symbols}
    for i, s in enumerate(steps):
        extra = {x.name for x in s.free_symbols} - allowed
        if extra:
            ctx.fail(f"step {i} uses symbols outside the exercise's: {sorted(extra)}")
    # step 0 is the start itself, not merely equal to it: a chain that starts at the result proves nothing
    if _by_name(steps[0]) != _by_name(start):
        ctx.fail(f"step 0 must be the starting expression {start_name} itself, unchanged (put it first as it is; "
                 "your own rewriting of it is step 1)")
    # compared after SymPy's automatic simplification, so `Mul(1, step, evaluate=False)` is no new step; such a
    # step (or 2·(x/2) after x) is no error in itself, but the chain needs at least min_steps different ones.
    reprs = [sp.srepr(_evaluated(s)) for s in steps]
    repeats = [i for i in range(1, len(steps)) if reprs[i] == reprs[i - 1]]
    if repeats and len(steps) - len(repeats) < min_steps:
        i = repeats[0]
        ctx.fail(f"step {i} repeats step {i - 1} (SymPy evaluates both to the same expression), which leaves "
                 f"{len(steps) - len(repeats)} different steps; give at least {min_steps}, each rewriting the "
                 "one before")
    if start.has(sp.Integral) and not any(s.has(sp.Integral) for s in steps[1:-1]):
        ctx.fail("work the integral out in steps: at least one intermediate step must still contain an integral")
    if exact_numbers:
        for i, s in enumerate(steps):
            if any(isinstance(a, sp.Float) for a in s.atoms(sp.Number)):
                ctx.fail(f"step {i} holds a decimal: write every number exactly (integers, sp.Rational, sp.pi); "
                         "a decimal such as 0.5 or 3.1416 only approximates the number")
    allowed_pieces = _piecewise_in(start)
    for i, s in enumerate(steps):
        pieces = _piecewise_in(s) - allowed_pieces
        if pieces:
            ctx.fail(f"step {i} uses {', '.join(sorted(pieces))}: a piecewise function can be 0 at every point the "
                     "checks try and wrong elsewhere, so the steps may not use one the start does not have")
    if not start.has(sp.Integral):
        for i, s in enumerate(steps):
            if s.has(sp.Integral):
                ctx.fail(f"step {i} contains an integral; this derivation has none (rewrite the expression itself)")
    for i in range(1, len(steps)):
        if steps[i].has(sp.Integral) and not steps[i - 1].has(sp.Integral):
            ctx.fail(f"step {i} contains an integral after step {i - 1} had worked them all out; once the "
                     "integrals are gone, later steps must not bring one back")
    values = [numeric_at(s, points) for s in steps]
    if not close(values[0], numeric_at(start, points)):
        ctx.fail(f"step 0 must be the starting expression {start_name}")
    for i in range(1, len(steps)):
        if not close(values[i], values[i - 1]):
            where = "" if ctx.hidden else (
                f": at {', '.join(f'{k}={v:.3g}' for k, v in points[0].items())} "
                f"they are {values[i - 1][0]:.10g} and {values[i][0]:.10g}")
            ctx.fail(f"step {i} is not equal to step {i - 1}{where}")
    for i in range(1, len(steps)):
        diff = _exact_difference(steps[i], steps[i - 1], symbols)
        if diff is not None and diff != 0:
            text = str(diff)
            ctx.fail(f"step {i} is not exactly equal to step {i - 1}: they differ by "
                     f"{text if len(text) <= 80 else text[:77] + '...'} (too small to see in the values)")
    last = steps[-1]
    names = {x.name for x in last.free_symbols}
    if last.has(sp.Integral) or names & {s.name for s in not_in_result}:
        ctx.fail("the last step must be a closed form: no integral"
                 + (f" and no {', '.join(s.name for s in not_in_result)}" if not_in_result else ""))
    if integrals is not None and start.has(sp.Integral):
        _expect_integral_bookkeeping(ctx, steps, integrals, points)
    for p, v in zip(points, values[-1]):
        if not math.isclose(v, target(p), rel_tol=1e-7, abs_tol=1e-9):
            ctx.fail("the final expression is not the quantity asked for")


def _by_name(expr):
    """``expr`` after SymPy's automatic evaluation, every symbol (bound ones too) replaced by a plain symbol
    of the same name, as a string: equal for the same expression built from symbols of the same names."""
    import sympy as sp

    e = _evaluated(expr)
    return sp.srepr(e.xreplace({s: sp.Symbol(s.name) for s in e.atoms(sp.Symbol)}))


def _expect_integral_bookkeeping(ctx: Ctx, steps: Sequence, rule: IntegralRule,
                                 points: Sequence[Mapping[str, float]]) -> None:
    """The checks of :class:`IntegralRule` (see there) on a chain already known to be equal step by step."""
    facts = "; ".join(fact for _, fact in rule.parts)
    evaluate = _Evaluator(rule.var)
    bases = _part_bases(rule, points, evaluate)
    per_step = [_integral_parts(ctx, i, s, rule, points, evaluate, bases) for i, s in enumerate(steps)]
    for i in range(1, len(steps)):
        for before, after in zip(per_step[i - 1][0], per_step[i][0]):
            for a, b in zip(before, after):
                scale = 1 + abs(a) + abs(b)
                if abs(b - a) > 1e-12 * scale and abs(b) > 1e-12 * scale:
                    ctx.fail(f"step {i} changes what is integrated: each integrand is {rule.describe}, and from "
                             "one step to the next each of those parts must stay as it is or be replaced by its "
                             f"value from the facts ({facts}); a result wrapped in a new integral (the weight "
                             f"times something free of {rule.var}) is no step")
    last = max(i for i, s in enumerate(steps) if per_step[i][1])
    for per_point in per_step[last][1]:
        for node in per_point:
            if sum(bool(abs(a) > 1e-12 * (1 + sum(abs(b) for b in node))) for a in node) > 1:
                ctx.fail(f"step {last} is the last step with integrals, so each of its integrals must be one of "
                         f"the facts ({facts}), times factors free of {rule.var}: split the integrals (linearity) "
                         "before the closed form, which then only substitutes the facts' values")


#: digits the integral bookkeeping computes with (its residual test is at 1e-20)
_BOOKKEEPING_DPS = 50


class _Evaluator:
    """Evaluates SymPy expressions at the derivation's points (and values of the integration
    variable) with :data:`_BOOKKEEPING_DPS` digits: each expression compiled once into an mpmath
    function (``sympy.lambdify``), symbols matched by name; an expression mpmath cannot evaluate
    falls back to ``sympy.N``. Raises ValueError where the value is not a finite real number."""

    def __init__(self, var: str) -> None:
        self.var = var
        self._compiled: dict = {}

    def _compile(self, expr):
        import sympy as sp

        key = expr  # SymPy expressions hash and compare structurally
        if key not in self._compiled:
            symbols = sorted(expr.free_symbols, key=sp.default_sort_key)
            try:
                fn = _lambdify(symbols, expr, "mpmath")
            except Exception:  # noqa: BLE001 - not printable for mpmath: sympy.N evaluates it
                fn = None
            self._compiled[key] = (fn, symbols)
        return self._compiled[key]

    def __call__(self, expr, point: Mapping[str, float], var_value: float | None = None):
        import mpmath
        import sympy as sp

        fn, symbols = self._compile(expr)
        values = {**point, **({} if var_value is None else {self.var: var_value})}
        if any(s.name not in values for s in symbols):
            raise ValueError("a symbol is left over")
        with mpmath.workdps(_BOOKKEEPING_DPS):
            value = None
            if fn is not None:
                try:
                    value = fn(*[mpmath.mpf(values[s.name]) for s in symbols])
                except (ArithmeticError, ValueError, TypeError):
                    raise
                except Exception:  # noqa: BLE001 - a function mpmath lacks: sympy.N below
                    value = None
            if value is None:
                subs = {s: sp.Float(values[s.name], _BOOKKEEPING_DPS) for s in symbols}
                value = sp.N(expr.xreplace(subs), _BOOKKEEPING_DPS - 5)
                if not isinstance(value, sp.Float):  # a complex number, nan or oo
                    raise ValueError(f"not a real number: {value}")
                value = mpmath.mpf(value._mpf_)
            if isinstance(value, mpmath.mpc):
                if value.imag != 0:
                    raise ValueError(f"not a real number: {value}")
                value = value.real
            value = mpmath.mpf(value)
            if not mpmath.isfinite(value):
                raise ValueError(f"not a real number: {value}")
            return value


def _integral_parts(ctx: Ctx, i: int, step, rule: IntegralRule, points: Sequence[Mapping[str, float]],
                    evaluate: _Evaluator, bases: list):
    """(coefficients of the whole step, coefficients of each integral) at each point, in the basis
    ``rule.parts``: the step is R + Σ_j c_j ∫ g_j d(var) with R, c_j free of the integrals, and
    Σ_j c_j g_j = weight · Σ_k a_k m_k. Fails the task where a step does not have that form.
    ``bases[p]`` is ``(zs, basis, normal, weights)`` at point p (:func:`_part_bases`)."""
    import mpmath
    import sympy as sp

    nodes = sorted(step.atoms(sp.Integral), key=sp.default_sort_key)
    n = len(rule.parts)
    if not nodes:
        return [[mpmath.mpf(0)] * n for _ in points], []
    lower, upper = rule.limits
    for node in nodes:
        lims = node.limits
        ok = len(lims) == 1 and len(lims[0]) == 3 and lims[0][0].name == rule.var
        if ok:
            try:
                ok = float(lims[0][1]) == float(lower) and float(lims[0][2]) == float(upper)
            except (TypeError, ValueError):
                ok = False
        if not ok:
            ctx.fail(f"step {i}: every integral must be over {rule.var} from {lower} to {upper}, like the start's")
        if node.function.has(sp.Integral):
            ctx.fail(f"step {i}: integrals must not be nested")
    dummies = [sp.Dummy(f"J{k}") for k in range(len(nodes))]
    linear = step.xreplace(dict(zip(nodes, dummies)))
    factors = [sp.diff(linear, d) for d in dummies]
    if any(f.has(*dummies) for f in factors):
        ctx.fail(f"step {i}: integrals may only be added and multiplied by factors free of {rule.var} "
                 f"(R + c·∫ ... d{rule.var} + ...)")
    integrands = [node.function.xreplace({node.limits[0][0]: sp.Symbol(rule.var)}) for node in nodes]

    whole, per_node = [], []
    with mpmath.workdps(_BOOKKEEPING_DPS):
        for point, (zs, basis, normal, weights) in zip(points, bases):
            total = [mpmath.mpf(0)] * n
            nodes_here = []
            for integrand, factor in zip(integrands, factors):
                try:
                    c = evaluate(factor, point)
                    h = mpmath.matrix([evaluate(integrand, point, z) / w for z, w in zip(zs, weights)])
                    coef = mpmath.lu_solve(normal, basis.T * h)   # least squares: more points than parts
                    residual = mpmath.norm(basis * coef - h)
                except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
                    ctx.fail(f"step {i}: an integrand could not be evaluated; every integrand must be {rule.describe}")
                if residual > mpmath.mpf("1e-20") * (1 + mpmath.norm(h)):
                    ctx.fail(f"step {i}: every integrand must be {rule.describe}")
                nodes_here.append([coef[k] for k in range(n)])
                total = [t + c * coef[k] for k, t in enumerate(total)]
            whole.append(total)
            per_node.append(nodes_here)
    return whole, per_node


def _part_bases(rule: IntegralRule, points: Sequence[Mapping[str, float]], evaluate: _Evaluator) -> list:
    """At each point: the integration variable's values ``zs`` (``rule.at``), the parts m_k there
    (``basis``, one row per value), ``basisᵀ·basis`` and the weight there — the same for every step."""
    import mpmath

    out = []
    with mpmath.workdps(_BOOKKEEPING_DPS):
        for point in points:
            zs = list(rule.at(point))
            basis = mpmath.matrix([[evaluate(m, point, z) for m, _ in rule.parts] for z in zs])
            out.append((zs, basis, basis.T * basis, [evaluate(rule.weight, point, z) for z in zs]))
    return out


def _evaluated(expr):
    """``expr`` rebuilt bottom-up with SymPy's automatic evaluation (``1*x`` → ``x``, ``x + 0`` → ``x``),
    without any further simplification."""
    if not expr.args:
        return expr
    try:
        return expr.func(*[_evaluated(a) for a in expr.args])
    except Exception:  # noqa: BLE001 - a node that cannot be rebuilt from its args: compare it as it is
        return expr


def derivation_steps_report(steps: Sequence, point: Mapping[str, float]) -> None:
    """Print each step's value at ``point`` and whether it equals the previous step.

    The first step whose value changes is where the algebra went wrong.
    """
    prev = None
    for i, s in enumerate(steps):
        v = numeric(s, point)
        flag = "" if prev is None else ("  = previous" if close([v], [prev]) else "  <-- differs from the previous step")
        print(f"step {i}: {v:.10g}{flag}")
        prev = v
