"""``grade DIR``: autograde a folder of submissions into a grades CSV, feedback HTML and a summary.

The pipeline, one step per function so that later work (sandboxed kernels, judgement outside the
student's process, parallel workers; issue 3) can replace a step without touching the others:

1. :func:`discover` — find ``DIR/<student>.ipynb`` or nbgrader's ``DIR/<student>/<a>/<a>.ipynb``;
   student ids are sanitised (:func:`sanitise_student_id`) so no id can leave its folder.
2. :func:`check_submission` — readable JSON, valid nbformat, the right assignment; otherwise the
   student gets status ``invalid`` and a reason, and the others go on. Duplicated answer cells
   (a copy-paste) are repaired here (:func:`repair_duplicate_cells`).
3. :func:`stage` — write each valid notebook into nbgrader's submitted layout of a fresh scratch
   course (one folder per student, never mixed with an earlier run or the repository).
4. :func:`run_student` — *run* the student's notebook: nbgrader's ``autograde`` (sanitise, execute
   with per-cell timeouts and a notebook budget) for one student, in this process, so the app
   start and the imports of nbgrader are paid once per batch; the kernel is a separate process.
   nbgrader's ``SaveAutoGrades`` records the test cells' outcome in the scratch gradebook.
5. :func:`judge` — read the recorded scores back as plain data and decide each student's status
   (``graded``, ``timeout``, ``crashed``, ``invalid``) and reason.
6. :func:`write_reports` — ``grades.csv``, ``feedback/<student>.html``, autograded notebooks, a
   copy of the gradebook, ``timings.json``; :func:`format_summary` prints the per-task table.

Exit codes of the command: 0 when grading ran (whatever the students' statuses), 2 when grading
itself failed (no such folder, no notebooks, unknown assignment, nbgrader broken).
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import nbgrader_config as cfg
from autograder.course import REPO_ROOT, assignments, scratch_course, source_notebook
from autograder.execute import BUDGET_ENAME, TIMEOUT_ENAME

#: Every status a submission can end with.
STATUSES = ("graded", "timeout", "crashed", "invalid")
#: Fixed leading columns of grades.csv; one column per task follows.
CSV_COLUMNS = ("student_id", "status", "reason", "total", "max_total")
#: Largest submission read (bytes); a bigger file is ``invalid``.
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024


class GradingError(RuntimeError):
    """Grading itself could not run (as opposed to a student's notebook failing)."""


# --------------------------------------------------------------------------------------------
# Tasks of an assignment
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Task:
    name: str
    max_points: float
    manual: bool  # graded by hand (a grade cell that is also an answer cell)


def tasks_of(source: Path) -> list[Task]:
    """The graded tasks of a source notebook, in notebook order."""
    nb = nbformat.read(source, as_version=4)
    order: list[str] = []
    points: dict[str, float] = {}
    manual: dict[str, bool] = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        name = task_of(meta["grade_id"])
        if name not in points:
            order.append(name)
            points[name] = 0.0
            manual[name] = False
        points[name] += float(meta.get("points", 0))
        manual[name] = manual[name] or bool(meta.get("solution"))
    return [Task(n, points[n], manual[n]) for n in order]


def answer_ids(source: Path) -> set[str]:
    """grade_ids of the answer (solution) cells of a source notebook."""
    nb = nbformat.read(source, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


# --------------------------------------------------------------------------------------------
# 1. discover
# --------------------------------------------------------------------------------------------


@dataclass
class Submission:
    """One student's submission and everything learned about it while grading."""

    student_id: str                      # sanitised: safe as a folder and file name
    origin: str                          # where it came from, relative to DIR
    path: Path
    status: str = "pending"
    notes: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)  # task → points (None: by hand)
    seconds: float = 0.0
    notebook: nbformat.NotebookNode | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.notes)

    def invalid(self, why: str) -> None:
        self.status = "invalid"
        self.notes.append(why)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def sanitise_student_id(raw: str, taken: set[str]) -> str:
    """A folder-safe, unique student id from a file or folder name.

    Anything but letters, digits, ``_``, ``.`` and ``-`` becomes ``_``; leading/trailing dots,
    dashes and underscores go (so ``..`` and hidden names are impossible); a clash with an id in
    ``taken`` gets ``-2``, ``-3``... The result is added to ``taken``.
    """
    base = _UNSAFE.sub("_", raw).strip("._-")[:64] or "student"
    candidate, n = base, 1
    while candidate.lower() in {t.lower() for t in taken}:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def discover(folder: Path, assignment: str) -> list[Submission]:
    """The submissions in ``folder``: ``<student>.ipynb`` files or ``<student>/<a>/<a>.ipynb``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradingError(f"{folder} is not a folder of submissions")
    found: list[tuple[str, Path]] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(("._", ".~")) or entry.name == ".ipynb_checkpoints":
            continue  # editor lock files, macOS metadata, Jupyter checkpoints
        if entry.is_file() and entry.suffix == ".ipynb":
            found.append((entry.stem, entry))
        elif entry.is_dir() and not entry.name.startswith("."):
            nested = entry / assignment / f"{assignment}.ipynb"
            if nested.is_file():
                found.append((entry.name, nested))
    if not found:
        raise GradingError(
            f"no notebooks in {folder}: expected <student_id>.ipynb files or "
            f"<student_id>/{assignment}/{assignment}.ipynb")
    taken: set[str] = set()
    subs = []
    for raw, path in found:
        sid = sanitise_student_id(raw, taken)
        sub = Submission(student_id=sid, origin=str(path.relative_to(folder)), path=path)
        if sid != raw:
            sub.notes.append(f"student id {raw!r} graded as {sid!r}")
        subs.append(sub)
    return subs


# --------------------------------------------------------------------------------------------
# 2. check
# --------------------------------------------------------------------------------------------


def check_submission(sub: Submission, assignment: str, expected_answers: set[str]) -> None:
    """Read and validate ``sub``; sets ``sub.notebook`` or marks it ``invalid`` with a reason."""
    try:
        if sub.path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return sub.invalid(f"file larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
        text = sub.path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return sub.invalid(f"cannot read the file: {err}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        return sub.invalid(f"not a notebook: the file is not valid JSON ({err.msg} at line {err.lineno}, "
                           f"column {err.colno}; a truncated or corrupted file?)")
    if not isinstance(raw, dict) or "cells" not in raw:
        return sub.invalid("not a notebook: JSON without a list of cells")
    try:
        with warnings.catch_warnings():  # duplicate cell ids are repaired by nbformat, quietly
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
    except Exception as err:  # nbformat raises several validation/reader errors
        return sub.invalid(f"not a valid notebook: {str(err).splitlines()[0][:200]}")
    present = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None}
    if expected_answers and not (present & expected_answers):
        return sub.invalid(f"not a {assignment} notebook: none of its answer cells "
                           f"({', '.join(sorted(expected_answers)[:4])}...) are present")
    sub.notes.extend(repair_duplicate_cells(nb))
    sub.notebook = nb


def repair_duplicate_cells(nb: nbformat.NotebookNode) -> list[str]:
    """Keep nbgrader metadata on the last copy of each duplicated grade_id only; returns notes.

    nbgrader's ``DeduplicateIds`` blanks the metadata of earlier copies to ``{}``, which then fails
    ``CheckCellMetadata`` and zeroes the whole notebook (measured with 0.9.6). Removing the key
    makes the earlier copies ordinary cells: they still run, in order, as the student wrote them.
    """
    seen: dict[str, int] = {}
    for cell in reversed(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if not meta or "grade_id" not in meta:
            continue
        gid = meta["grade_id"]
        seen[gid] = seen.get(gid, 0) + 1
        if seen[gid] > 1:
            del cell.metadata["nbgrader"]
    return [f"cell {gid!r} appears {n} times; the last copy was graded"
            for gid, n in sorted(seen.items()) if n > 1]


# --------------------------------------------------------------------------------------------
# 3. stage, 4. run
# --------------------------------------------------------------------------------------------


def stage(course: Path, assignment: str, sub: Submission) -> Path:
    """Write ``sub``'s notebook into ``course``'s submitted layout; returns its path."""
    folder = (course / cfg.SUBMITTED_DIR / sub.student_id / assignment).resolve()
    if (course / cfg.SUBMITTED_DIR).resolve() not in folder.parents:
        raise GradingError(f"student id {sub.student_id!r} escapes the submitted folder")
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / f"{assignment}.ipynb"
    nbformat.write(sub.notebook, path)
    return path


@contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    """Set environment variables (inherited by the kernels started inside) and restore them."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[str]:
        out = []
        for r in self.records:
            if r.levelno >= logging.ERROR:
                try:
                    out.append(r.getMessage())
                except Exception:  # noqa: BLE001 - a badly formatted log message
                    out.append(str(r.msg))
        return out


