"""Reading a results object (``results.json``, format ``dgm-grading-results/1``): the helpers every
report shares.

Grading runs every submission in a sandbox and judges it outside; what comes out is one results
object (the tasks, and per submission its status, reasons, scores, answer cells and the graded
notebook's cells). These pure functions pick out what the reports (:mod:`autograder.reports`,
:mod:`autograder.feedback`, :mod:`autograder.histograms`) count and print: the automatically graded
tasks, the submissions that statistics count, the maximum total, a submission's reasons, numbers
as text. Nothing here writes, escapes or evaluates anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fmt(x: float | None) -> str:
    """A number as the reports print it (``f"{x:g}"``); '' for None (waiting for a hand grade)."""
    if x is None:
        return ""
    return f"{x:g}"


def auto_tasks(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The tasks of ``results`` that are graded automatically (``manual`` false), in task order."""
    return [t for t in results["tasks"] if not t.get("manual")]


def counted(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The submissions of ``results`` that statistics count: every status but ``invalid``."""
    return [s for s in results["submissions"] if s.get("status") != "invalid"]


def by_student(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The submissions of ``results`` sorted by student id."""
    return sorted(results["submissions"], key=lambda s: str(s.get("student_id", "")))


def reason_text(submission: Mapping[str, Any]) -> str:
    """The submission's reasons joined with "; "; never empty for a status other than ``graded``
    (so that a failure is never a silent 0)."""
    text = "; ".join(str(r) for r in submission.get("reasons") or [])
    if not text and submission.get("status") != "graded":
        return f"no reason was recorded for the status {submission.get('status')!r}"
    return text


def max_total(results: Mapping[str, Any]) -> float:
    """The most points the automatically graded tasks give together."""
    return float(sum(t["max_points"] for t in auto_tasks(results)))
