"""The exercise notebooks: ``exercises/`` is generated from ``solutions/`` and gives nothing away,
every answer cell of the release a stub.

That each solution runs with every visible and hidden check passing and nothing written to stderr
is nbval's job (tests/test_nbval.py). No test here times a notebook: the 60 s budget of a solution
is measured by ``make bench`` (``python -m benchmarks --only exercises``), on a machine whose load
you know."""

from __future__ import annotations

import re

import nbformat
import pytest

from autograder import nbgrader_config as cfg
from autograder.course import REPO_ROOT, assignments, release_notebook, source_notebook
from autograder.release import stale_release_files
from autograder.samples import strip_solution_markers

ASSIGNMENTS = assignments(REPO_ROOT)


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_there_is_an_assignment():
    assert ASSIGNMENTS, f"no solutions/<a>/<a>.ipynb under {REPO_ROOT / cfg.SOURCE_DIR}"


@pytest.mark.slow
def test_exercises_are_what_nbgrader_generates_from_solutions():
    stale = stale_release_files(REPO_ROOT)
    assert not stale, "exercises/ is out of date; run `make release`:\n" + "\n".join(stale)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_gives_nothing_away(assignment):
    path = release_notebook(REPO_ROOT, assignment)
    assert path.is_file(), f"{path} is missing; run `make release`"
    text = path.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                   "BEGIN MARK SCHEME"):
        assert marker not in text, f"{path.name} contains {marker!r}"
    # no line of a solution region survives (lines that also exist outside it excepted)
    source = nbformat.read(source_notebook(REPO_ROOT, assignment), as_version=4)
    release = nbformat.read(path, as_version=4)
    released_lines = {ln.strip() for c in release.cells for ln in c.source.splitlines()}
    for cell in source.cells:
        if not _meta(cell).get("solution"):
            continue
        region = re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, flags=re.S)
        outside = set(ln.strip() for ln in re.sub(r"### BEGIN SOLUTION\n.*?### END SOLUTION", "",
                                                   cell.source, flags=re.S).splitlines())
        for block in region:
            for line in block.splitlines():
                line = line.strip()
                if len(line) > 12 and line not in outside and not line.startswith("#"):
                    assert line not in released_lines, \
                        f"solution line of {_meta(cell)['grade_id']!r} is in the release: {line!r}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_answer_cell_of_the_release_is_a_stub(assignment):
    release = nbformat.read(release_notebook(REPO_ROOT, assignment), as_version=4)
    answers = [c for c in release.cells if _meta(c).get("solution")]
    assert answers, "the release has no answer cells"
    for cell in answers:
        gid = _meta(cell)["grade_id"]
        if cell.cell_type == "code":
            assert "raise NotImplementedError()" in cell.source, f"answer cell {gid!r} does not raise NotImplementedError"
        else:
            assert cfg.TEXT_STUB in cell.source, f"answer cell {gid!r} lacks the text stub"
    for cell in release.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "the release keeps outputs"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_answer_cells_have_unique_ids_and_tests_name_tasks(assignment):
    source = nbformat.read(source_notebook(REPO_ROOT, assignment), as_version=4)
    ids = [_meta(c)["grade_id"] for c in source.cells if _meta(c)]
    assert len(ids) == len(set(ids)), "duplicated grade_id in the source"
    answers = {gid for gid, c in zip(ids, [c for c in source.cells if _meta(c)]) if _meta(c).get("solution")}
    from autograder.program import task_of
    for cell in source.cells:
        meta = _meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            assert task_of(meta["grade_id"]) in answers, \
                f"test cell {meta['grade_id']!r} names no answer cell (expected test_<task>_visible/_hidden)"


def test_solution_marker_stripping():
    src = "x = 1\n    ### BEGIN SOLUTION\n    y = 2\n    ### END SOLUTION\nz = 3"
    assert strip_solution_markers(src) == "x = 1\n    y = 2\nz = 3"
