"""``grade DIR``: grade a folder of submissions — sandboxed, judged outside the student's process,
in parallel, optionally as one shard of a cluster job.

The pipeline, one module per step:

1. :mod:`autograder.submissions` — :func:`~autograder.submissions.discover` finds ``DIR/<student>.ipynb``
   or nbgrader's ``DIR/<student>/<a>/<a>.ipynb`` (student ids sanitised so that no id can leave its
   folder); :func:`~autograder.submissions.check_submission` reads each: readable JSON with a list
   of cells, of this assignment, bounded in size, depth and cells; otherwise — whatever went wrong
   with that one file — its status is ``invalid`` with a reason, and the others go on.
2. :mod:`autograder.program` — only the text of the answer cells is taken from the submission (last
   copy of a duplicated cell; matched by grade id and cell type); everything else comes from the
   instructors' source notebook.
3. :mod:`autograder.runner` — :func:`~autograder.runner.grade_submission` runs the program in a fresh
   sandbox and judges each test cell in the grader's process (the statuses are defined there).
4. :func:`grade_all` (here) — every submission, on ``workers`` parallel sandboxes (threads here drive
   the sandboxes; the student code runs in their processes); results come back to one thread, the
   only writer of the reports.
5. :func:`autograder.reports.write_reports` — grades.csv (per-task points, status, reason), feedback
   HTML, histograms, the similarity report, results.json; :func:`write_autograded` (here) — the
   graded notebooks with their outputs, for hand grading.

``--shard i/n`` grades every n-th submission (from the i-th, 0-based) and writes only
``results.json``; :func:`autograder.shards.merge` joins the shards' results into the full reports.
:func:`grade_folder` and :func:`merge_folders` are the entry points (the command line's).

Exit codes of the command: 0 when grading ran (whatever the students' statuses), 2 when grading
itself failed (no such folder, no notebooks, unknown assignment, no sandbox).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import nbgrader_config as cfg
from autograder.course import REPO_ROOT, GradingError, assignments, source_notebook
from autograder.judge import JudgeUnavailable
from autograder.program import Program, ProgramError, build_program
from autograder.reports import write_whole
from autograder.runner import CRASHED, grade_submission, hidden_modules_for, invalid_record
from autograder.runner import self_test as run_self_test
from autograder.sandbox import Limits, SandboxUnavailable, check_available
from autograder.shards import merge, parse_shard, results_object, select_shard
from autograder.submissions import (
    INVALID,
    MAX_NOTEBOOK_BYTES,
    Submission,
    answer_ids,
    check_submission,
    discover,
    read_notebook_json,
)

__all__ = ["grade_folder", "merge_folders", "grade_all", "GradingRun", "GradingError", "default_workers",
           "write_autograded", "write_all", "resolve_assignment", "autograded_notebook", "fenced"]

log = logging.getLogger("autograder.grade")


# --------------------------------------------------------------------------------------------
# the class, in parallel
# --------------------------------------------------------------------------------------------


def default_workers() -> int:
    """One worker per core this process may use (a pod's CPU quota is not seen: pass --workers)."""
    from autograder.sandbox import MAX_SLOTS

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_SLOTS, cores))


