"""Timing the grader: a synthetic class of each assignment graded with 1 and 2 workers.

The class and the runs are :mod:`autograder.benchmark`'s (:func:`~autograder.benchmark.run_benchmark`:
a fixed mix of full, mutant, blank and partial submissions, the same seed for every run). Per run
two rows: the seconds per notebook (the wall clock of the whole run over the notebooks graded,
the budget) and the notebooks per minute (reported only). The runs must give every student the
same grades and a synthetic class must be all ``graded``; otherwise the times mean nothing and
the part is a row that could not run.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.table import Row, failed

#: Seconds of grading per notebook, over the whole class.
PER_NOTEBOOK_BUDGET_S = 15.0
DEFAULT_N = 12
DEFAULT_WORKERS = (1, 2)


def grading_rows(assignments: list[str], n: int = DEFAULT_N, workers: tuple[int, ...] = DEFAULT_WORKERS,
                 budget: float = PER_NOTEBOOK_BUDGET_S, seed: int = 0,
                 echo: Callable[[str], None] = lambda line: None) -> list[Row]:
    """Two rows per assignment and worker count (seconds per notebook, notebooks per minute), or
    one failed row per assignment whose class could not be graded or graded inconsistently."""
    from autograder.benchmark import differing_students, run_benchmark, scores_agree
    from autograder.grade import GradingError

    rows: list[Row] = []
    for assignment in assignments:
        item = f"grading {assignment}"
        echo(f"grading a class of {n} of {assignment} with {', '.join(map(str, workers))} worker(s)")
        try:
            runs = run_benchmark(n, assignment, list(workers), seed, echo=lambda line: echo("  " + line))
        except GradingError as err:
            rows.append(failed(item, "s/notebook", budget, str(err)[:300]))
            continue
        if not scores_agree(runs):
            rows.append(failed(item, "s/notebook", budget, "the worker counts gave different grades to "
                               + ", ".join(differing_students(runs)[:5])))
            continue
        odd = {status: count for r in runs for status, count in r["statuses"].items() if status != "graded"}
        if odd:
            rows.append(failed(item, "s/notebook", budget, "the synthetic class should be all graded, but: "
                               + ", ".join(f"{s} {c}" for s, c in sorted(odd.items()))))
            continue
        for r in runs:
            label = f"{item}, {r['notebooks']} nb, {r['workers']} worker{'s' if r['workers'] > 1 else ''}"
            rows.append(Row(f"{label}: time", r["seconds"] / max(r["notebooks"], 1), budget, "s/notebook"))
            rows.append(Row(f"{label}: rate", r["per_minute"], None, "notebooks/min"))
    return rows
