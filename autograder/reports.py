"""Reports of a graded class, made from the plain-data *results* alone (``results.json``).

Grading runs every submission in a sandbox and judges it outside; what comes out is one results
object (format ``dgm-grading-results/1``: the tasks, and per submission its status, reasons,
scores, answer cells and the graded notebook's cells). Shards of a class are merged into one such
object before this module sees it. Everything here is a pure function of that object, except
:func:`histograms_png` and :func:`write_reports`, which write files:

* :func:`grades_csv` — one row per student: status, reason, total, one column per task;
* :func:`feedback_html` — one self-contained page per student (inline CSS, no JavaScript, no
  external asset): status, task table and the notebook as it ran, with the checks' messages;
* :func:`histograms_png` — bar charts of the points per automatically graded task and the total
  (:func:`score_counts` does the counting);
* :func:`similarity_report` / :func:`similarity_csv` / :func:`similarity_html` — answers that are
  near-identical to the course library's reference (:func:`reference_sources`) or to another
  student's, compared as normalised code (:mod:`autograder.static`);
* :func:`format_summary` — the text table printed after grading;
* :func:`write_reports` — all of the above into one folder.

Every string of a results object (student ids, sources, outputs, messages, reasons) may come from
a student: HTML output escapes all of it, the text summary neutralises control characters, the
CSV guards its free-text column against spreadsheet formulas, and nothing is ever evaluated.
"""

from __future__ import annotations

import csv
import html
import importlib
import inspect
import io
import json
import math
import re
import shutil
import textwrap
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any, NamedTuple

from autograder.static import normalise, similarity

#: The ``format`` field of a results object this module reads.
RESULTS_FORMAT = "dgm-grading-results/1"
#: Every status a submission can end with, in the order the summary counts them.
STATUSES = ("graded", "timeout", "out-of-memory", "crashed", "invalid")
#: Fixed leading columns of grades.csv; one column per task follows.
CSV_COLUMNS = ("student_id", "status", "reason", "total", "max_total")
#: Task kinds whose answers are compared for similarity (concept answers are shared one-liners).
COMPARED_KINDS = ("function", "derivation")
#: Answers with fewer tokens than this after normalising are too short to compare.
MIN_TOKENS = 12
#: Answers longer than this (in tokens) are matched only when identical: difflib is quadratic.
MAX_COMPARED_TOKENS = 5_000
#: Longest text shown in a feedback page before it is cut with a note.
MAX_SHOWN_CHARS = 20_000
#: The ``other`` of a similarity row that compares an answer with the library's reference.
REFERENCE = "dgm reference"
#: The key of the total in :func:`score_counts`.
TOTAL = "TOTAL"

#: assignment → task → the ``dgm`` function(s) the task re-implements, as ``"module:qualname"``
#: (a tuple where the task's checks use several, or where the public reference only validates its
#: arguments and hands the computation to a private helper; their sources are joined).
REFERENCE_FUNCTIONS: dict[str, dict[str, str | tuple[str, ...]]] = {
    "01-elbo": {
        "gaussian_kl_diag": "dgm.divergences:gaussian_kl",
        "kl_monte_carlo": ("dgm.distributions:gaussian_log_prob", "dgm.divergences:kl_monte_carlo",
                           "dgm.divergences:monte_carlo_mean"),
        "lg_posterior": "dgm.linear_gaussian:posterior",
        "lg_elbo": "dgm.linear_gaussian:elbo",
        "mixture_responsibilities": ("dgm.mixtures:posterior", "dgm.mixtures:log_posterior"),
    },
    "05-gans": {
        "gan_losses": ("dgm.gan:discriminator_loss", "dgm.gan:generator_loss_nonsaturating"),
        "optimal_discriminator": "dgm.gan:optimal_discriminator",
        "jsd_from_discriminator": "dgm.gan:jsd_from_discriminator",
        "log_density_from_discriminator": "dgm.gan:density_from_discriminator",
        "gradient_penalty": "dgm.gan:gradient_penalty",
    },
    "07-diffusion": {
        "q_sample_closed_form": ("dgm.diffusion:GaussianDiffusion.q_sample",
                                 "dgm.diffusion:GaussianDiffusion._q_sample"),
        "posterior_mean_variance": ("dgm.diffusion:GaussianDiffusion.q_posterior_mean_variance",
                                    "dgm.diffusion:GaussianDiffusion._q_posterior_mean"),
        "p_sample_step": ("dgm.diffusion:GaussianDiffusion.p_sample",
                          "dgm.diffusion:GaussianDiffusion._p_mean_variance"),
        "vlb_weights": "dgm.diffusion:GaussianDiffusion.vlb_weights",
        "optimal_eps": ("dgm.diffusion:GaussianDiffusion.optimal_eps",
                        "dgm.diffusion:GaussianDiffusion._log_data_posterior"),
    },
}