def grade_all(subs: list[Submission], program: Program, limits: Limits, *, workers: int = 1, run_seed: int = 0,
              progress: bool = True) -> list[dict]:
    """Records of every submission (invalid ones included), sorted by student id."""
    from tqdm import tqdm

    hidden = hidden_modules_for(program.assignment)
    records = [invalid_record(s, program) for s in subs if s.status == INVALID]
    valid = [s for s in subs if s.status != INVALID]
    from autograder.sandbox import MAX_SLOTS

    if not 1 <= workers <= MAX_SLOTS:
        raise GradingError(f"--workers must be between 1 and {MAX_SLOTS}; got {workers}")
    slots: queue.Queue[int] = queue.Queue()
    for i in range(workers):
        slots.put(i)

    def one(sub: Submission) -> dict:
        slot = slots.get()
        try:
            return grade_submission(sub, program, limits, slot=slot, run_seed=run_seed, hidden_modules=hidden)
        finally:
            slots.put(slot)

    bar = tqdm(total=len(valid), desc=f"grading {program.assignment}", unit="nb", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade") as pool:
        futures = {pool.submit(one, s): s for s in valid}
        for future in as_completed(futures):
            sub = futures[future]
            try:
                records.append(future.result())
            except (SandboxUnavailable, JudgeUnavailable):
                raise
            except Exception as err:  # noqa: BLE001 - one student's failure never stops the class
                log.exception("grading %s failed", sub.student_id)
                rec = invalid_record(sub, program)
                rec["status"] = CRASHED
                rec["reasons"].append(f"grading this submission failed ({type(err).__name__}: {err})")
                records.append(rec)
            bar.set_postfix_str(sub.student_id)
            bar.update()
    bar.close()
    return sorted(records, key=lambda r: r["student_id"])


# --------------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------------


def fenced(text: object, info: str = "text") -> str:
    """``text`` as a fenced code block of Markdown, shown verbatim: the fence is longer than any run
    of backticks in it, so nothing inside can close the block and pose as the report's own
    Markdown (a heading, a forged "passed", an image or a link)."""
    text = "" if text is None else str(text)
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}{info}\n{text}\n{fence}"


