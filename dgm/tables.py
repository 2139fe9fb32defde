"""Aligned text tables for the chapters' printed checks: a label column, then numbers.

The book prints its comparisons (closed form against Monte Carlo, library against SciPy, ...) as
plain text, so that a reader of the static page and a reader of the notebook see the same table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dgm._validate import check_int

__all__ = ["print_table"]


def print_table(rows: Iterable[Sequence], header: Sequence, digits: int = 6) -> None:
    """Print a header line, then one line per row, every column as wide as its widest cell.

    A string cell is printed as it is; any other cell (a Python or NumPy number, a 0-d tensor) as
    a fixed-point number with ``digits`` decimals (``f"{cell:.6f}"``). The first column is
    left-aligned (it holds the labels), the others right-aligned; columns are separated by two
    spaces. For example ``print_table([("H(p)", 1.75, 1.7499)], ["", "exact", "Monte Carlo"])``
    prints::

                 exact  Monte Carlo
        H(p)  1.750000     1.749900

    Args:
        rows: rows of cells, each with one cell per entry of ``header``.
        header: the column titles (strings).
        digits: decimals of the numbers, a non-negative integer.
    """
    digits = check_int(digits, "digits", low=0)
    header = [str(h) for h in header]
    text = []
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(
                f"row {i} must have one cell per column of the header ({len(header)}: {header}); "
                f"got {len(row)} cells: {row!r}"
            )
        text.append([c if isinstance(c, str) else f"{c:.{digits}f}" for c in row])
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(header)]
    for line in [header, *text]:
        print("  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(line, widths))))
