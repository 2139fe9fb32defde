"""Tests of ``python -m autograder.benchmark``: the synthetic class and one small timed comparison.

The class tests only write notebooks (well under a second). The end-to-end test grades a class of
six twice (one worker, then two) in sandboxes, about 40 s on two cores, so it is marked slow.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from autograder.benchmark import (
    MIX,
    build_class,
    format_statuses,
    format_table,
    kind_counts,
    main,
    parse_workers,
    plan_class,
    scores_agree,
)
from autograder.course import REPO_ROOT
from autograder.samples import load_mutants, solution_answers
from autograder.sandbox import SandboxUnavailable, check_available

ASSIGNMENT = "01-elbo"


def _sandbox_or_skip() -> None:
    try:
        check_available()
    except SandboxUnavailable as err:
        pytest.skip(f"grading needs its sandbox: {err}")


@pytest.mark.parametrize("n", [1, 3, 4, 6, 40, 200, 201])
def test_kind_counts_add_up_and_follow_the_shares(n):
    counts = kind_counts(n)
    assert list(counts) == list(MIX)
    assert sum(counts.values()) == n
    if n >= len(MIX):
        assert all(c >= 1 for c in counts.values()), counts
    if n >= 100:  # rounding moves each count by at most one student
        for kind, share in MIX.items():
            assert abs(counts[kind] - share * n) <= 1, (kind, counts)


def test_kind_counts_of_the_default_class():
    assert kind_counts(200) == {"full": 100, "mutant": 70, "blank": 20, "partial": 10}


def test_the_class_has_the_requested_size_and_mix(tmp_path):
    n, seed = 12, 3
    paths = build_class(tmp_path, n, ASSIGNMENT, seed)
    assert [p.name for p in paths] == [f"student-{i:03d}.ipynb" for i in range(n)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]

    planned = plan_class(n, ASSIGNMENT, seed)
    assert Counter(p.kind for p in planned) == Counter(kind_counts(n))
    assert plan_class(n, ASSIGNMENT, seed) == planned, "the same seed must give the same class"
    assert plan_class(n, ASSIGNMENT, seed + 1) != planned

    solution = solution_answers(REPO_ROOT, ASSIGNMENT)
    mutants = {m.name: m for m in load_mutants(ASSIGNMENT)}
    for plan, path in zip(planned, paths):
        cells = {c.metadata["nbgrader"]["grade_id"]: c.source
                 for c in nbformat.read(path, as_version=4).cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
        assert set(cells) == set(solution)
        swapped = {mutants[m].grade_id: mutants[m].source for m in plan.mutants}
        from_solution = {gid for gid, src in cells.items() if src == solution[gid]}
        if plan.kind == "full":
            assert from_solution == set(solution)
        elif plan.kind == "mutant":
            assert 1 <= len(swapped) == len(plan.mutants) <= 2, "one or two mutants, on different tasks"
            assert all(cells[gid] == src for gid, src in swapped.items())
            assert from_solution == set(solution) - set(swapped)
        elif plan.kind == "blank":
            assert not from_solution
        else:
            assert from_solution == set(plan.answered)
            assert 0 < len(from_solution) < len(solution)


def test_parse_workers():
    assert parse_workers("1,2") == [1, 2]
    assert parse_workers(" 4 ") == [4]
    for bad in ("", "0", "1,x", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_workers(bad)


def test_format_table_has_a_row_per_run():
    rows = [{"workers": 1, "notebooks": 10, "seconds": 40.0, "per_minute": 15.0, "speedup": 1.0, "scores": {}},
            {"workers": 4, "notebooks": 10, "seconds": 12.5, "per_minute": 48.0, "speedup": 3.2, "scores": {}}]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["workers", "notebooks", "wall", "s", "nb/min", "speed-up"]
    assert lines[1].split() == ["1", "10", "40.0", "15.0", "1.00x"]
    assert lines[2].split() == ["4", "10", "12.5", "48.0", "3.20x"]
    assert scores_agree(rows)
    same = [{**r, "statuses": {"graded": 10}} for r in rows]
    assert format_statuses(same) == "statuses (every run): graded 10"
    broken = [same[0], {**same[1], "statuses": {"crashed": 10}}]
    assert format_statuses(broken) == "statuses: run 1: graded 10; run 2: crashed 10"
    assert not scores_agree([{**rows[0], "scores": {"a": ("graded", 1.0, ())}},
                             {**rows[1], "scores": {"a": ("graded", 2.0, ())}}])


def _grades(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "grades.csv", newline="", encoding="utf-8") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


@pytest.mark.slow
def test_benchmark_of_a_small_class_prints_its_rows_and_agrees(tmp_path, capsys):
    _sandbox_or_skip()
    keep = tmp_path / "keep"
    code = main(["--n", "6", "--workers", "1,2", "--seed", "0", "--keep", str(keep)])
    printed = capsys.readouterr().out
    assert code == 0, printed

    # the class: six notebooks, every kind present
    assert len(list((keep / "submissions").glob("*.ipynb"))) == 6
    assert "2 full, 2 mutant, 1 blank, 1 partial" in printed

    # the table: one row per run, notebooks per run, and the machine line
    assert printed.startswith("machine: ")
    rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s*$", printed, flags=re.MULTILINE)
    assert [(r[0], r[1]) for r in rows] == [("1", "6"), ("2", "6")]
    assert rows[0][4] == "1.00"
    assert "scores: identical for all 6 students" in printed
    assert "statuses (every run): graded 6" in printed

    # both runs' grades, read back from their reports: the same per student, and the mix shows
    runs = sorted(keep.glob("run-*"))
    assert [r.name for r in runs] == ["run-1-workers-1", "run-2-workers-2"]
    first, second = (_grades(r) for r in runs)
    columns = [c for c in next(iter(first.values())) if c != "reason"]
    assert {s: [row[c] for c in columns] for s, row in first.items()} == \
           {s: [row[c] for c in columns] for s, row in second.items()}
    for plan in plan_class(6, ASSIGNMENT, 0):
        row = first[plan.student_id]
        assert row["status"] == "graded", row["reason"]
        total, top = float(row["total"]), float(row["max_total"])
        if plan.kind == "full":
            assert total == top
        elif plan.kind == "blank":
            assert total == 0
        else:
            assert total < top, plan