def autograded_notebook(rec: dict) -> nbformat.NotebookNode:
    """The graded notebook of one record, for hand grading: a first cell with the status, points and
    reasons, then every cell as it ran — the program's markdown as it is, code and answers as code
    cells with their outputs (shown as text), each test cell as a markdown cell with its points and
    each check's outcome. Every string that may come from the student (reasons, check messages,
    written answers) is in a fenced code block (:func:`fenced`); only the instructors' markdown,
    grade ids, suites and numbers are Markdown."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["dgm_grading"] = {"student_id": rec["student_id"], "status": rec["status"],
                                  "reasons": rec["reasons"], "total": rec["total"], "max_total": rec["max_total"]}
    head = (f"**Graded notebook of `{rec['student_id']}`**: status `{rec['status']}`, "
            f"{float(rec['total'] or 0):g} / {float(rec['max_total'] or 0):g} automatically graded points")
    if rec.get("reasons"):
        head += "; reasons:\n\n" + fenced("\n".join(str(r) for r in rec["reasons"]))
    nb.cells.append(nbformat.v4.new_markdown_cell(head))
    for cell in rec["cells"]:
        kind = cell["kind"]
        if kind == "markdown":  # the instructors' text, from the source notebook
            nb.cells.append(nbformat.v4.new_markdown_cell(cell["source"]))
        elif kind == "manual":  # the student's text, shown as text: no HTML, images or fake results
            md = nbformat.v4.new_markdown_cell(
                f"**Written answer `{cell['grade_id']}`** (graded by hand, {cell.get('max_points') or 0:g} points), "
                f"as the student wrote it:\n\n{fenced(cell['source'])}")
            md.metadata["dgm_grading"] = {"grade_id": cell["grade_id"], "graded_by_hand": True,
                                          "max_points": cell.get("max_points")}
            nb.cells.append(md)
        elif kind in ("code", "answer"):
            code = nbformat.v4.new_code_cell(str(cell["source"]))
            for name in ("stdout", "stderr"):
                if cell.get(name):
                    code.outputs.append(nbformat.v4.new_output("stream", name=name, text=str(cell[name])))
            if cell.get("error"):
                ename, evalue = str(cell["error"].get("ename", "")), str(cell["error"].get("evalue", ""))
                code.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                                           traceback=[f"{ename}: {evalue}"]))
            if cell["grade_id"]:
                code.metadata["dgm_grading"] = {"grade_id": cell["grade_id"]}
            nb.cells.append(code)
        elif kind == "test":
            parts = [f"**{cell['grade_id']}**: {cell['points']:g} / {cell['max_points']:g} points"]
            if not cell["checks"]:
                parts.append("No check ran (the answer was not reached or did not define what the test needs).")
            for c in cell["checks"]:
                outcome = "✔ passed" if c["passed"] else "✘ FAILED"
                parts.append(f"{outcome} ({c['suite']} checks), with the message:\n\n{fenced(c['message'])}")
            md = nbformat.v4.new_markdown_cell("\n\n".join(parts))
            md.metadata["dgm_grading"] = {"grade_id": cell["grade_id"], "points": cell["points"],
                                          "max_points": cell["max_points"]}
            nb.cells.append(md)
    return nb


def write_autograded(results: dict, out: Path, problems: list[str] | None = None) -> Path:
    """``out/autograded/<name>.ipynb`` (``name``: the student id, see
    :func:`autograder.results.report_names`): each graded notebook as it ran
    (:func:`autograded_notebook`; none for a submission without cells, an invalid one).

    The strings of ``results`` are first made writable (:func:`autograder.results.clean_strings`);
    a notebook that cannot be written is logged and described in ``problems`` (when given), and
    the others are written all the same. GradingError (before any is written) when a student id
    would put its notebook outside the folder."""
    from autograder.reports import plain
    from autograder.results import clean_strings, report_names

    if problems is None:
        problems = []
    results, _ = clean_strings(results)
    folder = Path(out) / "autograded"
    if folder.exists():
        for old in folder.glob("*.ipynb"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    names = report_names(str(rec["student_id"]) for rec in results["submissions"])
    targets = []
    for rec in results["submissions"]:
        name = names[str(rec["student_id"])]
        if "/" in name or "\\" in name or "\0" in name or folder.resolve() != (folder / f"{name}.ipynb").resolve().parent:
            raise GradingError(f"student id {rec['student_id']!r} escapes the report folder")
        target = folder / f"{name}.ipynb"
        targets.append((rec, target))
    for rec, target in targets:
        if not rec.get("cells"):
            continue
        try:
            text = nbformat.writes(autograded_notebook(rec))
            target.write_text(text + "\n", encoding="utf-8", errors="replace")
        except Exception as err:  # noqa: BLE001 - one student's notebook never stops the others
            log.error("could not write the graded notebook of %s", rec["student_id"], exc_info=err)
            problems.append(f"graded notebook of {rec['student_id']!r} not written "
                            f"({type(err).__name__}: {plain(str(err))[:200]})")
    return folder


def write_all(results: dict, out: Path, program: Program, seconds: float | None = None) -> tuple[dict, str]:
    """Every report of a (merged or unsharded) run; returns (paths, summary text). A report of one
    student that could not be written is named at the end of the summary; the others are written."""
    from autograder import reports
    from autograder.results import clean_strings

    results, _ = clean_strings(results)   # already clean from a run or a merge; a caller's may not be
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    paths = reports.write_reports(results, out, stubs=program.stubs, problems=problems)
    paths["autograded"] = write_autograded(results, out, problems)
    summary = reports.format_summary(results, seconds)
    if problems:
        summary += "\n\nreports NOT written (see the log):\n" + "\n".join(f"  {reports.plain(p)}" for p in problems)
    paths["summary"].write_text(summary + "\n", encoding="utf-8", errors="replace")
    width = max(len(name) for name in paths) + 2
    lines = [summary, ""] + [f"{name + ':':<{width}}{path}" for name, path in paths.items()]
    return paths, "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------


@dataclass
class GradingRun:
    assignment: str
    results: dict
    paths: dict[str, Path]
    seconds: float
    summary: str
    submissions: list[Submission] = field(default_factory=list)

    @property
    def records(self) -> dict[str, dict]:
        return {r["student_id"]: r for r in self.results["submissions"]}


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
            try:  # read as grading reads it: bounded, links not followed, nothing escapes
                cells = read_notebook_json(entry).raw["cells"]
                ids = {_grade_id_of(c) for c in cells}
            except Exception:  # noqa: BLE001 - unreadable notebooks are reported later, as invalid
                continue
            best = max(known, key=lambda a: len(answers[a] & ids))
            if answers[best] & ids:
                found.add(best)
    return found


def _grade_id_of(cell: object) -> str | None:
    """The nbgrader grade id of a cell of raw notebook JSON, or None (whatever the JSON holds)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    gid = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return gid if isinstance(gid, str) else None


