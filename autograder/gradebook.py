"""``formgrader OUT``: our grades in nbgrader's gradebook, so that instructors grade the written
answers in formgrader and export every grade, automatic and by hand, in one CSV.

Grading never runs nbgrader's ``autograde`` (students' code runs in our sandbox, the checks are
judged outside it: :mod:`autograder.grade`). What formgrader needs is what ``autograde`` would have
left behind: a gradebook database that knows the assignment's cells and each student's
submission with a grade per graded cell, and the graded notebooks in nbgrader's layout. This module
writes both from a graded output folder (``results.json``), and nothing else:

* :func:`export_course` — the entry point (``python -m autograder formgrader OUT [--course DIR]``):
  a *course folder* (default ``OUT/nbgrader``) holding ``nbgrader_config.py``, ``gradebook.db``,
  ``autograded/<student_id>/<a>/<a>.ipynb`` and ``source/<a>/<a>.ipynb`` (a copy of the
  instructors' notebook: formgrader lists only the assignments it finds there). It never has a
  ``submitted/`` folder, so formgrader's own "autograde" finds nothing to run;
* :func:`recorded_cells` — the assignment's grade, solution, task and source cells exactly as
  nbgrader's ``generate_assignment`` records them from ``solutions/<a>/<a>.ipynb`` (it is run in a
  throwaway course, as :func:`autograder.benchmark.grade_with_nbgrader` does, and the cells are
  copied from its gradebook);
* :func:`cell_scores` and :func:`split_points` — each grade cell's automatic score, from our results;
* :func:`formgrader_notebook` — the notebook formgrader shows for one student;
* :class:`TaskCsvExportPlugin` — ``nbgrader export --exporter=autograder.gradebook.TaskCsvExportPlugin``:
  one row per student and assignment, the points of each task and the comment of each hand-graded
  task (nbgrader's own CSV has neither per-task points nor comments).

Points. A task's points are spread over its grade cells (a function task has a visible and a hidden
test cell) by what our grader gave each cell (``results.json``: ``cells[].points`` of the test
cells), so each cell's points in formgrader are the ones its checks earned, and a task's cells
always add up to its points in ``grades.csv`` (:func:`split_points`; when a record has no per-cell
points, the cells are filled in notebook order). A hand-graded task has one grade cell: its score is
ours when we have one (0 for an answer left as the release's stub, and for an ``invalid``
submission) and otherwise empty, waiting for the instructor (``needs_manual_grade``).

Re-exporting (after a regrade of a late submission, a merge, a fix) is idempotent and keeps what
instructors entered: the automatic scores and comments are rewritten, a hand score (formgrader's
``manual_score``), extra credit and a hand comment never are. A cell that was graded by hand is
flagged again for review (``needs_manual_grade``) only when something it was judged on changed: our
automatic score of that cell, or the text of the task's answer. Students are never deleted: one
missing from the new ``results.json`` stays in the gradebook with what it had, and is named in the
summary.

Safety. Everything a student wrote is shown as text: answers in code cells, written answers in a
fenced code block (:func:`autograder.grade.fenced`), the checks' messages as the test cells' output.
Formgrader renders markdown with raw HTML allowed, in a page that holds the instructor's Jupyter
session, so no student string is ever put there as Markdown; the typeset preview of a written
answer is made here, by the renderer of the feedback pages (:func:`autograder.feedback.markdown_html`:
no raw HTML, no links or images, math as MathML).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import math
import os
import re
import shlex
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.plugins import ExportPlugin

from autograder import nbgrader_config as cfg
from autograder.course import REPO_ROOT, GradingError, source_notebook
from autograder.results import clean_strings, fmt

log = logging.getLogger("autograder.gradebook")

#: The course folder's name under the output folder when ``--course`` is not given.
DEFAULT_COURSE = "nbgrader"
#: The nbgrader configuration file of a course folder (formgrader and ``nbgrader export`` read it
#: from the folder they are started in).
CONFIG_FILE = "nbgrader_config.py"
#: The gradebook database of a course folder.
DB_FILE = "gradebook.db"
#: nbgrader's folder of graded notebooks (``autograded/<student_id>/<a>/<a>.ipynb``).
AUTOGRADED = "autograded"
#: nbgrader's folder of the instructors' notebooks (``source/<a>/<a>.ipynb``).
SOURCE = "source"
#: The first line of every configuration file written here: marks a folder as a course of ours.
CONFIG_MARK = "# dgm formgrader course: written by `python -m autograder formgrader`"
#: The exporter, as ``nbgrader export --exporter=`` names it.
EXPORTER = "autograder.gradebook.TaskCsvExportPlugin"
#: Where the exporter writes when ``--to`` is not given.
DEFAULT_EXPORT = "formgrader-grades.csv"
#: nbgrader's own comment for an answer cell left as the release had it; ours for an answer that
#: could not be read at all.
NO_RESPONSE = "No response."
#: A student id that can name a folder of nbgrader's layout (ours always can: see
#: :func:`autograder.submissions.sanitise_student_id`; nbgrader stores at most 128 characters).
_STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: Two scores this close are the same score.
_EPS = 1e-9


# --------------------------------------------------------------------------------------------
# Reading a graded output folder
# --------------------------------------------------------------------------------------------


def load_results(out: Path) -> dict:
    """The results object of the graded output folder ``out`` (``out/results.json``), checked for
    what an export needs: a full run (not one shard), a list of submissions, student ids that can
    name nbgrader's folders, none twice. GradingError naming the folder and what was expected."""
    from autograder.reports import RESULTS_FORMAT

    out = Path(out)
    if not out.is_dir():
        raise GradingError(f"OUT: expected the folder that `python -m autograder grade` or `merge` wrote "
                           f"(holding results.json); {out} is not a folder")
    path = out / "results.json"
    if not path.is_file():
        raise GradingError(f"OUT: {out} has no results.json; grade into it first "
                           f"(`python -m autograder grade DIR --out {out}`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise GradingError(f"cannot read {path}: {type(err).__name__}: {str(err)[:300]}") from err
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise GradingError(f"{path}: expected a results file of format {RESULTS_FORMAT!r}, found {found!r}")
    shard = data.get("shard") or [0, 1]
    if isinstance(shard, list) and len(shard) == 2 and shard[1] != 1:
        raise GradingError(f"{path} holds shard {shard[0]}/{shard[1]} only: merge the shards first "
                           "(`python -m autograder merge OUT PART_DIR...`) and export the merged folder")
    subs = data.get("submissions")
    if not isinstance(subs, list) or not all(isinstance(s, dict) for s in subs) \
            or not isinstance(data.get("tasks"), list) or not isinstance(data.get("assignment"), str):
        raise GradingError(f"{path}: expected an assignment, a list of tasks and a list of submissions")
    seen: dict[str, str] = {}
    for sub in subs:
        sid = sub.get("student_id")
        if not isinstance(sid, str) or not _STUDENT_ID.fullmatch(sid):
            raise GradingError(f"{path}: student id {sid!r} cannot name a folder of nbgrader's layout "
                               "(expected letters, digits, '_', '.' and '-', at most 128, starting with a "
                               "letter or digit)")
        if sid in seen.values():
            raise GradingError(f"{path}: student id {sid!r} appears twice")
        # nbgrader's layout names a folder after each id: on a case-insensitive file system
        # (macOS, Windows) "victim" and "VICTIM" would share one, and formgrader would show one
        # student's answer under the other's grade. The reports keep them apart; this export refuses.
        if sid.casefold() in seen:
            raise GradingError(f"{path}: student ids {seen[sid.casefold()]!r} and {sid!r} differ only in case; "
                               "nbgrader's folders cannot keep them apart on every file system: rename one "
                               "submission and grade again")
        seen[sid.casefold()] = sid
    data, _ = clean_strings(data)
    return data


# --------------------------------------------------------------------------------------------
# The assignment's cells, as nbgrader records them
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedCells:
    """The cells of one assignment notebook as ``generate_assignment`` records them in a gradebook:
    for each kind, cell name → the fields nbgrader's ``update_or_create_*_cell`` takes; the
    notebook's kernelspec (JSON text); and that gradebook itself (``blank``: the bytes of its
    sqlite file, the course and these cells but no student), which starts a new course's gradebook
    (nbgrader would otherwise shell out to ``alembic`` to stamp a new database, seconds each)."""

    grade: dict[str, dict]
    solution: dict[str, dict]
    task: dict[str, dict]
    source: dict[str, dict]
    kernelspec: str | None
    blank: bytes = b""

    def names(self) -> tuple[frozenset, frozenset, frozenset, frozenset]:
        """The names of the cells of each kind: what must not change once there are submissions."""
        return (frozenset(self.grade), frozenset(self.solution), frozenset(self.task), frozenset(self.source))


_RECORDED: dict[tuple[str, str, bytes], RecordedCells] = {}


def recorded_cells(root: Path, assignment: str) -> RecordedCells:
    """The cells of ``solutions/<a>/<a>.ipynb`` exactly as nbgrader's ``generate_assignment`` records
    them: it is run in a throwaway copy of the course (:func:`autograder.course.scratch_course`),
    and its gradebook is read. Kept for the process, per content of the source notebook (a run
    costs a few seconds). GradingError when nbgrader fails."""
    from nbgrader.api import Gradebook
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    from autograder.course import scratch_course

    source = source_notebook(root, assignment)
    key = (str(Path(root).resolve()), assignment, source.read_bytes())
    if key in _RECORDED:
        return _RECORDED[key]
    with scratch_course(root, [assignment], prefix="dgm-formgrader-cells-") as scratch:
        config = cfg.course_config(scratch)
        folder = CourseDirectory(config=config)
        folder.assignment_id = assignment
        generator = GenerateAssignment(coursedir=folder, config=config)
        generator.log.setLevel(logging.ERROR)
        try:
            generator.start()
        except Exception as err:  # noqa: BLE001 - nbgrader raises its own exceptions and others
            raise GradingError(f"nbgrader generate_assignment failed on {source}: {err}") from err

        def fields(cell, keep: Sequence[str]) -> dict:
            data = cell.to_dict()
            return {k: data[k] for k in keep}

        with Gradebook(cfg.gradebook_url(scratch), cfg.COURSE_ID) as gb:
            nb = gb.find_notebook(assignment, assignment)
            recorded = {"grade": {c.name: fields(c, ("max_score", "cell_type")) for c in nb.grade_cells},
                        "solution": {c.name: {} for c in nb.solution_cells},
                        "task": {c.name: fields(c, ("max_score", "cell_type")) for c in nb.task_cells},
                        "source": {c.name: fields(c, ("cell_type", "locked", "source", "checksum"))
                                   for c in nb.source_cells},
                        "kernelspec": nb.kernelspec}
        cells = RecordedCells(**recorded, blank=(scratch / cfg.GRADEBOOK_DIR / "gradebook.db").read_bytes())
    _RECORDED[key] = cells
    return cells


# --------------------------------------------------------------------------------------------
# Points per grade cell
# --------------------------------------------------------------------------------------------


def split_points(points: float, cells: Sequence[tuple[str, float]],
                 given: Mapping[str, float] | None = None) -> dict[str, float]:
    """The points of one task spread over its grade cells ``cells`` ((name, max points), in notebook
    order), so that they add up to ``points``.

    ``given`` (cell name → points, what the grader recorded per test cell) is used as it is when it
    names every cell, each within 0 and its maximum, and adds up to ``points``; otherwise the cells
    are filled in order, each up to its maximum. ValueError when ``points`` is negative or more
    than the cells hold together."""
    total_max = sum(float(m) for _, m in cells)
    points = float(points)
    if not math.isfinite(points) or points < -_EPS or points > total_max + _EPS:
        raise ValueError(f"points: expected a number between 0 and {total_max:g} (the task's cells hold "
                         f"{', '.join(f'{n} {m:g}' for n, m in cells) or 'nothing'}), got {points!r}")
    if given is not None and all(n in given for n, _ in cells):
        values = {n: float(given[n]) for n, _ in cells}
        if all(-_EPS <= values[n] <= float(m) + _EPS for n, m in cells) \
                and abs(sum(values.values()) - points) <= _EPS:
            return values
    left = max(points, 0.0)
    out: dict[str, float] = {}
    for name, most in cells:
        share = min(float(most), left)
        out[name] = share
        left -= share
    return out


def task_cells(program) -> dict[str, list[tuple[str, float]]]:
    """task → its grade cells, (grade id, max points) in notebook order: the test cells of an
    automatically graded task, the answer cell itself of a hand-graded one."""
    cells: dict[str, list[tuple[str, float]]] = {}
    for step in program.steps:
        if step.kind in ("test", "manual"):
            cells.setdefault(step.task, []).append((step.grade_id, float(step.points)))
    return cells


def cell_scores(rec: Mapping[str, Any], program, tasks: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """grade cell → its automatic score for the submission ``rec`` (a results record): each
    automatically graded task's points spread over its test cells by :func:`split_points` (from the
    record's per-cell points), each hand-graded task's score as we have it (None: waiting for a
    person). The cells of a task always add up to its points in ``rec["scores"]``."""
    by_task = task_cells(program)
    scores = rec.get("scores") or {}
    given = {c["grade_id"]: float(c["points"]) for c in rec.get("cells") or []
             if isinstance(c, dict) and c.get("kind") == "test" and isinstance(c.get("grade_id"), str)
             and isinstance(c.get("points"), (int, float)) and not isinstance(c.get("points"), bool)}
    out: dict[str, float | None] = {}
    for task in tasks:
        name = task["name"]
        cells = by_task.get(name, [])
        value = scores.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise GradingError(f"results.json: the score of {rec.get('student_id')!r} on {name} must be a number "
                               f"(or null while waiting for a hand grade), not {value!r}")
        if task.get("manual"):
            for gid, _ in cells:
                out[gid] = None if value is None else float(value)
            continue
        try:
            out.update(split_points(float(value or 0.0), cells, given))
        except ValueError as err:
            raise GradingError(f"results.json: the points of {rec.get('student_id')!r} on {name} do not fit its "
                               f"cells ({err})") from err
    return out


# --------------------------------------------------------------------------------------------
# The notebook formgrader shows
# --------------------------------------------------------------------------------------------


def _stub_of(program, grade_id: str) -> str:
    return program.stubs.get(grade_id, "")


def _unanswered(program, grade_id: str, text: str | None) -> bool:
    """Whether an answer is missing or still the release's stub (compared as the grader does)."""
    return text is None or text.strip() == _stub_of(program, grade_id).strip()


def _cells_of(rec: Mapping[str, Any], program) -> list[dict]:
    """The record's cells as they ran; for a record without cells (an ``invalid`` submission, or
    one whose grading failed) the program's cells with nothing of the student's (``source`` None)."""
    if rec.get("cells"):
        return list(rec["cells"])
    cells = []
    for step in program.steps:
        if step.kind == "markdown":
            cells.append({"kind": "markdown", "grade_id": None, "source": step.source})
        elif step.kind == "code":
            cells.append({"kind": "code", "grade_id": None, "source": step.source})
        elif step.kind == "answer":
            cells.append({"kind": "answer", "grade_id": step.grade_id, "source": None})
        elif step.kind == "test":
            cells.append({"kind": "test", "grade_id": step.grade_id, "task": step.task, "points": 0.0,
                          "max_points": step.points, "checks": []})
        elif step.kind == "manual":
            cells.append({"kind": "manual", "grade_id": step.grade_id, "source": None, "max_points": step.points})
    return cells


def _header(rec: Mapping[str, Any]) -> str:
    """The first cell: whose notebook, its status, the automatic points, the reasons (fenced)."""
    from autograder.grade import fenced

    text = (f"**Graded by the course's sandboxed grader**: `{rec['student_id']}`, status `{rec.get('status')}`, "
            f"{float(rec.get('total') or 0):g} / {float(rec.get('max_total') or 0):g} automatically graded points.")
    if rec.get("reasons"):
        text += " Reasons and notes:\n\n" + fenced("\n".join(str(r) for r in rec["reasons"]))
    text += ("\n\nThe test cells' points are the grader's (`results.json`): each shows its checks. Grade the "
             "written answer (the cell whose score box is empty) and leave a comment for the student; a score "
             "you type into another cell overrides the grader's.")
    if not rec.get("cells"):
        text += ("\n\n*Nothing of this submission could be read or run: every task scores 0. Give points by "
                 "hand only once the student's file is sorted out and graded again.*")
    return text


def _checks_text(cell: Mapping[str, Any]) -> str:
    """A test cell's result as plain text (the output under it): points, then each check."""
    lines = [f"{float(cell.get('points') or 0):g} / {float(cell.get('max_points') or 0):g} points "
             "(the sandboxed grader's checks)"]
    checks = cell.get("checks") or []
    if not checks:
        lines.append("No check ran (the answer was not reached, could not be read, or did not define what the "
                     "test needs).")
    for check in checks:
        outcome = "passed" if check.get("passed") else "FAILED"
        lines.append(f"{outcome} ({check.get('suite', '')} checks): {check.get('message', '')}")
    return "\n".join(lines) + "\n"


def _code_outputs(cell: Mapping[str, Any]) -> list:
    outputs = []
    for name in ("stdout", "stderr"):
        if cell.get(name):
            outputs.append(nbformat.v4.new_output("stream", name=name, text=str(cell[name])))
    if cell.get("error"):
        ename, evalue = str(cell["error"].get("ename", "")), str(cell["error"].get("evalue", ""))
        outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))
    return outputs


