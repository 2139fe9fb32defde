"""The exercise-check API: the one function every exercise test cell calls.

A test cell reads ``check("gaussian_kl_diag", gaussian_kl_diag)``: the task's checks call the
student's function on inputs, compare with ``dgm``'s reference implementation (or, for a
derivation, with an independent numerical route), and raise :class:`CheckFailed` (an
``AssertionError``) with a message saying which property failed. Keeping every comparison here,
rather than spelled out in each notebook, is what lets grading move judgement out of the student's
kernel: the grader (:mod:`autograder.grade`) parses the test cells instead of running them, and
runs the same checks in its own process on an answer that lives in a sandbox (see
:func:`dgm.checks._core.invoke` and :mod:`dgm.checks.wire`).

Two suites per task:

* ``suite="visible"`` — fixed, documented inputs; failure messages show the numbers and, where
  the wrong answer matches a known slip (arguments swapped, a missing ½...), say so.
* ``suite="hidden"`` — inputs drawn at grading time (fresh seed), other batch shapes, float32
  and float64, edge cases, gradients. Messages name the property, never the values.

Concept checks pass ``expected=`` from the (hidden) test cell; the visible suite only checks that
the answer is one of the allowed options.
"""

from __future__ import annotations

import importlib
import pkgutil
import secrets
from collections.abc import Sequence
from typing import Any

import torch

from dgm.checks import ch01
from dgm.checks._core import TASKS, VISIBLE_SEED, CheckFailed, Ctx
from dgm.checks._core import derivation_report as _derivation_report
from dgm.checks.ch01 import kl_derivation_start, kl_symbols

# Every chapter's task module (dgm/checks/chNN.py) registers its tasks on import.
for _module in pkgutil.iter_modules(__path__):
    if _module.name.startswith("ch"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["check", "run_check", "CheckFailed", "TASKS", "derivation_report", "kl_derivation_start", "kl_symbols"]


def derivation_report(steps: Sequence, point: dict[str, float] | None = None) -> None:
    """Print each step's value at ``point`` (default: Exercise 1's KL test point) and whether it
    equals the previous step: the first step that changes value is where the algebra went wrong."""
    _derivation_report(steps, ch01.KL_REPORT_POINT if point is None else point)


def check(task: str, answer: Any, *, suite: str = "visible", expected: Any = None) -> None:
    """Run the checks of ``task`` on the student's ``answer``; raise :class:`CheckFailed` if one fails.

    Args:
        task: the task's name (the answer cell's grade id), e.g. ``"gaussian_kl_diag"``.
        answer: the student's function, value or list of derivation steps.
        suite: ``"visible"`` (fixed inputs, detailed messages) or ``"hidden"`` (inputs drawn now).
        expected: the correct value, for concept checks in the hidden suite only.

    Returns:
        None. Prints one line when every check passed.
    """
    run_check(task, answer, suite=suite, expected=expected)
    print(f"{task}: all {suite} checks passed")


def run_check(task: str, answer: Any, *, suite: str = "visible", expected: Any = None, seed: int | None = None) -> None:
    """The checks of ``task`` without the printed line: what :func:`check` and the grader share.

    ``seed`` draws the hidden suite's inputs (default: a fresh random seed); the visible suite
    always uses :data:`VISIBLE_SEED`. ``answer`` may be a function in this process or one in a
    grading sandbox (an object with ``invoke_remote``, see :func:`dgm.checks._core.invoke`).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
    if suite not in ("visible", "hidden"):
        raise ValueError(f"suite must be 'visible' or 'hidden'; got {suite!r}")
    if suite == "visible":
        seed = VISIBLE_SEED
    elif seed is None:
        seed = secrets.randbits(62)
    ctx = Ctx(task=task, hidden=suite == "hidden", gen=torch.Generator().manual_seed(seed))
    TASKS[task](ctx, answer, expected)
