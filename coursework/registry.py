"""Chapters and their tasks: the one place the grader, the reports and the release look things up.

A chapter's module (``coursework/chNN.py``) opens with its declaration::

    CHAPTER = Chapter(number=5, assignment="05-gans", title="Generative adversarial networks",
                      forbidden=("dgm.gan",))

and registers each task of its exercise on it, next to the checks::

    @CHAPTER.function("optimal_discriminator", references=("dgm.gan:optimal_discriminator",))
    def _optimal_discriminator(ctx, fn, expected): ...

    CHAPTER.concept("concept_gan_saturation", ("a", "b", "c", "d"))

    @CHAPTER.derivation("cg_derivation_steps", start=cg_derivation_start, point=CG_REPORT_POINT)
    def _cg_steps(ctx, steps, expected): ...

What each piece is for:

* ``forbidden`` — modules an answer of kind ``function`` may not call (the references it re-builds);
  :meth:`Chapter.function` applies the rule before the task's own checks run, the grader hides the
  ``dgm`` ones from the chapter's sandboxes.
* ``references`` — ``"module:qualname"`` of the library function(s) a task re-implements (the
  similarity report compares answers with their source).
* ``start``/``point`` of a derivation — what :meth:`Chapter.derivation_report` evaluates by
  default and what the grader's judge evaluates once at start-up (:meth:`Chapter.warm_up`).
* the kind of each task — ``function``, ``concept`` or ``derivation`` (hand-graded answers, kind
  ``manual``, have no checks and are known from the notebook alone).

:func:`coursework.chapters` imports every ``chNN`` module, so a new chapter is a new file here, a
new ``solutions/<assignment>/`` notebook and nothing else; ``tests/test_chapters.py`` proves that
every assignment has its declaration and every declaration its notebook.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from coursework._core import VISIBLE_SEED, CheckFailed, Ctx, derivation_steps_report, forbid_calls, numeric

#: the kinds of task a chapter can register (``manual`` answers have no checks)
KINDS = ("function", "concept", "derivation")

#: task name → its :class:`Task` (names are unique across chapters: a task is its answer cell's grade id)
TASKS: dict[str, "Task"] = {}
#: assignment name (``"05-gans"``) → its :class:`Chapter`
CHAPTERS: dict[str, "Chapter"] = {}


@dataclass(frozen=True)
class Task:
    """One graded task: its name (the answer cell's grade id), kind, checks and the chapter it belongs to."""

    name: str
    kind: str
    run: Callable[[Ctx, Any, Any], None]
    chapter: "Chapter"
    references: tuple[str, ...] = ()
    extra_allowed: tuple[str, ...] = ()
    start: Callable[[], Any] | None = None
    point: Mapping[str, float] | None = None

    @property
    def allowed(self) -> tuple[str, ...]:
        """The modules an answer of kind ``function`` may use: its chapter's, plus this task's extras."""
        return tuple(dict.fromkeys(self.chapter.allowed + self.extra_allowed))

    def __call__(self, ctx: Ctx, answer: Any, expected: Any) -> None:
        if self.kind == "function":
            forbid_calls(ctx, answer, self.chapter.forbidden, self.allowed)
        self.run(ctx, answer, expected)


@dataclass
class Chapter:
    """The declaration of one chapter's exercise (see the module docstring).

    Args:
        number: the chapter's number in the course outline (1 for ``01-elbo``).
        assignment: the nbgrader assignment, i.e. the folder ``solutions/<assignment>/``; it must
            start with the chapter's two-digit number.
        title: the chapter's title (used in listings and error messages).
        forbidden: modules (``"dgm.gan"``, ``"torch.distributions"``) that answers of kind
            ``function`` may not use.
        allowed: the modules answers of kind ``function`` may use (default ``torch`` and ``math``;
            a task adds its own with ``allowed=``); ``forbidden`` wins inside an allowed module.
    """

    number: int
    assignment: str
    title: str
    forbidden: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ("math", "torch")
    tasks: dict[str, Task] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.number, bool) or not isinstance(self.number, int) or not 1 <= self.number <= 99:
            raise ValueError(f"Chapter number must be an integer in [1, 99]; got {self.number!r}")
        if not isinstance(self.assignment, str) or not self.assignment.startswith(f"{self.number:02d}-"):
            raise ValueError(f"Chapter assignment must start with '{self.number:02d}-' (the chapter's number); "
                             f"got {self.assignment!r}")
        if isinstance(self.forbidden, str) or not all(isinstance(m, str) and m for m in self.forbidden):
            raise ValueError(f"Chapter forbidden must be a tuple of module names; got {self.forbidden!r}")
        self.forbidden = tuple(self.forbidden)
        if isinstance(self.allowed, str) or not all(isinstance(m, str) and m for m in self.allowed):
            raise ValueError(f"Chapter allowed must be a tuple of module names; got {self.allowed!r}")
        self.allowed = tuple(self.allowed)
        if self.assignment in CHAPTERS:
            raise ValueError(f"chapter {self.assignment!r} is declared twice")
        CHAPTERS[self.assignment] = self

    # --- registering tasks -------------------------------------------------------------------

    def _register(self, name: str, kind: str, run: Callable, **extra: Any) -> Task:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"a task name must be a Python identifier (the answer cell's grade id); got {name!r}")
        if name in TASKS:
            raise ValueError(f"task {name!r} is registered twice ({TASKS[name].chapter.assignment} and {self.assignment})")
        found = Task(name=name, kind=kind, run=run, chapter=self, **extra)
        TASKS[name] = self.tasks[name] = found
        return found

    def function(self, name: str, *, references: Sequence[str], allowed: Sequence[str] = ()) -> Callable:
        """Register the decorated ``checks(ctx, fn, expected)`` as task ``name``: the student writes a
        function re-implementing ``references`` (``"module:qualname"``; several where the checks
        use several, or where the public function hands its work to a private helper); ``allowed``
        adds modules to the chapter's allowed ones for this task."""
        references = (references,) if isinstance(references, str) else tuple(references)
        allowed = (allowed,) if isinstance(allowed, str) else tuple(allowed)
        if not references or not all(isinstance(r, str) and ":" in r for r in references):
            raise ValueError(f"task {name!r}: references must be 'module:qualname' strings; got {references!r}")

        def register(checks: Callable) -> Callable:
            self._register(name, "function", checks, references=references, extra_allowed=allowed)
            return checks
        return register

    def derivation(self, name: str, *, start: Callable[[], Any], point: Mapping[str, float]) -> Callable:
        """Register the decorated checks as task ``name``: a list of SymPy steps from ``start()``;
        ``point`` is where :meth:`derivation_report` evaluates the steps by default."""
        def register(checks: Callable) -> Callable:
            self._register(name, "derivation", checks, start=start, point=dict(point))
            return checks
        return register

    def concept(self, name: str, options: Sequence) -> None:
        """Register a concept check: the answer must be one of ``options``; the hidden suite compares
        it with ``expected`` (given by the hidden test cell, never stored here)."""
        options = tuple(options)

        def checks(ctx: Ctx, answer: Any, expected: Any) -> None:
            if answer is None or answer is ...:
                ctx.fail("no answer yet: set the variable to one of " + ", ".join(map(repr, options)))
            if type(answer) not in {type(o) for o in options} or answer not in options:
                ctx.fail(f"the answer must be one of {', '.join(map(repr, options))}; got {answer!r}")
            if ctx.hidden:
                if expected is None:
                    raise ValueError(f"check({name!r}, ..., suite='hidden') needs expected=")
                if answer != expected:
                    ctx.fail("the answer is not correct")

        self._register(name, "concept", checks)

    # --- what the notebooks and the grader use -------------------------------------------------

    def derivation_report(self, steps: Sequence, point: Mapping[str, float] | None = None) -> None:
        """Print each step's value at ``point`` and whether it equals the previous step: the first
        step that changes value is where the algebra went wrong. ``point`` defaults to the chapter's
        (first) derivation's report point."""
        if point is None:
            found = [t.point for t in self.tasks.values() if t.kind == "derivation"]
            if not found:
                raise ValueError(f"chapter {self.assignment!r} has no derivation task; pass point=")
            point = found[0]
        derivation_steps_report(steps, point)

    def references(self) -> dict[str, tuple[str, ...]]:
        """task → the ``"module:qualname"`` references of each task of kind ``function``."""
        return {name: t.references for name, t in self.tasks.items() if t.kind == "function"}

    def hidden_modules(self) -> tuple[str, ...]:
        """The ``dgm`` modules this chapter's answers re-implement (left out of its sandboxes)."""
        return tuple(m for m in self.forbidden if m == "dgm" or m.startswith("dgm."))

    def warm_up(self) -> None:
        """Evaluate each derivation's start at its point once (imports SymPy's printers, fills its caches)."""
        from coursework._core import _evaluated

        for t in self.tasks.values():
            if t.kind == "derivation":
                start = t.start()
                numeric(start, t.point)
                numeric(_evaluated(start), t.point)


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
    grading sandbox (an object with ``invoke_remote``, see :func:`coursework._core.invoke`).
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


__all__ = ["Chapter", "Task", "TASKS", "CHAPTERS", "KINDS", "check", "run_check", "CheckFailed"]