def _preview(text: str) -> str:
    """The written answer typeset for the instructor, as HTML made here (no raw HTML of the
    student's, no link, no image, math as MathML; :func:`autograder.feedback.markdown_html`)."""
    from autograder.feedback import markdown_html

    # tex2jax_ignore/mathjax_ignore: formgrader's own MathJax must not typeset what is left as TeX
    # (a student's \href would become a live link on the instructor's page)
    return ('<div class="dgm-preview tex2jax_ignore mathjax_ignore" style="border-left: 4px solid #8e44ad; padding: .2rem 0 .2rem .8rem;">'
            '<p style="font-size: .85em; color: #555;"><strong>The answer above, typeset</strong> (made at export '
            'from the same text: Markdown, and LaTeX as MathML; nothing in it runs or loads)</p>'
            + markdown_html(text) + "</div>")


def formgrader_notebook(rec: Mapping[str, Any], program, source: nbformat.NotebookNode,
                        assignment: str) -> nbformat.NotebookNode:
    """The graded notebook of one results record, for formgrader: nbgrader's cell metadata (from
    the source notebook) on every answer and test cell, so that formgrader puts a score box on each
    grade cell and a comment box on each answer.

    * the first cell: status, automatic points and reasons;
    * answer cells: the student's code with its output (a markdown answer in a fenced block);
    * test cells: the instructors' test code (formgrader is for instructors) with the grader's
      verdict and each check's message as output;
    * each written answer: a markdown grade cell holding the student's text verbatim in a fenced
      code block (:func:`autograder.grade.fenced`), then the same text typeset (:func:`_preview`),
      then the model answer and rubric of ``solutions/`` (for the grader; never in the student's
      feedback).

    A record without cells (``invalid``) gets the program's cells with nothing of the student's."""
    from autograder.grade import fenced
    from autograder.samples import strip_solution_markers

    meta_of = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
               if isinstance(c.metadata.get("nbgrader"), dict) and c.metadata["nbgrader"].get("grade_id")}
    nb = nbformat.v4.new_notebook()
    for key in ("kernelspec", "language_info"):
        if key in source.metadata:
            nb.metadata[key] = copy.deepcopy(source.metadata[key])
    nb.metadata["dgm_grading"] = {"student_id": rec["student_id"], "status": rec.get("status"),
                                  "reasons": list(rec.get("reasons") or []), "total": rec.get("total"),
                                  "max_total": rec.get("max_total"), "assignment": assignment}
    nb.cells.append(nbformat.v4.new_markdown_cell(_header(rec)))
    nothing = (f"nothing could be read from this submission (status {rec.get('status')}: see the first cell)")

    def tag(new: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
        """``new`` with the source cell's nbgrader metadata (formgrader's score and comment boxes)."""
        if grade_id in meta_of:
            new.metadata["nbgrader"] = copy.deepcopy(dict(meta_of[grade_id].metadata["nbgrader"]))
        return new

    for cell in _cells_of(rec, program):
        kind, gid = cell.get("kind"), cell.get("grade_id")
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(str(cell.get("source") or "")))
        elif kind == "code":
            code = nbformat.v4.new_code_cell(str(cell.get("source") or ""))
            code.outputs = _code_outputs(cell)
            nb.cells.append(code)
        elif kind == "answer":
            text = cell.get("source")
            if program.answer_types.get(gid, "code") == "code":
                new = nbformat.v4.new_code_cell(f"# {nothing}" if text is None else str(text))
                new.outputs = _code_outputs(cell)
            else:
                new = nbformat.v4.new_markdown_cell(f"*{nothing.capitalize()}.*" if text is None else fenced(text))
            nb.cells.append(tag(new, gid))
        elif kind == "test":
            test_source = meta_of[gid].source if gid in meta_of else ""
            new = nbformat.v4.new_code_cell(test_source)
            new.outputs = [nbformat.v4.new_output("stream", name="stdout", text=_checks_text(cell))]
            nb.cells.append(tag(new, gid))
        elif kind == "manual":
            text = cell.get("source")
            written = nbformat.v4.new_markdown_cell(f"*{nothing.capitalize()}.*" if text is None else fenced(text))
            nb.cells.append(tag(written, gid))
            if text is not None and not _unanswered(program, gid, text):
                # an output, not a raw cell: nbconvert strips MathML from raw HTML cells
                shown = nbformat.v4.new_code_cell(f"# the written answer {gid} above, typeset at export")
                shown.outputs = [nbformat.v4.new_output("display_data", data={"text/html": _preview(str(text)),
                                                                             "text/plain": str(text)})]
                nb.cells.append(shown)
            if gid in meta_of:
                model = strip_solution_markers(meta_of[gid].source)
                nb.cells.append(nbformat.v4.new_markdown_cell(
                    f"**Model answer and rubric** of `{gid}` (from `solutions/{assignment}/{assignment}.ipynb`; "
                    f"for the grader only, never shown to students):\n\n{model}"))
    for index, cell in enumerate(nb.cells):   # the same ids on every export: a re-export rewrites nothing
        cell.id = f"dgm-{index:04d}"
    return nb


