"""The grader against hostile and awkward submissions (:mod:`autograder.redteam`).

The whole suite and the control student (the full solution) are graded once, in one parallel run
(two workers, short limits), in a temporary copy of the course into which canary strings are
planted wherever a secret lives: in every hidden test, in every solution answer cell, in a
``gradebook.db`` at the course root and in a file under ``autograder/``. The tests then read that
run: each attack's score on its target and its status, the control's record against the same
student graded alone and serially, every file of the reports and every output the attacks printed
(no canary, no hidden test), and the host paths the attacks tried to write to or to make the
grader create.

The attacks on the grader's own process (:data:`autograder.redteam.GRADER_SIDE`) are graded in a
second run, beside correct submissions whose grades they must not change.

Five and a half minutes on two cores shared with other jobs (load average 8): four and a half for
the suite, one for the grader-side run (or as long as the grader lets a hostile derivation compute
in its own process); less on a quiet machine. No verdict may change with the load: the limits
below leave a correct notebook a wide margin, an attack doing heavy work may end as ``timeout``
(its allowed statuses say so; its score is what counts), and the time bounds compare a notebook
with correct ones graded beside it, under the same load.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import pickle
import py_compile
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from conftest import require_sandbox
from autograder import redteam
from autograder.course import REPO_ROOT, source_notebook
from autograder.grade import GradingRun, grade_folder
from autograder.runner import STATUSES, hidden_modules_for
from autograder.program import build_program, tasks_table
from autograder.redteam import ASSIGNMENT, CONTROL, GRADER_SIDE, SUITE, Attack
from autograder.sandbox import Limits, sandbox_uid

#: The run's seed: the same for the suite, the control alone and the grader-side run.
SEED = 424242
#: Limits shorter than the course's (60 s, 180 s), so that the fork bomb and the infinite loop cost
#: seconds, yet wide enough for a loaded machine: with a load average of 7 on two cores the
#: control's slowest cell took 4.4 s and its whole notebook 27 s (the notebook budget counts the
#: grader's own checks too, most of that time).
CELL_TIMEOUT = 20.0
NOTEBOOK_BUDGET = 120.0
WORKERS = 2
#: Slack over a notebook's budget for what the grader does outside it (start-up, the last step's
#: checks, closing the sandbox), generous for a loaded machine: a notebook left unbounded by the
#: budget would run for ever (a fork bomb) or for minutes (a SymPy bomb), far past it.
BUDGET_SLACK = 30.0
#: The largest record (JSON) and feedback page a submission may leave, whatever it printed.
MAX_RECORD_BYTES = 1_000_000
#: nbgrader's markers of hidden tests (spelt in two parts, so that this file does not contain them).
HIDDEN_MARKERS = ("### BEGIN " + "HIDDEN TESTS", "### END " + "HIDDEN TESTS")
#: Bystanders graded beside the grader-side attacks (copies of the full solution).
BYSTANDERS = ("bystander-1", "bystander-2", "bystander-3")

#: What the statuses of the invalid files must say.
INVALID_REASONS = {"truncated_json": "not valid JSON", "png_bytes": "cannot read the file",
                   "json_list": "JSON without a list of cells", "empty_file": "not valid JSON",
                   "deeply_nested_json": "levels deep", "many_cells": "lists and objects"}


def _sandbox_or_skip() -> None:
    """Fail (never skip) without the sandbox, saying how to install it."""
    require_sandbox()


@dataclass
class Course:
    """A temporary course root with canaries planted in every secret."""

    root: Path
    canaries: dict[str, str]          # where it was planted -> the canary
    hidden_lines: list[str]           # every non-blank line between the hidden-test markers


@dataclass
class SuiteRun:
    """The suite and the control graded together."""

    run: GradingRun
    out: Path
    submissions: Path
    seconds: float


def _plant(root: Path) -> Course:
    """Copy the course's ``solutions/`` and ``exercises/`` into ``root`` and plant canaries."""
    for name in ("solutions", "exercises"):
        shutil.copytree(REPO_ROOT / name, root / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))
    canaries: dict[str, str] = {}

    def canary(where: str) -> str:
        canaries[where] = f"CANARY-{secrets.token_hex(12)}"
        return canaries[where]

    path = source_notebook(root, ASSIGNMENT)
    nb = nbformat.read(path, as_version=4)
    hidden: list[str] = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if meta.get("solution"):
            mark = canary(f"answer cell {gid}")
            cell.source = (f"# {mark}\n" if cell.cell_type == "code" else f"<!-- {mark} -->\n\n") + cell.source
        elif HIDDEN_MARKERS[0] in cell.source:
            lines, inside = [], False
            for line in cell.source.splitlines():
                if line.strip() == HIDDEN_MARKERS[1]:
                    inside = False
                if inside and line.strip():
                    hidden.append(line.strip())
                lines.append(line)
                if line.strip() == HIDDEN_MARKERS[0]:
                    inside = True
                    lines.append(f"# {canary(f'hidden tests of {gid}')}")
            cell.source = "\n".join(lines)
    nbformat.write(nb, path)
    (root / "gradebook.db").write_bytes(b"SQLite format 3\x00" + canary("gradebook.db").encode())
    (root / "autograder").mkdir()
    (root / "autograder" / "instructor-notes.txt").write_text(canary("autograder/") + "\n", encoding="utf-8")
    assert len(hidden) >= 9, "every task's hidden tests should have been found"
    return Course(root, canaries, hidden)


