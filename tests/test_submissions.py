"""Reading one student's file (autograder/submissions.py, the reading steps of autograder/grade.py,
``student_answers`` of autograder/program.py, the shards' merge): whatever a file holds, it ends as
a readable notebook or as an ``invalid`` submission with a reason naming what is wrong; nothing
raises, recurses without bound or runs for long, and no student's id changes because of another's.

No sandbox is needed: nothing here runs a notebook.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import submissions
from autograder.course import REPO_ROOT, GradingError, release_notebook, source_notebook
from autograder.grade import resolve_assignment
from autograder.program import build_program, student_answers
from autograder.results import clean_strings, report_names
from autograder.samples import ASSIGNMENT, filled_release, solution_answers
from autograder.shards import merge
from autograder.submissions import (
    INVALID,
    MAX_CELLS,
    MAX_JSON_CONTAINERS,
    MAX_JSON_DEPTH,
    PENDING,
    Submission,
    answer_ids,
    check_submission,
    discover,
    json_shape,
)

EXPECTED = answer_ids(source_notebook(REPO_ROOT, ASSIGNMENT))


@pytest.fixture(scope="module")
def solution_json() -> dict:
    """The solution-filled release of ASSIGNMENT as plain JSON."""
    nb = filled_release(solution_answers(REPO_ROOT, ASSIGNMENT), REPO_ROOT, ASSIGNMENT)
    return json.loads(nbformat.writes(nb))


def checked(path: Path) -> Submission:
    sub = Submission(student_id=path.stem, origin=path.name, path=path)
    check_submission(sub, ASSIGNMENT, EXPECTED)
    return sub


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / f"{name}.ipynb"
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def nested_notebook(raw: dict, depth: int) -> str:
    """``raw`` with ``depth`` nested lists in one cell's metadata, as JSON text."""
    text = json.dumps(raw)
    marker = '"metadata": {'
    at = text.index(marker) + len(marker)
    return text[:at] + '"deep": ' + "[" * depth + "]" * depth + ", " + text[at:]


def depth_of(value, level: int = 0) -> int:
    """The nesting depth of parsed JSON, by recursion (an independent count for small values)."""
    if isinstance(value, dict):
        return max([level + 1] + [depth_of(v, level + 1) for v in value.values()])
    if isinstance(value, list):
        return max([level + 1] + [depth_of(v, level + 1) for v in value])
    return level