def written_answer(nb: nbformat.NotebookNode, grade_id: str) -> str | None:
    """The source of the cell of ``nb`` whose nbgrader grade id is ``grade_id`` (None when there is
    none): for a written answer, the student's text in its fence."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if isinstance(meta, dict) and meta.get("grade_id") == grade_id and meta.get("solution"):
            return cell.source
    return None


# --------------------------------------------------------------------------------------------
# The course folder
# --------------------------------------------------------------------------------------------


def config_text() -> str:
    """The ``nbgrader_config.py`` of a course folder: the folder itself is the course root (found
    from the file's own path, so the folder may be moved), the course id and the gradebook there,
    nbgrader's default layout."""
    return f'''{CONFIG_MARK}
# (autograder/gradebook.py). Every export rewrites this file: put settings of your own in
# ~/.jupyter/nbgrader_config.py instead. Start formgrader and `nbgrader export` in this folder.
import os

c = get_config()  # noqa: F821 - defined by the configuration loader
_course = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = _course
c.CourseDirectory.course_id = {cfg.COURSE_ID!r}
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_course, {DB_FILE!r}) + "?timeout=60"
c.CourseDirectory.autograded_directory = {AUTOGRADED!r}
c.CourseDirectory.source_directory = {SOURCE!r}
c.CourseDirectory.directory_structure = os.path.join("{{nbgrader_step}}", "{{student_id}}", "{{assignment_id}}")
'''


def db_url(course: Path) -> str:
    """The sqlite URL of the gradebook of the course folder ``course`` (``timeout=60``: a second
    writer, formgrader saving a grade, waits for the lock instead of failing)."""
    return f"sqlite:///{(Path(course) / DB_FILE).resolve()}?timeout=60"


def autograded_path(course: Path, student_id: str, assignment: str) -> Path:
    """Where formgrader reads a student's graded notebook: ``autograded/<student>/<a>/<a>.ipynb``."""
    return Path(course) / AUTOGRADED / student_id / assignment / f"{assignment}.ipynb"


def _prepare_course(course: Path) -> None:
    """Create the course folder, or check that an existing one is a course of ours (or empty):
    an export never writes into a folder that holds something else."""
    if course.exists() and not course.is_dir():
        raise GradingError(f"--course: expected a folder, {course} is a file")
    if course.is_dir() and any(course.iterdir()):
        config = course / CONFIG_FILE
        ours = config.is_file() and config.read_text(encoding="utf-8", errors="replace").startswith(CONFIG_MARK)
        if not ours:
            raise GradingError(f"--course: {course} holds other files and no course of ours ({CONFIG_FILE} "
                               f"starting with {CONFIG_MARK!r}); give an empty or new folder")
    course.mkdir(parents=True, exist_ok=True)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", errors="replace")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# The export
# --------------------------------------------------------------------------------------------


@dataclass
class CourseExport:
    """What :func:`export_course` did: the course folder, its configuration and gradebook, the
    assignment, the students written (ids, in order), the submissions new to the gradebook, the
    hand scores kept, the cells flagged again for review ("student: cell"), the students of the
    gradebook that the results no longer hold (kept, not deleted), and the two commands to run."""

    course: Path
    config: Path
    gradebook: Path
    assignment: str
    students: list[str]
    new_submissions: list[str]
    hand_scores_kept: int
    flagged: list[str]
    not_in_results: list[str]
    start_command: str = ""
    export_command: str = ""
    waiting: int = 0

    @property
    def summary(self) -> str:
        """The text the command prints."""
        lines = [f"formgrader course of {self.assignment}: {self.course}",
                 f"  {len(self.students)} student(s) written ({len(self.new_submissions)} new to the gradebook); "
                 f"{self.waiting} written answer(s) waiting for a hand grade; "
                 f"{self.hand_scores_kept} hand score(s) kept"]
        if self.flagged:
            lines.append("  flagged for review (graded by hand, but the answer or our score changed): "
                         + ", ".join(self.flagged))
        if self.not_in_results:
            lines.append("  kept in the gradebook, not in this results.json: " + ", ".join(self.not_in_results))
        lines += [f"  configuration: {self.config}", f"  gradebook:     {self.gradebook}", "",
                  "start formgrader (then open http://localhost:8888/formgrader, with the token the server prints):",
                  f"  {self.start_command}", "",
                  "export every grade, automatic and by hand, with comments, for the LMS:",
                  f"  {self.export_command}"]
        return "\n".join(lines)


def _venv_tool(name: str) -> str:
    """The path of a console script next to this Python (the course's virtual environment), or its
    bare name when there is none."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else name


def start_command(course: Path) -> str:
    """The shell command that starts formgrader on ``course``: a Jupyter server rooted in the
    course folder (formgrader reads the folder's ``nbgrader_config.py``), with nbgrader's
    formgrader extension on, no browser opened (and ``--allow-root`` when the export runs as root,
    which Jupyter otherwise refuses)."""
    return (f"cd {shlex.quote(str(Path(course).resolve()))} && {shlex.quote(_venv_tool('jupyter'))} server "
            "--ServerApp.root_dir=. --ServerApp.open_browser=False "
            "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=True"
            + (" --allow-root" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""))


def export_command(course: Path, to: str | None = None, root: Path = REPO_ROOT) -> str:
    """The shell command that exports the course's grades with :class:`TaskCsvExportPlugin`
    (``PYTHONPATH`` names the checkout: the grader is run from the repository, not installed)."""
    to = to or DEFAULT_EXPORT
    return (f"cd {shlex.quote(str(Path(course).resolve()))} && PYTHONPATH={shlex.quote(str(Path(root).resolve()))} "
            f"{shlex.quote(_venv_tool('nbgrader'))} export --exporter={EXPORTER} --to {shlex.quote(to)}")


def _record_cells(gb, assignment: str, cells: RecordedCells) -> None:
    """The assignment and its notebook's cells in the gradebook ``gb``, as ``generate_assignment``
    records them. Grade, solution and task cells carry the students' grades and comments: when the
    notebook already holds submissions, their names must be the ones recorded (nbgrader's own rule);
    without submissions, a notebook with other cells is replaced. Source cells (the read-only ones,
    which carry nothing of a student's) follow the source notebook: added, updated, removed."""
    from nbgrader.api import MissingEntry

    gb.update_or_create_assignment(assignment)
    try:
        notebook = gb.find_notebook(assignment, assignment)
    except MissingEntry:
        notebook = None
    if notebook is not None:
        graded = (frozenset(c.name for c in notebook.grade_cells), frozenset(c.name for c in notebook.solution_cells),
                  frozenset(c.name for c in notebook.task_cells))
        if graded != cells.names()[:3]:
            if notebook.submissions:
                raise GradingError(
                    f"the gradebook records other graded or answer cells for {assignment} than "
                    f"solutions/{assignment}/{assignment}.ipynb now has, and holds submissions graded on them: "
                    "export into a new --course folder")
            gb.remove_notebook(assignment, assignment)
            notebook = None
    if notebook is None:
        notebook = gb.add_notebook(assignment, assignment, kernelspec=cells.kernelspec)
    for name, info in cells.grade.items():
        gb.update_or_create_grade_cell(name, assignment, assignment, **info)
    for name, info in cells.solution.items():
        gb.update_or_create_solution_cell(name, assignment, assignment, **info)
    for name, info in cells.task.items():
        gb.update_or_create_task_cell(name, assignment, assignment, **info)
    for name, info in cells.source.items():
        gb.update_or_create_source_cell(name, assignment, assignment, **info)
    for stale in [c for c in notebook.source_cells if c.name not in cells.source]:
        gb.db.delete(stale)
    gb.db.commit()


def export_course(out: Path, course: Path | None = None, root: Path = REPO_ROOT) -> CourseExport:
    """Write the formgrader course of the graded output folder ``out`` into ``course`` (default
    ``out/nbgrader``): ``nbgrader_config.py``, the gradebook (the assignment's cells, every
    student of ``results.json`` with a submission and a grade per grade cell, a comment per answer
    cell), ``autograded/<student>/<a>/<a>.ipynb`` (:func:`formgrader_notebook`) and
    ``source/<a>/<a>.ipynb``.

    Idempotent; keeps the scores, extra credit and comments entered by hand (see the module
    docstring), and checks afterwards, from a fresh connection, that every student's cells add up
    to their points in ``results.json``. GradingError for a folder that is not a graded output,
    results of an assignment this checkout does not have (or whose tasks have changed since),
    and a course folder that holds something else."""
    from nbgrader.api import Gradebook, MissingEntry

    from autograder.program import ProgramError, build_program, tasks_table

    root = Path(root).resolve()
    out = Path(out)
    results = load_results(out)
    assignment = results["assignment"]
    try:
        program = build_program(root, assignment)
    except (ProgramError, OSError) as err:
        raise GradingError(f"{out / 'results.json'} is of assignment {assignment!r}, which this checkout "
                           f"cannot read ({err})") from err
    tasks = tasks_table(program)
    strip = [{k: t[k] for k in ("name", "max_points", "manual")} for t in tasks]
    graded = [{k: t.get(k) for k in ("name", "max_points", "manual")} for t in results["tasks"]]
    if strip != graded:
        raise GradingError(f"{out / 'results.json'} lists other tasks than solutions/{assignment}/{assignment}.ipynb "
                           "now has: the solution changed since grading; grade again, then export")
    course = Path(course) if course is not None else out / DEFAULT_COURSE
    course = course.resolve()
    _prepare_course(course)
    cells = recorded_cells(root, assignment)
    source = nbformat.read(source_notebook(root, assignment), as_version=4)
    manual_tasks = {t["name"] for t in tasks if t["manual"]}
    by_task = task_cells(program)
    task_of_cell = {gid: task for task, cs in by_task.items() for gid, _ in cs}
    solution_cells = [s.grade_id for s in program.steps if s.kind in ("answer", "manual")]

    _write_text(course / CONFIG_FILE, config_text())
    if not (course / DB_FILE).exists() and cells.blank:
        (course / DB_FILE).write_bytes(cells.blank)
    # formgrader lists an assignment only when the course has its source folder: the instructors'
    # notebook, in nbgrader's layout (solutions and hidden tests: the course folder is for staff)
    _write_text(course / SOURCE / assignment / f"{assignment}.ipynb",
                source_notebook(root, assignment).read_text(encoding="utf-8"))
    records = sorted(results["submissions"], key=lambda r: r["student_id"])
    scores = {r["student_id"]: cell_scores(r, program, tasks) for r in records}
    notebooks = {r["student_id"]: formgrader_notebook(r, program, source, assignment) for r in records}

    report = CourseExport(course=course, config=course / CONFIG_FILE, gradebook=course / DB_FILE,
                          assignment=assignment, students=[r["student_id"] for r in records], new_submissions=[],
                          hand_scores_kept=0, flagged=[], not_in_results=[],
                          start_command=start_command(course), export_command=export_command(course, root=root))
    with Gradebook(db_url(course), cfg.COURSE_ID) as gb, warnings.catch_warnings():
        # nbgrader's add_submission builds its rows while the session autoflushes: SQLAlchemy warns
        warnings.filterwarnings("ignore", module=r"nbgrader\.")
        _record_cells(gb, assignment, cells)
        for rec in records:
            sid = rec["student_id"]
            path = autograded_path(course, sid, assignment)
            previous = None
            if path.is_file():
                try:
                    previous = nbformat.read(path, as_version=4)
                except Exception:  # noqa: BLE001 - an unreadable old copy: no answer to compare with
                    previous = None
            gb.update_or_create_student(sid)
            try:
                gb.find_submission(assignment, sid)
                new = False
            except MissingEntry:
                gb.add_submission(assignment, sid)
                new = True
                report.new_submissions.append(sid)
            submitted = gb.find_submission_notebook(assignment, assignment, sid)
            changed_tasks = set()
            if previous is not None and not new:
                for gid in solution_cells:
                    if written_answer(previous, gid) != written_answer(notebooks[sid], gid):
                        changed_tasks.add(task_of_cell.get(gid, gid))
            for grade in submitted.grades:
                auto = scores[sid].get(grade.name)
                moved = grade.auto_score is None and auto is not None or grade.auto_score is not None and (
                    auto is None or abs(grade.auto_score - auto) > _EPS)
                grade.auto_score = auto
                if grade.manual_score is None:
                    grade.needs_manual_grade = auto is None
                else:
                    report.hand_scores_kept += 1
                    if not new and (moved or task_of_cell.get(grade.name) in changed_tasks) \
                            and not grade.needs_manual_grade:
                        grade.needs_manual_grade = True
                        report.flagged.append(f"{sid}: {grade.name}")
                if grade.needs_manual_grade and grade.manual_score is None \
                        and task_of_cell.get(grade.name) in manual_tasks:
                    report.waiting += 1
            answers = {c.get("grade_id"): c.get("source") for c in _cells_of(rec, program)
                       if c.get("kind") in ("answer", "manual")}
            for comment in submitted.comments:
                comment.auto_comment = NO_RESPONSE if _unanswered(program, comment.name, answers.get(comment.name)) \
                    else None
            gb.db.commit()
            _write_text(path, nbformat.writes(notebooks[sid]) + "\n")
        report.not_in_results = sorted(s.student.id for s in gb.assignment_submissions(assignment)
                                       if s.student.id not in scores)
    _verify(course, assignment, scores)
    return report


def _verify(course: Path, assignment: str, scores: Mapping[str, Mapping[str, float | None]]) -> None:
    """Read the gradebook back from a fresh connection: every student of the export has a
    submission whose automatic score of each grade cell is ours. GradingError naming the first
    difference (it would be a bug of this module)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url(course), cfg.COURSE_ID) as gb:
        for sid, cells in scores.items():
            try:
                submitted = gb.find_submission_notebook(assignment, assignment, sid)
            except MissingEntry as err:
                raise GradingError(f"export check failed: no submission of {sid!r} in {course / DB_FILE}") from err
            stored = {g.name: g.auto_score for g in submitted.grades}
            for name, value in cells.items():
                got = stored.get(name)
                if (got is None) != (value is None) or (got is not None and abs(got - value) > _EPS):
                    raise GradingError(f"export check failed: {sid}'s {name} is {got!r} in the gradebook, "
                                       f"{value!r} in results.json")


# --------------------------------------------------------------------------------------------
# nbgrader export: one row per student and assignment, per-task points and comments
# --------------------------------------------------------------------------------------------


def assignment_tasks(gb, assignment: str, root: Path = REPO_ROOT) -> list[tuple[str, list[str], bool]]:
    """The tasks of ``assignment`` in the gradebook ``gb``: (task, its grade cells, hand-graded?).
    In the order of ``solutions/<a>/<a>.ipynb`` when this checkout has the assignment and its cells
    are the gradebook's; otherwise grouped by :func:`autograder.program.task_of` in name order, a
    task hand-graded when its cells are markdown (nbgrader's written answers)."""
    from autograder.program import build_program, task_of

    grade_cells = {c.name: c for nb in gb.find_assignment(assignment).notebooks for c in nb.grade_cells}
    try:
        program = build_program(Path(root), assignment)
        ordered = [(task, [gid for gid, _ in cs], any(s.kind == "manual" and s.task == task for s in program.steps))
                   for task, cs in task_cells(program).items()]
        if sorted(gid for _, cs, _ in ordered for gid in cs) == sorted(grade_cells):
            return ordered
    except Exception:  # noqa: BLE001 - an assignment this checkout does not know: the gradebook's own order
        pass
    grouped: dict[str, list[str]] = {}
    for name in sorted(grade_cells):
        grouped.setdefault(task_of(name), []).append(name)
    return [(task, names, all(grade_cells[n].cell_type == "markdown" for n in names))
            for task, names in grouped.items()]


def export_table(gb, assignments: Iterable[str] = (), students: Iterable[str] = (),
                 root: Path = REPO_ROOT) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of the export: one row per student and assignment of the gradebook ``gb``
    (only those named, when ``assignments`` or ``students`` name any), sorted by assignment then
    student id.

    Columns: ``assignment``, ``student_id``, ``submitted`` (``yes``/``no``), ``score`` (every task,
    hand-graded ones included: nbgrader's score of each cell, a hand score before the automatic
    one, plus extra credit), ``max_score``, ``waiting`` (the tasks with a cell that needs a hand
    grade, ``;``-separated: empty when the row is final), one column per task (its points; blank
    for a hand-graded task nobody has scored yet, as in grades.csv), then
    ``<task>_comment`` for each hand-graded task (the comment typed in formgrader, else nbgrader's
    automatic one), and ``other_comments`` (``task: comment`` of any other answer commented by hand,
    `` | ``-separated). Numbers as in grades.csv."""
    from nbgrader.api import MissingEntry

    wanted_a = {str(a) for a in assignments}
    wanted_s = {str(s) for s in students}
    all_assignments = sorted((a for a in gb.assignments if not wanted_a or a.name in wanted_a), key=lambda a: a.name)
    all_students = sorted((s for s in gb.students if not wanted_s or s.id in wanted_s), key=lambda s: s.id)
    layout = {a.name: assignment_tasks(gb, a.name, root) for a in all_assignments}
    task_columns: list[str] = []
    comment_columns: list[str] = []
    for tasks in layout.values():
        for task, _, manual in tasks:
            if task not in task_columns:
                task_columns.append(task)
            if manual and f"{task}_comment" not in comment_columns:
                comment_columns.append(f"{task}_comment")
    columns = ["assignment", "student_id", "submitted", "score", "max_score", "waiting",
               *task_columns, *comment_columns, "other_comments"]
    rows = []
    for a in all_assignments:
        tasks = layout[a.name]
        max_score = sum(c.max_score for nb in a.notebooks for c in nb.grade_cells)
        for student in all_students:
            row = {c: "" for c in columns}
            row.update(assignment=a.name, student_id=student.id, max_score=fmt(max_score))
            try:
                submission = gb.find_submission(a.name, student.id)
            except MissingEntry:
                row.update(submitted="no", score=fmt(0.0))
                rows.append(row)
                continue
            grades = {g.name: g for nb in submission.notebooks for g in nb.grades}
            comments = {c.name: c for nb in submission.notebooks for c in nb.comments}
            total, waiting, other = 0.0, [], []
            for task, cells, manual in tasks:
                mine = [grades[n] for n in cells if n in grades]
                points = sum(float(g.score or 0.0) for g in mine)
                total += points
                # a hand-graded task nobody has scored yet is blank, as in grades.csv
                unscored = manual and all(g.auto_score is None and g.manual_score is None for g in mine)
                row[task] = "" if unscored else fmt(points)
                if any(grades[n].needs_manual_grade for n in cells if n in grades):
                    waiting.append(task)
                if manual:
                    note = comments.get(task)
                    row[f"{task}_comment"] = (note.comment or "") if note is not None else ""
            hand_graded = {task for task, _, manual in tasks if manual}
            for name, note in sorted(comments.items()):
                if note.manual_comment and name not in hand_graded:
                    other.append(f"{name}: {note.manual_comment}")
            row.update(submitted="yes", score=fmt(total), waiting=";".join(waiting), other_comments=" | ".join(other))
            rows.append(row)
    return columns, rows


def export_csv(gb, assignments: Iterable[str] = (), students: Iterable[str] = (), root: Path = REPO_ROOT) -> str:
    """:func:`export_table` as CSV text."""
    columns, rows = export_table(gb, assignments, students, root)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class TaskCsvExportPlugin(ExportPlugin):
    """``nbgrader export --exporter=autograder.gradebook.TaskCsvExportPlugin [--to FILE]``: the
    gradebook as a CSV with the points of every task and the comment of every hand-graded task
    (:func:`export_table`), one row per student and assignment; ``--assignment`` and ``--student``
    restrict the rows as for nbgrader's own exporter. Writes ``formgrader-grades.csv`` in the
    current folder when ``--to`` is not given."""

    def export(self, gradebook) -> None:
        dest = Path(self.to or DEFAULT_EXPORT)
        text = export_csv(gradebook, self.assignment, self.student)
        self.log.info("Exporting grades, per task and with comments, to %s", dest)
        _write_text(dest, text)