def _converter_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"autograder.nbgrader.{name}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    return logger


def _coursedir(config, assignment: str, student: str = "*"):
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    coursedir.student_id = student
    return coursedir


def prepare_course(course: Path, assignment: str, config) -> None:
    """Register the assignment in the scratch course's gradebook (nbgrader generate_assignment)."""
    from nbgrader.converters import GenerateAssignment

    handler = _Capture()
    converter = GenerateAssignment(coursedir=_coursedir(config, assignment), config=config)
    converter.log = _converter_logger("generate", handler)
    converter.force = True
    try:
        converter.start()
    except Exception as err:
        raise GradingError(f"nbgrader generate_assignment failed for {assignment}: {err}; "
                           + " | ".join(handler.errors()[:3])) from err


@dataclass
class RunResult:
    """What running one student's notebook produced (before any judgement)."""

    error: str | None          # why nbgrader could not finish the notebook, if it could not
    autograded: Path | None    # the executed notebook, when there is one
    seconds: float


def run_student(course: Path, assignment: str, student_id: str, config) -> RunResult:
    """Run nbgrader autograde (``--force``) for one staged student in the scratch ``course``."""
    from nbgrader.converters import Autograde

    handler = _Capture()
    converter = Autograde(coursedir=_coursedir(config, assignment, student_id), config=config)
    converter.log = _converter_logger("autograde", handler)
    converter.force = True
    start = time.perf_counter()
    error = None
    try:
        with _environment(cfg.KERNEL_ENV), warnings.catch_warnings():
            # nbgrader's gradebook emits SQLAlchemy warnings when a notebook crashed
            warnings.simplefilter("ignore")
            converter.start()
    except Exception as err:  # NbGraderException after nbgrader logged the cause
        messages = [m for m in handler.errors() if m.strip()]
        error = _crash_reason(messages) or f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    out = course / cfg.AUTOGRADED_DIR / student_id / assignment / f"{assignment}.ipynb"
    return RunResult(error=error, autograded=out if out.is_file() else None, seconds=seconds)


