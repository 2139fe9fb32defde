"""Tests of ``python -m autograder.benchmark`` (the synthetic class and one small timed comparison)
and of ``python -m benchmarks`` (``make bench``: every budget of the course in one table).

The class tests only write notebooks (well under a second). The end-to-end test grades a class of
six twice (one worker, then two) in sandboxes, about 40 s on two cores, so it is marked slow.

No test here asserts a real timing. The ``benchmarks`` tests run the sampler part with tiny sizes
and tiny notebooks made in a temporary course, and set the budgets to 1e9 (always holds) or 1e-9
(never holds) to check the table, the verdicts and the exit status.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from conftest import require_sandbox
from autograder.benchmark import (
    MIX,
    build_class,
    differing_students,
    format_comparison,
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
import benchmarks.__main__ as bench
from benchmarks import grading as bench_grading
from benchmarks.notebooks import chapter_notebooks, solution_notebooks
from benchmarks.table import Row, exit_status
from benchmarks.table import format_table as bench_table

ASSIGNMENT = "01-elbo"


def _sandbox_or_skip() -> None:
    """Fail (never skip) without the sandbox, saying how to install it."""
    require_sandbox()


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
    assert lines[0].split() == ["grader", "workers", "notebooks", "wall", "s", "nb/min", "speed-up"]
    assert lines[1].split() == ["ours", "(sandboxed)", "1", "10", "40.0", "15.0", "1.00x"]
    assert lines[2].split() == ["ours", "(sandboxed)", "4", "10", "12.5", "48.0", "3.20x"]
    assert scores_agree(rows)
    same = [{**r, "statuses": {"graded": 10}} for r in rows]
    assert format_statuses(same) == "statuses (every run): graded 10"
    broken = [same[0], {**same[1], "statuses": {"crashed": 10}}]
    assert format_statuses(broken) == "statuses: run 1: graded 10; run 2: crashed 10"
    assert not scores_agree([{**rows[0], "scores": {"a": ("graded", 1.0, ())}},
                             {**rows[1], "scores": {"a": ("graded", 2.0, ())}}])


def test_the_stock_nbgrader_row_is_compared_side_by_side():
    scores = {"a": ("graded", 1.0, ()), "b": ("graded", 2.0, ())}
    rows = [{"workers": 1, "notebooks": 10, "seconds": 40.0, "per_minute": 15.0, "speedup": 1.0, "scores": scores},
            {"workers": 2, "notebooks": 10, "seconds": 20.0, "per_minute": 30.0, "speedup": 2.0, "scores": scores},
            {"grader": "nbgrader", "workers": 1, "notebooks": 10, "seconds": 50.0, "per_minute": 12.0,
             "speedup": 0.8, "disagree": []}]
    lines = format_table(rows).splitlines()
    assert lines[0].split()[-2:] == ["vs", "nbgrader"]
    assert lines[1].split()[-1] == "1.25x" and lines[2].split()[-1] == "2.50x"
    assert lines[3].split()[:2] == ["nbgrader", "autograde"] and lines[3].split()[-1] == "1.00x"
    # the stock row has no per-student scores of ours: the checks between our runs leave it out
    assert scores_agree(rows) and differing_students(rows) == []
    comparison = format_comparison(rows)
    assert "ours with 2 worker(s): 30.0 notebooks/min; stock nbgrader autograde: 12.0 notebooks/min; ratio 2.50x" \
        in comparison
    assert "are the same as stock nbgrader's (10 students)" in comparison
    rows[2]["disagree"] = ["b"]
    assert "DIFFER from stock nbgrader's for 1 of 10 students: b" in format_comparison(rows)


def test_points_are_compared_with_stock_nbgrader_on_the_automatic_tasks_only():
    from autograder.benchmark import _disagreeing

    ours = {"s1": ("graded", 3.0, (("gaussian_kl_diag", 3.0), ("elbo_decomposition", None))),
            "s2": ("graded", 0.0, (("gaussian_kl_diag", 0.0), ("elbo_decomposition", 0.0))),
            "s3": ("graded", 3.0, (("gaussian_kl_diag", 3.0),))}
    stock = {"s1": {"gaussian_kl_diag": 3.0},                # a task graded by hand is not compared
             "s2": {},                                        # a task nbgrader did not grade counts 0
             "s3": {"gaussian_kl_diag": 1.0},                 # different points
             "s4": {"gaussian_kl_diag": 0.0}}                 # graded by one side only
    assert _disagreeing(ours, stock, ASSIGNMENT) == ["s3", "s4"]


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
    rows = re.findall(r"^ours \(sandboxed\)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)x$",
                      printed, flags=re.MULTILINE)
    assert [(r[0], r[1]) for r in rows] == [("1", "6"), ("2", "6")]
    assert rows[0][4] == "1.00"
    assert "scores: identical for all 6 students" in printed
    assert "statuses (every run): graded 6" in printed
    # stock nbgrader graded the same class, side by side, and gave every student the same points
    assert re.search(r"^nbgrader autograde\s+1\s+6\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+1\.00x$", printed, flags=re.MULTILINE)
    assert re.search(r"^ours with 2 worker\(s\): [\d.]+ notebooks/min; stock nbgrader autograde: [\d.]+ "
                     r"notebooks/min; ratio [\d.]+x$", printed, flags=re.MULTILINE)
    assert "are the same as stock nbgrader's (6 students)" in printed

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


# --------------------------------------------------------------------------------------------
# python -m benchmarks (make bench): every budget in one table. No test here asserts a real
# timing: the budgets are set to 1e9 (always holds) or 1e-9 (never holds) to test the verdicts.
# --------------------------------------------------------------------------------------------

SAMPLER_ROW = re.compile(r"^sampler: p_sample_loop / bare loop \(T=20, batch 64, best of 2\)\s+([\d.e+-]+)\s+<= (\S+)"
                         r"\s+ratio\s+(ok|OVER)$", flags=re.MULTILINE)


def _table_rows(printed: str) -> dict[str, list[str]]:
    """item -> [measured, budget, unit, verdict] of every row of the printed table."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("item "))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        item, *rest = re.split(r"\s{2,}", line.strip())
        rows[item] = rest
    return rows