def grade_folder(folder: Path, assignment: str | None = None, out: Path | None = None,
                 cell_timeout: float = cfg.CELL_TIMEOUT_S, notebook_budget: float = cfg.NOTEBOOK_BUDGET_S,
                 root: Path = REPO_ROOT, progress: bool = True, workers: int | None = None,
                 shard: str | tuple[int, int] | None = None, seed: int | None = None,
                 limits: Limits | None = None, self_test: bool = True) -> GradingRun:
    """Grade the submissions in ``folder`` (or shard ``i/n`` of them); see the module docstring.

    First, unless ``self_test`` is False, the assignment's solution is graded in a sandbox
    (:func:`autograder.runner.self_test`): if it does not get full marks, nothing is graded.

    Writes the full reports to ``out`` — or, for a shard of a split run (n > 1), only
    ``out/results.json``, for :func:`merge`. Raises :class:`GradingError`.
    """
    start = time.perf_counter()
    root = Path(root).resolve()
    try:
        check_available()
    except SandboxUnavailable as err:
        raise GradingError(str(err)) from err
    assignment = resolve_assignment(root, assignment, Path(folder))
    out = Path(out) if out is not None else root / "autograder" / "reports"
    try:
        program = build_program(root, assignment)
    except ProgramError as err:
        raise GradingError(str(err)) from err
    expected = answer_ids(source_notebook(root, assignment))
    subs = discover(Path(folder), assignment)
    shard_t = parse_shard(shard) if isinstance(shard, str) else (shard or (0, 1))
    subs = select_shard(subs, shard_t)
    for sub in subs:
        check_submission(sub, assignment, expected)
    limits = limits or Limits(cell_timeout=float(cell_timeout), notebook_budget=float(notebook_budget))
    run_seed = secrets.randbits(62) if seed is None else int(seed)
    workers = default_workers() if workers is None else workers
    if self_test:  # the solution first: a grader that cannot grade it must not grade a class
        try:
            run_self_test(root, program, limits, run_seed=run_seed)
        except (SandboxUnavailable, JudgeUnavailable) as err:
            raise GradingError(f"self-test failed: {err}") from err
    try:
        records = grade_all(subs, program, limits, workers=workers, run_seed=run_seed, progress=progress)
    except (SandboxUnavailable, JudgeUnavailable) as err:
        raise GradingError(str(err)) from err
    results = results_object(program, records, run_seed, shard_t, limits)
    seconds = time.perf_counter() - start
    if shard_t[1] > 1:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "results.json"
        write_whole(path, json.dumps(results, indent=1) + "\n")  # a killed shard leaves no half file
        summary = (f"shard {shard_t[0]}/{shard_t[1]} of {assignment}: {len(records)} submission(s) in {seconds:.1f} s\n"
                   f"results: {path}\nmerge every shard's folder with `python -m autograder merge OUT DIR...`")
        return GradingRun(assignment, results, {"results": path}, seconds, summary, subs)
    paths, summary = write_all(results, out, program, seconds)
    return GradingRun(assignment, results, paths, seconds, summary, subs)


def merge_folders(parts: list[Path], out: Path, root: Path = REPO_ROOT) -> GradingRun:
    """``merge OUT DIR...``: the full reports of a run split into shards."""
    start = time.perf_counter()
    results = merge(parts)
    try:
        program = build_program(Path(root).resolve(), results["assignment"])
    except ProgramError as err:
        raise GradingError(str(err)) from err
    paths, summary = write_all(results, Path(out), program, None)
    return GradingRun(results["assignment"], results, paths, time.perf_counter() - start, summary)