def _crash_reason(messages: list[str]) -> str:
    """The most telling of nbgrader's error messages about a failed notebook."""
    for needle, reason in (("Kernel died", "the kernel died (os._exit, a crash, or out of memory)"),
                           ("unresponsive", "the kernel became unresponsive and could not be interrupted"),
                           ("Timeout waiting for", "a cell ran past its time limit")):
        if any(needle in m for m in messages):
            return reason
    for m in messages:
        lines = [ln for ln in m.strip().splitlines() if ln.strip()]
        if lines and not lines[0].startswith("There was an error processing"):
            return lines[-1][:300]
    return messages[-1].strip().splitlines()[-1][:300] if messages else ""


# --------------------------------------------------------------------------------------------
# 5. judge
# --------------------------------------------------------------------------------------------


def judge(course: Path, assignment: str, config, sub: Submission, run: RunResult, tasks: list[Task]) -> None:
    """Read ``sub``'s recorded scores from the scratch gradebook and set its status and reason."""
    from nbgrader.api import Gradebook, MissingEntry

    sub.seconds = run.seconds
    sub.scores = {t.name: (None if t.manual else 0.0) for t in tasks}
    if run.error is not None or run.autograded is None:
        sub.status = "crashed"
        sub.notes.append(run.error or "nbgrader produced no graded notebook")
        return
    with Gradebook(config.CourseDirectory.db_url, cfg.COURSE_ID) as gb:
        try:
            nb_record = gb.find_submission_notebook(assignment, assignment, sub.student_id)
        except MissingEntry:
            sub.status = "crashed"
            sub.notes.append("no grades were recorded")
            return
        by_task: dict[str, float] = {}
        pending: set[str] = set()   # answered manual tasks: waiting for a person
        for grade in nb_record.grades:
            name = task_of(grade.name)
            if grade.needs_manual_grade or (grade.auto_score is None and grade.manual_score is None):
                pending.add(name)
                continue
            by_task[name] = by_task.get(name, 0.0) + float(grade.score)
        for t in tasks:
            if t.name in pending:
                sub.scores[t.name] = None
            elif t.name in by_task:
                sub.scores[t.name] = by_task[t.name]
    sub.status = "graded"
    executed = nbformat.read(run.autograded, as_version=4)
    timed_out: list[str] = []
    for index, cell in enumerate(executed.cells):
        enames = {o.get("ename") for o in cell.get("outputs", []) if o.get("output_type") == "error"}
        where = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"
        if BUDGET_ENAME in enames:
            sub.status = "timeout"
            sub.notes.append(f"the notebook used up its {config.BudgetedExecute.notebook_budget} s budget "
                             f"(interrupted in {timed_out[-1] if timed_out else where}); "
                             f"{where} and the cells after it were not run")
            return
        if TIMEOUT_ENAME in enames:
            timed_out.append(where)
    if timed_out:
        sub.status = "timeout"
        sub.notes.append(f"{', '.join(timed_out)} ran past the {config.Execute.timeout} s limit per cell")