def _compile_hidden_modules() -> None:
    """Write the bytecode cache of the modules hidden in the sandbox, as on any machine where the
    grader or the tests imported them with bytecode caching on (Python's default)."""
    import dgm

    package = Path(dgm.__file__).resolve().parent
    for module in hidden_modules_for(ASSIGNMENT):
        source = package.joinpath(*module.split(".")[1:]).with_suffix(".py")
        py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)), doraise=True)


def _remove_stale_traces() -> None:
    """Remove what an earlier run's escaped attack may have left, so that only this run counts."""
    for path in redteam.escape_paths():
        if path.is_file() or path.is_symlink():
            path.unlink()


def _grade(folder: Path, out: Path, root: Path, workers: int) -> GradingRun:
    return grade_folder(folder, ASSIGNMENT, out, cell_timeout=CELL_TIMEOUT, notebook_budget=NOTEBOOK_BUDGET,
                        root=root, progress=False, workers=workers, seed=SEED)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    _sandbox_or_skip()
    return _plant(tmp_path_factory.mktemp("redteam-course"))


@pytest.fixture(scope="module")
def suite(course, tmp_path_factory) -> SuiteRun:
    """Every attack of :data:`SUITE` and the control, graded in one run."""
    _remove_stale_traces()
    _compile_hidden_modules()
    submissions = tmp_path_factory.mktemp("redteam-submissions")
    redteam.write_suite(submissions)
    out = tmp_path_factory.mktemp("redteam-reports")
    start = time.monotonic()
    run = _grade(submissions, out, course.root, WORKERS)
    return SuiteRun(run, out, submissions, time.monotonic() - start)


@pytest.fixture(scope="module")
def control_alone(course, suite, tmp_path_factory) -> dict:
    """The control student graded alone, serially, with the suite's seed."""
    folder = tmp_path_factory.mktemp("redteam-control")
    shutil.copyfile(suite.submissions / f"{CONTROL}.ipynb", folder / f"{CONTROL}.ipynb")
    return _grade(folder, tmp_path_factory.mktemp("redteam-control-reports"), course.root, 1).records[CONTROL]


@pytest.fixture(scope="module")
def grader_side(course, suite, control_alone, tmp_path_factory) -> SuiteRun:
    """The attacks on the grader's own process, graded beside three correct submissions."""
    folder = tmp_path_factory.mktemp("redteam-grader-side")
    redteam.write_suite(folder, attacks=GRADER_SIDE)
    control = folder / f"{CONTROL}.ipynb"
    for name in BYSTANDERS:
        shutil.copyfile(control, folder / f"{name}.ipynb")
    control.unlink()
    out = tmp_path_factory.mktemp("redteam-grader-side-reports")
    start = time.monotonic()
    run = _grade(folder, out, course.root, WORKERS)
    return SuiteRun(run, out, folder, time.monotonic() - start)


