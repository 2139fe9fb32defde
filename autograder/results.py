"""Reading a results object (``results.json``, format ``dgm-grading-results/1``): the helpers every
report shares.

Grading runs every submission in a sandbox and judges it outside; what comes out is one results
object (the tasks, and per submission its status, reasons, scores, answer cells and the graded
notebook's cells). These pure functions pick out what the reports (:mod:`autograder.reports`,
:mod:`autograder.feedback`, :mod:`autograder.histograms`) count and print: the automatically graded
tasks, the submissions that statistics count, the maximum total, a submission's reasons, numbers
as text. Nothing here writes, escapes or evaluates anything.

Two helpers guard every writer against what a student can put in a string or a file name:

* :func:`clean_strings` — the one place where the strings of a results object are made writable:
  a lone UTF-16 surrogate (``"\\ud800"`` in a notebook's JSON, or printed in the sandbox) cannot be
  encoded as UTF-8, so it becomes U+FFFD; everything else (NUL, control characters, bidi
  overrides) is kept, for each writer escapes or fences it for its own format;
* :func:`report_names` — the file name of each student's reports: the student id, unless another
  id of the class differs from it only in letter case (two names that a case-insensitive file
  system would take for one), when both get a suffix of their own.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

#: A UTF-16 surrogate code point: never valid on its own in text that is written as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Deepest nesting :func:`clean_strings` walks (a results object is about 6 deep).
MAX_CLEANED_DEPTH = 200


def clean_text(text: str) -> tuple[str, int]:
    """``text`` with every surrogate code point replaced by U+FFFD, and how many were replaced."""
    cleaned, count = _SURROGATE.subn("\ufffd", text)
    return cleaned, count


def clean_strings(value: Any, _depth: int = 0) -> tuple[Any, int]:
    """A copy of ``value`` (dicts, lists and tuples walked, keys included) whose strings hold no
    surrogate code point (each replaced by U+FFFD; see :func:`clean_text`), and how many were
    replaced. Other values are returned as they are. ValueError when ``value`` is nested deeper
    than :data:`MAX_CLEANED_DEPTH`."""
    if isinstance(value, str):
        return clean_text(value)
    if _depth > MAX_CLEANED_DEPTH:
        raise ValueError(f"clean_strings: value nested deeper than {MAX_CLEANED_DEPTH} levels")
    if isinstance(value, Mapping):
        out, total = {}, 0
        for key, item in value.items():
            key, n = clean_strings(key, _depth + 1)
            item, m = clean_strings(item, _depth + 1)
            out[key] = item
            total += n + m
        return out, total
    if isinstance(value, (list, tuple)):
        items, total = [], 0
        for item in value:
            item, n = clean_strings(item, _depth + 1)
            items.append(item)
            total += n
        return (items if isinstance(value, list) else tuple(items)), total
    return value, 0


def report_names(student_ids: Iterable[str]) -> dict[str, str]:
    """student id → the name (without suffix) of its report files, ``feedback/<name>.html`` and
    ``autograded/<name>.ipynb``: the id itself, unless another id of the class differs from it only
    in letter case (``victim`` and ``VICTIM``, distinct ids on Linux but one file on macOS or
    Windows); then ``<id>~<8 hex digits of the id's SHA-256>`` for each of them, so that no report
    overwrites another wherever the folder is copied. ``~`` never occurs in a student id
    (:func:`autograder.submissions.sanitise_student_id`), so a suffixed name is never another id."""
    ids = [str(s) for s in student_ids]
    folded = Counter(s.casefold() for s in set(ids))
    names: dict[str, str] = {}
    for sid in ids:
        if folded[sid.casefold()] == 1:
            names[sid] = sid
        else:
            names[sid] = f"{sid}~{hashlib.sha256(sid.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    if len({n.casefold() for n in names.values()}) != len(names):   # 32-bit clash: longer digests
        names = {sid: (n if n == sid else f"{sid}~{hashlib.sha256(sid.encode('utf-8', 'surrogatepass')).hexdigest()}")
                 for sid, n in names.items()}
    return names


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
