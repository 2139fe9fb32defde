"""docs/hidden-checks.md has one row per registered task, in its assignment's section, and each row
names exactly the mutants (mutants/<assignment>/<task>__<slip>.py) that guard the task."""

from __future__ import annotations

import re

import pytest

from autograder.course import REPO_ROOT
from coursework import TASKS, chapters

DOC = REPO_ROOT / "docs" / "hidden-checks.md"
COLUMNS = ("task", "shapes and broadcasts", "dtypes", "extremes, mixed with ordinary values", "gradients",
           "edge cases", "mutants")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def doc_rows(text: str) -> dict[str, dict[str, list[str]]]:
    """assignment → task → the row's cells, from the tables under each ``## <assignment>`` heading."""
    rows: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in text.splitlines():
        heading = re.match(r"^## (\S+)\s*$", line)
        if heading:
            section = heading.group(1)
            continue
        task = re.match(r"^\| `(\w+)` \|", line)
        if task and section is not None:
            rows.setdefault(section, {})[task.group(1)] = _cells(line)
    return rows


ROWS = doc_rows(DOC.read_text(encoding="utf-8"))


def test_the_parser_reads_rows_and_sections():
    text = "## 01-x\n\n| task | a |\n|---|---|\n| `t1` | b |\n\n## 02-y\n| `t2` | c |\n| not a row |\n"
    assert doc_rows(text) == {"01-x": {"t1": ["`t1`", "b"]}, "02-y": {"t2": ["`t2`", "c"]}}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_registered_task_has_a_row_in_its_assignment_section(task):
    assignment = TASKS[task].chapter.assignment
    assert task in ROWS.get(assignment, {}), (
        f"docs/hidden-checks.md has no row for task {task!r} under '## {assignment}': add one (what its hidden "
        "suite exercises and which mutants guard it)")


def test_no_row_for_a_task_that_does_not_exist():
    for assignment, rows in ROWS.items():
        for task in rows:
            assert task in TASKS and TASKS[task].chapter.assignment == assignment, (
                f"docs/hidden-checks.md: '## {assignment}' has a row for {task!r}, which that chapter does not register")
    assert set(ROWS) == set(chapters()), "one section per assignment, named like the assignment"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_row_is_complete_and_names_exactly_its_mutants(task):
    assignment = TASKS[task].chapter.assignment
    cells = ROWS.get(assignment, {}).get(task)
    if cells is None:
        pytest.skip("no row (reported by the test above)")
    assert len(cells) == len(COLUMNS), f"{task}: the row needs {len(COLUMNS)} cells ({', '.join(COLUMNS)}), has {len(cells)}"
    assert all(cells), f"{task}: every cell is filled (write '—' and why where an item does not apply)"
    named = set(re.findall(r"`(\w+)`", cells[-1]))
    files = {p.stem.split("__", 1)[1] for p in (REPO_ROOT / "mutants" / assignment).glob(f"{task}__*.py")}
    assert named - files == set(), f"{task}: the row names mutants that do not exist: {sorted(named - files)}"
    assert files - named == set(), f"{task}: the row leaves out the mutants {sorted(files - named)}"


def test_the_guide_links_the_page_from_step_3():
    guide = (REPO_ROOT / "docs" / "adding-a-chapter.md").read_text(encoding="utf-8")
    step3 = guide.split("## 3.", 1)[1].split("\n## ", 1)[0]
    assert "hidden-checks.md" in step3
