"""Feedback pages: one self-contained HTML page per student, for the student (and the instructor
who hands it back), made from the results object alone (``results.json``).

* :func:`feedback_html` — the page of one submission (inline CSS, no JavaScript, no external
  asset): status, task table and the notebook as it ran, with the checks' messages;
* :func:`feedback_path` — where a student's page goes (named by
  :func:`autograder.results.report_names`), refusing an id that would leave the folder.

Every string of a results object (student ids, sources, outputs, messages, reasons) may come from
a student: the page escapes all of it (:func:`esc`), cuts long texts (:func:`pre_block`) and
evaluates nothing. :func:`esc`, :func:`pre_block` and :data:`CSS` serve the similarity page too
(:mod:`autograder.similarity`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autograder.results import fmt, max_total
from autograder.runner import CRASHED, GRADED, OUT_OF_MEMORY, TIMEOUT
from autograder.submissions import INVALID

#: Longest text shown in a feedback page before it is cut with a note.
MAX_SHOWN_CHARS = 20_000

#: What each status means, in words for the student.
STATUS_TEXT = {
    GRADED: "graded automatically",
    TIMEOUT: "stopped: the notebook ran past its time limit; the tasks that ran before are graded",
    OUT_OF_MEMORY: "stopped: the notebook used more memory than allowed",
    CRASHED: "the notebook's kernel crashed",
    INVALID: "the submission could not be read as this assignment's notebook, so nothing ran",
}

#: The style sheet of every page (feedback and similarity), inlined in a ``<style>``.
CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem;
       color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: .5rem 0; display: block; max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; vertical-align: top; }
td:first-child { overflow-wrap: break-word; }
@media (max-width: 600px) { body { padding: 0 .6rem; } th, td { padding: .2rem .35rem; } }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: .5rem;
      border-radius: 4px; margin: .3rem 0; font-size: .85rem; }
pre.stderr { background: #fff4e5; } pre.error { background: #fdecea; }
.cell { border-left: 4px solid #ddd; padding: .2rem 0 .2rem .8rem; margin: 1rem 0; }
.cell.answer { border-color: #3b7dd8; } .cell.test { border-color: #999; }
.cell.manual { border-color: #8e44ad; }
.label { font-size: .8rem; color: #555; font-weight: 600; }
.md { overflow-wrap: anywhere; margin: .3rem 0; }
.md p { margin: .4rem 0; } .md code { background: #f6f6f6; padding: 0 .2rem; border-radius: 3px; }
.md table { display: block; max-width: 100%; overflow-x: auto; }
.math { overflow-x: auto; overflow-y: hidden; max-width: 100%; } math[display="block"] { margin: .5rem 0; }
.pass { color: #1e7b34; } .fail { color: #b3261e; }
.status { padding: .4rem .6rem; border-radius: 4px; background: #eef5ee; }
.status.bad { background: #fdecea; }
.note { color: #555; font-style: italic; }
ul.checks { list-style: none; padding-left: 0; }
""".strip()


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


#: MathML elements and attributes a formula of a feedback page may hold; anything else is dropped
_MATHML_TAGS = frozenset("""math mrow mi mn mo ms mtext mspace msub msup msubsup munder mover munderover mfrac
msqrt mroot mstyle mtable mtr mtd mpadded mphantom menclose merror semantics annotation""".split())
_MATHML_ATTRIBUTES = frozenset("""display xmlns mathvariant stretchy fence separator lspace rspace accent
accentunder columnalign columnspacing rowspacing columnlines rowlines displaystyle scriptlevel minsize
maxsize movablelimits linethickness width height depth notation largeop symmetric form""".split())


def math_html(latex: str, display: bool = False) -> str:
    """A LaTeX formula as MathML, made here at grading time (``latex2mathml``), so that the page
    shows typeset math with no script and no network; a formula it cannot read stays as escaped
    code. The MathML is rebuilt from the converter's element tree with only MathML elements and
    attributes (:data:`_MATHML_TAGS`), its text unescaped once and escaped again on output: a
    ``\\text{<script>}`` of a student's answer is shown as text, never as markup."""
    import xml.etree.ElementTree as ET

    from latex2mathml.converter import convert_to_element

    try:
        root = convert_to_element(latex, display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - any formula the converter cannot read
        return f'<code class="math">{esc(latex)}</code>'

    def clean(element) -> None:
        for child in list(element):
            if child.tag not in _MATHML_TAGS:
                element.remove(child)
                continue
            clean(child)
        for key in list(element.attrib):
            if key not in _MATHML_ATTRIBUTES:
                del element.attrib[key]
        for attr in ("text", "tail"):
            value = getattr(element, attr)
            if value:
                setattr(element, attr, html.unescape(value))

    clean(root)
    root.tail = None
    return ET.tostring(root, encoding="unicode", method="xml")


def _markdown_renderer():
    """CommonMark with tables and ``$…$`` / ``$$…$$`` math (as in the course's notebooks); raw
    HTML, images and links off (shown as their text): a page loads nothing and links nowhere."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable(["image", "link", "autolink"])
    md.use(dollarmath_plugin, allow_labels=False, double_inline=True)
    md.add_render_rule("math_inline", lambda self, tokens, idx, options, env: math_html(tokens[idx].content))
    md.add_render_rule("math_inline_double",
                       lambda self, tokens, idx, options, env: math_html(tokens[idx].content, display=True))
    md.add_render_rule("math_block",
                       lambda self, tokens, idx, options, env: f'<div class="math">{math_html(tokens[idx].content, True)}</div>\n')
    return md


_MARKDOWN: list = []


def markdown_html(source: str) -> str:
    """A markdown cell rendered: headings, emphasis, lists, tables, code and math (MathML,
    :func:`math_html`); raw HTML, images and links in it are shown as text. Headings move two
    levels down (the page's own are h1 and h2)."""
    if not _MARKDOWN:
        _MARKDOWN.append(_markdown_renderer())
    kept, cut = truncate(source)
    try:
        body = _MARKDOWN[0].render(kept)
    except Exception:  # noqa: BLE001 - a text the renderer cannot take: shown as it is
        body = pre_block(kept)
    body = re.sub(r"<(/?)h([1-6])>", lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + 2)}>", body)
    if cut:
        body += f'<p class="note">… {cut:,} more characters not shown.</p>'
    return f'<div class="md">{body}</div>'


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
            f'{markdown_html(str(cell.get("source", "")))}</div>')


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
        # a long task name may break after an underscore on a phone (<wbr>: nothing is copied)
        rows.append(f'<tr><td>{esc(t["name"]).replace("_", "_<wbr>")}</td><td>{esc(t.get("kind", ""))}</td>'
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
{CSS}
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


def feedback_path(folder: Path, name: str) -> Path:
    """``folder/<name>.html``, ``name`` being a student's report name (its id, or the id with a
    suffix when another id of the class differs from it only in letter case:
    :func:`autograder.results.report_names`); ValueError when that path would leave ``folder``."""
    if "/" in name or "\\" in name or "\0" in name or name in ("", ".", ".."):
        raise ValueError(f"the student id {name!r} would write feedback outside {folder}")
    target = folder / f"{name}.html"
    if target.resolve().parent != folder.resolve():
        raise ValueError(f"the student id {name!r} would write feedback outside {folder}")
    return target
