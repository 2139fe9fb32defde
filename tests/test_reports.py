"""Tests of the reports of a graded class (autograder/reports.py, feedback.py, histograms.py and
similarity.py): every report is made from a plain-data results object alone.

The results here are synthetic (six students: full marks, a renamed copy, an unrelated answer, a
crash with a reason, an invalid file, a timeout with the release's stub), with hostile strings in
sources, outputs, messages, reasons and, where nothing is written to disk, the student id.
"""

from __future__ import annotations

import copy
import csv
import html
import io
import itertools
import json
import random
import re
import unicodedata
from html.parser import HTMLParser

import nbformat
import pytest

from autograder import similarity as similar
from autograder import feedback as feedback_module
from autograder.feedback import feedback_html
from autograder.histograms import TOTAL, histograms_png, score_counts
from autograder.reports import format_summary, grades_csv, write_reports
from autograder.similarity import (
    MAX_COMPARED_TOKENS,
    MIN_TOKENS,
    REFERENCE,
    reference_sources,
    similarity_csv,
    similarity_html,
    similarity_report,
    tokens,
)
from autograder.static import normalise, similarity
from coursework import chapters

SCRIPT = "<script>alert(1)</script>"
DROP = '"; DROP TABLE grades; --'
ANSI = "\x1b[2J\x1b[31m"

STUB = '''def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    """KL(q || p) for diagonal Gaussians given by means and log-variances."""
    # YOUR CODE HERE
    raise NotImplementedError()
'''

KL_ALICE = '''def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    """KL(q || p) for diagonal Gaussians."""
    log_ratio = logvar_q - logvar_p                      # log(sigma_q^2 / sigma_p^2)
    mahalanobis = (mean_q - mean_p) ** 2 * torch.exp(-logvar_p)
    return 0.5 * (torch.exp(log_ratio) + mahalanobis - 1.0 - log_ratio).sum(-1)
'''

# alice's answer with other names, comments, docstring, annotations and layout
KL_BOB = '''def gaussian_kl_diag(mu1: torch.Tensor, lv1, mu2, lv2) -> torch.Tensor:
    # all my own work
    r = lv1 - lv2

    m = (mu1 - mu2) ** 2 * torch.exp(-lv2)   # squared distance, scaled
    return 0.5 * (torch.exp(r) + m - 1.0 - r).sum(-1)
'''

KL_CAROL = '''def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):
    var_q, var_p = logvar_q.exp(), logvar_p.exp()
    kl = torch.log(var_p.sqrt() / var_q.sqrt()) + (var_q + (mean_q - mean_p).pow(2)) / (2 * var_p) - 0.5
    return kl.sum(dim=-1)
'''

MC_ALICE = '''def kl_monte_carlo_gaussian(mean_q, logvar_q, mean_p, logvar_p, num_samples, generator):
    eps = torch.randn((num_samples, *mean_q.shape), generator=generator, dtype=mean_q.dtype)
    z = mean_q + torch.exp(0.5 * logvar_q) * eps
    ratio = log_prob(z, mean_q, logvar_q) - log_prob(z, mean_p, logvar_p)
    return ratio.mean(0), ratio.std(0) / num_samples ** 0.5
'''

# a concept answer long enough to compare, shared by alice and bob: concepts are never compared
CONCEPT = 'ANSWER_KL_ASYMMETRY = "b"\nCHOICES = ["a", "b", "c", "d"]\n'
# identical derivation answers below MIN_TOKENS (alice and carol): too short to compare
SHORT = "KL_STEPS = [kl_derivation_start()]\n"


def make_task(name: str, max_points: float, kind: str = "function") -> dict:
    return {"name": name, "max_points": float(max_points), "manual": kind == "manual", "kind": kind}


TASKS = [make_task("gaussian_kl_diag", 3), make_task("kl_monte_carlo", 2),
         make_task("concept_kl_asymmetry", 1, "concept"), make_task("kl_derivation_steps", 2, "derivation"),
         make_task("elbo_decomposition", 4, "manual")]
MAX_TOTAL = 8.0


def make_submission(student_id: str, scores: dict, *, status: str = "graded", reasons=(), answers=None,
                    cells=None, seconds: float = 1.5) -> dict:
    full = {t["name"]: scores.get(t["name"], None if t["manual"] else 0.0) for t in TASKS}
    total = sum(full[t["name"]] for t in TASKS if not t["manual"])
    return {"student_id": student_id, "origin": f"{student_id}.ipynb", "status": status,
            "reasons": list(reasons), "scores": full, "total": total, "max_total": MAX_TOTAL,
            "seconds": seconds, "answers": dict(answers or {}), "cells": list(cells or [])}


def alice_cells() -> list[dict]:
    return [
        {"kind": "markdown", "grade_id": None, "source": f"## Task 1: the KL {SCRIPT}\n\nImplement it. {DROP}"},
        {"kind": "code", "grade_id": None, "source": "import torch\nprint('<b>hi</b>')",
         "stdout": f"setup done {SCRIPT}\n", "stderr": f"warning: {DROP}", "error": None},
        {"kind": "answer", "grade_id": "gaussian_kl_diag", "source": KL_ALICE + f"# {SCRIPT}\n",
         "stdout": "", "stderr": "",
         "error": {"ename": "ValueError", "evalue": f"bad <img src=x onerror=alert(2)> {DROP}"}},
        {"kind": "test", "grade_id": "test_gaussian_kl_diag_visible", "task": "gaussian_kl_diag",
         "points": 1.0, "max_points": 1.0,
         "checks": [{"suite": "visible", "passed": True, "message": "gaussian_kl_diag: all visible checks passed"}]},
        {"kind": "test", "grade_id": "test_gaussian_kl_diag_hidden", "task": "gaussian_kl_diag",
         "points": 0.0, "max_points": 2.0,
         "checks": [{"suite": "hidden", "passed": False, "message": f"hidden check failed: {SCRIPT} at row 3"}]},
        {"kind": "manual", "grade_id": "elbo_decomposition", "source": f"By Jensen... {SCRIPT}", "max_points": 4.0},
    ]


