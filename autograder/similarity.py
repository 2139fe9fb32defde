"""Similar answers in a graded class, for the instructor: answers (tasks of kind function or
derivation) that are near-identical to the course library's reference or to another student's,
compared as normalised code (:mod:`autograder.static`), made from the results object alone
(``results.json``).

* :func:`similarity_report` — the rows (task, student, other, similarity), pruned with cheap upper
  bounds before difflib's exact ratio;
* :func:`similarity_csv` / :func:`similarity_html` — the rows as CSV, and as a self-contained page
  (no script) showing the two normalised texts side by side, escaped;
* :func:`reference_sources` — the sources of the ``dgm`` function(s) each task re-implements, as
  its chapter declares them (:meth:`coursework.Chapter.references`).

A high similarity is a reason to look, not a verdict. Students' answers are parsed, never run.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import io
import re
import textwrap
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, NamedTuple

from autograder.feedback import CSS, esc, pre_block
from autograder.static import normalise, similarity

#: Task kinds whose answers are compared for similarity (concept answers are shared one-liners).
COMPARED_KINDS = ("function", "derivation")
#: Answers with fewer tokens than this after normalising are too short to compare.
MIN_TOKENS = 12
#: Answers longer than this (in tokens) are matched only when identical: difflib is quadratic.
MAX_COMPARED_TOKENS = 5_000
#: The ``other`` of a similarity row that compares an answer with the library's reference.
REFERENCE = "dgm reference"

#: The tokens :func:`autograder.static.similarity` compares (the same expression).
_TOKEN = re.compile(r"\w+|[^\w\s]")


class AnswerGroup(NamedTuple):
    """Students whose answers to one task normalise to the same text."""

    text: str               # the normalised text
    students: list[str]     # sorted
    bag: Counter            # token → count
    size: int               # number of tokens


def tokens(text: str) -> list[str]:
    """The tokens of a normalised text, as :func:`autograder.static.similarity` splits it."""
    return _TOKEN.findall(text)


def _resolve(spec: str) -> Any:
    """The object a ``"module:qualname"`` spec names (dotted qualnames reach methods)."""
    module, _, qualname = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def quiet_normalise(source: str) -> str:
    """:func:`autograder.static.normalise` of ``source`` without the warnings that parsing a
    student's code can print (invalid escape sequences and the like); '' (not comparable) when
    normalising fails, e.g. on expressions nested too deeply for the AST visitor."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return normalise(source)
        except Exception:  # noqa: BLE001 - one pathological answer must not stop the report
            return ""


def reference_sources(assignment: str) -> dict[str, str]:
    """task → the source of the ``dgm`` function(s) it re-implements (the ``references`` its chapter
    declares, :meth:`coursework.Chapter.references`), dedented, several joined with a newline; {}
    for an assignment without a declaration."""
    from coursework import chapter_for

    chapter = chapter_for(assignment)
    if chapter is None:
        return {}
    return {task: "\n".join(textwrap.dedent(inspect.getsource(_resolve(s))) for s in specs)
            for task, specs in chapter.references().items()}


def comparable_answers(results: Mapping[str, Any], stubs: Mapping[str, str] | None = None
                       ) -> dict[str, dict[str, str]]:
    """task → {student: normalised answer} for the tasks of kind function and derivation, leaving
    out answers that do not parse, that normalise to the release's stub of the task (``stubs``:
    task → the unanswered answer-cell source) or that have fewer than :data:`MIN_TOKENS` tokens."""
    stub_texts = {task: quiet_normalise(src) for task, src in (stubs or {}).items()}
    found: dict[str, dict[str, str]] = {}
    for t in results["tasks"]:
        if t.get("kind") not in COMPARED_KINDS:
            continue
        name, answers = t["name"], {}
        for sub in results["submissions"]:
            source = (sub.get("answers") or {}).get(name)
            if not isinstance(source, str):
                continue
            text = quiet_normalise(source)
            if not text or text == stub_texts.get(name) or len(tokens(text)) < MIN_TOKENS:
                continue
            answers[str(sub["student_id"])] = text
        found[name] = answers
    return found