def test_bench_sampler_quick_prints_the_machine_and_its_row(capsys):
    code = bench.main(["--only", "sampler", "--quick", "--budget", "sampler=1e9"])
    out, err = capsys.readouterr()
    assert code == 0, out
    assert out.startswith("machine: ") and "torch " in out.splitlines()[0] and "cores" in out.splitlines()[0]
    match = SAMPLER_ROW.search(out)
    assert match, out
    assert float(match.group(1)) > 0 and match.group(3) == "ok"
    assert "every budget holds (1 row)" in out
    assert "timing the diffusion sampler" in err and "timing the" not in out   # progress on stderr only


def test_bench_an_impossible_budget_exits_1_naming_the_row(capsys):
    code = bench.main(["--only", "sampler", "--quick", "--budget", "sampler=1e-9"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert SAMPLER_ROW.search(out).group(3) == "OVER"
    assert "OVER budget: sampler: p_sample_loop / bare loop" in out.splitlines()[-1]


def _tiny_course(root: Path, chapter_code: str = "x = 1 + 1\nprint(x)") -> Path:
    """A course with one numbered chapter (MyST markdown) and one solution notebook, both tiny."""
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: Chapters\n"
                                   "    chapters:\n      - file: book/01-tiny\n      - file: book/notation\n",
                                   encoding="utf-8")
    (root / "book" / "01-tiny.md").write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        f"# A tiny chapter\n\n```{{code-cell}} ipython3\n{chapter_code}\n```\n", encoding="utf-8")
    folder = root / "solutions" / "01-tiny"
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 2 + 2 == 4")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "01-tiny.ipynb")
    return root