def _max_points(run: GradingRun) -> dict[str, float]:
    return {t["name"]: t["max_points"] for t in run.results["tasks"] if not t["manual"]}


def _outcome(attack: Attack, record: dict) -> str:
    return (f"{attack.name} -> {attack.target}: status {record['status']}, "
            f"score {record['scores'].get(attack.target)}, reasons {record['reasons']}")


def _check_view(record: dict) -> list:
    """What must not depend on who else is graded: scores, statuses and every check's message."""
    return [record["status"], record["scores"], record["total"],
            [(c["grade_id"], c["points"], [(k["suite"], k["passed"], k["message"]) for k in c["checks"]])
             for c in record["cells"] if c["kind"] == "test"]]


def _report_files(out: Path) -> list[Path]:
    return [p for p in sorted(out.rglob("*")) if p.is_file()]


# --------------------------------------------------------------------------------------------
# The suite itself
# --------------------------------------------------------------------------------------------


def test_the_suite_covers_enough_attacks():
    assert len(SUITE) >= 24
    kinds = {a.expect for a in SUITE}
    assert kinds == {"zero", "full", "not full"}
    # every class of attack is represented, each attack in one
    assert {a.threat for a in SUITE + GRADER_SIDE} == set(redteam.THREATS)
    # a benign submission must keep full marks, which a stopped cell would cost it: only "zero"
    # attacks may end other than graded (a loaded machine may stop a heavy one, at no cost to the test)
    assert all(a.statuses == ("graded",) for a in SUITE + GRADER_SIDE if a.expect == "full")
    assert all(a.target in {"gaussian_kl_diag", "kl_monte_carlo", "lg_posterior", "lg_elbo", "mixture_responsibilities",
                            "concept_vae_sampling", "concept_kl_asymmetry", "concept_two_image_elbo",
                            "kl_derivation_steps"} for a in SUITE + GRADER_SIDE)


def test_the_suite_is_written_with_a_control(tmp_path):
    paths = redteam.write_suite(tmp_path)
    assert [p.stem for p in paths] == [CONTROL] + [a.name for a in SUITE]
    assert all(p.is_file() for p in paths)
    nbformat.reads(paths[0].read_text(encoding="utf-8"), as_version=4)


def test_no_attack_spells_out_the_hidden_test_markers(tmp_path):
    """Otherwise the leak checks below would find the attacks' own source."""
    for path in redteam.write_suite(tmp_path, attacks=SUITE + GRADER_SIDE):
        text = path.read_bytes().decode("utf-8", "replace")
        assert not any(m in text for m in HIDDEN_MARKERS), path.name
        assert 'suite="hidden"' not in text, path.name


def test_the_pickle_payload_is_live(tmp_path):
    """The payload really creates its marker when unpickled: its absence after grading means something."""
    marker = tmp_path / "unpickled"
    pickle.loads(base64.b64decode(redteam.pickle_payload(str(marker))))
    assert marker.exists()


# --------------------------------------------------------------------------------------------
# Scores and statuses
# --------------------------------------------------------------------------------------------


def test_every_submission_has_one_record(suite):
    assert set(suite.run.records) == {CONTROL} | {a.name for a in SUITE}


@pytest.mark.parametrize("attack", SUITE, ids=[a.name for a in SUITE])
def test_attack_scores_as_expected_on_its_target(suite, attack):
    record = suite.run.records[attack.name]
    full = _max_points(suite.run)[attack.target]
    score = record["scores"][attack.target]
    if attack.expect == "zero":
        assert score == 0, f"the attack worked: {_outcome(attack, record)} ({attack.description})"
    elif attack.expect == "not full":
        assert score < full, f"the attack worked: {_outcome(attack, record)} ({attack.description})"
    else:
        assert score == full, f"a benign submission lost marks: {_outcome(attack, record)} ({attack.description})"


