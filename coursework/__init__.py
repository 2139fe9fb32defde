"""The course's exercises: each chapter's declaration, its tasks' checks, and the grading wire.

``coursework`` is not part of the math library (:mod:`dgm`): it imports ``dgm`` (the references
the checks compare with), ``torch``, ``sympy`` and ``scipy``, and nothing imports it but the
exercise notebooks, the grader (:mod:`autograder`) and the tests.

* :mod:`coursework.registry` — :class:`Chapter` declarations, the :data:`TASKS` they register,
  :func:`check` (what every test cell calls) and :func:`run_check` (what the grader calls);
* :mod:`coursework.chNN` — one module per chapter: its declaration, its tasks' checks, and what its
  notebook imports in its set-up cell (``from coursework.ch05 import check, derivation_report, ...``);
* :mod:`coursework._core` — the helpers every chapter's checks use (calls, comparisons, derivations);
* :mod:`coursework.wire` — the JSON-only format of values crossing the grading sandbox's boundary;
* :mod:`coursework.notebook` — what a student sees in their notebook when a check fails or a cell
  did not run (installed in the IPython shell that imports this package).

A test cell reads ``check("gaussian_kl_diag", gaussian_kl_diag)``: the task's checks call the
student's function on inputs, compare with ``dgm``'s reference implementation (or, for a
derivation, with an independent numerical route), and raise :class:`CheckFailed` (an
``AssertionError``) with a message saying which property failed. Keeping every comparison here,
rather than spelled out in each notebook, is what lets grading move judgement out of the student's
kernel: the grader parses the test cells instead of running them, and runs the same checks in its
own process on an answer that lives in a sandbox.

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
import re

from coursework.notebook import install as _install_notebook_helpers
from coursework.registry import CHAPTERS, KINDS, TASKS, Chapter, CheckFailed, Task, check, run_check

__all__ = ["check", "run_check", "CheckFailed", "Chapter", "Task", "TASKS", "CHAPTERS", "KINDS", "chapters",
           "chapter_for"]

_CHAPTER_MODULE = re.compile(r"ch\d\d$")

# in a student's notebook: short messages for failed checks and cells that did not run (coursework.notebook)
_install_notebook_helpers()


def chapters() -> dict[str, Chapter]:
    """assignment → :class:`Chapter`, for every chapter module ``coursework/chNN.py`` (imported here)."""
    for info in pkgutil.iter_modules(__path__):
        if _CHAPTER_MODULE.match(info.name):
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(CHAPTERS.items()))


def chapter_for(assignment: str) -> Chapter | None:
    """The declaration of ``assignment`` (``"05-gans"``), or None when no chapter declares it."""
    return chapters().get(assignment)


chapters()
