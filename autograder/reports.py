"""Reports of a graded class, made from the plain-data *results* alone (``results.json``).

Grading runs every submission in a sandbox and judges it outside; what comes out is one results
object (format :data:`RESULTS_FORMAT`: the tasks, and per submission its status, reasons,
scores, answer cells and the graded notebook's cells). Shards of a class are merged into one such
object before this module sees it. This module makes the instructor's tables and writes every
report; the others have a module each:

* :func:`grades_csv` — one row per student: status, reason, total, one column per task;
* :func:`format_summary` — the text table printed after grading;
* :func:`write_reports` — every report into one folder: the two above, ``results.json``, the
  feedback pages (:mod:`autograder.feedback`), the histograms (:mod:`autograder.histograms`) and
  the similarity report (:mod:`autograder.similarity`).

The helpers that read a results object live in :mod:`autograder.results`. Every string of a
results object may come from a student: :func:`write_reports` first replaces lone UTF-16
surrogates (which no UTF-8 file can hold) with U+FFFD, the text summary neutralises control
characters and cuts long reasons, the CSV guards its free-text column against spreadsheet
formulas, and nothing is ever evaluated. A report of one student that cannot be written (its
feedback page) is reported in ``problems`` and the others are written all the same.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autograder.feedback import feedback_html, feedback_path
from autograder.histograms import histograms_png
from autograder.runner import STATUSES
from autograder.results import by_student, clean_strings, counted, fmt, max_total, reason_text, report_names
from autograder.similarity import reference_sources, similarity_csv, similarity_html, similarity_report

#: The ``format`` field of a results object this module reads.
RESULTS_FORMAT = "dgm-grading-results/1"
#: Fixed leading columns of grades.csv; one column per task follows.
CSV_COLUMNS = ("student_id", "status", "reason", "total", "max_total")
#: Longest reason a line of the printed summary shows (grades.csv and results.json keep it whole).
MAX_SUMMARY_REASON = 400

log = logging.getLogger("autograder.grade")

# --------------------------------------------------------------------------------------------
# grades.csv
# --------------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """``text`` for a free-text CSV cell: a leading ' when it would start a spreadsheet formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def grades_csv(results: Mapping[str, Any]) -> str:
    """The grades table as CSV text: the columns of :data:`CSV_COLUMNS`, then one per task in task
    order (blank: waiting for a hand grade); one row per submission, sorted by student id. The
    reason is one line without control characters (see :func:`plain`)."""
    tasks = results["tasks"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(t["name"] for t in tasks)])
    for sub in by_student(results):
        scores = sub.get("scores") or {}
        writer.writerow([sub["student_id"], sub["status"], csv_text(plain(reason_text(sub))),
                         fmt(sub.get("total")), fmt(sub.get("max_total", max_total(results))),
                         *(fmt(scores.get(t["name"])) for t in tasks)])
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def plain(text: str) -> str:
    """``text`` on one line for a terminal: line breaks and tabs become spaces, other control and
    format characters (escape sequences, bidi overrides) become ``\\uXXXX``."""
    out = []
    for ch in str(text):
        if ch in "\r\n\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _stats(values: Sequence[float], top: float) -> tuple[float, float, float, int]:
    """(mean, min, max, number ≥ ``top``) of ``values``; zeros when there are none."""
    if not values:
        return 0.0, 0.0, 0.0, 0
    return sum(values) / len(values), min(values), max(values), sum(1 for v in values if v >= top)


#: a check's message naming the known slip a wrong value matches (coursework._core.expect_tensor's
#: hints); the student's own text never reaches this kind of message
_SLIP = re.compile(r"^\[[^\]\n]+\] [^\n]*?: wrong value of [^\n]*? — it matches what you get if ([^\n]+)$",
                   flags=re.MULTILINE)


def known_slips(results: Mapping[str, Any]) -> dict[str, Counter]:
    """task → how many students' answers matched each named slip (a student counted once per slip
    and task, in either suite): the class's misconceptions, from the checks' own diagnoses."""
    slips: dict[str, Counter] = {}
    for sub in counted(results):
        seen: set[tuple[str, str]] = set()
        for cell in sub.get("cells") or []:
            task = cell.get("task")
            for check in cell.get("checks") or []:
                message = str(check.get("message", ""))
                if check.get("passed") or not task or "your function raised" in message:
                    continue
                for label in _SLIP.findall(message):
                    seen.add((str(task), label.strip()))
        for task, label in seen:
            slips.setdefault(task, Counter())[label] += 1
    return slips


