"""Timing the course's notebooks: the book's numbered chapters and the exercise solutions.

A chapter is executed the way the website build does it (``book/build.py`` through Jupyter Book):
``jupytext.read`` of ``book/NN-name.md``, then :class:`nbclient.NotebookClient` with a fresh
``python3`` kernel whose working folder is ``book/``. A solution ``solutions/<a>/<a>.ipynb`` is
executed in its own working folder, as nbval runs it in ``tests/test_nbval.py``. The time is the
wall clock of ``NotebookClient.execute()``, kernel start included. A notebook whose cell raises
is a row that could not run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from autograder.launch import toc_documents  # the one reader of _toc.yml (the launch buttons use it too)
from benchmarks.table import Row, failed

#: Seconds per chapter and per solution notebook, on a 2-core CPU.
CHAPTER_BUDGET_S = 120.0
SOLUTION_BUDGET_S = 60.0
#: nbclient's per-cell limit: a guard against a hung cell, far above any budget (the site build's
#: own per-cell limit, ``_config.yml``, is 300 s).
CELL_TIMEOUT_S = 600
#: The kernel's own log (a warning about its transport) kept off the progress on stderr.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]
NUMBERED_CHAPTER = re.compile(r"^book/(\d\d-[a-z0-9-]+)$")


def chapter_notebooks(root: Path) -> list[Path]:
    """The numbered chapters of the toc, ``root/book/NN-name.md``, in toc order."""
    return [Path(root) / f"{doc}.md" for doc in toc_documents(root) if NUMBERED_CHAPTER.match(doc)]


def solution_notebooks(root: Path) -> list[Path]:
    """Every exercise solution ``root/solutions/<a>/<a>.ipynb``, by assignment id."""
    from autograder.course import assignments, source_notebook

    return [source_notebook(root, a) for a in assignments(Path(root))]


def execute(path: Path, cwd: Path, *, extra_arguments: list[str] | None = None) -> float:
    """Execute the notebook at ``path`` (MyST markdown through jupytext, or ``.ipynb``) in a fresh
    ``python3`` kernel working in ``cwd``; returns the seconds ``execute()`` took. Raises
    nbclient's ``CellExecutionError`` when a cell raises."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(path) if path.suffix == ".md" else nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            extra_arguments=list(extra_arguments or []),
                            resources={"metadata": {"path": str(cwd)}}, allow_errors=False)
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def _said(row: Row) -> str:
    """A row in a few words, for the progress on stderr."""
    return f"{row.measured:.1f} s: {row.verdict}" if row.error is None else f"could not run: {row.error}"


def _timed(item: str, budget: float, run: Callable[[], float]) -> Row:
    try:
        return Row(item, run(), budget, "s")
    except Exception as err:  # noqa: BLE001 - any failure of a notebook is a row that could not run
        first = str(err).strip().splitlines()
        return failed(item, "s", budget, f"{type(err).__name__}: {first[-1] if first else ''}"[:300])


def chapter_rows(root: Path, budget: float = CHAPTER_BUDGET_S,
                 echo: Callable[[str], None] = lambda line: None) -> list[Row]:
    """One row per numbered chapter: seconds to execute it as the site build does."""
    root = Path(root)
    rows = []
    for path in chapter_notebooks(root):
        item = f"chapter {path.relative_to(root)}"
        echo(f"executing {item}")
        if not path.is_file():
            rows.append(failed(item, "s", budget, "listed in _toc.yml but missing"))
            continue
        rows.append(_timed(item, budget, lambda: execute(path, root / "book", extra_arguments=QUIET_KERNEL)))
        echo(f"  {_said(rows[-1])}")
    return rows


def solution_rows(root: Path, budget: float = SOLUTION_BUDGET_S,
                  echo: Callable[[str], None] = lambda line: None) -> list[Row]:
    """One row per exercise solution: seconds to execute it with every test cell."""
    root = Path(root)
    rows = []
    for path in solution_notebooks(root):
        item = f"solution {path.relative_to(root)}"
        echo(f"executing {item}")
        rows.append(_timed(item, budget, lambda: execute(path, path.parent, extra_arguments=QUIET_KERNEL)))
        echo(f"  {_said(rows[-1])}")
    return rows