def group_answers(answers: Mapping[str, str]) -> list[AnswerGroup]:
    """The answers of one task bucketed by identical normalised text, sorted by size then text."""
    buckets: dict[str, list[str]] = {}
    for student, text in answers.items():
        buckets.setdefault(text, []).append(student)
    groups = []
    for text, students in buckets.items():
        toks = tokens(text)
        groups.append(AnswerGroup(text, sorted(students), Counter(toks), len(toks)))
    return sorted(groups, key=lambda g: (g.size, g.text))


def length_bound(a: int, b: int) -> float:
    """The highest similarity two token lists of lengths ``a`` and ``b`` can have
    (``SequenceMatcher.real_quick_ratio``)."""
    return 2.0 * min(a, b) / (a + b) if a + b else 0.0


def bag_bound(a: AnswerGroup, b: AnswerGroup) -> float:
    """The highest similarity the token multisets of ``a`` and ``b`` allow
    (``SequenceMatcher.quick_ratio``)."""
    if not a.size + b.size:
        return 0.0
    small, large = (a.bag, b.bag) if len(a.bag) <= len(b.bag) else (b.bag, a.bag)
    common = sum(min(n, large[tok]) for tok, n in small.items() if tok in large)
    return 2.0 * common / (a.size + b.size)


def close_similarity(a: AnswerGroup, b: AnswerGroup, threshold: float) -> float | None:
    """The similarity of two groups' texts when it reaches ``threshold``, else None; the exact
    ratio is computed only when the cheap upper bounds allow it, and always with the text of fewer
    tokens (then the smaller text) first, since difflib's ratio can depend on the order. Texts
    longer than :data:`MAX_COMPARED_TOKENS` are not compared (None)."""
    if max(a.size, b.size) > MAX_COMPARED_TOKENS:
        return None
    if length_bound(a.size, b.size) < threshold or bag_bound(a, b) < threshold:
        return None
    first, second = sorted((a, b), key=lambda g: (g.size, g.text))
    score = similarity(first.text, second.text)
    return score if score >= threshold else None


def pair_rows(task: str, groups: Sequence[AnswerGroup], threshold: float) -> list[dict[str, Any]]:
    """Rows for every unordered pair of students (student < other) whose answers to ``task`` have
    similarity ≥ ``threshold``; ``groups`` sorted by size, as :func:`group_answers` returns them."""
    rows = []

    def add(first: str, second: str, score: float) -> None:
        student, other = sorted((first, second))
        rows.append({"task": task, "student": student, "other": other, "similarity": score})

    if threshold <= 1.0:
        for g in groups:
            for first, second in combinations(g.students, 2):
                add(first, second, 1.0)
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            if length_bound(a.size, b.size) < threshold:
                break  # sizes only grow from here, so the bound only falls
            score = close_similarity(a, b, threshold)
            if score is not None:
                for first in a.students:
                    for second in b.students:
                        add(first, second, score)
    return rows


def reference_rows(task: str, groups: Sequence[AnswerGroup], reference: str, threshold: float
                   ) -> list[dict[str, Any]]:
    """Rows for the students whose answer to ``task`` has similarity ≥ ``threshold`` with the
    normalised ``reference`` text."""
    ref_tokens = tokens(reference)
    if not ref_tokens:
        return []
    ref = AnswerGroup(reference, [REFERENCE], Counter(ref_tokens), len(ref_tokens))
    rows = []
    for g in groups:
        score = close_similarity(g, ref, threshold)
        if score is not None:
            rows.extend({"task": task, "student": s, "other": REFERENCE, "similarity": score} for s in g.students)
    return rows