# --------------------------------------------------------------------------------------------
# Reading a results object
# --------------------------------------------------------------------------------------------


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
# Feedback pages
# --------------------------------------------------------------------------------------------

#: What each status means, in words for the student.
STATUS_TEXT = {
    "graded": "graded automatically",
    "timeout": "stopped: the notebook ran past its time limit; the tasks that ran before are graded",
    "out-of-memory": "stopped: the notebook used more memory than allowed",
    "crashed": "the notebook's kernel crashed",
    "invalid": "the submission could not be read as this assignment's notebook, so nothing ran",
}

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem;
       color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: .5rem;
      border-radius: 4px; margin: .3rem 0; font-size: .85rem; }
pre.stderr { background: #fff4e5; } pre.error { background: #fdecea; }
.cell { border-left: 4px solid #ddd; padding: .2rem 0 .2rem .8rem; margin: 1rem 0; }
.cell.answer { border-color: #3b7dd8; } .cell.test { border-color: #999; }
.cell.manual { border-color: #8e44ad; }
.label { font-size: .8rem; color: #555; font-weight: 600; }
.md { white-space: pre-wrap; overflow-wrap: anywhere; margin: .3rem 0; }
.pass { color: #1e7b34; } .fail { color: #b3261e; }
.status { padding: .4rem .6rem; border-radius: 4px; background: #eef5ee; }
.status.bad { background: #fdecea; }
.note { color: #555; font-style: italic; }
ul.checks { list-style: none; padding-left: 0; }
""".strip()

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def esc(value: Any) -> str:
    """``value`` as text, HTML-escaped (quotes too), so that no string of a record becomes markup."""
    return html.escape("" if value is None else str(value), quote=True)


def truncate(text: str, limit: int = MAX_SHOWN_CHARS) -> tuple[str, int]:
    """``(kept, cut)``: the first ``limit`` characters of ``text`` and how many were left off."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


def pre_block(text: Any, css_class: str = "") -> str:
    """An escaped ``<pre>`` of ``text``, cut at :data:`MAX_SHOWN_CHARS` with a note saying so."""
    kept, cut = truncate("" if text is None else str(text))
    attr = f' class="{css_class}"' if css_class else ""
    block = f"<pre{attr}>{esc(kept)}</pre>"
    if cut:
        block += f'<p class="note">… {cut:,} more characters not shown.</p>'
    return block


def markdown_html(source: str) -> str:
    """A markdown cell, lightly formatted: ``#`` headings become headings, every other block a
    paragraph that keeps its line breaks; all text is escaped, nothing else is interpreted."""
    kept, cut = truncate(source)
    parts = []
    for block in re.split(r"\n\s*\n", kept):
        if not block.strip():
            continue
        lines = block.split("\n")
        heading = _HEADING.match(lines[0])
        if heading:
            level = min(6, len(heading.group(1)) + 2)
            parts.append(f"<h{level}>{esc(heading.group(2))}</h{level}>")
            lines = lines[1:]
        if any(line.strip() for line in lines):
            parts.append(f'<p class="md">{esc(chr(10).join(lines))}</p>')
    if cut:
        parts.append(f'<p class="note">… {cut:,} more characters not shown.</p>')
    return "\n".join(parts)


def outputs_html(cell: Mapping[str, Any]) -> str:
    """The stdout, stderr and error (name: value) a code or answer cell produced, as escaped blocks."""
    parts = []
    if cell.get("stdout"):
        parts.append('<div class="label">output</div>' + pre_block(cell["stdout"]))
    if cell.get("stderr"):
        parts.append('<div class="label">standard error</div>' + pre_block(cell["stderr"], "stderr"))
    error = cell.get("error")
    if error:
        text = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}"
        parts.append('<div class="label">error</div>' + pre_block(text, "error"))
    return "\n".join(parts)


def code_cell_html(cell: Mapping[str, Any]) -> str:
    """A code cell or an answer cell: its source, then what it printed and the error it raised."""
    if cell.get("kind") == "answer":
        label = f"your answer — {esc(cell.get('grade_id'))}"
    else:
        label = "code"
    return (f'<div class="cell {esc(cell.get("kind"))}"><div class="label">{label}</div>\n'
            f'{pre_block(cell.get("source", ""))}\n{outputs_html(cell)}</div>')


def check_html(check: Mapping[str, Any]) -> str:
    """One check of a test cell: passed/failed, its suite and its message."""
    ok = bool(check.get("passed"))
    mark = '<span class="pass">✔ passed</span>' if ok else '<span class="fail">✘ failed</span>'
    return (f'<li>{mark} <span class="label">({esc(check.get("suite", ""))} checks)</span>'
            f'{pre_block(check.get("message", ""))}</li>')


def test_cell_html(cell: Mapping[str, Any]) -> str:
    """A test cell: the points it gave, then a pass/fail line per check with its message."""
    points = cell.get("points")
    got = "?" if points is None else fmt(points)
    head = (f'<div class="label">test {esc(cell.get("grade_id"))} of {esc(cell.get("task"))}: '
            f'{esc(got)} / {esc(fmt(cell.get("max_points")))} points</div>')
    checks = cell.get("checks") or []
    if not checks:
        body = '<p class="note">No check ran (the answer was not reached or did not define what the test needs).</p>'
    else:
        body = '<ul class="checks">' + "\n".join(check_html(c) for c in checks) + "</ul>"
    return f'<div class="cell test">{head}\n{body}</div>'


def manual_cell_html(cell: Mapping[str, Any]) -> str:
    """A written answer: the student's text and a note that it is graded by hand."""
    return (f'<div class="cell manual"><div class="label">your written answer — {esc(cell.get("grade_id"))} '
            f'(graded by hand, {esc(fmt(cell.get("max_points")))} points)</div>\n'
            f'{pre_block(cell.get("source", ""))}</div>')


def cell_html(cell: Mapping[str, Any]) -> str:
    """One cell of the graded notebook as HTML, by its kind."""
    kind = cell.get("kind")
    if kind == "markdown":
        return f'<div class="cell markdown">{markdown_html(str(cell.get("source", "")))}</div>'
    if kind in ("code", "answer"):
        return code_cell_html(cell)
    if kind == "test":
        return test_cell_html(cell)
    if kind == "manual":
        return manual_cell_html(cell)
    return f'<div class="cell"><p class="note">A cell of an unknown kind ({esc(kind)}).</p></div>'


def task_table_html(results: Mapping[str, Any], submission: Mapping[str, Any]) -> str:
    """The table of tasks with the submission's points out of the maximum, and its total."""
    scores = submission.get("scores") or {}
    rows = []
    for t in results["tasks"]:
        score = scores.get(t["name"])
        if t.get("manual"):
            got = "graded by hand (waiting)" if score is None else f"{fmt(score)} (graded by hand)"
        else:
            got = "—" if score is None else fmt(score)
        rows.append(f'<tr><td>{esc(t["name"])}</td><td>{esc(t.get("kind", ""))}</td>'
                    f'<td class="num">{esc(got)}</td><td class="num">{esc(fmt(t["max_points"]))}</td></tr>')
    rows.append(f'<tr><th colspan="2">total (automatically graded tasks)</th>'
                f'<th class="num">{esc(fmt(submission.get("total")))}</th>'
                f'<th class="num">{esc(fmt(submission.get("max_total", max_total(results))))}</th></tr>')
    return ("<table><tr><th>task</th><th>kind</th><th>points</th><th>max</th></tr>\n"
            + "\n".join(rows) + "</table>")


def feedback_html(results: Mapping[str, Any], submission: Mapping[str, Any]) -> str:
    """The feedback page of one submission: a self-contained HTML document (inline CSS, no
    script, no external asset) holding only what the submission's record holds."""
    assignment, student = results.get("assignment", ""), submission.get("student_id", "")
    status = submission.get("status", "")
    reasons = [str(r) for r in submission.get("reasons") or []]
    reason_items = "".join(f"<li>{pre_block(r)}</li>" for r in reasons)
    seconds = submission.get("seconds")
    ran = "" if seconds is None else f" (ran for {fmt(round(float(seconds), 1))} s)"
    cells = submission.get("cells") or []
    walk = "\n".join(cell_html(c) for c in cells) if cells else \
        '<p class="note">No notebook could be read from this submission, so no cell ran.</p>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(assignment)} — feedback for {esc(student)}</title>
<style>
{_CSS}
</style></head><body>
<h1>{esc(assignment)}: feedback for {esc(student)}</h1>
<p class="status{'' if status == 'graded' else ' bad'}">Status: <strong>{esc(status)}</strong> —
{esc(STATUS_TEXT.get(status, 'unknown status'))}{esc(ran)}</p>
{f'<ul>{reason_items}</ul>' if reasons else ''}
<h2>Points</h2>
{task_table_html(results, submission)}
<h2>Your notebook as it was graded</h2>
{walk}
</body></html>
"""


# --------------------------------------------------------------------------------------------
# Histograms
# --------------------------------------------------------------------------------------------


def possible_scores(max_points: float, observed: Iterable[float] = ()) -> list[float]:
    """The scores a bar chart shows: every whole number from 0 to ``max_points``, ``max_points``
    itself and every score ``observed`` (fractions of partial credit), sorted."""
    values = {float(k) for k in range(math.floor(max_points) + 1)}
    values.add(float(max_points))
    values.update(float(x) for x in observed)
    return sorted(values)


def score_counts(results: Mapping[str, Any]) -> dict[str, dict[float, int]]:
    """task → {score: number of students} for every automatically graded task, then :data:`TOTAL`
    → the same for the total; over the submissions that are not invalid, skipping a missing score.
    Every possible score (see :func:`possible_scores`) is a key, with 0 where nobody got it."""
    subs = counted(results)
    columns: dict[str, tuple[float, list[float]]] = {}
    for t in auto_tasks(results):
        got = [(s.get("scores") or {}).get(t["name"]) for s in subs]
        columns[t["name"]] = (t["max_points"], [float(g) for g in got if g is not None])
    totals = [float(s["total"]) for s in subs if s.get("total") is not None]
    columns[TOTAL] = (max_total(results), totals)
    counts: dict[str, dict[float, int]] = {}
    for name, (top, got) in columns.items():
        tally = Counter(got)
        counts[name] = {x: tally.get(x, 0) for x in possible_scores(top, got)}
    return counts


def histograms_png(results: Mapping[str, Any], path: Path) -> Path:
    """Draw one small bar chart per automatically graded task and one for the total (x: points,
    y: number of students; see :func:`score_counts`) on a grid, save it as a PNG to ``path`` and
    return ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = score_counts(results)
    ncols = min(4, len(counts))
    nrows = math.ceil(len(counts) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows), squeeze=False)
    try:
        for ax, (name, tally) in zip(axes.flat, counts.items()):
            xs, ys = list(tally), list(tally.values())
            gaps = [b - a for a, b in pairwise(xs)]
            ax.bar(xs, ys, width=0.8 * min(gaps, default=1.0), color="#3b7dd8" if name != TOTAL else "#555")
            ax.set_title(f"{name} (n={sum(ys)})", fontsize=9)
            ax.set_xlabel("points", fontsize=8)
            ax.set_ylabel("students", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.yaxis.get_major_locator().set_params(integer=True)
            if len(xs) <= 12:
                ax.set_xticks(xs, [fmt(x) for x in xs])
        for ax in list(axes.flat)[len(counts):]:
            ax.set_visible(False)
        fig.suptitle(f"{results.get('assignment', '')}: points per task", fontsize=10)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Similarity
# --------------------------------------------------------------------------------------------

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
    """task → the source of the ``dgm`` function(s) it re-implements (:data:`REFERENCE_FUNCTIONS`),
    dedented, several joined with a newline; {} for an assignment without references."""
    found = {}
    for task, specs in REFERENCE_FUNCTIONS.get(assignment, {}).items():
        specs = (specs,) if isinstance(specs, str) else specs
        found[task] = "\n".join(textwrap.dedent(inspect.getsource(_resolve(s))) for s in specs)
    return found


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
{_CSS}
body {{ max-width: 90rem; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }}
</style></head><body>
<h1>{assignment}: similar answers</h1>
<p>Answers compared after normalising (names renamed, comments, docstrings and annotations dropped).
A high similarity is a reason to look, not a verdict.</p>
{body}
</body></html>
"""


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


def format_summary(results: Mapping[str, Any], seconds: float | None = None) -> str:
    """The text printed after grading: a per-task table (max, mean, min, max got, number with full
    marks) over the submissions that are not invalid, manual tasks as "graded by hand (n
    waiting)", a TOTAL row, the count per status, one line per submission that was not simply
    graded (or has reasons), and the time when ``seconds`` (the whole run) is given."""
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
    statuses = list(STATUSES) + sorted({str(s.get("status")) for s in results["submissions"]} - set(STATUSES))
    tally = Counter(str(s.get("status")) for s in results["submissions"])
    lines.append("status: " + ", ".join(f"{st} {tally.get(st, 0)}" for st in statuses))
    for s in by_student(results):
        if s.get("status") != "graded" or s.get("reasons"):
            who, status = plain(s.get("student_id", "")), plain(s.get("status", ""))
            lines.append(f"  {who}: {status} — {plain(reason_text(s))}")
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


def feedback_path(folder: Path, student_id: str) -> Path:
    """``folder/<student_id>.html``; ValueError when that path would leave ``folder``."""
    target = folder / f"{student_id}.html"
    if "/" in student_id or "\\" in student_id or target.resolve().parent != folder.resolve():
        raise ValueError(f"the student id {student_id!r} would write feedback outside {folder}")
    return target


def write_reports(results: Mapping[str, Any], out: Path, stubs: Mapping[str, str] | None = None
                  ) -> dict[str, Path]:
    """Write every report of ``results`` under ``out``: grades.csv, results.json, summary.txt,
    feedback/<student_id>.html (the folder emptied first), histograms.png, similarity.csv and
    similarity.html (``stubs`` as in :func:`similarity_report`). Returns name → path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"grades": out / "grades.csv", "results": out / "results.json", "summary": out / "summary.txt",
             "feedback": out / "feedback", "histograms": out / "histograms.png",
             "similarity": out / "similarity.csv", "similarity_html": out / "similarity.html"}
    paths["grades"].write_text(grades_csv(results), encoding="utf-8", errors="replace")
    paths["results"].write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    paths["summary"].write_text(format_summary(results) + "\n", encoding="utf-8", errors="replace")
    folder = paths["feedback"]
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for sub in results["submissions"]:
        feedback_path(folder, str(sub["student_id"])).write_text(
            feedback_html(results, sub), encoding="utf-8", errors="replace")
    histograms_png(results, paths["histograms"])
    references = reference_sources(str(results.get("assignment", "")))
    rows = similarity_report(results, references, stubs=stubs)
    paths["similarity"].write_text(similarity_csv(rows), encoding="utf-8", errors="replace")
    paths["similarity_html"].write_text(similarity_html(rows, results, references), encoding="utf-8",
                                        errors="replace")
    return paths