def test_the_table_of_the_suite_says_every_attack_holds(suite):
    """The table an instructor reads (``redteam.md`` beside the reports): one row per attack with
    its class, what was expected and what happened; it agrees with the checks above."""
    table = redteam.format_table(SUITE, suite.run.records, _max_points(suite.run))
    (suite.out / "redteam.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    assert table.count("\n| ") == len(SUITE)   # a row per attack below the header
    assert table.endswith(f"attacks not holding: 0 of {len(SUITE)}"), table


@pytest.mark.parametrize("attack", SUITE, ids=[a.name for a in SUITE])
def test_attack_ends_with_an_expected_status_and_a_reason(suite, attack):
    record = suite.run.records[attack.name]
    assert record["status"] in STATUSES
    assert record["status"] in attack.statuses, _outcome(attack, record)
    if record["status"] != "graded":
        assert record["reasons"] and all(r.strip() for r in record["reasons"]), _outcome(attack, record)
    if attack.name in INVALID_REASONS:
        assert any(INVALID_REASONS[attack.name] in r for r in record["reasons"]), _outcome(attack, record)


def test_nobody_changes_the_points_a_task_is_worth(suite):
    control = suite.run.records[CONTROL]
    for sid, record in suite.run.records.items():
        assert record["max_total"] == control["max_total"], sid
        assert set(record["scores"]) == set(control["scores"]), sid
    assert suite.run.results["tasks"] == tasks_table(build_program(REPO_ROOT, ASSIGNMENT))


def test_every_notebook_stays_within_its_budget(suite):
    late = {sid: r["seconds"] for sid, r in suite.run.records.items() if r["seconds"] > NOTEBOOK_BUDGET + BUDGET_SLACK}
    assert not late, f"graded for longer than the {NOTEBOOK_BUDGET:g} s budget: {late}"


def test_control_gets_full_marks_beside_the_attacks(suite):
    record = suite.run.records[CONTROL]
    assert record["status"] == "graded", record["reasons"]
    assert record["total"] == record["max_total"] > 0


def test_control_record_is_the_same_alone_and_beside_the_attacks(suite, control_alone):
    assert _check_view(suite.run.records[CONTROL]) == _check_view(control_alone)
    beside = [(c["grade_id"], c.get("stdout"), c.get("stderr"), c.get("error"))
              for c in suite.run.records[CONTROL]["cells"] if c["kind"] in ("code", "answer")]
    alone = [(c["grade_id"], c.get("stdout"), c.get("stderr"), c.get("error"))
             for c in control_alone["cells"] if c["kind"] in ("code", "answer")]
    assert beside == alone


# --------------------------------------------------------------------------------------------
# Leaks
# --------------------------------------------------------------------------------------------


def _printed(record: dict) -> str:
    """Everything a submission's cells printed or raised, and every check message it got."""
    parts = []
    for cell in record["cells"]:
        parts += [str(cell.get("stdout", "")), str(cell.get("stderr", "")), json.dumps(cell.get("error"))]
        parts += [str(k["message"]) for k in cell.get("checks", [])]
    return "\n".join(parts)


def test_no_canary_in_the_reports(course, suite):
    for path in _report_files(suite.out):
        data = path.read_bytes()
        for where, canary in course.canaries.items():
            assert canary.encode() not in data, f"the canary of {where} leaked into {path.relative_to(suite.out)}"


def test_no_canary_in_what_the_attacks_printed(course, suite):
    for sid, record in suite.run.records.items():
        text = _printed(record) + json.dumps(record)
        leaked = [where for where, canary in course.canaries.items() if canary in text]
        assert not leaked, f"{sid} printed the canaries of {leaked}"


def test_no_hidden_test_in_feedback_or_records(course, suite):
    texts = {f"record of {sid}": json.dumps(r) for sid, r in suite.run.records.items()}
    texts.update({str(p.relative_to(suite.out)): p.read_text(encoding="utf-8", errors="replace")
                  for p in _report_files(suite.out) if p.suffix in (".html", ".json", ".csv", ".txt", ".ipynb")})
    assert any(name.startswith("feedback") for name in texts), "no feedback pages were written"
    for name, text in texts.items():
        for marker in HIDDEN_MARKERS:
            assert marker not in text, f"{marker!r} in {name}"
        for line in course.hidden_lines:
            assert line not in text, f"hidden test code {line!r} in {name}"
        assert 'suite="hidden"' not in text, f"hidden check code in {name}"


def test_feedback_escapes_what_students_print(suite):
    page = (suite.out / "feedback" / "html_injection.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;" in page
    assert "<script" not in page.lower() and "<img" not in page.lower()


def test_forged_markdown_stays_text_in_the_autograded_notebook_and_the_feedback(suite):
    """The instructor's notebook renders its markdown cells: a forged verdict, heading or image from
    the student (printed, raised by the cell, in every check's message) is only ever inside a fenced
    code block there, and escaped in the feedback page."""
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark")
    nb = nbformat.read(suite.out / "autograded" / "forged_markdown_message.ipynb", as_version=4)
    fenced = ""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for token in md.parse(cell.source):
            if token.type in ("fence", "code_block"):
                fenced += token.content
            assert token.type != "html_block", cell.source
            for child in token.children or []:
                assert child.type not in ("image", "html_inline"), cell.source
                assert "127.0.0.1" not in child.content and "all checks passed" not in child.content, cell.source
    assert "![x](http://127.0.0.1/x.png)\n**all checks passed**" in fenced  # shown, as text
    page = (suite.out / "feedback" / "forged_markdown_message.html").read_text(encoding="utf-8")
    assert "<img" not in page.lower() and "![x](http://127.0.0.1/x.png)" in page


def test_lone_surrogates_reach_every_report_as_replacement_characters(suite):
    for name in ("surrogate_in_json", "surrogate_printed", "forged_markdown_message"):
        assert (suite.out / "autograded" / f"{name}.ipynb").is_file(), name
        assert "\ufffd" in (suite.out / "feedback" / f"{name}.html").read_text(encoding="utf-8"), name
    assert any("surrogate" in r for r in suite.run.records["surrogate_in_json"]["reasons"])
    for path in _report_files(suite.out):
        if path.suffix != ".png":
            text = path.read_bytes().decode("utf-8")  # strict: every report is valid UTF-8
            assert "\\ud800" not in text.lower(), path


def test_a_50_mb_print_leaves_a_small_record(suite):
    record = suite.run.records["print_50mb"]
    assert len(json.dumps(record)) < MAX_RECORD_BYTES
    assert (suite.out / "feedback" / "print_50mb.html").stat().st_size < MAX_RECORD_BYTES
    cell = next(c for c in record["cells"] if c["grade_id"] == "lg_elbo")
    assert cell["stdout"].startswith("x" * 1000)
    assert "more characters of output were not kept" in cell["stderr"]


def test_the_snooper_found_nothing(suite):
    record = suite.run.records["snoop_filesystem"]
    cell = next(c for c in record["cells"] if c["grade_id"] == "concept_kl_asymmetry")
    if (cell.get("error") or {}).get("ename") == "Timeout":
        # its walk outlasted the cell's limit (a loaded machine), so it printed no list to read here;
        # what it could have stolen or written is still checked: its score, the canaries, the traces
        pytest.skip("the snooper's walk was stopped at the cell's time limit before printing what it found")
    assert "found 0:" in cell["stdout"], cell["stdout"][-2000:]


# --------------------------------------------------------------------------------------------
# Traces on the host
# --------------------------------------------------------------------------------------------


def test_nothing_written_outside_the_sandbox(course, suite):
    escaped = [str(p) for p in redteam.escape_paths() if os.path.lexists(p)]
    assert not escaped, f"files the attacks wrote outside their sandbox: {escaped}"
    assert not Path("/home/student").exists(), "the sandbox's home exists on the host"
    assert not Path("/opt/kernel").exists(), "the sandbox's kernel folder exists on the host"
    names = {redteam.ESCAPE_FILE, *redteam.SCORE_FILES}
    for folder in (course.root, suite.out, suite.submissions):
        found = [str(p) for p in folder.rglob("*") if p.name in names]
        assert not found, f"files the attacks wrote: {found}"
    for path in _report_files(suite.out):
        assert redteam.FORGED_MARK.encode() not in path.read_bytes(), f"a forged score reached {path}"


def test_nothing_unpickled(suite):
    for kind, marker in redteam.PICKLE_MARKERS.items():
        assert not os.path.lexists(marker), f"the grader unpickled the {kind} payload ({marker} exists)"


def test_no_sandbox_process_survives(suite):
    uids = {sandbox_uid(slot) for slot in range(WORKERS)}
    survivors = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        match = re.search(r"^Uid:\s+(\d+)", text, flags=re.MULTILINE)
        if match and int(match.group(1)) in uids:
            survivors.append(status.parent.name)
    assert not survivors, f"processes of the sandboxes' users still running after grading: {survivors}"


def test_the_grader_survives_the_kill_attacks(suite):
    """The run returned (we are here), in this process, and graded what came after the kills."""
    assert suite.run.records["kill_parent"]["status"] in ("graded", "crashed")
    assert suite.run.records["killpg"]["status"] in ("graded", "crashed")
    assert os.getpid() > 0 and suite.seconds > 0
    for name in ("kill_parent", "killpg", "os_exit"):
        last = [c for c in suite.run.records[name]["cells"]
                if c["kind"] == "test" and c["grade_id"] == "test_kl_derivation_steps_visible"]
        assert last and last[0]["points"] == last[0]["max_points"], f"{name}: the cells after the kill were not graded"


# --------------------------------------------------------------------------------------------
# Attacks on the grader's own process
# --------------------------------------------------------------------------------------------


def test_grader_side_attacks_score_nothing_and_stay_within_their_limits(grader_side):
    """A task's checks get ``CELL_TIMEOUT`` seconds, whether they wait for the sandbox or compute in
    the grader: such a notebook may take longer than a correct one by about that much (and a
    restart), not by the time its hostile values take to evaluate (minutes). The correct ones are
    the bystanders graded in the same run, so that a loaded machine slows both alike."""
    correct = max(grader_side.run.records[name]["seconds"] for name in BYSTANDERS)
    for attack in GRADER_SIDE:
        record = grader_side.run.records[attack.name]
        assert record["scores"][attack.target] == 0, _outcome(attack, record)
        assert record["status"] in attack.statuses, _outcome(attack, record)
        # unbounded, the hostile values cost minutes more: thirty numbers of four million digits per point
        assert record["seconds"] <= min(NOTEBOOK_BUDGET, correct + 2 * CELL_TIMEOUT) + BUDGET_SLACK / 2, (
            f"{attack.name} kept the grader busy for {record['seconds']:.0f} s (a correct notebook beside "
            f"it: {correct:.0f} s; a task's checks may take {CELL_TIMEOUT:g} s): the checks of "
            f"{attack.target} run in the grader's process without a time limit")


def test_grader_side_attacks_do_not_change_other_grades(grader_side):
    for name in BYSTANDERS:
        record = grader_side.run.records[name]
        assert record["status"] == "graded" and record["total"] == record["max_total"], (
            f"{name}, a correct submission graded beside {[a.name for a in GRADER_SIDE]}, got "
            f"{record['total']} / {record['max_total']} ({record['status']}: {record['reasons']})")


def test_limits_are_the_ones_asked_for(suite):
    assert suite.run.results["limits"] == {"cell_timeout": CELL_TIMEOUT, "notebook_budget": NOTEBOOK_BUDGET}
    assert Limits().memory_bytes == 4 * 2**30
