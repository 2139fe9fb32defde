"""The grading command, end to end, against every real assignment.

Most checks read one grading run per assignment (``batch(assignment)``, cached for the session):
the solution-filled notebook, the untouched release, every mutant in
``mutants/<assignment>/``, a corrupt file and two students with awkward names, graded
together so nbgrader's start-up is paid once per assignment.

No test here asserts how fast grading goes (15 s per notebook): ``make bench`` measures it
(``python -m benchmarks --only grading``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.__main__ import main
from autograder.course import REPO_ROOT, assignments, release_notebook
from autograder.course import GradingError
from autograder.grade import grade_folder
from autograder.shards import merge, parse_shard
from autograder.submissions import discover, sanitise_student_id
from autograder.samples import (ASSIGNMENT, SAMPLES_DIR, filled_release, load_mutants, solution_answers,
                                stale_samples)

ASSIGNMENTS = assignments(REPO_ROOT)
MUTANTS = [(a, m) for a in ASSIGNMENTS for m in load_mutants(a)]


def _rows(csv_path: Path) -> dict[str, dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="session")
def batch(tmp_path_factory):
    """``batch(assignment)``: one grading run over every kind of submission of that assignment,
    made on first use; returns (run, rows by student id, out dir)."""
    runs: dict[str, tuple] = {}

    def run_for(assignment: str):
        if assignment not in runs:
            runs[assignment] = _grade_batch(tmp_path_factory.mktemp(f"batch-{assignment}"), assignment)
        return runs[assignment]
    return run_for


def _grade_batch(root: Path, assignment: str):
    subs = root / "submissions"
    subs.mkdir()
    answers = solution_answers(REPO_ROOT, assignment)
    nbformat.write(filled_release(answers, REPO_ROOT, assignment), subs / "solution.ipynb")
    for a, m in MUTANTS:
        if a == assignment:
            nbformat.write(filled_release({**answers, m.grade_id: m.source}, REPO_ROOT, assignment),
                           subs / f"{m.name}.ipynb")
    # the untouched release, in nbgrader's submitted layout, under a student id with a space
    nested = subs / "untouched release" / assignment
    nested.mkdir(parents=True)
    shutil.copyfile(release_notebook(REPO_ROOT, assignment), nested / f"{assignment}.ipynb")
    # a corrupt file under a name that tries to leave its folder
    text = (subs / "solution.ipynb").read_text(encoding="utf-8")
    (subs / "..\\evil.ipynb").write_text(text[: len(text) // 3], encoding="utf-8")
    out = root / "reports"
    run = grade_folder(subs, assignment, out, progress=False)
    return run, _rows(out / "grades.csv"), out


def _tasks(run) -> list[dict]:
    return run.results["tasks"]


def _task_scores(run, row) -> dict[str, float]:
    return {t["name"]: float(row[t["name"]]) for t in _tasks(run) if not t["manual"]}


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_gets_full_automatic_marks(batch, assignment):
    run, rows, _ = batch(assignment)
    row = rows["solution"]
    assert row["status"] == "graded", row["reason"]
    assert float(row["total"]) == float(row["max_total"]) > 0
    for t in _tasks(run):
        if not t["manual"]:
            assert float(row[t["name"]]) == t["max_points"], f"{t['name']}: {row[t['name']]} of {t['max_points']}"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_gets_zero(batch, assignment):
    run, rows, _ = batch(assignment)
    row = rows["untouched_release"]
    assert row["status"] == "graded", row["reason"]
    assert float(row["total"]) == 0, {k: v for k, v in row.items() if v not in ("", "0")}
    manual = [t["name"] for t in _tasks(run) if t["manual"]]
    assert all(row[name] == "0" for name in manual), "an unanswered manual task scores 0 automatically"


@pytest.mark.slow
@pytest.mark.parametrize(("assignment", "mutant"), MUTANTS, ids=[f"{a}:{m.name}" for a, m in MUTANTS])
def test_mutant_loses_marks_on_its_task_only(batch, assignment, mutant):
    run, rows, _ = batch(assignment)
    row = rows[mutant.name]
    assert row["status"] == "graded", row["reason"]
    scores = _task_scores(run, row)
    maxima = {t["name"]: t["max_points"] for t in _tasks(run) if not t["manual"]}
    assert mutant.grade_id in scores, f"{mutant.grade_id} is not an auto-graded task"
    assert scores[mutant.grade_id] < maxima[mutant.grade_id], f"{mutant.name} ({mutant.mistake}) kept full marks"
    others = {k: v for k, v in scores.items() if k != mutant.grade_id and v != maxima[k]}
    assert not others, f"{mutant.name} also lost marks on {others}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_autograded_task_has_a_mutant(assignment):
    from autograder.program import build_program, tasks_table

    tasks = {t["name"] for t in tasks_table(build_program(REPO_ROOT, assignment)) if not t["manual"]}
    covered = {m.grade_id for a, m in MUTANTS if a == assignment}
    assert tasks <= covered, f"tasks without a mutant: {sorted(tasks - covered)}"


def test_the_step_checked_derivation_has_two_mutants():
    assert sum(m.grade_id == "kl_derivation_steps" for a, m in MUTANTS if a == "01-elbo") >= 2


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_corrupt_notebook_is_reported_and_others_graded(batch, assignment):
    run, rows, out = batch(assignment)
    row = rows["evil"]
    assert row["status"] == "invalid"
    assert "not valid JSON" in row["reason"]
    assert row["total"] == "0"
    assert (out / "feedback" / "evil.html").is_file()
    assert sum(r["status"] == "graded" for r in rows.values()) == len(rows) - 1


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_ids_cannot_leave_their_folder(batch, assignment):
    run, rows, out = batch(assignment)
    assert "untouched_release" in rows and "evil" in rows
    for path in out.rglob("*"):
        assert out in path.resolve().parents
    assert not (out.parent / "evil.html").exists()
    names = {p.stem for p in (out / "feedback").iterdir()}
    assert names == set(rows)


def test_sanitise_student_id():
    taken: set[str] = set()
    assert sanitise_student_id("../evil", taken) == "evil"
    assert sanitise_student_id("..", taken) == "student"
    assert sanitise_student_id("a b/c", taken) == "a_b_c"
    assert sanitise_student_id("evil", taken) == "evil-2"
    assert sanitise_student_id(".hidden", taken) == "hidden"
    assert sanitise_student_id("EVIL", taken) == "EVIL"  # another student: ids are compared exactly


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_record_says_how_long_its_notebook_took(batch, assignment):
    """What ``make bench`` reads (the seconds per notebook, budget 15 s) is in the results: a
    positive time for every executed notebook, none for the unreadable one, none longer than the
    whole run. No budget is asserted here: a loaded machine must not fail the suite."""
    run, rows, _ = batch(assignment)
    assert run.seconds > 0
    for record in run.results["submissions"]:
        if record["status"] == "invalid":
            assert record["seconds"] == 0, record["student_id"]
        else:
            assert 0 < record["seconds"] <= run.seconds, (record["student_id"], record["seconds"], run.seconds)


def test_samples_are_up_to_date():
    assert stale_samples(REPO_ROOT) == [], "run `python -m autograder make-samples`"


@pytest.mark.slow
def test_samples_grade_out_of_the_box_and_regrading_is_identical(tmp_path):
    outputs = []
    for n in (1, 2):
        out = tmp_path / f"run{n}"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["grade", str(REPO_ROOT / SAMPLES_DIR), "--out", str(out), "--no-progress"])
        assert code == 0
        outputs.append((out / "grades.csv").read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1]
    summary = printed.getvalue()
    for word in ("gaussian_kl_diag", "TOTAL", "invalid 1", "grades.csv"):
        assert word in summary
    rows = _rows(tmp_path / "run2" / "grades.csv")
    assert rows["alice"]["total"] == rows["alice"]["max_total"]
    assert rows["carol"]["status"] == "invalid"
    assert 0 < float(rows["bob"]["total"]) < float(rows["bob"]["max_total"])
    assert float(rows["bob"]["mixture_responsibilities"]) == 0


def test_grading_itself_failing_exits_nonzero(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope")]) == 2
    assert main(["grade", str(tmp_path)]) == 2
    assert "no notebooks" in capsys.readouterr().err
    with pytest.raises(GradingError):
        discover(tmp_path / "nope", ASSIGNMENT)
    assert main(["grade", str(tmp_path), "--assignment", "no-such-assignment"]) == 2


def test_the_assignment_is_detected_from_the_submissions(tmp_path):
    from autograder.grade import resolve_assignment

    for a in ASSIGNMENTS:
        folder = tmp_path / a
        folder.mkdir()
        shutil.copyfile(release_notebook(REPO_ROOT, a), folder / "someone.ipynb")
        (folder / "broken.ipynb").write_text("{", encoding="utf-8")  # unreadable files do not vote
        assert resolve_assignment(REPO_ROOT, None, folder) == a
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for a in ASSIGNMENTS[:2]:
        shutil.copyfile(release_notebook(REPO_ROOT, a), mixed / f"{a}.ipynb")
    if len(ASSIGNMENTS) > 1:
        with pytest.raises(GradingError, match="say which assignment"):
            resolve_assignment(REPO_ROOT, None, mixed)


@pytest.mark.slow
def test_shards_merge_into_the_unsharded_reports(tmp_path):
    """--shard 0/2 and 1/2 then merge give the same grades.csv as one run with the same seed; merge
    refuses a missing shard, a shard given twice and shards of different splits."""
    samples = str(REPO_ROOT / SAMPLES_DIR)
    whole = tmp_path / "whole"
    assert main(["grade", samples, "--out", str(whole), "--no-progress", "--seed", "7", "--workers", "2"]) == 0
    parts = []
    for i in range(2):
        part = tmp_path / f"shard-{i}"
        assert main(["grade", samples, "--out", str(part), "--no-progress", "--seed", "7", "--shard", f"{i}/2",
                     "--workers", "1"]) == 0
        assert sorted(p.name for p in part.iterdir()) == ["results.json"]
        parts.append(part)
    ids = [{r["student_id"] for r in json.loads((p / "results.json").read_text())["submissions"]} for p in parts]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    merged = tmp_path / "merged"
    assert main(["merge", str(merged), *map(str, parts)]) == 0
    assert (merged / "grades.csv").read_text() == (whole / "grades.csv").read_text()
    for name in ("histograms.png", "similarity.csv", "feedback/alice.html", "autograded/alice.ipynb"):
        assert (merged / name).is_file(), name
    with pytest.raises(GradingError, match="shards missing: 1/2"):
        merge([parts[0]])
    with pytest.raises(GradingError, match="given twice"):
        merge([parts[0], parts[0], parts[1]])
    odd = tmp_path / "odd"
    assert main(["grade", samples, "--out", str(odd), "--no-progress", "--shard", "0/3"]) == 0
    with pytest.raises(GradingError, match="another split"):
        merge([parts[0], odd])


def test_shard_option_is_validated():
    for bad in ("2/2", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(GradingError, match="shard"):
            parse_shard(bad)
    assert parse_shard(" 3/4 ") == (3, 4)


def test_only_answer_cells_come_from_the_submission():
    """Edited, deleted, duplicated and metadata-edited cells: the program is the source notebook's;
    only answer cells of the right type, by grade id, last copy, come from the student."""
    from autograder.program import build_program, student_answers

    program = build_program(REPO_ROOT, ASSIGNMENT)
    answers = solution_answers(REPO_ROOT, ASSIGNMENT)
    nb = filled_release(answers, REPO_ROOT, ASSIGNMENT)
    test_cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_gaussian_kl_diag_visible")
    test_cell.source = "pass"                      # an edited test cell
    test_cell.metadata["nbgrader"]["points"] = 100
    kl = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "gaussian_kl_diag")
    copy = nbformat.from_dict(json.loads(json.dumps(kl)))
    copy.source = "def gaussian_kl_diag(*a):\n    return 0  # the first copy"
    nb.cells.insert(nb.cells.index(kl), copy)      # duplicated: the last copy wins
    md = nbformat.v4.new_markdown_cell("I claim to be the lg_elbo answer")
    md.metadata["nbgrader"] = {"grade_id": "lg_elbo", "solution": True, "grade": False}
    nb.cells.append(md)                            # wrong cell type for that grade id: ignored
    got, notes = student_answers(nb, program)
    assert got["gaussian_kl_diag"] == answers["gaussian_kl_diag"]
    assert got["lg_elbo"] == answers["lg_elbo"]
    assert any("appears 2 times" in n for n in notes)
    tests = [s for s in program.steps if s.kind == "test"]
    assert all(s.points in (1.0, 2.0) for s in tests)
    assert not any("pass" == s.source for s in program.steps)
    del nb.cells[nb.cells.index(kl)]
    del nb.cells[nb.cells.index(copy)]
    got, notes = student_answers(nb, program)
    assert "gaussian_kl_diag" not in got and any("no answer cell for gaussian_kl_diag" in n for n in notes)


def test_grading_refuses_to_run_without_a_working_sandbox(tmp_path, monkeypatch, capsys):
    """A bwrap that cannot build namespaces stops grading with its own message (exit 2) instead of
    marking every student crashed."""
    from autograder import sandbox

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setattr(sandbox, "_PROBED", [])
    code = main(["grade", str(REPO_ROOT / SAMPLES_DIR), "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot build a sandbox" in err and "No permissions to create new namespace" in err
    assert not (tmp_path / "out").exists()


def test_worker_count_is_validated(tmp_path):
    with pytest.raises(GradingError, match="--workers"):
        grade_folder(REPO_ROOT / SAMPLES_DIR, out=tmp_path / "out", progress=False, workers=0)
    with pytest.raises(GradingError, match="--workers"):
        grade_folder(REPO_ROOT / SAMPLES_DIR, out=tmp_path / "out", progress=False, workers=65)


def test_reports_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A writer killed mid-way (here: the flush to disk fails) leaves the previous file as it was
    and no temporary file behind; a finished write replaces it."""
    from autograder.reports import write_whole

    path = tmp_path / "results.json"
    write_whole(path, "old\n")
    assert path.read_text() == "old\n"

    def dies(fd):
        raise OSError("killed")

    monkeypatch.setattr(os, "fsync", dies)
    with pytest.raises(OSError, match="killed"):
        write_whole(path, "new and much longer\n")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    monkeypatch.undo()
    write_whole(path, "new\n")
    assert path.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_merge_names_a_shard_whose_results_are_cut_off(tmp_path):
    """A results.json cut off in the middle (a shard killed while writing it, with an older grader,
    or a copy that did not finish) makes the merge refuse, naming the file and what to do."""
    from autograder.program import build_program
    from autograder.sandbox import Limits
    from autograder.shards import results_object

    program = build_program(REPO_ROOT, ASSIGNMENT)
    parts = []
    for i in range(2):
        part = tmp_path / f"shard-{i}"
        part.mkdir()
        text = json.dumps(results_object(program, [], 5, (i, 2), Limits(cell_timeout=30.0, notebook_budget=100.0)))
        (part / "results.json").write_text(text)
        parts.append(part)
    assert merge(parts)["submissions"] == []
    whole = (parts[1] / "results.json").read_text()
    (parts[1] / "results.json").write_text(whole[: len(whole) // 2])
    with pytest.raises(GradingError, match=r"shard-1/results.json is incomplete or damaged .*grade that shard again "
                                           r"with the same --seed"):
        merge(parts)
    out = tmp_path / "final"
    assert main(["merge", str(out), *map(str, parts)]) == 2
    assert not out.exists()


def test_merge_refuses_shards_graded_with_other_limits(tmp_path):
    parts = []
    for i, budget in ((0, "100"), (1, "120")):
        part = tmp_path / f"shard-{i}"
        assert main(["grade", str(REPO_ROOT / SAMPLES_DIR), "--out", str(part), "--no-progress", "--shard", f"{i}/2",
                     "--notebook-budget", budget, "--workers", "1"]) == 0
        parts.append(part)
    with pytest.raises(GradingError, match="other limits"):
        merge(parts)


def test_symbolic_links_are_never_followed(tmp_path):
    """A link to the solution, to another student's file or out of the folder is invalid, unread."""
    from autograder.course import source_notebook

    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copyfile(release_notebook(REPO_ROOT, ASSIGNMENT), subs / "honest.ipynb")
    (subs / "to_solution.ipynb").symlink_to(source_notebook(REPO_ROOT, ASSIGNMENT))
    (subs / "to_honest.ipynb").symlink_to(subs / "honest.ipynb")
    elsewhere = tmp_path / "elsewhere" / ASSIGNMENT
    elsewhere.mkdir(parents=True)
    shutil.copyfile(release_notebook(REPO_ROOT, ASSIGNMENT), elsewhere / f"{ASSIGNMENT}.ipynb")
    (subs / "linked_folder").symlink_to(tmp_path / "elsewhere")
    found = {s.student_id: s for s in discover(subs, ASSIGNMENT)}
    assert set(found) == {"honest", "to_solution", "to_honest", "linked_folder"}
    for name in ("to_solution", "to_honest", "linked_folder"):
        assert found[name].status == "invalid" and "symbolic link" in found[name].reason
    assert found["honest"].status == "pending"


def test_a_sanitised_id_never_takes_a_students_own_id(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("alice!", "alice", "bob"):
        shutil.copyfile(release_notebook(REPO_ROOT, ASSIGNMENT), subs / f"{name}.ipynb")
    by_origin = {s.origin: s.student_id for s in discover(subs, ASSIGNMENT)}
    assert by_origin["alice.ipynb"] == "alice" and by_origin["bob.ipynb"] == "bob"
    assert by_origin["alice!.ipynb"] == "alice-2"


@pytest.mark.slow
def test_invalid_files_and_ids_differing_in_case_never_change_an_honest_grade(tmp_path):
    """One class: the honest ``victim`` (the solution) beside ``VICTIM`` (the untouched release,
    sorted first), a notebook nested 100,000 lists deep (json.loads raised RecursionError and the
    run stopped), and the solution with a lone surrogate in its JSON and another printed by an answer
    (nbformat.write raised UnicodeEncodeError and the reports stopped). Each is graded under its own
    id, the honest ones with full marks, and every report is written."""
    from autograder.results import report_names
    from autograder.submissions import MAX_JSON_DEPTH

    subs = tmp_path / "subs"
    subs.mkdir()
    answers = solution_answers(REPO_ROOT, ASSIGNMENT)
    shutil.copyfile(release_notebook(REPO_ROOT, ASSIGNMENT), subs / "VICTIM.ipynb")
    nbformat.write(filled_release(answers, REPO_ROOT, ASSIGNMENT), subs / "victim.ipynb")
    text = (subs / "victim.ipynb").read_text(encoding="utf-8")
    marker = '"metadata": {'
    at = text.index(marker) + len(marker)
    (subs / "deep.ipynb").write_text(text[:at] + '"x": ' + "[" * 100_000 + "]" * 100_000 + ", " + text[at:],
                                     encoding="utf-8")
    printing = {**answers, "gaussian_kl_diag": "# LONE-SURROGATE\n" + answers["gaussian_kl_diag"]
                + "\nprint('printed', chr(0xD800))\n"}
    text = nbformat.writes(filled_release(printing, REPO_ROOT, ASSIGNMENT))
    assert text.count("LONE-SURROGATE") == 1
    (subs / "surrogate.ipynb").write_text(text.replace("LONE-SURROGATE", "\\ud800"), encoding="utf-8")
    out = tmp_path / "out"
    run = grade_folder(subs, ASSIGNMENT, out, progress=False, workers=2)
    rows = _rows(out / "grades.csv")
    assert set(rows) == {"victim", "VICTIM", "deep", "surrogate"}
    assert rows["victim"]["status"] == "graded" and rows["victim"]["total"] == rows["victim"]["max_total"]
    assert rows["VICTIM"]["status"] == "graded" and float(rows["VICTIM"]["total"]) == 0
    for sid, twin in (("victim", "VICTIM"), ("VICTIM", "victim")):
        assert f"{sid!r} differs from {twin!r} only in letter case" in rows[sid]["reason"]
    assert rows["deep"]["status"] == "invalid" and "levels deep" in rows["deep"]["reason"]
    assert f"at most {MAX_JSON_DEPTH}" in rows["deep"]["reason"]
    surrogate = rows["surrogate"]
    assert surrogate["status"] == "graded" and surrogate["total"] == surrogate["max_total"], surrogate["reason"]
    assert "lone UTF-16 surrogate" in surrogate["reason"]
    record = run.records["surrogate"]
    cell = next(c for c in record["cells"] if c["grade_id"] == "gaussian_kl_diag")
    assert cell["source"].startswith("# \ufffd\n") and cell["stdout"] == "printed \ufffd\n"
    names = report_names(rows)
    for folder, suffix in (("feedback", ".html"), ("autograded", ".ipynb")):
        files = sorted(p.name for p in (out / folder).iterdir())
        expected = sorted(f"{names[s]}{suffix}" for s in rows if folder == "feedback" or s != "deep")
        assert files == expected
        assert len({f.casefold() for f in files}) == len(files)
    page = (out / "feedback" / f"{names['victim']}.html").read_text(encoding="utf-8")
    assert "feedback for victim<" in page
    assert "printed \ufffd" in (out / "feedback" / "surrogate.html").read_text(encoding="utf-8")
    nb = nbformat.read(out / "autograded" / "surrogate.ipynb", as_version=4)
    assert nb.metadata["dgm_grading"]["status"] == "graded"
    assert "NOT written" not in run.summary


@pytest.mark.slow
def test_messages_name_the_answer_cell_that_did_not_run_and_the_students_line(tmp_path):
    """A syntax error in an answer cell is reported where its function is checked, with the cell
    and the error; an error raised in the student's function names the line of their cell (the
    hidden suite too: the line is the student's own code, not the inputs drawn)."""
    subs = tmp_path / "submissions"
    subs.mkdir()
    answers = solution_answers(REPO_ROOT, "01-elbo")
    broken = answers["gaussian_kl_diag"].replace("def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):",
                                                 "def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p)", 1)
    assert broken != answers["gaussian_kl_diag"]
    raising = ("def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):\n"
               "    ratio = logvar_q - logvar_p\n"
               "    return ratio[..., 100]\n")
    nbformat.write(filled_release({**answers, "gaussian_kl_diag": broken}, REPO_ROOT, "01-elbo"), subs / "syntax.ipynb")
    nbformat.write(filled_release({**answers, "gaussian_kl_diag": raising}, REPO_ROOT, "01-elbo"), subs / "raising.ipynb")
    run = grade_folder(subs, "01-elbo", tmp_path / "out", progress=False)

    def messages(sid: str) -> list[str]:
        return [check["message"] for c in run.records[sid]["cells"] if c.get("task") == "gaussian_kl_diag"
                for check in c.get("checks", [])]

    for message in messages("syntax"):
        assert "`gaussian_kl_diag` is not defined because its answer cell (gaussian_kl_diag) did not run: " \
               "SyntaxError: expected ':' (line " in message, message
    answer_cell = next(c for c in run.records["syntax"]["cells"] if c.get("grade_id") == "gaussian_kl_diag")
    assert answer_cell["error"]["ename"] == "SyntaxError" and "ipython-input" not in answer_cell["error"]["evalue"]
    visible, hidden = messages("raising")
    assert "your function raised IndexError: index 100 is out of bounds" in visible, visible
    assert "(at line 3 of your cell: `return ratio[..., 100]`)" in visible, visible
    assert "your function raised IndexError (at line 3 of your cell: `return ratio[..., 100]`)" in hidden, hidden
    assert run.records["syntax"]["scores"]["gaussian_kl_diag"] == run.records["raising"]["scores"]["gaussian_kl_diag"] == 0
