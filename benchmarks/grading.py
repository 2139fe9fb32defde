"""Timing the grader: a synthetic class of each assignment graded with 1 and 2 workers, and with
stock ``nbgrader autograde`` beside them.

The class and the runs are :mod:`autograder.benchmark`'s (:func:`~autograder.benchmark.run_benchmark`:
a fixed mix of full, mutant, blank and partial submissions, the same seed for every run; the stock
run is :func:`~autograder.benchmark.grade_with_nbgrader`). Per run of ours two rows: the seconds
per notebook (the wall clock of the whole run — self-test, sandboxes, judging, reports — over the
notebooks graded) against :data:`CORE_SECONDS_PER_NOTEBOOK` divided by the workers, and the
notebooks per minute (reported only). Then stock nbgrader's seconds per notebook (reported only)
and the ratio of our fastest run's seconds per notebook to stock nbgrader's, against
:data:`STOCK_RATIO_BUDGET`. The runs must give every student the same grades, stock nbgrader must
give the same points on every automatically graded task, and a synthetic class must be all
``graded``; otherwise the times mean nothing and the part is a row that could not run.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.table import Row, failed

#: Core-seconds of grading per notebook over a whole class: the budget of a run with w workers is
#: this over w (4 s: 15 notebooks a minute on one core, 30 on two — the course's goal).
CORE_SECONDS_PER_NOTEBOOK = 4.0
#: Our fastest run's seconds per notebook over stock nbgrader's, at most (twice as fast).
STOCK_RATIO_BUDGET = 0.5
#: A class this big makes the run's fixed costs (self-test, reports) small beside the notebooks.
DEFAULT_N = 40
DEFAULT_WORKERS = (1, 2)


def grading_rows(assignments: list[str], n: int = DEFAULT_N, workers: tuple[int, ...] = DEFAULT_WORKERS,
                 budget: float = CORE_SECONDS_PER_NOTEBOOK, seed: int = 0,
                 echo: Callable[[str], None] = lambda line: None, stock: bool = True) -> list[Row]:
    """Per assignment: two rows per worker count (seconds per notebook against ``budget`` over the
    workers, notebooks per minute) and, with ``stock``, stock nbgrader's seconds per notebook and
    our ratio to it; or one failed row per assignment whose class could not be graded or graded
    inconsistently."""
    from autograder.benchmark import differing_students, ours, run_benchmark, scores_agree
    from autograder.grade import GradingError

    rows: list[Row] = []
    for assignment in assignments:
        item = f"grading {assignment}"
        echo(f"grading a class of {n} of {assignment} with {', '.join(map(str, workers))} worker(s)"
             + (" and with stock nbgrader" if stock else ""))
        try:
            runs = run_benchmark(n, assignment, list(workers), seed, echo=lambda line: echo("  " + line), stock=stock)
        except GradingError as err:
            rows.append(failed(item, "s/notebook", budget, str(err)[:300]))
            continue
        if not scores_agree(runs):
            rows.append(failed(item, "s/notebook", budget, "the worker counts gave different grades to "
                               + ", ".join(differing_students(runs)[:5])))
            continue
        odd = {status: count for r in ours(runs) for status, count in r["statuses"].items() if status != "graded"}
        if odd:
            rows.append(failed(item, "s/notebook", budget, "the synthetic class should be all graded, but: "
                               + ", ".join(f"{s} {c}" for s, c in sorted(odd.items()))))
            continue
        stock_run = next((r for r in runs if r.get("grader") == "nbgrader"), None)
        if stock_run is not None and stock_run["disagree"]:
            rows.append(failed(item, "s/notebook", budget, "stock nbgrader gave different points to "
                               + ", ".join(stock_run["disagree"][:5])))
            continue
        for r in ours(runs):
            label = f"{item}, {r['notebooks']} nb, {r['workers']} worker{'s' if r['workers'] > 1 else ''}"
            rows.append(Row(f"{label}: time", r["seconds"] / max(r["notebooks"], 1), budget / r["workers"],
                            "s/notebook"))
            rows.append(Row(f"{label}: rate", r["per_minute"], None, "notebooks/min"))
        if stock_run is not None:
            per_nb = stock_run["seconds"] / max(stock_run["notebooks"], 1)
            rows.append(Row(f"{item}, {stock_run['notebooks']} nb, stock nbgrader autograde: time", per_nb, None,
                            "s/notebook"))
            best = min(ours(runs), key=lambda r: r["seconds"] / max(r["notebooks"], 1))
            rows.append(Row(f"{item}: ours ({best['workers']} workers) / stock nbgrader, time per notebook",
                            best["seconds"] / max(best["notebooks"], 1) / per_nb if per_nb > 0 else None,
                            STOCK_RATIO_BUDGET, "ratio"))
    return rows