def format_slips(results: Mapping[str, Any]) -> list[str]:
    """Lines for the summary: per task, each known slip and how many students' answers matched it."""
    slips = known_slips(results)
    if not slips:
        return []
    lines = ["known slips (students whose answer matched one, per task):"]
    for task in [t["name"] for t in results["tasks"] if t["name"] in slips]:
        for label, count in sorted(slips[task].items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {plain(task)}: {count} — {plain(label)}")
    return lines


def format_summary(results: Mapping[str, Any], seconds: float | None = None) -> str:
    """The text printed after grading: a per-task table (max, mean, min, max got, number with full
    marks) over the submissions that are not invalid, manual tasks as "graded by hand (n
    waiting)", a TOTAL row, the count per status, one line per submission that was not simply
    graded (or has reasons), and the time when ``seconds`` (the whole run) is given. Between the
    table and the statuses: the known slips the checks recognised, per task (:func:`format_slips`)."""
    subs = counted(results)
    tasks = results["tasks"]
    label = "TOTAL (automatic)"
    width = max([len("task"), len(label), *(len(t["name"]) for t in tasks)])
    lines = [f"Assignment {plain(results.get('assignment', ''))}: {len(results['submissions'])} submission(s)", "",
             f"{'task':<{width}}  {'max':>5}  {'mean':>6}  {'min':>5}  {'max got':>7}  {'full':>5}",
             "-" * (width + 40)]
    for t in tasks:
        got = [(s.get("scores") or {}).get(t["name"]) for s in subs]
        if t.get("manual"):
            waiting = sum(1 for g in got if g is None)
            lines.append(f"{t['name']:<{width}}  {t['max_points']:>5g}  graded by hand ({waiting} waiting)")
            continue
        mean, low, high, full = _stats([g or 0.0 for g in got], t["max_points"])
        lines.append(f"{t['name']:<{width}}  {t['max_points']:>5g}  {mean:>6.2f}  {low:>5g}  {high:>7g}  {full:>5}")
    top = max_total(results)
    mean, low, high, full = _stats([float(s.get("total") or 0.0) for s in subs], top)
    lines += ["-" * (width + 40),
              f"{label:<{width}}  {top:>5g}  {mean:>6.2f}  {low:>5g}  {high:>7g}  {full:>5}",
              "(over the submissions that are not invalid; manual tasks are not in the total)", ""]
    slips = format_slips(results)
    if slips:
        lines += slips + [""]
    statuses = list(STATUSES) + sorted({str(s.get("status")) for s in results["submissions"]} - set(STATUSES))
    tally = Counter(str(s.get("status")) for s in results["submissions"])
    lines.append("status: " + ", ".join(f"{st} {tally.get(st, 0)}" for st in statuses))
    for s in by_student(results):
        if s.get("status") != "graded" or s.get("reasons"):
            who, status = plain(s.get("student_id", "")), plain(s.get("status", ""))
            reason = plain(reason_text(s))
            if len(reason) > MAX_SUMMARY_REASON:
                reason = reason[:MAX_SUMMARY_REASON] + f" … ({len(reason) - MAX_SUMMARY_REASON:,} more characters)"
            lines.append(f"  {who}: {status} — {reason}")
    if seconds is not None:
        timed = [float(s["seconds"]) for s in results["submissions"] if s.get("seconds")]
        line = f"time: {seconds:.1f} s in all"
        if timed:
            line += f"; per notebook: mean {sum(timed) / len(timed):.1f} s, max {max(timed):.1f} s"
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# All reports
# --------------------------------------------------------------------------------------------


def write_reports(results: Mapping[str, Any], out: Path, stubs: Mapping[str, str] | None = None,
                  problems: list[str] | None = None) -> dict[str, Path]:
    """Write every report of ``results`` under ``out``: grades.csv, results.json, summary.txt,
    feedback/<name>.html (the folder emptied first; ``name`` is the student id, see
    :func:`autograder.results.report_names`), histograms.png, similarity.csv and similarity.html
    (``stubs`` as in :func:`autograder.similarity.similarity_report`). Returns name → path.

    The strings of ``results`` are first made writable (:func:`autograder.results.clean_strings`).
    A feedback page, the histograms or the similarity report that cannot be written is logged and
    described in ``problems`` (when given), and the rest is written all the same; grades.csv,
    results.json and summary.txt are not optional: a failure there raises. ValueError (before any
    feedback page is written) when a student id would put its page outside the feedback folder."""
    if problems is None:
        problems = []
    results, _ = clean_strings(results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"grades": out / "grades.csv", "results": out / "results.json", "summary": out / "summary.txt",
             "feedback": out / "feedback", "histograms": out / "histograms.png",
             "similarity": out / "similarity.csv", "similarity_html": out / "similarity.html"}
    write_whole(paths["grades"], grades_csv(results))
    write_whole(paths["results"], json.dumps(results, indent=1) + "\n")
    write_whole(paths["summary"], format_summary(results) + "\n")
    folder = paths["feedback"]
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    names = report_names(str(sub["student_id"]) for sub in results["submissions"])
    targets = [(sub, feedback_path(folder, names[str(sub["student_id"])])) for sub in results["submissions"]]
    for sub, target in targets:
        try:
            target.write_text(feedback_html(results, sub), encoding="utf-8", errors="replace")
        except Exception as err:  # noqa: BLE001 - one student's page never stops the others
            _problem(problems, f"feedback page of {sub['student_id']!r}", err)
    try:
        histograms_png(results, paths["histograms"])
    except Exception as err:  # noqa: BLE001 - a picture never stops the grades
        _problem(problems, "histograms.png", err)
    try:
        references = reference_sources(str(results.get("assignment", "")))
        rows = similarity_report(results, references, stubs=stubs)
        paths["similarity"].write_text(similarity_csv(rows), encoding="utf-8", errors="replace")
        paths["similarity_html"].write_text(similarity_html(rows, results, references), encoding="utf-8",
                                            errors="replace")
    except Exception as err:  # noqa: BLE001 - a hint for the instructor never stops the grades
        _problem(problems, "similarity.csv and similarity.html", err)
    return paths


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: into a temporary file of the same folder,
    flushed to disk, then renamed over ``path`` (a rename within one folder is atomic, on NFS too).
    A grader killed while writing (a cluster job past its time limit, a node going down) leaves
    the previous file or none — never half a gradebook or half a shard's results, which a merge
    or a spreadsheet could take for a whole one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", errors="replace") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _problem(problems: list[str], what: str, err: BaseException) -> None:
    """Log that ``what`` could not be written and add one line saying so to ``problems``."""
    log.error("could not write %s", what, exc_info=err)
    problems.append(f"{what} not written ({type(err).__name__}: {plain(str(err))[:200]})")