def similarity_report(results: Mapping[str, Any], references: Mapping[str, str] | None = None,
                      threshold: float = 0.9, *, stubs: Mapping[str, str] | None = None
                      ) -> list[dict[str, Any]]:
    """Answers (tasks of kind function or derivation) with similarity ≥ ``threshold`` to the
    library's reference or to another student's answer.

    ``references``: task → source of the reference (default :func:`reference_sources` of the
    results' assignment; {} for none); ``stubs``: task → the release's unanswered answer cell.
    Returns rows ``{"task", "student", "other", "similarity"}`` (``other`` is
    :data:`REFERENCE` or a student id greater than ``student``), sorted by task, then similarity
    descending, then the two names.
    """
    if references is None:
        references = reference_sources(str(results.get("assignment", "")))
    rows: list[dict[str, Any]] = []
    for task, answers in comparable_answers(results, stubs).items():
        groups = group_answers(answers)
        if task in references:
            rows += reference_rows(task, groups, quiet_normalise(references[task]), threshold)
        rows += pair_rows(task, groups, threshold)
    return sorted(rows, key=lambda r: (r["task"], -r["similarity"], r["student"], r["other"]))


def similarity_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The similarity rows as CSV text: task, student, other, similarity (3 decimals)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["task", "student", "other", "similarity"])
    for r in rows:
        writer.writerow([r["task"], r["student"], r["other"], f"{r['similarity']:.3f}"])
    return buf.getvalue()


def row_texts(row: Mapping[str, Any], results: Mapping[str, Any], references: Mapping[str, str]
              ) -> tuple[str, str]:
    """The two normalised texts a similarity row compares ('' where one is not in the results)."""
    answers = {str(s.get("student_id")): s.get("answers") or {} for s in results["submissions"]}

    def text_of(who: str) -> str:
        source = references.get(row["task"]) if who == REFERENCE else answers.get(who, {}).get(row["task"])
        return quiet_normalise(source) if isinstance(source, str) else ""

    return text_of(str(row["student"])), text_of(str(row["other"]))


def similarity_html(rows: Sequence[Mapping[str, Any]], results: Mapping[str, Any],
                    references: Mapping[str, str] | None = None) -> str:
    """A self-contained HTML page (no script): the rows as a table, then for each row the two
    normalised texts side by side, escaped. ``references`` as in :func:`similarity_report`."""
    if references is None:
        references = reference_sources(str(results.get("assignment", "")))
    table, details = [], []
    for i, r in enumerate(rows, 1):
        table.append(f'<tr><td class="num"><a href="#row{i}">{i}</a></td><td>{esc(r["task"])}</td>'
                     f'<td>{esc(r["student"])}</td><td>{esc(r["other"])}</td>'
                     f'<td class="num">{r["similarity"]:.3f}</td></tr>')
        left, right = row_texts(r, results, references)
        details.append(f'<h3 id="row{i}">{i}. {esc(r["task"])}: {esc(r["student"])} and {esc(r["other"])} '
                       f'({r["similarity"]:.3f})</h3>\n<div class="pair">'
                       f'<div><div class="label">{esc(r["student"])}</div>{pre_block(left)}</div>'
                       f'<div><div class="label">{esc(r["other"])}</div>{pre_block(right)}</div></div>')
    body = ("<table><tr><th>#</th><th>task</th><th>student</th><th>other</th><th>similarity</th></tr>\n"
            + "\n".join(table) + "</table>\n" + "\n".join(details)) if rows else \
        '<p class="note">No pair of answers reached the threshold.</p>'
    assignment = esc(results.get("assignment", ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{assignment} — similar answers</title>
<style>
{CSS}
body {{ max-width: 90rem; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }}
</style></head><body>
<h1>{assignment}: similar answers</h1>
<p>Answers compared after normalising (names renamed, comments, docstrings and annotations dropped).
A high similarity is a reason to look, not a verdict.</p>
{body}
</body></html>
"""