def total(sub: Submission, tasks: list[Task]) -> float:
    return sum(sub.scores.get(t.name) or 0.0 for t in tasks if not t.manual)


# --------------------------------------------------------------------------------------------
# 6. reports
# --------------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:g}"


def grades_csv(subs: list[Submission], tasks: list[Task]) -> str:
    """The grades table: fixed columns, then one per task (blank: waiting for manual grading)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(t.name for t in tasks)])
    max_total = sum(t.max_points for t in tasks if not t.manual)
    for sub in sorted(subs, key=lambda s: s.student_id):
        writer.writerow([sub.student_id, sub.status, sub.reason, _fmt(total(sub, tasks)), _fmt(max_total),
                         *(_fmt(sub.scores.get(t.name)) for t in tasks)])
    return buf.getvalue()


def _placeholder_feedback(sub: Submission, assignment: str) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(assignment)} — {html.escape(sub.student_id)}</title></head><body>\n"
            f"<h1>{html.escape(assignment)}: feedback for {html.escape(sub.student_id)}</h1>\n"
            f"<p>Your submission could not be graded automatically (status: "
            f"<strong>{html.escape(sub.status)}</strong>).</p>\n"
            f"<p>Reason: {html.escape(sub.reason or 'unknown')}</p>\n</body></html>\n")


def generate_feedback(course: Path, assignment: str, config, subs: list[Submission]) -> dict[str, Path | None]:
    """nbgrader generate_feedback for every student with a graded notebook, in one run (the HTML
    templates load once); student id → HTML path, or None (with a note) where nbgrader failed."""
    from nbgrader.converters import GenerateFeedback

    graded = [s for s in subs if (course / cfg.AUTOGRADED_DIR / s.student_id / assignment).is_dir()]
    if not graded:
        return {}
    handler = _Capture()
    converter = GenerateFeedback(coursedir=_coursedir(config, assignment, "*"), config=config)
    converter.log = _converter_logger("feedback", handler)
    converter.force = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converter.start()
    except Exception:  # noqa: BLE001 - nbgrader goes on past a failing student; see below
        pass
    found: dict[str, Path | None] = {}
    for sub in graded:
        out = course / cfg.FEEDBACK_DIR / sub.student_id / assignment / f"{assignment}.html"
        found[sub.student_id] = out if out.is_file() else None
        if found[sub.student_id] is None:
            sub.notes.append("feedback HTML could not be generated")
    return found


def write_reports(out: Path, course: Path, assignment: str, subs: list[Submission], tasks: list[Task],
                  feedback: dict[str, Path | None], autograded: dict[str, Path | None]) -> dict[str, Path]:
    """Write grades.csv, feedback/, autograded/, gradebook.db and timings.json under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for sub_dir in ("feedback", "autograded"):
        if (out / sub_dir).exists():
            shutil.rmtree(out / sub_dir)
        (out / sub_dir).mkdir()
    (out / "grades.csv").write_text(grades_csv(subs, tasks), encoding="utf-8")
    for sub in subs:
        target = out / "feedback" / f"{sub.student_id}.html"
        src = feedback.get(sub.student_id)
        if src is not None:
            shutil.copyfile(src, target)
        else:
            target.write_text(_placeholder_feedback(sub, assignment), encoding="utf-8")
        graded = autograded.get(sub.student_id)
        if graded is not None:
            shutil.copyfile(graded, out / "autograded" / f"{sub.student_id}.ipynb")
    db = course / cfg.GRADEBOOK_DIR / "gradebook.db"
    if db.is_file():
        shutil.copyfile(db, out / "gradebook.db")
    (out / "timings.json").write_text(json.dumps(
        {s.student_id: round(s.seconds, 3) for s in sorted(subs, key=lambda s: s.student_id)},
        indent=1) + "\n", encoding="utf-8")
    return {"grades": out / "grades.csv", "feedback": out / "feedback", "autograded": out / "autograded",
            "gradebook": out / "gradebook.db", "timings": out / "timings.json"}