def make_results() -> dict:
    subs = [
        make_submission("alice", {"gaussian_kl_diag": 3, "kl_monte_carlo": 2, "concept_kl_asymmetry": 1,
                                  "kl_derivation_steps": 2},
                        answers={"gaussian_kl_diag": KL_ALICE, "kl_monte_carlo": MC_ALICE,
                                 "concept_kl_asymmetry": CONCEPT, "kl_derivation_steps": SHORT,
                                 "elbo_decomposition": f"By Jensen... {SCRIPT}"},
                        cells=alice_cells()),
        make_submission("bob", {"gaussian_kl_diag": 3, "concept_kl_asymmetry": 1, "kl_derivation_steps": 1.5},
                        answers={"gaussian_kl_diag": KL_BOB, "concept_kl_asymmetry": CONCEPT}),
        make_submission("carol", {"gaussian_kl_diag": 1, "kl_monte_carlo": 2, "kl_derivation_steps": 2,
                                  "elbo_decomposition": 3.0},
                        answers={"gaussian_kl_diag": KL_CAROL, "kl_derivation_steps": SHORT}),
        make_submission("dave", {}, status="crashed", reasons=[f"the kernel died {SCRIPT} {DROP}"],
                        answers={"gaussian_kl_diag": STUB},
                        cells=[{"kind": "answer", "grade_id": "gaussian_kl_diag", "source": STUB, "stdout": "",
                                "stderr": "Segmentation fault",
                                "error": {"ename": "DeadKernelError", "evalue": "died"}}]),
        make_submission("eve", {}, status="invalid", reasons=["not a notebook: truncated JSON"], seconds=0.0),
        make_submission("frank", {"kl_monte_carlo": 2}, status="timeout",
                        reasons=[f"ran past the notebook budget {ANSI}"], answers={"gaussian_kl_diag": STUB}),
    ]
    return {"format": "dgm-grading-results/1", "assignment": "01-elbo", "seed": "12345",
            "tasks": copy.deepcopy(TASKS), "submissions": subs}


def sub_of(results: dict, student_id: str) -> dict:
    return next(s for s in results["submissions"] if s["student_id"] == student_id)


# --------------------------------------------------------------------------------------------
# grades.csv
# --------------------------------------------------------------------------------------------


def test_grades_csv_columns_rows_and_values():
    rows = list(csv.DictReader(io.StringIO(grades_csv(make_results()))))
    assert list(rows[0]) == ["student_id", "status", "reason", "total", "max_total", *(t["name"] for t in TASKS)]
    assert [r["student_id"] for r in rows] == ["alice", "bob", "carol", "dave", "eve", "frank"]
    by_id = {r["student_id"]: r for r in rows}
    assert by_id["alice"] | {} == {**by_id["alice"], "status": "graded", "reason": "", "total": "8", "max_total": "8",
                                   "gaussian_kl_diag": "3", "kl_derivation_steps": "2", "elbo_decomposition": ""}
    assert by_id["bob"]["total"] == "5.5" and by_id["bob"]["kl_derivation_steps"] == "1.5"
    assert by_id["carol"]["elbo_decomposition"] == "3"  # a hand grade already entered
    assert by_id["dave"]["status"] == "crashed" and by_id["dave"]["reason"] == f"the kernel died {SCRIPT} {DROP}"
    assert by_id["eve"]["status"] == "invalid" and by_id["eve"]["reason"] == "not a notebook: truncated JSON"
    assert by_id["frank"]["status"] == "timeout" and by_id["frank"]["kl_monte_carlo"] == "2"
    assert by_id["frank"]["reason"] == "ran past the notebook budget \\u001b[2J\\u001b[31m"  # no raw escapes


def test_grades_csv_never_leaves_a_failure_without_reason_and_guards_formulas():
    results = make_results()
    sub_of(results, "dave")["reasons"] = []
    sub_of(results, "frank")["reasons"] = ["=HYPERLINK(\"http://x\")", "second"]
    by_id = {r["student_id"]: r for r in csv.DictReader(io.StringIO(grades_csv(results)))}
    assert "crashed" in by_id["dave"]["reason"]
    assert by_id["frank"]["reason"] == "'=HYPERLINK(\"http://x\"); second"


# --------------------------------------------------------------------------------------------
# Feedback
# --------------------------------------------------------------------------------------------

# the page's own markup, what rendered Markdown adds, and MathML (its elements and attributes are
# the feedback module's allow-list, which these tests hold every page to)
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "h5", "h6", "p", "ul",
                "li", "pre", "div", "span", "table", "tr", "th", "td", "strong", "a",
                "em", "code", "ol", "blockquote", "hr", "br", "wbr", "thead", "tbody"} | set(feedback_module._MATHML_TAGS)
ALLOWED_ATTRIBUTES = {"class", "id", "href", "colspan", "lang", "charset", "http-equiv", "content", "name",
                      "start"} | set(feedback_module._MATHML_ATTRIBUTES)


