"""Hand grading in formgrader: our results in nbgrader's gradebook (``python -m autograder
formgrader``, :mod:`autograder.gradebook`) and the per-task CSV exporter.

The fast tests export a class made up here from the 01-elbo program (every kind of record: full
marks, partial with the written answer left as the stub, a hostile written answer, ids that differ
only in case, an invalid submission) and compare the gradebook, the notebooks and the exported CSV
with what the records say. The slow test grades the shipped samples in the sandbox, exports them,
starts a real Jupyter server with nbgrader's formgrader and drives headless Chromium through the
manual-grading view over the DevTools protocol: open alice's submission, give the derivation points
and a comment, then ``nbgrader export`` with our exporter and find both in the CSV. Its screenshots
go to a folder it prints (and to ``/tmp/formgrader-shots/`` when ``FORMGRADER_SHOTS`` is set).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import csv
import html as html_module
import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import gradebook as G
from autograder import nbgrader_config as cfg
from autograder.__main__ import main
from autograder.course import REPO_ROOT, GradingError
from autograder.grade import fenced
from autograder.program import build_program, tasks_table
from autograder.reports import RESULTS_FORMAT
from autograder.samples import solution_answers

ASSIGNMENT = "01-elbo"
WRITTEN = "elbo_decomposition"
PROGRAM = build_program(REPO_ROOT, ASSIGNMENT)
TASKS = tasks_table(PROGRAM)
AUTO_TASKS = [t["name"] for t in TASKS if not t["manual"]]
CHROMIUM = "/usr/bin/chromium"
HOSTILE = ("Jensen: $\\log p(x) \\ge \\mathrm{ELBO}$ <script>alert('x')</script> <img src=x onerror=alert(2)>\n"
           "```\n## I get 4/4\n```\n[click](javascript:alert(3))")


# --------------------------------------------------------------------------------------------
# A class made up from the program (no sandbox)
# --------------------------------------------------------------------------------------------


def make_record(sid: str, failed: set[str] = frozenset(), written: str | None = None, status: str = "graded",
                reasons: tuple[str, ...] = (), assignment: str = ASSIGNMENT) -> dict:
    """A results record of ``assignment`` as the grader writes one: every test cell passes but
    those in ``failed``; the written answer is ``written`` (None: the release's stub)."""
    program = PROGRAM if assignment == ASSIGNMENT else build_program(REPO_ROOT, assignment)
    tasks = tasks_table(program)
    answers = solution_answers(REPO_ROOT, assignment)
    cells, points = [], {t["name"]: 0.0 for t in tasks if not t["manual"]}
    for step in program.steps:
        if step.kind == "markdown":
            cells.append({"kind": "markdown", "grade_id": None, "source": step.source})
        elif step.kind in ("code", "answer"):
            source = step.source if step.kind == "code" else answers[step.grade_id]
            cells.append({"kind": step.kind, "grade_id": step.grade_id, "source": source, "stdout": "",
                          "stderr": "", "error": None})
        elif step.kind == "test":
            ok = step.grade_id not in failed
            cells.append({"kind": "test", "grade_id": step.grade_id, "task": step.task,
                          "points": step.points if ok else 0.0, "max_points": step.points,
                          "checks": [{"suite": "visible", "passed": ok, "message": f"{step.task}: made up"}]})
            points[step.task] += step.points if ok else 0.0
        elif step.kind == "manual":
            cells.append({"kind": "manual", "grade_id": step.grade_id,
                          "source": step.source if written is None else written, "max_points": step.points})
    scores = {t["name"]: (0.0 if written is None else None) if t["manual"] else points[t["name"]] for t in tasks}
    return {"student_id": sid, "origin": f"{sid}.ipynb", "status": status, "reasons": list(reasons),
            "scores": scores, "total": sum(points.values()),
            "max_total": sum(t["max_points"] for t in tasks if not t["manual"]), "seconds": 1.0,
            "answers": {}, "cells": cells}


def invalid(sid: str) -> dict:
    """An invalid submission's record, as :func:`autograder.runner.invalid_record` writes it."""
    return {"student_id": sid, "origin": f"{sid}.ipynb", "status": "invalid",
            "reasons": ["not a notebook: the file is not valid JSON"], "scores": {t["name"]: 0.0 for t in TASKS},
            "total": 0.0, "max_total": sum(t["max_points"] for t in TASKS if not t["manual"]), "seconds": 0.0,
            "answers": {}, "cells": []}


def made_up_class() -> dict:
    subs = [
        make_record("alice", written="By Bayes' rule, $p(x,z) = p(z\\mid x)\\,p(x)$.\n\nHence the ELBO."),
        make_record("bob", failed={"test_lg_elbo_hidden", "test_lg_posterior_visible", "test_lg_posterior_hidden",
                                   "test_concept_two_image_elbo"}),
        make_record("Ada_Lovelace", failed={"test_kl_monte_carlo_hidden"}, written=HOSTILE),
        make_record("victim", written="mine"),
        make_record("victim_2", failed={"test_gaussian_kl_diag_visible"}, written="theirs",
                    status="timeout", reasons=("kl_derivation_steps ran past the 60 s limit",)),
        invalid("carol"),
    ]
    return {"format": RESULTS_FORMAT, "assignment": ASSIGNMENT, "seed": "7", "shard": [0, 1],
            "limits": {"cell_timeout": 60.0, "notebook_budget": 180.0}, "tasks": copy.deepcopy(TASKS),
            "submissions": subs}


def write_out(folder: Path, results: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(results, out folder, course folder, report) of one export of the made-up class; tests that
    change the course work on a copy (:func:`course_copy`)."""
    results = made_up_class()
    out = write_out(tmp_path_factory.mktemp("formgrader") / "out", results)
    report = G.export_course(out)
    return results, out, report.course, report


@pytest.fixture
def course_copy(exported, tmp_path):
    """A copy of the exported course folder and of its output folder, for one test to change."""
    results, out, course, _ = exported
    out2 = write_out(tmp_path / "out", copy.deepcopy(results))
    shutil.copytree(course, out2 / G.DEFAULT_COURSE)
    return copy.deepcopy(results), out2, out2 / G.DEFAULT_COURSE


def grades_of(course: Path) -> dict[tuple[str, str], dict]:
    """(student, cell) → every field of its grade, and (student, cell, "comment") → its comment."""
    state = {}
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            for nb in sub.notebooks:
                for g in nb.grades:
                    state[(sub.student.id, g.name)] = {"auto": g.auto_score, "manual": g.manual_score,
                                                      "extra": g.extra_credit, "needs": g.needs_manual_grade}
                for c in nb.comments:
                    state[(sub.student.id, c.name, "comment")] = {"auto": c.auto_comment, "manual": c.manual_comment}
    return state


def csv_rows(text: str) -> dict[str, dict[str, str]]:
    return {row["student_id"]: row for row in csv.DictReader(io.StringIO(text))}


def exported_csv(course: Path) -> dict[str, dict[str, str]]:
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        return csv_rows(G.export_csv(gb))


def set_hand_grade(course: Path, student: str, cell: str, score: float, comment: str | None = None) -> None:
    """What formgrader's API does when an instructor saves a score and a comment."""
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        grade = gb.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student)
        grade.manual_score = score
        grade.needs_manual_grade = False
        if comment is not None:
            gb.find_comment(cell, ASSIGNMENT, ASSIGNMENT, student).manual_comment = comment
        gb.db.commit()


# --------------------------------------------------------------------------------------------
# Points per cell
# --------------------------------------------------------------------------------------------


def test_split_points_uses_the_graders_cells_and_always_adds_up():
    cells = [("visible", 1.0), ("hidden", 2.0)]
    assert G.split_points(2.0, cells, {"visible": 0.0, "hidden": 2.0}) == {"visible": 0.0, "hidden": 2.0}
    assert G.split_points(1.0, cells, {"visible": 1.0, "hidden": 0.0}) == {"visible": 1.0, "hidden": 0.0}
    # per-cell points that do not add up to the task's (or are missing): filled in order
    assert G.split_points(2.0, cells, {"visible": 1.0, "hidden": 0.0}) == {"visible": 1.0, "hidden": 1.0}
    assert G.split_points(1.5, cells) == {"visible": 1.0, "hidden": 0.5}
    assert G.split_points(0.0, cells) == {"visible": 0.0, "hidden": 0.0}
    assert G.split_points(3.0, cells, {"visible": 5.0, "hidden": -2.0}) == {"visible": 1.0, "hidden": 2.0}
    for bad in (3.5, -1.0, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 3"):
            G.split_points(bad, cells)


def test_every_student_is_in_the_gradebook_with_our_points(exported):
    results, _, course, report = exported
    state = grades_of(course)
    ids = [s["student_id"] for s in results["submissions"]]
    assert sorted(report.students) == sorted(ids)
    assert sorted({k[0] for k in state}) == sorted(ids)          # victim and victim_2: two students
    cells = G.task_cells(PROGRAM)
    for sub in results["submissions"]:
        sid = sub["student_id"]
        for task in TASKS:
            values = [state[(sid, gid)]["auto"] for gid, _ in cells[task["name"]]]
            expected = sub["scores"][task["name"]]
            if expected is None:
                assert values == [None] and state[(sid, WRITTEN)]["needs"], sid
            else:
                assert sum(values) == pytest.approx(expected), (sid, task["name"])
        # each test cell holds what its checks earned
        for cell in sub["cells"]:
            if cell["kind"] == "test":
                assert state[(sid, cell["grade_id"])]["auto"] == cell["points"]
                assert state[(sid, cell["grade_id"])]["needs"] is False
    assert state[("bob", WRITTEN)] == {"auto": 0.0, "manual": None, "extra": None, "needs": False}
    assert state[("bob", WRITTEN, "comment")]["auto"] == G.NO_RESPONSE
    assert state[("carol", WRITTEN)]["auto"] == 0.0 and state[("carol", "test_lg_elbo_hidden")]["auto"] == 0.0
    assert state[("alice", WRITTEN, "comment")]["auto"] is None
    assert report.waiting == 4 and report.new_submissions == sorted(ids)


def test_notebooks_in_nbgraders_layout_hold_the_students_own_text(exported):
    results, _, course, _ = exported
    source = nbformat.read(REPO_ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    source_meta = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in source.cells
                   if "nbgrader" in c.metadata}
    for sub in results["submissions"]:
        path = course / "autograded" / sub["student_id"] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        graded = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
        # every graded or answer cell of the source, with its nbgrader metadata as the source has it
        wanted = {gid for gid, m in source_meta.items() if m.get("grade") or m.get("solution")}
        assert set(graded) == wanted
        for gid, cell in graded.items():
            assert dict(cell.metadata["nbgrader"]) == source_meta[gid]
        written = graded[WRITTEN]
        assert written.cell_type == "markdown"
        if sub["cells"]:
            text = next(c["source"] for c in sub["cells"] if c["kind"] == "manual")
            assert written.source == fenced(text)
            fence = written.source.split("\n", 1)[0][: -len("text")]
            assert written.source[len(fence) + len("text\n"): -len(fence) - 1] == text
            for cell in sub["cells"]:
                if cell["kind"] == "answer":
                    assert graded[cell["grade_id"]].source == cell["source"]
        else:
            assert "nothing could be read" in written.source.lower()
    hostile = nbformat.read(course / "autograded" / "Ada_Lovelace" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    preview = [o for c in hostile.cells if c.cell_type == "code" for o in c.outputs if "text/html" in o.get("data", {})]
    assert len(preview) == 1
    html = preview[0]["data"]["text/html"]
    assert "<math" in html and "<script" not in html and "<img" not in html and "href=" not in html


def test_formgraders_own_page_shows_hostile_text_as_text(exported):
    """The page formgrader serves for a submission, made by nbconvert with nbgrader's formgrade
    template exactly as the formgrader extension sets it up."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    _, _, course, _ = exported
    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {"assignment_id": ASSIGNMENT, "notebook_id": ASSIGNMENT, "submission_id": "x", "index": 0,
                 "total": 1, "base_url": "", "student": "Ada_Lovelace", "last_name": None, "first_name": None,
                 "notebook_path": "autograded/Ada_Lovelace/01-elbo/01-elbo.ipynb"}
    path = course / "autograded" / "Ada_Lovelace" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    page, _ = HTMLExporter(config=config).from_filename(str(path), resources=resources)
    assert f'id="{WRITTEN}"' in page and f'id="{WRITTEN}-comment"' in page
    assert "<script>alert('x')</script>" in html_module.unescape(page)   # the text is there...
    for markup in ("<script>alert", "<img src=x", 'href="javascript:', "<h2>I get 4/4"):
        assert markup not in page                                      # ...never as markup


def test_export_csv_has_every_task_of_every_student(exported):
    results, _, course, _ = exported
    rows = exported_csv(course)
    assert sorted(rows) == sorted(s["student_id"] for s in results["submissions"])
    for sub in results["submissions"]:
        row = rows[sub["student_id"]]
        assert row["assignment"] == ASSIGNMENT and row["submitted"] == "yes"
        for task in AUTO_TASKS:
            assert float(row[task]) == sub["scores"][task], (sub["student_id"], task)
        assert float(row["score"]) == sub["total"] + (sub["scores"][WRITTEN] or 0.0)
        assert float(row["max_score"]) == sum(t["max_points"] for t in TASKS)
        if sub["scores"][WRITTEN] is None:
            assert row[WRITTEN] == "" and row["waiting"] == WRITTEN
        else:
            assert float(row[WRITTEN]) == 0.0 and row["waiting"] == ""
    assert rows["bob"][f"{WRITTEN}_comment"] == G.NO_RESPONSE
    assert rows["alice"][f"{WRITTEN}_comment"] == "" and rows["alice"]["other_comments"] == ""


def test_reexport_is_idempotent_and_keeps_what_instructors_entered(course_copy):
    results, out, course = course_copy
    comment = "Part 2: say why KL ≥ 0 (Gibbs), -1.\nOtherwise clear."
    set_hand_grade(course, "alice", WRITTEN, 3.0, comment)
    set_hand_grade(course, "bob", "test_lg_elbo_hidden", 1.0, None)   # an override of an automatic cell
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        gb.find_comment("lg_elbo", ASSIGNMENT, ASSIGNMENT, "bob").manual_comment = "close"
        gb.db.commit()
    before = grades_of(course)
    files = {p: p.read_bytes() for p in sorted((course / "autograded").rglob("*.ipynb"))}

    again = G.export_course(out)
    assert grades_of(course) == before
    assert {p: p.read_bytes() for p in sorted((course / "autograded").rglob("*.ipynb"))} == files
    assert again.new_submissions == [] and again.flagged == [] and again.hand_scores_kept == 2
    rows = exported_csv(course)
    assert rows["alice"][WRITTEN] == "3" and rows["alice"][f"{WRITTEN}_comment"] == comment
    assert rows["alice"]["waiting"] == "" and float(rows["alice"]["score"]) == results["submissions"][0]["total"] + 3
    assert rows["bob"]["lg_elbo"] == "2" and rows["bob"]["other_comments"] == "lg_elbo: close"

    # a regrade: alice handed in a new written answer, bob's lg_elbo now passes every check
    subs = {s["student_id"]: s for s in results["submissions"]}
    subs["alice"] = make_record("alice", written="A new derivation.")
    subs["bob"] = make_record("bob", failed={"test_lg_posterior_visible", "test_lg_posterior_hidden",
                                             "test_concept_two_image_elbo"})
    results["submissions"] = list(subs.values())
    write_out(out, results)
    third = G.export_course(out)
    state = grades_of(course)
    assert state[("alice", WRITTEN)] == {"auto": None, "manual": 3.0, "extra": None, "needs": True}
    assert state[("alice", WRITTEN, "comment")]["manual"] == comment
    assert state[("bob", "test_lg_elbo_hidden")] == {"auto": 2.0, "manual": 1.0, "extra": None, "needs": True}
    assert sorted(third.flagged) == ["alice: elbo_decomposition", "bob: test_lg_elbo_hidden"]
    rows = exported_csv(course)
    assert rows["alice"]["waiting"] == WRITTEN and rows["bob"]["waiting"] == "lg_elbo"
    # nothing else moved: every other student's grades are as they were
    assert {k: v for k, v in state.items() if k[0] not in ("alice", "bob")} == \
        {k: v for k, v in before.items() if k[0] not in ("alice", "bob")}


def test_a_student_missing_from_new_results_is_kept(course_copy):
    results, out, course = course_copy
    results["submissions"] = [s for s in results["submissions"] if s["student_id"] != "carol"]
    write_out(out, results)
    report = G.export_course(out)
    assert report.not_in_results == ["carol"]
    assert ("carol", WRITTEN) in grades_of(course)
    assert "carol" in exported_csv(course)


def test_source_cells_follow_the_solution_but_graded_cells_must_not_change(course_copy):
    _, out, course = course_copy
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        gb.add_source_cell("a_removed_cell", ASSIGNMENT, ASSIGNMENT, cell_type="code", locked=True, source="x",
                           checksum=None)
    before = grades_of(course)
    G.export_course(out)
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        names = {c.name for c in gb.find_notebook(ASSIGNMENT, ASSIGNMENT).source_cells}
    assert "a_removed_cell" not in names and names == set(G.recorded_cells(REPO_ROOT, ASSIGNMENT).source)
    assert grades_of(course) == before
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        gb.add_grade_cell("test_a_new_task", ASSIGNMENT, ASSIGNMENT, max_score=1.0, cell_type="code")
    with pytest.raises(GradingError, match="other graded or answer cells for 01-elbo .* new --course"):
        G.export_course(out)


def test_one_course_for_two_assignments_gives_one_csv(course_copy, tmp_path):
    results, _, course = course_copy
    gans = make_record("alice", failed={"test_gan_losses_hidden"}, written="D* = p/(p+q)", assignment="05-gans")
    other = {**made_up_class(), "assignment": "05-gans", "tasks": tasks_table(build_program(REPO_ROOT, "05-gans")),
             "submissions": [gans]}
    G.export_course(write_out(tmp_path / "gans", other), course)
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        columns, rows = G.export_table(gb)
    pairs = [(r["assignment"], r["student_id"]) for r in rows]
    ids = sorted(s["student_id"] for s in results["submissions"])
    assert pairs == [(ASSIGNMENT, sid) for sid in ids] + [("05-gans", sid) for sid in ids]
    by_pair = {(r["assignment"], r["student_id"]): r for r in rows}
    assert all(by_pair[("05-gans", sid)]["submitted"] == "no" for sid in ids if sid != "alice")
    row = by_pair[("05-gans", "alice")]
    assert row["submitted"] == "yes" and row["gan_optimal_discriminator"] == ""
    assert row["waiting"] == "gan_optimal_discriminator" and float(row["score"]) == gans["total"]
    assert {"gan_optimal_discriminator_comment", f"{WRITTEN}_comment"} <= set(columns)
    assert by_pair[(ASSIGNMENT, "alice")]["gan_optimal_discriminator"] == ""


def test_bad_folders_are_refused_with_what_was_expected(tmp_path, exported):
    with pytest.raises(GradingError, match="is not a folder"):
        G.load_results(tmp_path / "nope")
    with pytest.raises(GradingError, match="has no results.json"):
        G.load_results(tmp_path)
    results = made_up_class()
    write_out(tmp_path / "shard", {**results, "shard": [1, 4]})
    with pytest.raises(GradingError, match="shard 1/4 only: merge"):
        G.load_results(tmp_path / "shard")
    bad = copy.deepcopy(results)
    bad["submissions"][0]["student_id"] = "../alice"
    with pytest.raises(GradingError, match="'../alice' cannot name a folder"):
        G.load_results(write_out(tmp_path / "bad", bad))
    twice = copy.deepcopy(results)
    twice["submissions"].append(copy.deepcopy(twice["submissions"][0]))
    with pytest.raises(GradingError, match="'alice' appears twice"):
        G.load_results(write_out(tmp_path / "twice", twice))
    cased = copy.deepcopy(results)   # one folder on macOS and Windows: never two students' answers in it
    cased["submissions"].append({**copy.deepcopy(cased["submissions"][0]), "student_id": "ALICE"})
    with pytest.raises(GradingError, match="'alice' and 'ALICE' differ only in case"):
        G.load_results(write_out(tmp_path / "cased", cased))
    other = copy.deepcopy(results)
    other["tasks"][0]["max_points"] = 9.0
    with pytest.raises(GradingError, match="other tasks than solutions/01-elbo"):
        G.export_course(write_out(tmp_path / "other", other))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(GradingError, match="holds other files and no course of ours"):
        G.export_course(exported[1], foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_command_line(tmp_path, exported, capsys):
    _, out, _, _ = exported
    course = tmp_path / "course"
    assert main(["formgrader", str(out), "--course", str(course)]) == 0
    printed = capsys.readouterr().out
    assert f"cd {course.resolve()} && " in printed
    assert "server --ServerApp.root_dir=." in printed
    assert f"export --exporter={G.EXPORTER}" in printed
    assert (course / "gradebook.db").is_file() and (course / G.CONFIG_FILE).is_file()
    assert main(["formgrader", str(tmp_path / "missing")]) == 2
    assert "formgrader export failed: OUT:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The real thing: formgrader in headless Chromium
# --------------------------------------------------------------------------------------------

#: nbgrader's formgrade page loads MathJax 2 from a CDN and formgrade.js calls ``MathJax.Hub`` as it
#: starts; the test has no network, so the browser gets this stand-in for that one URL (every other
#: request off the machine is refused and listed).
MATHJAX_STUB = ("window.MathJax = {Hub: {Config: function () {}, Queue: function () {},"
                " Startup: {signal: {Interest: function () {}}}}};")
STEP_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check, timeout: float = STEP_TIMEOUT, every: float = 0.25):
    """Call ``check`` until it returns something truthy (and return that), at most ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def process_group(command: str, cwd: Path, env: dict, log: Path):
    """``command`` run by bash in a session of its own, killed with everything it started on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue


class Browser:
    """Headless Chromium driven over the DevTools protocol (``websocket-client``): navigate, run a
    script, type, take screenshots. Requests to 127.0.0.1 go through; the MathJax CDN gets
    :data:`MATHJAX_STUB`; every other request is refused (``blocked``); exceptions thrown by the
    page are kept (``errors``)."""

    def __init__(self, profile: Path, log: Path):
        import websocket

        self.blocked: list[str] = []
        self.errors: list[str] = []
        self._replies: dict[int, queue.Queue] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.proc = None
        self.ws = None
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
                 f"--user-data-dir={profile}", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
                 "--no-pings", "--disable-breakpad", "--disable-domain-reliability",
                 "--disable-features=OptimizationHints,OptimizationGuideModelDownloading,MediaRouter,"
                 "NetworkTimeServiceQuerying,AutofillServerCommunication,Translate",
                 f"--proxy-server=http://127.0.0.1:{free_port()}",   # nothing listens there: off-machine fails
                 "--window-size=1280,1000", "about:blank"]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([CHROMIUM, *flags], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            active = profile / "DevToolsActivePort"
            port = wait_until("Chromium's DevTools port", lambda: active.is_file() and active.read_text().split("\n")[0])
            pages = wait_until("a page target", lambda: [t for t in self._json(f"http://127.0.0.1:{port}/json/list")
                                                         if t.get("type") == "page"])
            self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=STEP_TIMEOUT,
                                                  suppress_origin=True)
            self.ws.settimeout(0.5)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            for domain in ("Page", "Runtime"):
                self.call(f"{domain}.enable")
            self.call("Fetch.enable", patterns=[{"urlPattern": "*"}])
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _json(url: str):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except (OSError, ValueError):
            return []

    def _send(self, method: str, params: dict) -> int:
        with self._lock:
            self._next += 1
            ident = self._next
            self._replies[ident] = queue.Queue(maxsize=1)
            self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        return ident

    def call(self, method: str, timeout: float = STEP_TIMEOUT, **params):
        """Send one command and return its result (AssertionError on an error or a timeout)."""
        ident = self._send(method, params)
        try:
            reply = self._replies[ident].get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"Chromium did not answer {method} within {timeout:g} s") from None
        finally:
            self._replies.pop(ident, None)
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    def _read(self):
        import websocket

        while not self._stop.is_set():
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # noqa: BLE001 - the socket closed: the browser is going away
                return
            if "id" in message:
                box = self._replies.get(message["id"])
                if box is not None:
                    box.put(message)
            elif message.get("method") == "Fetch.requestPaused":
                self._route(message["params"])
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(str(details.get("exception", {}).get("description") or details.get("text")))

    def _route(self, params: dict):
        """Every request the page makes: local ones go on, MathJax's CDN gets the stand-in, the
        rest are refused (answered from the reader thread without waiting for the reply)."""
        url, rid = params["request"]["url"], params["requestId"]
        host = urlsplit(url).hostname or ""
        if host in ("127.0.0.1", "localhost"):
            self._send("Fetch.continueRequest", {"requestId": rid})
        elif host == "cdnjs.cloudflare.com" and "/mathjax/" in url.lower():
            body = base64.b64encode(MATHJAX_STUB.encode()).decode()
            self._send("Fetch.fulfillRequest", {"requestId": rid, "responseCode": 200, "body": body,
                                                "responseHeaders": [{"name": "Content-Type",
                                                                     "value": "application/javascript"}]})
        else:
            self.blocked.append(url)
            self._send("Fetch.failRequest", {"requestId": rid, "errorReason": "BlockedByClient"})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str, ready: str):
        """Open ``url`` and wait until the script ``ready`` is true there."""
        self.call("Page.navigate", url=url)
        wait_until(f"{ready} at {url}", lambda: self._ready(ready))

    def _ready(self, expression: str) -> bool:
        try:
            return bool(self.evaluate(f"(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()"))
        except AssertionError:
            return False

    def type_into(self, selector: str, text: str):
        """Focus the element, type ``text`` as key presses would, then leave it (formgrader saves
        scores and comments on ``change``, which fires when the element loses focus)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).blur()")

    def screenshot(self, path: Path, clip: dict | None = None) -> Path:
        params = {"format": "png"}
        if clip:
            params.update(clip={**clip, "scale": 1}, captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        return path

    def close(self):
        self._stop.set()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close()
        if self.proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue


def jupyter_env(base: Path) -> dict:
    """The environment of the Jupyter server and ``nbgrader export``: Jupyter's own folders in the
    test's temporary folder (no user configuration, nothing left behind)."""
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = base / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def answer_region(browser: Browser) -> dict:
    """The page region from the question of the written answer to its model answer, as a clip (the
    page scrolled to the top first, so that formgrader's fixed navigation bar stays out of it)."""
    y0, y1 = browser.evaluate(f"""(() => {{
        window.scrollTo(0, 0);
        const cell = document.getElementById({json.dumps(WRITTEN)}).closest('.cell');
        let first = cell.previousElementSibling || cell, last = cell;
        for (let i = 0; i < 2 && last.nextElementSibling; i++) last = last.nextElementSibling;
        return [first.getBoundingClientRect().top + window.scrollY - 10,
                last.getBoundingClientRect().bottom + window.scrollY + 10];
    }})()""")
    return {"x": 0, "y": max(0, y0), "width": 1280, "height": min(4000, y1 - max(0, y0))}


@pytest.mark.slow
def test_hand_grade_in_formgrader_reaches_the_exported_csv(tmp_path):
    from autograder.grade import grade_folder
    from autograder.samples import SAMPLES_DIR

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package", pytrace=False)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nformgrader screenshots: {shots}")

    # 1. grade the samples with our grader (sandboxed), then export them to nbgrader's gradebook
    out = tmp_path / "out"
    grade_folder(REPO_ROOT / SAMPLES_DIR, ASSIGNMENT, out, progress=False, workers=2, seed=20240611)
    ours = {row["student_id"]: row for row in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    assert ours["alice"][WRITTEN] == ""               # alice wrote a derivation: it waits for a person
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["formgrader", str(out)]) == 0
    course = out / G.DEFAULT_COURSE
    commands = [line.strip() for line in printed.getvalue().splitlines() if line.strip().startswith("cd ")]
    start = next(c for c in commands if " server " in c)
    export = next(c for c in commands if " export " in c)
    with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
        alice = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "alice").id
    derivation = next(c["source"] for s in json.loads((out / "results.json").read_text())["submissions"]
                      if s["student_id"] == "alice" for c in s["cells"] if c["kind"] == "manual")

    # 2. formgrader, as the export printed it, on a free port with a known token
    port, token = free_port(), "dgm-formgrader-test-token"
    env = jupyter_env(tmp_path)
    server = f"{start} --ServerApp.port={port} --ServerApp.port_retries=0 --ServerApp.ip=127.0.0.1 " \
             f"--IdentityProvider.token={token}"
    if "--allow-root" not in server and os.geteuid() == 0:
        server += " --allow-root"
    base = f"http://127.0.0.1:{port}"
    points, comment = "3.5", "Part 2: say why the KL is never negative (Gibbs' inequality). –0.5"
    with process_group(server, tmp_path, env, tmp_path / "jupyter.log") as proc:
        def up():
            if proc.poll() is not None:
                raise AssertionError("the Jupyter server stopped:\n"
                                     + (tmp_path / "jupyter.log").read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    return r.status == 200
            except (OSError, urllib.error.URLError):
                return False
        wait_until("the Jupyter server", up, timeout=120)
        browser = Browser(tmp_path / "chromium-profile", tmp_path / "chromium.log")
        try:
            # 3. Manual Grading → the assignment → its notebook → alice's submission
            browser.goto(f"{base}/formgrader/gradebook?token={token}",
                         f"document.querySelector('a[href$=\"/formgrader/gradebook/{ASSIGNMENT}\"]')")
            browser.evaluate(f"document.querySelector('a[href$=\"/formgrader/gradebook/{ASSIGNMENT}\"]').click()")
            link = f"/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}"
            wait_until("the assignment's notebooks", lambda: browser._ready(f"document.querySelector('a[href$=\"{link}\"]')"))
            browser.evaluate(f"document.querySelector('a[href$=\"{link}\"]').click()")
            wait_until("the submissions", lambda: browser._ready(
                "document.querySelectorAll('a[href*=\"/formgrader/submissions/\"]').length >= 6"))
            show_names = "Array.from(document.querySelectorAll('button')).find(b => /Show All Names/.test(b.innerText))"
            browser.evaluate(f"{show_names}.click()")
            browser.screenshot(shots / "1-manual-grading-submissions.png")
            submissions_page = browser.evaluate("location.href")
            browser.evaluate(f"document.querySelector('a[href$=\"/formgrader/submissions/{alice}\"]').click()")
            loaded = ("typeof formgrader !== 'undefined' && formgrader.loaded && formgrader.grades.loaded "
                      "&& formgrader.comments.loaded")
            wait_until("alice's submission", lambda: browser._ready(loaded))

            # what formgrader shows: her own derivation, our automatic points, an empty score box
            panel = browser.evaluate(f"document.getElementById('{WRITTEN}').closest('.nbgrader_cell').innerText")
            first_line = derivation.strip().splitlines()[0]
            assert first_line in panel and "Student's answer" in panel
            assert browser.evaluate(f"document.getElementById('{WRITTEN}').value") == ""
            assert browser.evaluate(f"document.getElementById('{WRITTEN}').classList.contains('needs_manual_grade')")
            assert browser.evaluate("document.getElementById('test_gaussian_kl_diag_hidden').placeholder") == "2"
            assert browser.evaluate("document.querySelectorAll('.dgm-preview math').length") > 0
            browser.screenshot(shots / "2-submission-before-grading.png", answer_region(browser))

            # 4. the instructor's points and comment, typed and left (formgrader saves on change)
            browser.type_into(f"#{WRITTEN}", points)
            browser.type_into(f"#{WRITTEN}-comment", comment)

            def saved():
                with Gradebook(G.db_url(course), cfg.COURSE_ID) as gb:
                    grade = gb.find_grade(WRITTEN, ASSIGNMENT, ASSIGNMENT, "alice")
                    note = gb.find_comment(WRITTEN, ASSIGNMENT, ASSIGNMENT, "alice")
                    return grade.manual_score == float(points) and note.manual_comment == comment \
                        and not grade.needs_manual_grade
            wait_until("the score and comment in the gradebook", saved)
            browser.evaluate("window.dgmBeforeReload = true")
            browser.call("Page.reload")
            wait_until("the submission, reloaded", lambda: browser._ready(f"!window.dgmBeforeReload && {loaded}"))
            assert browser.evaluate(f"document.getElementById('{WRITTEN}').value") == points
            assert browser.evaluate(f"document.getElementById('{WRITTEN}-comment').value") == comment
            browser.screenshot(shots / "3-submission-after-grading.png", answer_region(browser))
            browser.goto(submissions_page, f"document.querySelector('a[href$=\"/formgrader/submissions/{alice}\"]')")
            browser.evaluate(f"{show_names}.click()")
            overall = f"{float(ours['alice']['total']) + float(points):g} / {sum(t['max_points'] for t in TASKS):g}"
            wait_until(f"alice's new score {overall} in the list", lambda: browser._ready(
                "Array.from(document.querySelectorAll('tr')).some(r => r.innerText.includes('alice') "
                f"&& r.innerText.includes({json.dumps(overall)}))"))
            browser.screenshot(shots / "4-manual-grading-after.png")
            assert browser.errors == [], f"the formgrader pages threw: {browser.errors}"
            print(f"requests refused (off the machine): {sorted(set(browser.blocked)) or 'none'}")
        finally:
            browser.close()

    # 5. nbgrader export with our exporter, as the export printed it
    done = subprocess.run(["bash", "-c", export], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["student_id"]: row for row in csv.DictReader(
        io.StringIO((course / G.DEFAULT_EXPORT).read_text(encoding="utf-8")))}
    assert sorted(rows) == sorted(ours)
    assert rows["alice"][WRITTEN] == points and rows["alice"][f"{WRITTEN}_comment"] == comment
    assert rows["alice"]["waiting"] == ""
    for sid, row in ours.items():
        for task in AUTO_TASKS:
            assert float(rows[sid][task]) == float(row[task]), (sid, task)
        hand = float(points) if sid == "alice" else float(row[WRITTEN] or 0)
        assert float(rows[sid]["score"]) == float(row["total"]) + hand, sid
    if os.environ.get("FORMGRADER_SHOTS"):
        target = Path("/tmp/formgrader-shots")
        target.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy(shot, target / shot.name)
        print(f"copied to {target}")