def format_summary(assignment: str, subs: list[Submission], tasks: list[Task], paths: dict[str, Path],
                   seconds: float) -> str:
    """The per-task table (mean/max over students that ran), status counts and output paths."""
    ran = [s for s in subs if s.status in ("graded", "timeout")]
    lines = [f"Assignment {assignment}: {len(subs)} submission(s)", ""]
    width = max([len("task"), len("TOTAL (automatic)"), *(len(t.name) for t in tasks)])
    lines.append(f"{'task':<{width}}  {'max':>5}  {'mean':>6}  {'min':>5}  {'max got':>7}  {'full':>5}")
    lines.append("-" * (width + 40))
    for t in tasks:
        if t.manual:
            pending = sum(1 for s in ran if s.scores.get(t.name) is None)
            lines.append(f"{t.name:<{width}}  {t.max_points:>5g}  graded by hand ({pending} waiting; "
                         f"not in total)")
            continue
        got = [s.scores.get(t.name) or 0.0 for s in ran]
        mean = sum(got) / len(got) if got else 0.0
        full = sum(1 for g in got if g >= t.max_points)
        lines.append(f"{t.name:<{width}}  {t.max_points:>5g}  {mean:>6.2f}  {min(got, default=0):>5g}  "
                     f"{max(got, default=0):>7g}  {full:>5}")
    max_total = sum(t.max_points for t in tasks if not t.manual)
    totals = [total(s, tasks) for s in ran]
    lines.append("-" * (width + 40))
    lines.append(f"{'TOTAL (automatic)':<{width}}  {max_total:>5g}  "
                 f"{(sum(totals) / len(totals) if totals else 0):>6.2f}  {min(totals, default=0):>5g}  "
                 f"{max(totals, default=0):>7g}  {sum(1 for x in totals if x >= max_total):>5}")
    lines.append("(mean/min/max over the submissions that ran: statuses graded and timeout)")
    lines.append("")
    counts = {st: sum(1 for s in subs if s.status == st) for st in STATUSES}
    lines.append("status: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for s in sorted(subs, key=lambda s: s.student_id):
        if s.status != "graded" or s.reason:
            lines.append(f"  {s.student_id}: {s.status}" + (f" — {s.reason}" if s.reason else ""))
    timed = [s.seconds for s in subs if s.seconds > 0]
    if timed:
        lines.append(f"time: {seconds:.1f} s in all; per notebook run: mean {sum(timed) / len(timed):.1f} s, "
                     f"max {max(timed):.1f} s")
    lines.append("")
    lines.append(f"grades:     {paths['grades']}")
    lines.append(f"feedback:   {paths['feedback']}/<student_id>.html")
    lines.append(f"autograded: {paths['autograded']}/<student_id>.ipynb")
    lines.append(f"gradebook:  {paths['gradebook']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------


@dataclass
class GradingRun:
    assignment: str
    submissions: list[Submission]
    tasks: list[Task]
    paths: dict[str, Path]
    seconds: float
    summary: str


def resolve_assignment(root: Path, assignment: str | None, folder: Path | None = None) -> str:
    """The assignment to grade: the one named, the only one there is, or the one the submissions in
    ``folder`` belong to (nbgrader's ``<student>/<a>/`` folders, or the answer cells' grade ids)."""
    known = assignments(root)
    if assignment is not None:
        if assignment not in known:
            raise GradingError(f"unknown assignment {assignment!r} (known: {', '.join(known) or 'none'})")
        return assignment
    if len(known) == 1:
        return known[0]
    detected = _detect_assignment(root, known, folder) if folder is not None else set()
    if len(detected) == 1:
        return detected.pop()
    why = (f"the submissions look like {', '.join(sorted(detected))}" if detected
           else "the submissions do not say which")
    raise GradingError(f"say which assignment with --assignment ({why}; known: {', '.join(known) or 'none'})")


def _detect_assignment(root: Path, known: list[str], folder: Path) -> set[str]:
    """Assignments the readable notebooks in ``folder`` belong to, by folder name or answer-cell ids."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradingError(f"{folder} is not a folder of submissions")
    if not any(p.suffix == ".ipynb" for p in folder.rglob("*.ipynb")):
        raise GradingError(f"no notebooks in {folder}: expected <student_id>.ipynb files or "
                           "<student_id>/<assignment>/<assignment>.ipynb")
    answers = {a: answer_ids(source_notebook(root, a)) for a in known}
    found: set[str] = set()
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            found |= {a for a in known if (entry / a / f"{a}.ipynb").is_file()}
        elif entry.suffix == ".ipynb" and entry.is_file() and entry.stat().st_size <= MAX_NOTEBOOK_BYTES:
            try:
                nb = json.loads(entry.read_text(encoding="utf-8"))
                ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])}
            except (OSError, ValueError, AttributeError, TypeError):
                continue  # unreadable notebooks are reported later, as invalid
            best = max(known, key=lambda a: len(answers[a] & ids))
            if answers[best] & ids:
                found.add(best)
    return found


def grade_folder(folder: Path, assignment: str | None = None, out: Path | None = None,
                 cell_timeout: int = cfg.CELL_TIMEOUT_S, notebook_budget: int = cfg.NOTEBOOK_BUDGET_S,
                 root: Path = REPO_ROOT, progress: bool = True) -> GradingRun:
    """Grade every submission in ``folder``; see the module docstring. Raises GradingError."""
    from tqdm import tqdm

    start = time.perf_counter()
    root = Path(root).resolve()
    assignment = resolve_assignment(root, assignment, Path(folder))
    out = Path(out) if out is not None else root / "autograder" / "reports"
    source = source_notebook(root, assignment)
    tasks = tasks_of(source)
    expected = answer_ids(source)
    subs = discover(Path(folder), assignment)
    for sub in subs:
        check_submission(sub, assignment, expected)

    autograded: dict[str, Path | None] = {}
    with scratch_course(root, [assignment], prefix="dgm-grade-") as course:
        config = cfg.course_config(course, cell_timeout=cell_timeout, notebook_budget=notebook_budget)
        prepare_course(course, assignment, config)
        valid = [s for s in subs if s.status != "invalid"]
        for sub in valid:
            stage(course, assignment, sub)
        bar = tqdm(valid, desc=f"grading {assignment}", unit="nb", disable=not progress, file=sys.stderr,
                   dynamic_ncols=True)
        for sub in bar:
            bar.set_postfix_str(sub.student_id)
            run = run_student(course, assignment, sub.student_id, config)
            judge(course, assignment, config, sub, run, tasks)
            autograded[sub.student_id] = run.autograded
        bar.close()
        feedback = generate_feedback(course, assignment, config, valid)
        for sub in subs:
            if sub.status == "invalid":
                sub.scores = {t.name: (None if t.manual else 0.0) for t in tasks}
        paths = write_reports(out, course, assignment, subs, tasks, feedback, autograded)
    seconds = time.perf_counter() - start
    summary = format_summary(assignment, subs, tasks, paths, seconds)
    return GradingRun(assignment, subs, tasks, paths, seconds, summary)
