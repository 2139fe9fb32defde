"""What grading runs: the assignment's *program*, rebuilt for each student from trusted parts.

A submission is never run as handed in. :func:`build_program` reads the instructors' source
notebook (``solutions/<a>/<a>.ipynb``) once and turns it into steps:

* ``code`` — a cell of the skeleton (imports, set-up): its source comes from the source notebook;
* ``answer`` — an answer cell: its source is the student's (:func:`student_answers`), or the
  release's unanswered stub when the student's notebook has none;
* ``test`` — a test cell: never sent to the sandbox; its ``check(...)`` calls are parsed here
  (task, the name of the answer, suite, expected answer) and the grader runs them itself;
* ``manual`` — a written answer graded by hand: the student's text is kept for the instructor;
* ``markdown`` — the skeleton's text (for the feedback).

So edited, deleted, re-ordered, duplicated or metadata-edited cells cannot change what the
grader runs or how many points a cell is worth: only the text of answer cells, matched by grade
id and cell type, comes from the student.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from autograder.course import release_notebook, source_notebook


class ProgramError(RuntimeError):
    """The source notebook is not in the shape the grader understands (an instructor's problem)."""


@dataclass(frozen=True)
class CheckCall:
    task: str
    answer_name: str
    suite: str = "visible"
    expected: Any = None


@dataclass(frozen=True)
class Step:
    kind: str                       # code | answer | test | manual | markdown
    grade_id: str | None = None
    source: str = ""                # code/markdown: the skeleton's; answer/manual: the release stub
    cell_type: str = "code"
    points: float = 0.0
    checks: tuple[CheckCall, ...] = ()
    task: str | None = None


@dataclass(frozen=True)
class Program:
    assignment: str
    steps: tuple[Step, ...]
    answer_types: dict[str, str] = field(default_factory=dict)   # grade_id → "code" | "markdown"

    @property
    def stubs(self) -> dict[str, str]:
        return {s.grade_id: s.source for s in self.steps if s.kind in ("answer", "manual")}


def task_of(grade_id: str) -> str:
    """The task a graded cell belongs to: ``test_<task>_visible``/``_hidden`` → ``<task>``."""
    task = grade_id
    if task.startswith("test_"):
        task = task[len("test_"):]
        for suffix in ("_visible", "_hidden"):
            if task.endswith(suffix):
                task = task[: -len(suffix)]
                break
    return task


def parse_test_cell(source: str, grade_id: str) -> tuple[CheckCall, ...]:
    """The ``check(task, answer, suite=..., expected=...)`` calls of a test cell; nothing else may be
    in it (comments and nbgrader's hidden-test markers aside)."""
    lines = [ln for ln in source.splitlines() if not ln.strip().startswith("###")]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError as err:
        raise ProgramError(f"test cell {grade_id}: {err}") from err
    calls = []
    for node in tree.body:
        ok = (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
              and node.value.func.id == "check" and len(node.value.args) == 2
              and isinstance(node.value.args[0], ast.Constant) and isinstance(node.value.args[1], ast.Name))
        if not ok:
            raise ProgramError(f"test cell {grade_id}: only `check(\"task\", answer_name, suite=..., expected=...)` "
                               f"calls are allowed, found {ast.unparse(node)[:80]!r}")
        call = node.value
        kwargs = {}
        for kw in call.keywords:
            try:
                kwargs[kw.arg] = ast.literal_eval(kw.value)
            except ValueError as err:
                raise ProgramError(f"test cell {grade_id}: {kw.arg}= must be a literal") from err
        unknown = set(kwargs) - {"suite", "expected"}
        if unknown:
            raise ProgramError(f"test cell {grade_id}: unknown arguments {sorted(unknown)}")
        calls.append(CheckCall(task=call.args[0].value, answer_name=call.args[1].id,
                               suite=kwargs.get("suite", "visible"), expected=kwargs.get("expected")))
    if not calls:
        raise ProgramError(f"test cell {grade_id} has no check(...) call")
    return tuple(calls)


def build_program(root: Path, assignment: str) -> Program:
    """The steps of ``assignment`` from its source and release notebooks (see the module docstring)."""
    source = nbformat.read(source_notebook(root, assignment), as_version=4)
    release_path = release_notebook(root, assignment)
    if not release_path.is_file():
        raise ProgramError(f"{release_path} is missing: run `python -m autograder release` first")
    release = nbformat.read(release_path, as_version=4)
    stubs = {c.metadata["nbgrader"]["grade_id"]: c.source for c in release.cells
             if c.metadata.get("nbgrader", {}).get("solution")}
    steps: list[Step] = []
    answer_types: dict[str, str] = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if meta.get("solution"):
            if gid not in stubs:
                raise ProgramError(f"answer cell {gid} is in the source but not in the release; re-run release")
            answer_types[gid] = cell.cell_type
            if meta.get("grade"):
                steps.append(Step("manual", gid, stubs[gid], cell.cell_type, float(meta.get("points", 0)), task=gid))
            elif cell.cell_type == "code":
                steps.append(Step("answer", gid, stubs[gid], "code", task=gid))
            else:
                steps.append(Step("answer", gid, stubs[gid], cell.cell_type, task=gid))
        elif meta.get("grade") and cell.cell_type == "code":
            steps.append(Step("test", gid, "", "code", float(meta.get("points", 0)), parse_test_cell(cell.source, gid),
                              task=task_of(gid)))
        elif cell.cell_type == "code":
            steps.append(Step("code", gid, cell.source, "code"))
        else:
            steps.append(Step("markdown", gid, cell.source, cell.cell_type))
    return Program(assignment, tuple(steps), answer_types)


def student_answers(nb: nbformat.NotebookNode, program: Program) -> tuple[dict[str, str], list[str]]:
    """The student's answer-cell sources by grade id, and notes about what was repaired.

    A cell counts as the answer ``gid`` when its nbgrader metadata names ``gid`` as a solution cell
    and its type is the source's; the last such cell wins (a copy-paste duplicates cells). Cells
    whose metadata was edited to claim a test or a read-only cell are ordinary cells: ignored.
    Whatever the JSON holds, nothing here raises or recurses: a cell, metadata or source of the
    wrong type is passed over (a source that is neither text nor a list of texts with a note).
    """
    found: dict[str, list[str]] = {}
    notes = []
    cells = nb.get("cells") if isinstance(nb, dict) else None
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        metadata = cell.get("metadata")
        meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
        if not isinstance(meta, dict):
            continue
        gid = meta.get("grade_id")
        if not isinstance(gid, str) or gid not in program.answer_types:
            continue
        if cell.get("cell_type") != program.answer_types[gid]:
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(part, str) for part in source):
            source = "".join(source)
        if not isinstance(source, str):
            what = "a list holding more than text" if isinstance(source, list) else \
                "an object" if isinstance(source, dict) else type(source).__name__
            notes.append(f"cell {gid!r} has a source that is not text ({what}): ignored")
            continue
        found.setdefault(gid, []).append(source)
    answers = {}
    for gid, sources in found.items():
        answers[gid] = sources[-1]
        if len(sources) > 1:
            notes.append(f"cell {gid!r} appears {len(sources)} times; the last copy was graded")
    missing = [gid for gid in program.answer_types if gid not in answers]
    if missing:
        notes.append(f"no answer cell for {', '.join(missing)} (deleted, or its metadata edited): graded as unanswered")
    return answers, notes


def task_kinds(program: Program) -> dict[str, str]:
    """task → ``manual`` (a hand-graded answer) or the kind its chapter registered it with
    (``function``, ``concept``, ``derivation``; :data:`coursework.TASKS`); ``function`` for a task
    no chapter declares (its checks fail as unknown when run)."""
    from coursework import TASKS

    kinds: dict[str, str] = {}
    for step in program.steps:
        if step.kind == "manual":
            kinds[step.task] = "manual"
        elif step.kind == "test":
            registered = TASKS.get(step.task)
            kinds.setdefault(step.task, registered.kind if registered is not None else "function")
    return kinds


def tasks_table(program: Program) -> list[dict]:
    """The graded tasks in notebook order: name, max_points, manual, kind."""
    order: list[str] = []
    points: dict[str, float] = {}
    manual: dict[str, bool] = {}
    for step in program.steps:
        if step.kind not in ("test", "manual"):
            continue
        if step.task not in points:
            order.append(step.task)
            points[step.task] = 0.0
        points[step.task] += step.points
        manual[step.task] = step.kind == "manual"
    kinds = task_kinds(program)
    return [{"name": n, "max_points": points[n], "manual": manual[n], "kind": kinds.get(n, "function")} for n in order]