def test_bench_lists_the_numbered_chapters_and_the_solutions(tmp_path):
    assert [p.relative_to(REPO_ROOT).as_posix() for p in chapter_notebooks(REPO_ROOT)] == \
        [f"{doc}.md" for doc in re.findall(r"file: (book/\d\d-[a-z0-9-]+)", (REPO_ROOT / "_toc.yml").read_text())]
    assert chapter_notebooks(REPO_ROOT), "the course has numbered chapters"
    assert [p.parent.name for p in solution_notebooks(REPO_ROOT)] == \
        sorted(p.name for p in (REPO_ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").is_file())
    course = _tiny_course(tmp_path)
    assert chapter_notebooks(course) == [course / "book" / "01-tiny.md"]   # not intro, not notation
    assert solution_notebooks(course) == [course / "solutions" / "01-tiny" / "01-tiny.ipynb"]


@pytest.mark.slow
def test_bench_executes_a_chapter_and_a_solution(tmp_path, capsys):
    """Two kernels start (several seconds on a loaded machine): the chapter's row holds its
    budget of 1e9 s, the solution's breaks its budget of 1e-9 s, so the exit status is 1."""
    course = _tiny_course(tmp_path)
    code = bench.main(["--root", str(course), "--only", "chapters,exercises",
                       "--budget", "chapters=1e9", "--budget", "exercises=1e-9"])
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert list(rows) == ["chapter book/01-tiny.md", "solution solutions/01-tiny/01-tiny.ipynb"], out
    assert rows["chapter book/01-tiny.md"][1:] == ["<= 1e+09", "s", "ok"]
    assert rows["solution solutions/01-tiny/01-tiny.ipynb"][1:] == ["<= 1e-09", "s", "OVER"]
    assert code == 1
    assert out.splitlines()[-1] == "OVER budget: solution solutions/01-tiny/01-tiny.ipynb"


@pytest.mark.slow
def test_bench_a_chapter_that_raises_could_not_run(tmp_path, capsys):
    course = _tiny_course(tmp_path, chapter_code="raise ValueError('broken chapter')")
    code = bench.main(["--root", str(course), "--only", "chapters", "--budget", "chapters=1e9"])
    out = capsys.readouterr().out
    assert code == 2, out
    assert _table_rows(out)["chapter book/01-tiny.md"] == ["-", "<= 1e+09", "s", "FAILED"]
    assert "chapter book/01-tiny.md: could not run: CellExecutionError" in out
    assert "broken chapter" in out


def _fake_runs(seconds=(24.0, 13.0), statuses=None, scores=None, stock_seconds=36.0, disagree=()):
    runs = []
    for k, (w, s) in enumerate(zip((1, 2), seconds)):
        runs.append({"workers": w, "notebooks": 12, "seconds": s, "per_minute": 60 * 12 / s, "speedup": seconds[0] / s,
                     "scores": (scores or {})[k] if scores else {"a": ("graded", 1.0, ())},
                     "statuses": statuses or {"graded": 12}, "out": None, "grader": "ours"})
    if stock_seconds is not None:
        runs.append({"grader": "nbgrader", "workers": 1, "notebooks": 12, "seconds": stock_seconds,
                     "per_minute": 60 * 12 / stock_seconds, "speedup": seconds[0] / stock_seconds,
                     "disagree": list(disagree)})
    return runs


def test_bench_grading_rows_from_the_grader_benchmark(monkeypatch):
    import autograder.benchmark as grader_benchmark

    asked = []

    def fake(n, assignment, workers, seed, echo=None, stock=False):
        asked.append((n, assignment, workers, stock))
        return _fake_runs(stock_seconds=36.0 if stock else None)

    monkeypatch.setattr(grader_benchmark, "run_benchmark", fake)
    # the budget is core-seconds per notebook: 1.5 s with one worker, 0.75 s with two
    rows = bench_grading.grading_rows(["01-elbo"], n=12, budget=1.5)
    assert asked == [(12, "01-elbo", [1, 2], True)]
    assert [(r.item, r.measured, r.budget, r.unit, r.verdict) for r in rows] == [
        ("grading 01-elbo, 12 nb, 1 worker: time", 2.0, 1.5, "s/notebook", "OVER"),
        ("grading 01-elbo, 12 nb, 1 worker: rate", 30.0, None, "notebooks/min", "-"),
        ("grading 01-elbo, 12 nb, 2 workers: time", 13.0 / 12, 0.75, "s/notebook", "OVER"),
        ("grading 01-elbo, 12 nb, 2 workers: rate", 60 * 12 / 13.0, None, "notebooks/min", "-"),
        ("grading 01-elbo, 12 nb, stock nbgrader autograde: time", 3.0, None, "s/notebook", "-"),
        ("grading 01-elbo: ours (2 workers) / stock nbgrader, time per notebook", 13.0 / 36.0,
         bench_grading.STOCK_RATIO_BUDGET, "ratio", "ok"),
    ]
    assert exit_status(rows) == 1
    rows = bench_grading.grading_rows(["01-elbo"], n=12, budget=3.0, stock=False)
    assert [r.verdict for r in rows] == ["ok", "-", "ok", "-"] and asked[-1][-1] is False

    # grades that differ between worker counts, a class not all graded, or points that differ from
    # stock nbgrader's: the times mean nothing
    monkeypatch.setattr(grader_benchmark, "run_benchmark", lambda *a, **k: _fake_runs(
        scores=[{"s1": ("graded", 1.0, ())}, {"s1": ("graded", 0.0, ())}]))
    (row,) = bench_grading.grading_rows(["01-elbo"])
    assert row.verdict == "FAILED" and "different grades" in row.error and "s1" in row.error
    monkeypatch.setattr(grader_benchmark, "run_benchmark",
                        lambda *a, **k: _fake_runs(statuses={"graded": 10, "crashed": 2}))
    (row,) = bench_grading.grading_rows(["01-elbo"])
    assert row.verdict == "FAILED" and "crashed 2" in row.error
    monkeypatch.setattr(grader_benchmark, "run_benchmark", lambda *a, **k: _fake_runs(disagree=["s7"]))
    (row,) = bench_grading.grading_rows(["01-elbo"])
    assert row.verdict == "FAILED" and "stock nbgrader gave different points to s7" in row.error


def test_bench_table_verdicts_and_exit_status():
    rows = [Row("a", 1.0, 2.0, "s"), Row("b", 3.0, None, "notebooks/min")]
    assert exit_status(rows) == 0
    assert exit_status(rows + [Row("c", 2.5, 2.0, "ratio")]) == 1
    assert exit_status(rows + [Row("c", 2.5, 2.0, "ratio"), Row("d", None, 60.0, "s", error="no kernel")]) == 2
    text = bench_table(rows + [Row("d", None, 60.0, "s", error="no kernel")])
    lines = text.splitlines()
    assert lines[0].split() == ["item", "measured", "budget", "unit", "verdict"]
    assert lines[2].split() == ["a", "1.00", "<=", "2.00", "s", "ok"]
    assert lines[3].split() == ["b", "3.00", "-", "notebooks/min", "-"]
    assert lines[4].split() == ["d", "-", "<=", "60.00", "s", "FAILED"]
    assert lines[5:] == ["", "d: could not run: no kernel"]


@pytest.mark.parametrize("argv", [["--only", "sampler,bogus"], ["--only", ""], ["--budget", "sampler"],
                                  ["--budget", "sampler=-1"], ["--budget", "nothing=3"], ["--budget", "chapters=x"]])
def test_bench_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err   # argparse names the option


def test_bench_parses_parts_and_budgets():
    assert bench.parse_parts("sampler, chapters") == ["chapters", "sampler"]
    assert bench.parse_budget("grading=7.5") == ("grading", 7.5)
    assert set(bench.BUDGETS) == set(bench.PARTS) == {"chapters", "exercises", "grading", "sampler", "em", "flows", "vae", "mcmc"}
    assert bench.BUDGETS == {"chapters": 120.0, "exercises": 60.0, "grading": 4.0, "sampler": 2.0, "em": 1 / 3, "flows": 0.1, "vae": 10.0, "mcmc": 5.0}


def test_a_part_of_the_benchmark_prints_its_rows_and_exits_by_its_budgets(capsys):
    """benchmarks.table.part_main, the command line of the flows, mcmc and vae parts: the rows' table, the
    lines after the measurements, exit 0 / 1 by the budgets, 2 for out-of-range options (nothing measured)."""
    from benchmarks.table import Row, part_main

    calls = []

    def rows(quick, echo, *, repeats, threads):
        calls.append((quick, repeats, threads))
        echo("measuring")
        return [Row("part: a ratio", 0.5, 1.0, "x"), Row("part: a time", 3.0, None, "s")]

    def over(quick, echo, *, repeats, threads):
        return [Row("part: a ratio", 2.0, 1.0, "x")]

    common = dict(prog="python -m benchmarks.part", description="a part", quick_help="quick", default_repeats=3,
                  threads=2)
    assert part_main(["--quick", "--repeats", "4"], rows=rows, after=lambda: ["  no CUDA device"], **common) == 0
    out = capsys.readouterr().out
    assert calls == [(True, 4, 2)]
    assert "machine:" in out and "measuring" in out and "no CUDA device" in out and "at the end: load average" in out
    assert "part: a ratio" in out and "part: a time" in out
    assert part_main([], rows=over, **common) == 1
    assert part_main(["--threads", "0"], rows=rows, **common) == 2 and len(calls) == 1
    assert "must be at least 1" in capsys.readouterr().err
