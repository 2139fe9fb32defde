"""The benchmark's rows, their verdicts, the table and the machine line."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass

#: Verdicts, in the order of their weight: a row that could not run outweighs one over budget.
OK, OVER, FAILED, INFO = "ok", "OVER", "FAILED", "-"


@dataclass
class Row:
    """One measured quantity against its budget.

    ``measured`` is None when the measurement could not be made (``error`` then says why);
    ``budget`` is None for a figure reported without a budget (notebooks per minute). The budget
    is a ceiling (seconds, a ratio).
    """

    item: str
    measured: float | None
    budget: float | None
    unit: str
    error: str | None = None

    @property
    def verdict(self) -> str:
        if self.error is not None or self.measured is None:
            return FAILED
        if self.budget is None:
            return INFO
        return OK if self.measured <= self.budget else OVER


def failed(item: str, unit: str, budget: float | None, error: str) -> Row:
    """A row whose measurement could not be made, and why."""
    return Row(item, None, budget, unit, error=error)


def _number(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.3g}"


def format_table(rows: list[Row]) -> str:
    """The rows as a plain-text table: item, measured, budget (``<= x``), unit, verdict; then,
    after a blank line, one line per row that could not run, with its reason."""
    head = ("item", "measured", "budget", "unit", "verdict")
    body = [(r.item, _number(r.measured), "-" if r.budget is None else f"<= {_number(r.budget)}", r.unit, r.verdict)
            for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        item, measured, budget, unit, verdict = cells
        return (f"{item:<{widths[0]}}  {measured:>{widths[1]}}  {budget:>{widths[2]}}  "
                f"{unit:<{widths[3]}}  {verdict}").rstrip()

    lines = [line(head), line(tuple("-" * w for w in widths))] + [line(cells) for cells in body]
    reasons = [f"{r.item}: could not run: {r.error}" for r in rows if r.verdict == FAILED]
    return "\n".join(lines + ([""] + reasons if reasons else []))


def exit_status(rows: list[Row]) -> int:
    """0 when every budget holds, 1 when a row is over its budget, 2 when a row could not run."""
    verdicts = {r.verdict for r in rows}
    return 2 if FAILED in verdicts else 1 if OVER in verdicts else 0


def machine_line() -> str:
    """The machine in one line: CPU model, cores, memory, torch and Python versions, and the load
    average when the benchmark started (timings on a loaded machine are slower)."""
    import torch

    from autograder.benchmark import machine_description

    m = machine_description()
    memory = "" if m.get("memory_gib") is None else f", {m['memory_gib']:g} GiB memory"
    return (f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable){memory}, "
            f"torch {torch.__version__}, Python {platform.python_version()}, {load_average()}")


def load_average() -> str:
    """``load average 1.02 0.87 0.55`` (1, 5 and 15 minutes), or ``load average unknown``."""
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def part_main(argv: list[str] | None, *, prog: str, description: str, quick_help: str, default_repeats: int,
              threads: int, rows: Callable[..., list[Row]], after: Callable[[], list[str]] = lambda: []) -> int:
    """The command line of one part of ``make bench`` (``python -m benchmarks.<part>``): ``--quick``,
    ``--repeats``, ``--threads``. Prints the machine, each measurement as it is made
    (``rows(quick, echo, repeats=, threads=)``), the lines of ``after()``, the table and the load at the
    end; returns :func:`exit_status` of the rows, or 2 for options out of range."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--repeats", type=int, default=None, help=f"runs of each measurement (default {default_repeats})")
    p.add_argument("--threads", type=int, default=threads, help=f"CPU threads (default {threads})")
    args = p.parse_args(argv)
    if (args.repeats is not None and args.repeats < 1) or args.threads < 1:
        print("--repeats and --threads must be at least 1", file=sys.stderr)
        return 2
    print(machine_line(), flush=True)
    measured = rows(args.quick, lambda line: print(line, flush=True), repeats=args.repeats, threads=args.threads)
    for line in after():
        print(line)
    print()
    print(format_table(measured))
    print(f"\nat the end: {load_average()} (other jobs on the machine slow every run)")
    return exit_status(measured)