def containers_of(value) -> int:
    if isinstance(value, dict):
        return 1 + sum(containers_of(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(containers_of(v) for v in value)
    return 0


# --------------------------------------------------------------------------------------------
# json_shape: the measure taken before parsing
# --------------------------------------------------------------------------------------------


def random_json(rng: random.Random, level: int = 0):
    roll = rng.random()
    if level < 6 and roll < 0.3:
        return [random_json(rng, level + 1) for _ in range(rng.randint(0, 3))]
    if level < 6 and roll < 0.6:
        return {rng.choice(["a", "[{", '"]', "\\", "}}"]) + str(i): random_json(rng, level + 1)
                for i in range(rng.randint(0, 3))}
    return rng.choice(["x[y", '"{', "\\]", "plain", "]]]}}}", "\\\\", 3, 2.5, None, True, "\ud800", "é"])


def test_json_shape_counts_what_a_recursive_walk_counts():
    rng = random.Random(11)
    for _ in range(300):
        value = random_json(rng)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        assert json_shape(text) == (depth_of(value), containers_of(value)), text


def test_json_shape_ignores_brackets_in_strings_and_bounds_broken_text():
    assert json_shape('{"a": "[[[[", "b": ["\\"]]]]", {}]}') == (3, 3)
    assert json_shape('"an unterminated [[[[ string') == (0, 0)
    assert json_shape('[[["abc\\') == (3, 3)
    assert json_shape("") == (0, 0)


def test_json_shape_of_a_long_pathological_text_is_quick():
    """Unterminated strings and escaped quotes cut out in linear time (a naive pattern is quadratic)."""
    import time

    text = '"\\' * 2_000_000 + "[" * 1000
    start = time.perf_counter()
    assert json_shape(text) == (0, 0)
    assert time.perf_counter() - start < 20  # quadratic: hours; linear: well under a second


# --------------------------------------------------------------------------------------------
# check_submission: every failure is an invalid submission with a reason
# --------------------------------------------------------------------------------------------


def test_the_solution_is_read(tmp_path, solution_json):
    sub = checked(write(tmp_path, "alice", json.dumps(solution_json)))
    assert sub.status == PENDING and sub.notebook is not None, sub.reason
    assert sub.read_seconds > 0


@pytest.mark.parametrize("depth", [200_000 // 2, 5_000, 900, MAX_JSON_DEPTH - 4])
def test_deeply_nested_json_is_invalid_and_never_recurses(tmp_path, solution_json, depth):
    """200 KB of brackets made json.loads raise RecursionError and stopped the class; 900 levels
    pass json.loads but not what comes after it. Just inside the limit is read."""
    text = nested_notebook(solution_json, depth)
    sub = checked(write(tmp_path, "deep", text))
    if depth + 4 <= MAX_JSON_DEPTH:  # notebook, cells, cell, metadata, then the lists
        assert sub.status == PENDING, sub.reason
        return
    assert sub.status == INVALID
    assert f"nested {depth + 4:,} levels deep" in sub.reason and str(MAX_JSON_DEPTH) in sub.reason
    assert sub.notebook is None


def test_a_deeply_nested_file_makes_only_its_own_submission_invalid(tmp_path, solution_json):
    folder = tmp_path / "subs"
    folder.mkdir()
    write(folder, "deep", nested_notebook(solution_json, 100_000))
    write(folder, "honest", json.dumps(solution_json))
    subs = {s.student_id: s for s in discover(folder, ASSIGNMENT)}
    for sub in subs.values():
        check_submission(sub, ASSIGNMENT, EXPECTED)
    assert subs["deep"].status == INVALID and "levels deep" in subs["deep"].reason
    assert subs["honest"].status == PENDING and subs["honest"].notebook is not None


def test_too_many_cells_is_invalid(tmp_path, solution_json):
    raw = dict(solution_json)
    raw["cells"] = solution_json["cells"] + [{"cell_type": "raw", "metadata": {}, "source": ""}] * MAX_CELLS
    sub = checked(write(tmp_path, "cells", json.dumps(raw)))
    assert sub.status == INVALID
    assert f"{len(raw['cells']):,} cells" in sub.reason and f"{MAX_CELLS:,}" in sub.reason


def test_350_000_cells_near_the_size_limit_are_refused_before_validation(tmp_path, solution_json, monkeypatch):
    """≈ 17 MB of empty cells took 12 s in nbformat.validate: refused before it is parsed."""
    calls = []
    monkeypatch.setattr(nbformat, "validate", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(nbformat, "from_dict", lambda *a, **k: calls.append(2))
    raw = dict(solution_json)
    raw["cells"] = solution_json["cells"] + [{"cell_type": "raw", "metadata": {}, "source": ""}] * 350_000
    path = write(tmp_path, "huge", json.dumps(raw))
    assert 15 * 2**20 < path.stat().st_size <= submissions.MAX_NOTEBOOK_BYTES
    sub = checked(path)
    assert sub.status == INVALID and not calls
    assert "lists and objects" in sub.reason and f"{MAX_JSON_CONTAINERS:,}" in sub.reason


def test_validation_is_skipped_above_its_bound_and_the_answers_still_read(tmp_path, solution_json, monkeypatch):
    calls = []
    monkeypatch.setattr(nbformat, "validate", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(submissions, "MAX_VALIDATED_CONTAINERS", 50)
    sub = checked(write(tmp_path, "big", json.dumps(solution_json)))
    assert sub.status == PENDING and not calls
    assert "schema was not checked" in sub.reason
    monkeypatch.setattr(submissions, "MAX_VALIDATED_CONTAINERS", 10**6)
    assert checked(write(tmp_path, "small", json.dumps(solution_json))).status == PENDING and calls == [1]


def test_lone_surrogate_escapes_are_replaced_and_noted(tmp_path, solution_json):
    raw = json.loads(json.dumps(solution_json))
    cell = next(c for c in raw["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "gaussian_kl_diag")
    cell["source"] = "# \ud800 and \udfff\n" + "".join(cell["source"])
    text = json.dumps(raw)  # ensure_ascii: "\ud800" as an escape, as a hostile file holds it
    assert "\\ud800" in text
    sub = checked(write(tmp_path, "surrogate", text))
    assert sub.status == PENDING, sub.reason
    assert "2 lone UTF-16 surrogate(s)" in sub.reason
    program = build_program(REPO_ROOT, ASSIGNMENT)
    answers, _ = student_answers(sub.notebook, program)
    assert answers["gaussian_kl_diag"].startswith("# \ufffd and \ufffd\n")
    answers["gaussian_kl_diag"].encode("utf-8")  # writable
    # a valid pair is one character, not a surrogate
    raw2 = json.loads(json.dumps(solution_json))
    raw2["cells"][0]["source"] = "😀"
    sub2 = checked(write(tmp_path, "emoji", json.dumps(raw2)))
    assert sub2.status == PENDING and "surrogate" not in sub2.reason
    assert sub2.notebook.cells[0].source == "😀"


def test_raw_surrogate_bytes_are_not_utf8(tmp_path, solution_json):
    data = json.dumps(solution_json).encode("utf-8").replace(b"torch", b"\xed\xa0\x80", 1)
    sub = checked(write(tmp_path, "bytes", data))
    assert sub.status == INVALID and "not UTF-8" in sub.reason


@pytest.mark.parametrize("error", [RecursionError("maximum recursion depth exceeded"), MemoryError(),
                                   KeyError("cells"), UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates")])
def test_any_failure_while_reading_makes_the_submission_invalid(tmp_path, solution_json, monkeypatch, error):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(nbformat, "from_dict", broken)
    sub = checked(write(tmp_path, "x", json.dumps(solution_json)))
    assert sub.status == INVALID and sub.notebook is None
    assert type(error).__name__ in sub.reason and "could not be read" in sub.reason


@pytest.mark.parametrize(("data", "why"), [
    (b"", "not valid JSON"), (b"[1, 2]", "without a list of cells"), (b'{"cells": {}}', "not a list of cells"),
    (b'{"cells": [1]}', "not a list of cells"), (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    (b'{"cells": [{"metadata": []}]}', "none of its answer cells"),
])
def test_files_that_are_not_notebooks_are_invalid_with_their_reason(tmp_path, data, why):
    sub = checked(write(tmp_path, "x", data))
    assert sub.status == INVALID and why in sub.reason, sub.reason


def test_a_fifo_and_an_oversized_file_are_invalid_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    assert "not a regular file" in checked(fifo).reason
    big = tmp_path / "big.ipynb"
    with open(big, "wb") as f:
        f.truncate(submissions.MAX_NOTEBOOK_BYTES + 1)
    assert "larger than 20 MiB" in checked(big).reason


# --------------------------------------------------------------------------------------------
# The other readers: assignment detection, the answers, the shards
# --------------------------------------------------------------------------------------------


def test_detecting_the_assignment_survives_hostile_files(tmp_path, solution_json):
    folder = tmp_path / "subs"
    folder.mkdir()
    shutil.copyfile(release_notebook(REPO_ROOT, ASSIGNMENT), folder / "honest.ipynb")
    write(folder, "deep", nested_notebook(solution_json, 100_000))
    write(folder, "deep900", nested_notebook(solution_json, 900))
    write(folder, "odd", '{"cells": [{"metadata": {"nbgrader": []}}, {"metadata": 3}]}')
    write(folder, "surrogate", '{"cells": [{"metadata": {"nbgrader": {"grade_id": "\\ud800"}}}]}')
    assert resolve_assignment(REPO_ROOT, None, folder) == ASSIGNMENT


def test_student_answers_never_raise_on_odd_json():
    program = build_program(REPO_ROOT, ASSIGNMENT)
    nb = nbformat.from_dict({"cells": [
        {"cell_type": "code", "metadata": [], "source": "x"},
        {"cell_type": "code", "metadata": {"nbgrader": "no"}, "source": "x"},
        {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": ["gaussian_kl_diag"]}}, "source": "x"},
        {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "gaussian_kl_diag", "solution": True}},
         "source": {"not": "text"}},
        {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "lg_elbo", "solution": True}},
         "source": ["def f():", [1, 2]]},
        {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "kl_monte_carlo", "solution": True}},
         "source": ["def kl(", "): pass"]},
        "not a cell",
    ]})
    answers, notes = student_answers(nb, program)
    assert answers == {"kl_monte_carlo": "def kl(): pass"}
    assert any("'gaussian_kl_diag' has a source that is not text (an object)" in n for n in notes)
    assert any("'lg_elbo' has a source that is not text (a list holding more than text)" in n for n in notes)
    assert student_answers(nbformat.from_dict({"cells": 5}), program)[0] == {}


def test_merge_refuses_a_deep_or_damaged_shard_file_with_a_grading_error(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(GradingError, match="cannot read shard results"):
        merge([deep])
    for bad in ('"a string"', '{"format": "dgm-grading-results/1"}',
                '{"format": "dgm-grading-results/1", "shard": [0, 1], "submissions": [{"student_id": 3}]}'):
        path = tmp_path / "bad.json"
        path.write_text(bad)
        with pytest.raises(GradingError):
            merge([path])


def test_merge_replaces_lone_surrogates(tmp_path):
    shard = {"format": "dgm-grading-results/1", "assignment": ASSIGNMENT, "seed": "1", "shard": [0, 1],
             "limits": {}, "tasks": [], "submissions": [{"student_id": "a", "reasons": ["x \ud800"]}]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(shard))
    merged = merge([path])
    assert merged["submissions"][0]["reasons"] == ["x \ufffd"]


def test_clean_strings_replaces_every_surrogate_and_keeps_the_rest():
    value = {"k\ud800": ["a\udfff", ("\ud83d\ude00", 1, None, 2.5)], "nul": "\x00\u202e\x1b"}
    cleaned, count = clean_strings(value)
    assert count == 4
    assert cleaned == {"k\ufffd": ["a\ufffd", ("\ufffd\ufffd", 1, None, 2.5)], "nul": "\x00\u202e\x1b"}
    json.dumps(cleaned, ensure_ascii=False).encode("utf-8")
    with pytest.raises(ValueError, match="nested deeper"):
        deep: list = []
        for _ in range(300):
            deep = [deep]
        clean_strings(deep)


# --------------------------------------------------------------------------------------------
# Student ids that differ only in letter case
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [("victim", "VICTIM"), ("VICTIM", "victim")])
def test_ids_differing_only_in_case_are_both_kept_and_flagged(tmp_path, order):
    if sys.platform == "darwin":
        pytest.skip("a case-insensitive file system holds one of the two files")
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in order:
        shutil.copyfile(release_notebook(REPO_ROOT, ASSIGNMENT), folder / f"{name}.ipynb")
    shutil.copyfile(release_notebook(REPO_ROOT, ASSIGNMENT), folder / "alice.ipynb")
    by_origin = {s.origin: s for s in discover(folder, ASSIGNMENT)}
    assert {o: s.student_id for o, s in by_origin.items()} == {
        "victim.ipynb": "victim", "VICTIM.ipynb": "VICTIM", "alice.ipynb": "alice"}
    names = report_names(["victim", "VICTIM", "alice"])
    for sid, twin in (("victim", "VICTIM"), ("VICTIM", "victim")):
        reason = by_origin[f"{sid}.ipynb"].reason
        assert f"{sid!r} differs from {twin!r} only in letter case" in reason
        assert f"{names[sid]}.html" in reason and by_origin[f"{sid}.ipynb"].status == PENDING
    assert by_origin["alice.ipynb"].reason == ""


def test_report_names_are_distinct_on_a_case_insensitive_file_system():
    ids = ["victim", "VICTIM", "Victim", "alice", "bob", "Bob-2", "bob-2"]
    names = report_names(ids)
    assert names["alice"] == "alice" and names["bob"] == "bob"
    assert len({n.casefold() for n in names.values()}) == len(ids)
    for sid in ("victim", "VICTIM", "Victim", "Bob-2", "bob-2"):
        assert names[sid].startswith(sid + "~") and len(names[sid]) == len(sid) + 9
    assert report_names(["victim", "VICTIM"]) == {k: names[k] for k in ("victim", "VICTIM")}  # the same every run


def test_sanitising_an_id_never_takes_an_id_that_differs_only_in_case():
    taken = {"victim"}
    assert submissions.sanitise_student_id("VICTIM", taken) == "VICTIM"
    assert submissions.sanitise_student_id("victim", taken) == "victim-2"
    assert taken == {"victim", "VICTIM", "victim-2"}