class Markup(HTMLParser):
    """The tags, attributes and text of a page, as a browser's tokeniser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def assert_inert(page: str) -> Markup:
    """The page has only harmless tags and attributes: no script, no handler, no external link."""
    markup = Markup(page)
    for tag, attrs in markup.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            if name == "style":   # a Markdown table's column alignment, nothing else
                assert re.fullmatch(r"text-align:(left|right|center)", value or ""), (tag, value)
                continue
            assert name in ALLOWED_ATTRIBUTES, (tag, name)
            if name == "href":
                assert value.startswith("#"), value
            if name == "xmlns":
                assert value == "http://www.w3.org/1998/Math/MathML", value
    styles = [t for t in markup.text if "{" in t]
    assert not any("url(" in s or "@import" in s for s in styles)
    return markup


def test_feedback_escapes_every_hostile_string_and_shows_the_record():
    results = make_results()
    page = feedback_html(results, sub_of(results, "alice"))
    text = "".join(assert_inert(page).text)
    assert text.count(SCRIPT) >= 5  # markdown, stdout, answer, check message, manual text
    assert "<script" not in page and page.count(html.escape(SCRIPT)) >= 5
    assert html.escape(DROP) in page
    assert "all visible checks passed" in page and html.escape(f"hidden check failed: {SCRIPT} at row 3") in page
    assert "✔ passed" in page and "✘ failed" in page
    assert "ValueError" in page and html.escape("bad <img src=x onerror=alert(2)>") in page
    assert "graded by hand" in page
    assert "Status: <strong>graded</strong>" in page
    assert "<style>" in page and "<script" not in page


def test_feedback_of_a_crash_shows_status_and_reason():
    results = make_results()
    page = feedback_html(results, sub_of(results, "dave"))
    assert "<strong>crashed</strong>" in page and "kernel crashed" in page
    assert html.escape(f"the kernel died {SCRIPT} {DROP}") in page
    assert "DeadKernelError: died" in page and "Segmentation fault" in page
    assert "<script" not in page
    assert_inert(page)


def test_feedback_of_an_invalid_submission_says_nothing_ran():
    results = make_results()
    page = feedback_html(results, sub_of(results, "eve"))
    assert "<strong>invalid</strong>" in page and "not a notebook: truncated JSON" in page
    assert "no cell ran" in page


def test_feedback_escapes_a_hostile_student_id_and_truncates_long_output():
    results = make_results()
    sub = copy.deepcopy(sub_of(results, "alice"))
    sub["student_id"] = SCRIPT + DROP
    sub["cells"][1]["stdout"] = "x" * 50_000 + "TAIL-NOT-SHOWN"
    page = feedback_html(results, sub)
    assert "<script" not in page and html.escape(SCRIPT + DROP) in page
    assert_inert(page)
    assert "TAIL-NOT-SHOWN" not in page
    assert "30,014 more characters not shown" in page


def test_feedback_holds_nothing_but_the_submission_record():
    results = make_results()
    page = feedback_html(results, sub_of(results, "alice"))
    for other in ("bob", "carol", "dave", "frank"):
        assert other not in page
    assert "mu1" not in page and "var_p.sqrt" not in page  # other students' answers


# --------------------------------------------------------------------------------------------
# Histograms
# --------------------------------------------------------------------------------------------


def test_score_counts_over_non_invalid_submissions():
    counts = score_counts(make_results())
    assert list(counts) == ["gaussian_kl_diag", "kl_monte_carlo", "concept_kl_asymmetry", "kl_derivation_steps",
                            TOTAL]  # manual tasks are not counted
    assert counts["gaussian_kl_diag"] == {0.0: 2, 1.0: 1, 2.0: 0, 3.0: 2}
    assert counts["kl_monte_carlo"] == {0.0: 2, 1.0: 0, 2.0: 3}
    assert counts["concept_kl_asymmetry"] == {0.0: 3, 1.0: 2}
    assert counts["kl_derivation_steps"] == {0.0: 2, 1.0: 0, 1.5: 1, 2.0: 2}
    assert counts[TOTAL] == {**{float(k): 0 for k in range(9)}, 0.0: 1, 2.0: 1, 5.0: 1, 5.5: 1, 8.0: 1}
    assert all(sum(c.values()) == 5 for c in counts.values())  # eve (invalid) is left out


def test_histograms_png_is_a_png(tmp_path):
    path = histograms_png(make_results(), tmp_path / "histograms.png")
    assert path == tmp_path / "histograms.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


# --------------------------------------------------------------------------------------------
# Similarity
# --------------------------------------------------------------------------------------------


def test_renamed_copy_is_flagged_and_unrelated_answer_is_not():
    rows = similarity_report(make_results(), references={}, stubs={"gaussian_kl_diag": STUB})
    assert rows == [{"task": "gaussian_kl_diag", "student": "alice", "other": "bob", "similarity": 1.0}]
    assert similarity(normalise(KL_ALICE), normalise(KL_CAROL)) < 0.9


def test_stubs_short_answers_and_concepts_are_skipped():
    results = make_results()
    # without the stubs, dave's and frank's untouched stubs are "identical"
    unstubbed = similarity_report(results, references={})
    assert {"task": "gaussian_kl_diag", "student": "dave", "other": "frank", "similarity": 1.0} in unstubbed
    stubbed = similarity_report(results, references={}, stubs={"gaussian_kl_diag": STUB})
    assert not any("dave" in (r["student"], r["other"]) for r in stubbed)
    # alice and carol share SHORT (derivation), alice and bob share CONCEPT (concept): never flagged
    assert len(tokens(normalise(SHORT))) < MIN_TOKENS
    assert len(tokens(normalise(CONCEPT))) >= MIN_TOKENS
    assert not any(r["task"] in ("kl_derivation_steps", "concept_kl_asymmetry") for r in unstubbed)
    # ...and the concept is left out because of its kind
    as_function = copy.deepcopy(results)
    as_function["tasks"][2]["kind"] = "function"
    assert any(r["task"] == "concept_kl_asymmetry" for r in similarity_report(as_function, references={}))


def test_pathological_answers_are_skipped_not_fatal():
    results = make_results()
    deep = "def f(a):\n    return " + " + ".join(["a"] * 700) + "\n"  # too deep for the AST visitor
    huge = "def f(a):\n" + "".join(f"    a = a * {k}\n" for k in range(MAX_COMPARED_TOKENS // 5))
    near = huge.replace("* 1\n", "* 7\n", 1)
    answers = {"alice": deep, "bob": deep, "carol": huge, "dave": near, "frank": huge}
    for student, source in answers.items():
        sub_of(results, student)["answers"]["gaussian_kl_diag"] = source
    rows = similarity_report(results, references={})
    # identical huge answers are still matched; near-identical huge ones are not compared
    assert [(r["student"], r["other"]) for r in rows] == [("carol", "frank")]


def test_copy_of_the_dgm_reference_is_flagged():
    reference = reference_sources("01-elbo")["gaussian_kl_diag"]
    renames = {"gaussian_kl": "my_kl", "diff": "delta", "log_ratio": "lr", "terms": "summands"}
    copied = re.sub(r"\b(gaussian_kl|diff|log_ratio|terms)\b", lambda m: renames[m.group(1)], reference)
    copied = copied.replace('r"""KL(q', 'r"""my own KL(q') + "# written from scratch\n"
    assert copied != reference
    results = make_results()
    sub_of(results, "carol")["answers"]["gaussian_kl_diag"] = copied
    rows = similarity_report(results, stubs={"gaussian_kl_diag": STUB})  # references: the dgm sources
    assert {"task": "gaussian_kl_diag", "student": "carol", "other": REFERENCE, "similarity": 1.0} in rows
    assert not any(r["other"] == REFERENCE and r["student"] != "carol" for r in rows)


def test_rows_sorted_each_pair_once_and_threshold_respected():
    results = make_results()
    sub_of(results, "carol")["answers"]["gaussian_kl_diag"] = KL_ALICE.replace("log_ratio", "lr")
    sub_of(results, "carol")["answers"]["kl_monte_carlo"] = MC_ALICE.replace("0.5 * logvar_q", "0.25 * logvar_q")
    rows = similarity_report(results, references={}, threshold=0.9, stubs={"gaussian_kl_diag": STUB})
    pairs = [(r["task"], r["student"], r["other"]) for r in rows]
    assert len(pairs) == len(set(pairs))
    assert all(r["student"] < r["other"] for r in rows)
    assert set(pairs) == {("gaussian_kl_diag", "alice", "bob"), ("gaussian_kl_diag", "alice", "carol"),
                          ("gaussian_kl_diag", "bob", "carol"), ("kl_monte_carlo", "alice", "carol")}
    assert rows == sorted(rows, key=lambda r: (r["task"], -r["similarity"]))
    mc = next(r for r in rows if r["task"] == "kl_monte_carlo")
    assert 0.9 <= mc["similarity"] < 1.0
    strict = similarity_report(results, references={}, threshold=mc["similarity"] + 1e-9,
                               stubs={"gaussian_kl_diag": STUB})
    assert not any(r["task"] == "kl_monte_carlo" for r in strict)


def random_answer(rng: random.Random) -> str:
    """A ~50-token function; constants, operators and calls drawn at random."""
    ops, fns = ["+", "-", "*", "/"], ["torch.exp", "torch.log", "torch.sqrt", "torch.tanh", "torch.sigmoid", "abs"]
    lines = ["def f(a, b, c):"]
    for k in range(3):
        lines.append(f"    x{k} = {rng.choice(fns)}(a {rng.choice(ops)} {rng.randint(1, 99)}) {rng.choice(ops)} b")
    lines.append(f"    return x0 {rng.choice(ops)} x1 {rng.choice(ops)} x2 - c")
    return "\n".join(lines) + "\n"


def many_students(n: int, seed: int, near: int = 0) -> dict:
    """``n`` students with distinct answers to one task "f"; the last ``near`` are copies of earlier
    ones with one constant changed (similarity about 0.98)."""
    rng = random.Random(seed)
    answers: list[str] = []
    while len(answers) < n:
        if len(answers) < n - near:
            a = random_answer(rng)
        else:
            a = re.sub(r"\d+", str(rng.randint(100, 10**6)), rng.choice(answers[:n - near]), count=1)
        if a not in answers:
            answers.append(a)
    subs = [{"student_id": f"s{i:03d}", "status": "graded", "reasons": [], "scores": {"f": 1.0}, "total": 1.0,
             "max_total": 1.0, "seconds": 1.0, "answers": {"f": a}, "cells": []} for i, a in enumerate(answers)]
    return {"format": "dgm-grading-results/1", "assignment": "x", "seed": "1",
            "tasks": [make_task("f", 1)], "submissions": subs}


def test_pruning_loses_no_pair():
    results = many_students(60, seed=7, near=10)
    rows = similarity_report(results, references={}, threshold=0.85)
    texts = {s["student_id"]: normalise(s["answers"]["f"]) for s in results["submissions"]}

    def ordered(a: str, b: str) -> float:  # the report's order: fewer tokens first, then the smaller text
        first, second = sorted((texts[a], texts[b]), key=lambda t: (len(tokens(t)), t))
        return similarity(first, second)

    brute = {(a, b): ordered(a, b) for a, b in itertools.combinations(sorted(texts), 2)}
    want = {pair for pair, s in brute.items() if s >= 0.85}
    assert want  # the data has near pairs
    assert {(r["student"], r["other"]) for r in rows} == want
    assert all(r["similarity"] == brute[(r["student"], r["other"])] for r in rows)


@pytest.mark.timeout(300)  # a hang guard only; it takes about a second
def test_200_students_compare_few_pairs_exactly(monkeypatch):
    """What makes the report fast, counted rather than timed (a loaded machine must not fail the
    suite): of the 19,900 pairs of 200 students, the cheap bounds leave only a few for difflib's
    exact ratio (756 with this seed; all of them without the pruning), and every near copy is found."""
    results = many_students(200, seed=11, near=40)
    assert 35 <= len(tokens(normalise(results["submissions"][0]["answers"]["f"]))) <= 60
    exact = []

    def counted(a: str, b: str) -> float:
        exact.append((a, b))
        return similarity(a, b)

    monkeypatch.setattr(similar, "similarity", counted)
    rows = similarity_report(results, references={})
    assert len(rows) >= 40  # every near copy is found
    pairs = 200 * 199 // 2
    assert 40 <= len(exact) <= pairs // 10, f"{len(exact)} exact comparisons of {pairs} pairs"


def test_similarity_csv_and_html():
    results = make_results()
    hostile = KL_ALICE.replace("1.0 - log_ratio", f"len('{SCRIPT}{DROP}') - log_ratio")
    assert hostile != KL_ALICE
    sub_of(results, "bob")["answers"]["gaussian_kl_diag"] = hostile
    sub_of(results, "alice")["answers"]["gaussian_kl_diag"] = hostile
    rows = similarity_report(results, references={}, stubs={"gaussian_kl_diag": STUB})
    parsed = list(csv.DictReader(io.StringIO(similarity_csv(rows))))
    assert parsed == [{"task": "gaussian_kl_diag", "student": "alice", "other": "bob", "similarity": "1.000"}]
    page = similarity_html(rows, results, references={})
    assert SCRIPT in "".join(assert_inert(page).text) and "<script" not in page
    assert page.count(html.escape(normalise(hostile))) == 2  # side by side
    assert "1.000" in page


def test_similarity_html_shows_the_reference_text():
    results = make_results()
    rows = [{"task": "gaussian_kl_diag", "student": "alice", "other": REFERENCE, "similarity": 0.95}]
    page = similarity_html(rows, results, references={"gaussian_kl_diag": KL_CAROL})
    assert html.escape(normalise(KL_CAROL)) in page and html.escape(normalise(KL_ALICE)) in page


def test_reference_sources_of_every_assignment():
    assert {a for a, chapter in chapters().items() if chapter.references()} == {"01-elbo", "02-em", "03-vaes",
                                                                                 "04-flows", "05-gans", "06-score",
                                                                                 "07-diffusion", "08-simsiam"}
    expected = {
        "01-elbo": {"gaussian_kl_diag", "kl_monte_carlo", "lg_posterior", "lg_elbo", "mixture_responsibilities"},
        "02-em": {"gmm_e_step", "m_step_spherical", "kmeans_step", "ppca_fit"},
        "03-vaes": {"gaussian_kl", "reparameterize", "bernoulli_log_likelihood", "iwae_bound"},
        "04-flows": {"affine_coupling_forward", "affine_coupling_inverse", "rescaled_bits_per_dim", "made_masks"},
        "06-score": {"discrete_inverse_cdf", "mh_log_acceptance", "mh_step", "dsm_loss"},
        "05-gans": {"gan_losses", "optimal_discriminator", "jsd_from_discriminator",
                    "log_density_from_discriminator", "gradient_penalty"},
        "07-diffusion": {"q_sample_closed_form", "posterior_mean_variance", "p_sample_step", "vlb_weights",
                         "optimal_eps"},
        "08-simsiam": {"simsiam_objective", "stopgrad_flow", "hessian_no_stopgrad", "effective_rank"},
    }
    for assignment, tasks in expected.items():
        sources = reference_sources(assignment)
        assert set(sources) == tasks
        for task, source in sources.items():
            assert source.startswith("def "), (assignment, task)  # dedented, so it parses
            assert len(tokens(normalise(source))) >= MIN_TOKENS, (assignment, task)
    gan = reference_sources("05-gans")["gan_losses"]
    assert "def discriminator_loss(" in gan and "def generator_loss_nonsaturating(" in gan
    assert "def q_sample(" in reference_sources("07-diffusion")["q_sample_closed_form"]
    assert "def e_step(" in reference_sources("02-em")["gmm_e_step"]
    assert "def importance_log_weights(" in reference_sources("03-vaes")["iwae_bound"]
    assert "def made_masks(" in reference_sources("04-flows")["made_masks"]
    assert "def metropolis_hastings(" in reference_sources("06-score")["mh_step"]
    assert "def hessian_operator(" in reference_sources("08-simsiam")["hessian_no_stopgrad"]
    assert reference_sources("no-such-assignment") == {}


# --------------------------------------------------------------------------------------------
# Summary and the whole folder
# --------------------------------------------------------------------------------------------


def test_format_summary():
    text = format_summary(make_results(), seconds=12.34)
    lines = text.splitlines()
    assert lines[0] == "Assignment 01-elbo: 6 submission(s)"
    kl = next(line for line in lines if line.startswith("gaussian_kl_diag"))
    assert kl.split() == ["gaussian_kl_diag", "3", "1.40", "0", "3", "2"]
    assert any(line.startswith("elbo_decomposition") and "graded by hand (4 waiting)" in line for line in lines)
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert total.split()[-5:] == ["8", "4.10", "0", "8", "1"]
    assert "status: graded 3, timeout 1, out-of-memory 0, crashed 1, invalid 1" in lines
    assert f"  dave: crashed — the kernel died {SCRIPT} {DROP}" in lines
    assert "  eve: invalid — not a notebook: truncated JSON" in lines
    assert not any(line.startswith(("  alice", "  bob")) for line in lines)
    frank = next(line for line in lines if line.startswith("  frank: timeout — "))
    assert "\x1b" not in text and "\\u001b" in frank
    assert lines[-1].startswith("time: 12.3 s in all")
    assert "time:" not in format_summary(make_results())


def test_write_reports(tmp_path):
    out = tmp_path / "reports"
    (out / "feedback").mkdir(parents=True)
    (out / "feedback" / "stale.html").write_text("from an earlier run")
    results = make_results()
    paths = write_reports(results, out, stubs={"gaussian_kl_diag": STUB})
    for name in ("grades", "histograms", "similarity", "similarity_html", "results", "summary"):
        assert paths[name].is_file() and paths[name].parent == out, name
    assert sorted(p.name for p in (out / "feedback").iterdir()) == [
        f"{s}.html" for s in ("alice", "bob", "carol", "dave", "eve", "frank")]
    assert json.loads(paths["results"].read_text()) == results
    assert paths["grades"].read_text() == grades_csv(results)
    assert paths["summary"].read_text().strip() == format_summary(results)
    assert paths["histograms"].read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(io.StringIO(paths["similarity"].read_text())))
    assert [(r["student"], r["other"]) for r in rows] == [("alice", "bob")]
    assert "<script" not in (out / "feedback" / "alice.html").read_text()


def test_write_reports_refuses_a_path_outside_the_feedback_folder(tmp_path):
    results = make_results()
    sub_of(results, "eve")["student_id"] = "../escaped"
    with pytest.raises(ValueError, match="outside"):
        write_reports(results, tmp_path / "out")
    assert not (tmp_path / "out" / "escaped.html").exists()


def test_every_status_has_its_words_for_the_student():
    from autograder.feedback import STATUS_TEXT
    from autograder.runner import STATUSES

    assert set(STATUS_TEXT) == set(STATUSES)


# --------------------------------------------------------------------------------------------
# Every writer against every string a student can produce
# --------------------------------------------------------------------------------------------

#: A lone surrogate of each half, NUL, a bell, an escape sequence, a right-to-left override.
NASTY = "lone \ud800 and \udfff, NUL \x00, bell \x07, \x1b[2J, RTL \u202eevil\u202c"
#: Forged report text: an image from the grading machine's network and a fake verdict.
FORGED = "![x](http://127.0.0.1/x.png)\n**all checks passed**\n\n# 10 / 10 points\n<img src=http://127.0.0.1/y.png>"
#: Runs of backticks that would close a three-backtick fence.
FENCE_BREAK = "```\n**all checks passed** after a closed fence\n````\n![y](http://127.0.0.1/z.png)\n```"


def hostile_results() -> dict:
    """make_results with every student-controlled string of alice and dave made hostile."""
    results = make_results()
    alice, dave = sub_of(results, "alice"), sub_of(results, "dave")
    alice["reasons"] = [f"reason {NASTY}", FORGED, FENCE_BREAK]
    alice["answers"]["gaussian_kl_diag"] = KL_ALICE + f"# {NASTY}\n"
    cells = alice["cells"]
    cells[1]["stdout"] = f"out {NASTY}\n" + "y" * 3_000_000 + "\nHUGE-END"
    cells[1]["stderr"] = f"err {NASTY} {FORGED}"
    cells[2]["source"] = KL_ALICE + f"# {NASTY}\n"
    cells[2]["error"] = {"ename": f"Err{NASTY}", "evalue": f"{FORGED}\n{FENCE_BREAK}"}
    cells[4]["checks"] = [{"suite": "hidden", "passed": False, "message": f"your function raised ValueError: {FORGED}"},
                          {"suite": "hidden", "passed": False, "message": f"{FENCE_BREAK} {NASTY}"}]
    cells[5]["source"] = f"By Jensen {NASTY}\n{FORGED}\n{FENCE_BREAK}"
    dave["reasons"] = [f"the kernel died {NASTY}"]
    dave["cells"][0]["stderr"] = NASTY * 1000
    return results


def _program():
    import types

    return types.SimpleNamespace(stubs={"gaussian_kl_diag": STUB})


def _markdown_of(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def test_every_writer_survives_every_string_a_student_can_produce(tmp_path):
    from autograder.grade import write_all
    from autograder.shards import merge

    results = hostile_results()
    results.update(shard=[0, 1], limits={"cell_timeout": 60.0, "notebook_budget": 180.0})  # as a run writes it
    paths, summary = write_all(results, tmp_path / "out", _program(), seconds=3.0)
    assert "NOT written" not in summary
    out = tmp_path / "out"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in (out / "feedback").iterdir()} == {f"{s['student_id']}.html" for s in results["submissions"]}
    assert {p.name for p in (out / "autograded").iterdir()} == {"alice.ipynb", "dave.ipynb"}  # the others: no cells
    for path in files:
        if path.suffix != ".png":
            text = path.read_bytes().decode("utf-8")  # strict: every file is valid UTF-8
            assert "\\ud800" not in text.lower() and "\\udfff" not in text.lower(), path
    # the surrogates became U+FFFD; everything else a student wrote is kept, as text
    page = (out / "feedback" / "alice.html").read_text(encoding="utf-8")
    assert_inert(page)
    assert html.escape("lone \ufffd and \ufffd, NUL \x00, bell \x07, \x1b[2J, RTL \u202eevil\u202c") in page
    assert "HUGE-END" not in page and "more characters not shown" in page
    saved = json.loads(paths["results"].read_text(encoding="utf-8"))
    assert sub_of(saved, "alice")["reasons"][0] == "reason " + NASTY.replace("\ud800", "\ufffd").replace("\udfff", "\ufffd")
    assert sub_of(saved, "alice")["cells"][1]["stdout"].endswith("HUGE-END")
    nb = nbformat.read(out / "autograded" / "alice.ipynb", as_version=4)
    assert nb.cells[-1].source.count("\ufffd") == 2
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO(paths["grades"].read_text(encoding="utf-8")))}
    assert "\x00" not in rows["alice"]["reason"] and "\x1b" not in rows["alice"]["reason"]
    printed = summary + paths["summary"].read_text(encoding="utf-8")
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in printed if ch != "\n")
    summary_line = next(line for line in summary.splitlines() if line.startswith("  alice"))
    assert len(summary_line) < 700  # reasons cut for the terminal
    # results.json reads back, and merging it writes the same reports
    merged = merge([out])
    again = tmp_path / "again"
    write_all(merged, again, _program())
    assert (again / "grades.csv").read_text() == paths["grades"].read_text()
    assert (again / "feedback" / "alice.html").read_text() == page


def test_autograded_markdown_shows_student_text_only_inside_fences(tmp_path):
    """A forged verdict or image in a message, a reason, an error or a written answer is shown as
    code in the instructor's notebook: rendered as CommonMark, nothing of it is an image, a link,
    bold text or a heading."""
    markdown_it = pytest.importorskip("markdown_it")
    from autograder.grade import write_autograded

    write_autograded(hostile_results(), tmp_path)
    nb = nbformat.read(tmp_path / "autograded" / "alice.ipynb", as_version=4)
    md = markdown_it.MarkdownIt("commonmark")
    forged_parts = ("all checks passed", "127.0.0.1", "10 / 10 points")
    seen = {part: 0 for part in forged_parts}
    for source in _markdown_of(nb):
        if SCRIPT in source and "## Task 1" in source:
            continue  # the instructors' own markdown cell
        tokens = md.parse(source)
        for token in tokens:
            inline = token.children or []
            assert not any(t.type in ("image", "link_open", "html_inline") for t in inline), source
            assert token.type not in ("html_block",), source
            text = token.content if token.type in ("fence", "code_block") else ""
            for part in forged_parts:
                seen[part] += text.count(part)
            if token.type == "inline":
                for part in forged_parts:
                    assert part not in token.content, f"{part!r} outside a fence in {source!r}"
    assert all(seen.values()), seen
    test_cell = next(c for c in nb.cells if c.get("metadata", {}).get("dgm_grading", {}).get("grade_id")
                     == "test_gaussian_kl_diag_hidden")
    html_out = md.render(test_cell.source)
    assert "<img" not in html_out and "<strong>all checks passed" not in html_out
    assert html_out.count("✘ FAILED") == 2 and "passed" not in html_out.replace("all checks passed", "")
    # the answer's error is an output of its code cell, shown as text (never markdown)
    answer = next(c for c in nb.cells if c.cell_type == "code" and c.metadata.get("dgm_grading", {}).get("grade_id")
                  == "gaussian_kl_diag")
    error = next(o for o in answer.outputs if o.output_type == "error")
    assert error.traceback == [f"{error.ename}: {error.evalue}"] and "127.0.0.1" in error.evalue


def test_one_students_report_failing_never_stops_the_others(tmp_path, monkeypatch):
    from autograder import grade, reports

    real_page, real_nb = reports.feedback_html, grade.autograded_notebook

    def page(results, sub):
        if sub["student_id"] == "alice":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real_page(results, sub)

    def notebook(rec):
        if rec["student_id"] == "alice":
            raise RecursionError("maximum recursion depth exceeded")
        return real_nb(rec)

    monkeypatch.setattr(reports, "feedback_html", page)
    monkeypatch.setattr(grade, "autograded_notebook", notebook)
    _, summary = grade.write_all(make_results(), tmp_path, _program())
    assert sorted(p.stem for p in (tmp_path / "feedback").iterdir()) == ["bob", "carol", "dave", "eve", "frank"]
    assert sorted(p.stem for p in (tmp_path / "autograded").iterdir()) == ["dave"]
    assert "reports NOT written" in summary
    assert "feedback page of 'alice' not written (UnicodeEncodeError" in summary
    assert "graded notebook of 'alice' not written (RecursionError" in summary
    assert "reports NOT written" in (tmp_path / "summary.txt").read_text()


def test_ids_differing_only_in_case_get_report_files_of_their_own(tmp_path):
    from autograder.grade import write_autograded
    from autograder.results import report_names

    results = make_results()
    twin = copy.deepcopy(sub_of(results, "alice"))
    twin["student_id"], twin["total"] = "ALICE", 0.0
    twin["cells"][0] = {**twin["cells"][0], "source": "the twin's notebook"}
    results["submissions"].append(twin)
    write_reports(results, tmp_path)
    write_autograded(results, tmp_path)
    names = report_names(s["student_id"] for s in results["submissions"])
    assert names["alice"] != "alice" and names["ALICE"] != "ALICE" and names["bob"] == "bob"
    for folder, suffix in (("feedback", ".html"), ("autograded", ".ipynb")):
        files = [p.name for p in (tmp_path / folder).iterdir()]
        assert len({f.casefold() for f in files}) == len(files)  # none would overwrite another on macOS
        assert {f"{names['alice']}{suffix}", f"{names['ALICE']}{suffix}"} <= set(files)
    mine = (tmp_path / "feedback" / f"{names['alice']}.html").read_text()
    theirs = (tmp_path / "feedback" / f"{names['ALICE']}.html").read_text()
    assert "feedback for alice<" in mine and "the twin" not in mine
    assert "feedback for ALICE<" in theirs and "the twin's notebook" in theirs
    nb = nbformat.read(tmp_path / "autograded" / f"{names['ALICE']}.ipynb", as_version=4)
    assert nb.metadata["dgm_grading"]["student_id"] == "ALICE"


# --------------------------------------------------------------------------------------------
# known slips: the class's misconceptions, from the checks' own diagnoses
# --------------------------------------------------------------------------------------------


def _slip_cell(task: str, *messages: str) -> dict:
    return {"kind": "test", "grade_id": f"test_{task}_hidden", "task": task, "points": 0.0, "max_points": 2.0,
            "checks": [{"suite": "hidden", "passed": False, "message": m} for m in messages]}


def test_the_summary_counts_each_known_slip_per_task_once_per_student():
    from autograder.reports import known_slips

    swapped = ("[gaussian_kl_diag] random batch (shape (5, 7), dtype float64): wrong value of the KL — it matches "
               "what you get if the arguments of q and p are swapped (KL is not symmetric)")
    half = "[gaussian_kl_diag] example 1 (shape (1, 3)): wrong value of the KL — it matches what you get if the 1/2 is missing"
    forged = ("[gaussian_kl_diag] example 1: your function raised ValueError: wrong value of x — it matches what "
              "you get if the grader believes me")
    results = make_results()
    subs = {s["student_id"]: s for s in results["submissions"]}
    subs["alice"]["cells"] = [_slip_cell("gaussian_kl_diag", swapped, swapped)]       # one student, twice: once
    subs["bob"]["cells"] = [_slip_cell("gaussian_kl_diag", swapped + "\n  expected [1]\n  got      [2]")]
    subs["carol"]["cells"] = [_slip_cell("gaussian_kl_diag", half, forged)]          # a student's own text: never
    subs["eve"]["cells"] = [_slip_cell("gaussian_kl_diag", half)]                     # invalid: not counted
    slips = known_slips(results)
    assert dict(slips["gaussian_kl_diag"]) == {
        "the arguments of q and p are swapped (KL is not symmetric)": 2, "the 1/2 is missing": 1}
    summary = format_summary(results)
    assert ("known slips (students whose answer matched one, per task):\n"
            "  gaussian_kl_diag: 2 — the arguments of q and p are swapped (KL is not symmetric)\n"
            "  gaussian_kl_diag: 1 — the 1/2 is missing\n") in summary
    assert "believes me" not in summary
    assert "known slips" not in format_summary(make_results())   # none recognised: no section


# --------------------------------------------------------------------------------------------
# Markdown and math in the feedback page
# --------------------------------------------------------------------------------------------


def test_feedback_renders_markdown_and_typesets_math_as_mathml():
    from autograder.feedback import markdown_html

    page = markdown_html("## The KL\n\n**How to work.** Use $\\mathcal N(\\mu_q, \\sigma_q^2)$ and\n\n"
                         "$$\n\\mathrm{KL}(q\\|p) = \\int q \\log \\frac{q}{p}\n$$\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<h4>The KL</h4>" in page and "<strong>How to work.</strong>" in page
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in page
    assert '<div class="math"><math xmlns="http://www.w3.org/1998/Math/MathML" display="block">' in page
    assert "<mfrac>" in page and "<msubsup>" in page and "$" not in page
    assert "<table>" in page and "<td>2</td>" in page


@pytest.mark.parametrize("hostile", [
    "<script>alert(1)</script>",
    "$\\text{<script>alert(1)</script>}$",
    "$\\text{&lt;img src=x onerror=alert(1)&gt;}$",
    "$$\\mathrm{<img src=x onerror=alert(1)>}$$",
    "![tracker](http://127.0.0.1/pixel.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
])
def test_markdown_and_math_never_become_markup(hostile):
    from autograder.feedback import markdown_html

    page = markdown_html(f"text {hostile} more")
    assert "<script" not in page and "<img" not in page and 'href="javascript' not in page, page
    assert "onerror=" not in page or "&lt;" in page, page


def test_a_formula_the_converter_cannot_read_stays_as_code():
    from autograder.feedback import math_html

    assert math_html("\\frac{a}{") == '<code class="math">\\frac{a}{</code>'
    assert math_html("x^2").startswith("<math ")


def test_a_written_answer_is_rendered_too():
    results = make_results()
    sub = sub_of(results, "alice")
    sub["cells"] = [{"kind": "manual", "grade_id": "elbo_decomposition", "max_points": 4.0,
                     "source": "By Jensen, $\\log p(x) \\ge \\mathbb E_q[\\log p(x, z) - \\log q(z)]$. <b>done</b>"}]
    page = feedback_html(results, sub)
    assert "<math" in page and "&lt;b&gt;done&lt;/b&gt;" in page
