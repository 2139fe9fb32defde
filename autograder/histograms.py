"""Histograms of a graded class, for the instructor: one PNG of bar charts (points per automatically
graded task and the total), made from the results object alone (``results.json``).

* :func:`score_counts` — task → {score: number of students}, the pure counting;
* :func:`histograms_png` — draws the counts with matplotlib (Agg) and writes the PNG.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

from autograder.results import auto_tasks, counted, fmt, max_total

#: The key of the total in :func:`score_counts`.
TOTAL = "TOTAL"


def possible_scores(max_points: float, observed: Iterable[float] = ()) -> list[float]:
    """The scores a bar chart shows: every whole number from 0 to ``max_points``, ``max_points``
    itself and every score ``observed`` (fractions of partial credit), sorted."""
    values = {float(k) for k in range(math.floor(max_points) + 1)}
    values.add(float(max_points))
    values.update(float(x) for x in observed)
    return sorted(values)


def score_counts(results: Mapping[str, Any]) -> dict[str, dict[float, int]]:
    """task → {score: number of students} for every automatically graded task, then :data:`TOTAL`
    → the same for the total; over the submissions that are not invalid, skipping a missing score.
    Every possible score (see :func:`possible_scores`) is a key, with 0 where nobody got it."""
    subs = counted(results)
    columns: dict[str, tuple[float, list[float]]] = {}
    for t in auto_tasks(results):
        got = [(s.get("scores") or {}).get(t["name"]) for s in subs]
        columns[t["name"]] = (t["max_points"], [float(g) for g in got if g is not None])
    totals = [float(s["total"]) for s in subs if s.get("total") is not None]
    columns[TOTAL] = (max_total(results), totals)
    counts: dict[str, dict[float, int]] = {}
    for name, (top, got) in columns.items():
        tally = Counter(got)
        counts[name] = {x: tally.get(x, 0) for x in possible_scores(top, got)}
    return counts


def histograms_png(results: Mapping[str, Any], path: Path) -> Path:
    """Draw one small bar chart per automatically graded task and one for the total (x: points,
    y: number of students; see :func:`score_counts`) on a grid, save it as a PNG to ``path`` and
    return ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = score_counts(results)
    ncols = min(4, len(counts))
    nrows = math.ceil(len(counts) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows), squeeze=False)
    try:
        for ax, (name, tally) in zip(axes.flat, counts.items()):
            xs, ys = list(tally), list(tally.values())
            gaps = [b - a for a, b in pairwise(xs)]
            ax.bar(xs, ys, width=0.8 * min(gaps, default=1.0), color="#3b7dd8" if name != TOTAL else "#555")
            ax.set_title(f"{name} (n={sum(ys)})", fontsize=9)
            ax.set_xlabel("points", fontsize=8)
            ax.set_ylabel("students", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.yaxis.get_major_locator().set_params(integer=True)
            if len(xs) <= 12:
                ax.set_xticks(xs, [fmt(x) for x in xs])
        for ax in list(axes.flat)[len(counts):]:
            ax.set_visible(False)
        fig.suptitle(f"{results.get('assignment', '')}: points per task", fontsize=10)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path
