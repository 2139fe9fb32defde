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
    """A property of the student's answer does not hold; the message says which."""


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
    the output itself). The gradient is that of the selected output's ``sum()``.
    """

    inputs: tuple[int, ...] = ()
    params_of: int | None = None
    output: int | None = None

    def as_dict(self) -> dict:
        return {"inputs": list(self.inputs), "params_of": self.params_of, "output": self.output}

    @classmethod
    def from_dict(cls, d: Mapping) -> "GradRequest":
        inputs = tuple(int(i) for i in d.get("inputs", ()))
        params_of = d.get("params_of")
        output = d.get("output")
        return cls(inputs, None if params_of is None else int(params_of), None if output is None else int(output))


@dataclass
class Outcome:
    """What calling an answer produced: its value, or the error it raised (type and message), and
    the gradients asked for (None when the output does not depend differentiably on them)."""

    value: Any = None
    error_type: str | None = None
    error_message: str = ""
    stage: str = "call"            # "call" or "grad": where the error happened
    mutated: bool = False          # the function changed one of its input tensors in place
    grads: list | None = None
    differentiable: bool = True


def invoke_local(fn: Callable, args: Sequence[Any], grad: GradRequest | None = None) -> Outcome:
    """Call ``fn(*args)`` in this process (the student's kernel, or a sandbox worker) and record
    what happened; never raises for the student's errors."""
    outcome = Outcome()
    if grad is None:
        copies = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
        call_args = list(args)
    else:
        call_args = [a.detach().clone().requires_grad_(i in grad.inputs) if isinstance(a, torch.Tensor)
                     and a.is_floating_point() else a for i, a in enumerate(args)]
    try:
        out = fn(*call_args)
    except Exception as err:  # noqa: BLE001 - any student error is recorded, not raised
        outcome.error_type = type(err).__name__
        outcome.error_message = _message(err)
        return outcome
    outcome.value = out
    if grad is None:
        outcome.mutated = any(isinstance(a, torch.Tensor) and (a.shape != c.shape or not torch.equal(a.detach(), c))
                              for a, c in zip(args, copies))
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
        outcome.grads = list(torch.autograd.grad(sel.sum(), targets, allow_unused=True))
    except Exception as err:  # noqa: BLE001
        outcome.error_type, outcome.error_message, outcome.stage = type(err).__name__, _message(err), "grad"
    return outcome


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
        if ctx.hidden:  # its message could quote the inputs drawn at grading time: keep only the type
            ctx.fail(f"{where}: your function {stage} {outcome.error_type}")
        ctx.fail(f"{where}: your function {stage} {outcome.error_type}: {outcome.error_message}")
    if outcome.mutated:
        ctx.fail(f"{where}: your function modified one of its input tensors in place; work on copies")
    if grad is None:
        return outcome.value
    return outcome.value, (outcome.grads if outcome.differentiable else None)


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


def expect_same_gradients(ctx: Ctx, fn: Callable, ref: Callable, args: list[torch.Tensor], wrt: Sequence[int],
                          where: str, output: int | None = None) -> None:
    """The student's output (item ``output`` of a tuple, if given) is differentiable and the
    gradients of its sum with respect to the arguments ``wrt`` equal those of ``ref``'s."""
    _, mine = call(ctx, fn, *args, where=where, grad=GradRequest(inputs=tuple(wrt), output=output))
    if mine is None:
        ctx.fail(f"{where}: the result does not depend differentiably on the inputs "
                 "(did you use .item(), numpy, or .detach()? keep everything in torch)")
    theirs = invoke_local(ref, args, GradRequest(inputs=tuple(wrt)))
    if theirs.grads is None:
        raise RuntimeError(f"the reference of {ctx.task} is not differentiable")
    for i, g, r in zip(wrt, mine, theirs.grads):
        if type(g) is not torch.Tensor or g.shape != r.shape or g.dtype != r.dtype \
                or not bool(torch.allclose(g, r, rtol=1e-6, atol=1e-8)):  # noqa: E721
            ctx.fail(f"{where}: the gradient with respect to argument {i + 1} is wrong")


def forbid_calls(ctx: Ctx, fn: Callable, modules: Sequence[str], *, depth: int = 3) -> None:
    """Fail when ``fn`` uses a function or module from ``modules`` (e.g. ``"dgm.divergences"``).

    Reads the names the function's code (and its nested code, and the notebook functions it
    calls, up to ``depth``) refers to, and what they are bound to in its globals and closure:
    a name bound to a forbidden function or module, or ``pkg.sub.name`` access through a
    forbidden module's package, fails the task. A reference implementation re-exported under
    another name is caught too, because the object's ``__module__`` is what counts.
    """
    import types

    static = getattr(type(fn), "forbidden_uses", None)
    if static is not None:  # an answer in a grading sandbox: read its source instead
        uses = fn.forbidden_uses(tuple(modules))
        if uses:
            ctx.fail(f"your answer uses {uses[0]}; implement it yourself (the exercise rules list what you may call)")
        return

    def names_of(code):
        yield from code.co_names
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from names_of(const)

    def origin(obj) -> str:
        if isinstance(obj, types.ModuleType):
            return obj.__name__
        return getattr(obj, "__module__", None) or ""

    def bad(name: str) -> bool:
        return any(name == m or name.startswith(m + ".") for m in modules)

    seen: set[int] = set()

    def visit(f, level: int) -> None:
        code = getattr(f, "__code__", None)
        if code is None or id(f) in seen:
            return
        seen.add(id(f))
        env = dict(getattr(f, "__globals__", {}))
        for var, cell in zip(code.co_freevars, f.__closure__ or ()):
            try:
                env[var] = cell.cell_contents
            except ValueError:
                pass
        names = set(names_of(code)) | set(code.co_freevars)
        for name in names:
            if name not in env:
                continue
            obj = env[name]
            if bad(origin(obj)):
                ctx.fail(f"your answer uses {origin(obj)}.{getattr(obj, '__name__', name)}; "
                         "implement it yourself (the exercise rules list what you may call)")
            if isinstance(obj, types.ModuleType):
                for m in modules:
                    top, _, rest = m.partition(".")
                    if obj.__name__ == top and rest and rest.split(".")[-1] in names:
                        ctx.fail(f"your answer uses {m}; implement it yourself (the exercise rules list what "
                                 "you may call)")
            if level < depth and isinstance(obj, types.FunctionType) and obj.__module__ == getattr(fn, "__module__", None):
                visit(obj, level + 1)

    visit(fn, 0)


# --------------------------------------------------------------------------------------------
# Step-checked SymPy derivations
# --------------------------------------------------------------------------------------------


def numeric(expr, point: Mapping[str, float]) -> float:
    """Evaluate a SymPy expression at ``point`` (symbol name -> value); integrals by scipy.quad.

    Free symbols are matched by name, so the student's symbols and the checker's need only share
    names. Definite single integrals are evaluated numerically after the other symbols are set.
    """
    import sympy as sp
    from scipy.integrate import quad

    e = expr.subs({s: point[s.name] for s in expr.free_symbols if s.name in point})

    def integrate(node):
        if len(node.limits) != 1 or len(node.limits[0]) != 3:
            raise CheckFailed("integrals must be definite single integrals, e.g. Integral(f, (z, -oo, oo))")
        var, a, b = node.limits[0]
        f = sp.lambdify(var, sp.expand_log(node.function, force=True), "math")

        def safe(t):
            try:
                v = f(t)
            except (OverflowError, ValueError, ZeroDivisionError):
                return 0.0
            return 0.0 if math.isnan(v) else v
        val, _ = quad(safe, float(a), float(b), epsabs=1e-12, epsrel=1e-11, limit=200)
        return sp.Float(val)

    e = e.replace(lambda n: isinstance(n, sp.Integral), integrate)
    try:
        return float(sp.N(e))
    except (TypeError, ValueError):
        return float("nan")


def close(a: Sequence[float], b: Sequence[float], rel: float = 1e-7, abs_: float = 1e-9) -> bool:
    return all(math.isfinite(x) and math.isfinite(y) and math.isclose(x, y, rel_tol=rel, abs_tol=abs_)
               for x, y in zip(a, b))


def expect_derivation(ctx: Ctx, steps: Any, *, start, symbols: Sequence, points: Sequence[Mapping[str, float]],
                      target: Callable[[Mapping[str, float]], float], start_name: str,
                      not_in_result: Sequence = (), min_steps: int = 3) -> None:
    """A list of SymPy expressions in which every step equals the previous one.

    Checks, in order: a list of at least ``min_steps`` SymPy expressions; only ``symbols`` occur
    free; step 0 equals ``start``; each step equals the one before at every point of ``points``;
    the last step contains no integral and none of ``not_in_result``; and its value equals
    ``target(point)`` (computed by an independent route, e.g. ``dgm``'s torch implementation).
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
    # compared after SymPy's automatic simplification, so `Mul(1, step, evaluate=False)` is no new step
    reprs = [sp.srepr(_evaluated(s)) for s in steps]
    for i in range(1, len(steps)):
        if reprs[i] == reprs[i - 1]:
            ctx.fail(f"step {i} repeats step {i - 1}; each step must rewrite the one before")
    if start.has(sp.Integral) and not any(s.has(sp.Integral) for s in steps[1:-1]):
        ctx.fail("work the integral out in steps: at least one intermediate step must still contain an integral")
    values = [[numeric(s, p) for p in points] for s in steps]
    if not close(values[0], [numeric(start, p) for p in points]):
        ctx.fail(f"step 0 must be the starting expression {start_name}")
    for i in range(1, len(steps)):
        if not close(values[i], values[i - 1]):
            where = "" if ctx.hidden else (
                f": at {', '.join(f'{k}={v:.3g}' for k, v in points[0].items())} "
                f"they are {values[i - 1][0]:.10g} and {values[i][0]:.10g}")
            ctx.fail(f"step {i} is not equal to step {i - 1}{where}")
    last = steps[-1]
    names = {x.name for x in last.free_symbols}
    if last.has(sp.Integral) or names & {s.name for s in not_in_result}:
        ctx.fail("the last step must be a closed form: no integral"
                 + (f" and no {', '.join(s.name for s in not_in_result)}" if not_in_result else ""))
    for p, v in zip(points, values[-1]):
        if not math.isclose(v, target(p), rel_tol=1e-7, abs_tol=1e-9):
            ctx.fail("the final expression is not the quantity asked for")


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


def random_points(ctx: Ctx, ranges: Mapping[str, tuple[float, float]], n: int = 3) -> list[dict[str, float]]:
    """``n`` points drawn uniformly from ``ranges`` (name -> (low, high)) with the context's generator."""
    pts = []
    for _ in range(n):
        u = torch.rand(len(ranges), generator=ctx.gen, dtype=torch.float64)
        pts.append({k: float(lo + (hi - lo) * u[i]) for i, (k, (lo, hi)) in enumerate(ranges.items())})
    return pts
