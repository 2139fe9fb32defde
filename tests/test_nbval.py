"""The course's notebooks executed through nbval (issue 19): the book's numbered chapters and the
exercise solutions.

Each notebook runs in its own ``python -m pytest --nbval-lax`` subprocess (nothing in the course
stores outputs, so ``--nbval-lax``: every code cell must run without raising; none is compared),
with a fresh ``python3`` kernel and a per-cell hang guard (:data:`CELL_TIMEOUT_S`; the budgets are
``make bench``'s, never a test's). A failure shows nbval's own report (``<notebook>::Cell <n>``,
counting code cells from 0, the cell's input and the traceback) followed by where that cell comes
from: the line of ``book/<stem>.md``, or the ``grade_id`` of the solution's cell.

* A chapter ``book/NN-name.md`` is converted with jupytext into a temporary
  ``book/.nbval-NN-name.ipynb`` (removed afterwards), so that the kernel works in ``book/`` as in
  the website build. The chapters run in tests/test_sweep.py, once per member of the seed sweep
  (:func:`run_nbval` with the member's environment; member 0 is the website's run): that module
  uses :func:`chapter_notebook`, :func:`run_nbval` and :func:`assert_nbval_passes` from here.
* A solution ``solutions/<a>/<a>.ipynb`` runs where it is (kernel in its folder). Its hidden checks
  are ordinary code lines between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``, so they
  run too: a correct answer that a visible or hidden check rejects fails here before a student
  meets it. nbgrader scores a test cell 0 when it writes to stderr, so for solutions this module is
  also loaded into the nbval run as a plugin (``-p test_nbval``; :func:`pytest_runtest_call`) that
  fails a cell writing to stderr, reported the nbval way.

What nbval cannot express stays in tests/test_exercises.py as plain tests: the release is what
nbgrader generates, every answer cell is a stub, nothing is given away.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
TESTS = Path(__file__).resolve().parent
#: nbval's per-cell limit: a guard against a hung cell, far above any budget (`make bench` times
#: the notebooks), so that a loaded machine never fails a test.
CELL_TIMEOUT_S = 600
#: The environment variables of the seed sweep (tests/test_sweep.py): a plain run has none.
SWEEP_VARIABLES = ("DGM_SEED_SWEEP", "DGM_SWEEP_RECORD", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
#: The plugin option that fails a cell writing to stderr (this module, loaded into the nbval run).
NO_STDERR = ["-p", "test_nbval"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STDERR_MESSAGE = "Cell wrote to stderr (nbgrader scores a test cell that writes to stderr 0)"


def _chapters() -> list[str]:
    from benchmarks.notebooks import chapter_notebooks

    return [path.stem for path in chapter_notebooks(ROOT)]


def _assignments() -> list[str]:
    from autograder.course import assignments

    return assignments(ROOT)


def nbval_command(notebook: Path, *options: str) -> list[str]:
    """The pytest command line that runs ``notebook`` through nbval."""
    return [sys.executable, "-m", "pytest", str(notebook), "--nbval-lax", f"--nbval-cell-timeout={CELL_TIMEOUT_S}",
            "--nbval-kernel-name=python3", "-p", "no:cacheprovider", "-x", "-q", "-ra", "--color=no", *options]


def run_nbval(notebook: Path, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``notebook`` through nbval in a pytest subprocess (cwd: the repository root, so reports
    name ``book/...``/``solutions/...``); ``env`` is added to this process's environment, without
    the seed sweep's variables. Returns the finished process, stdout and stderr merged in ``.stdout``."""
    environment = {k: v for k, v in os.environ.items() if k not in SWEEP_VARIABLES}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), str(ROOT), environment.get("PYTHONPATH")]))
    environment.update(env or {})
    result = subprocess.run(nbval_command(notebook, *options), cwd=ROOT, env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    result.stdout = ANSI.sub("", result.stdout)  # IPython colours its tracebacks
    return result


def failed_cells(output: str) -> list[int]:
    """The numbers of the cells nbval reports as failed (``FAILED <notebook>::Cell <n>``)."""
    return [int(n) for n in re.findall(r"^FAILED \S+::Cell (\d+)", output, re.M)]


def code_cell(notebook, number: int):
    """The ``number``-th code cell (nbval's ``Cell <number>``, from 0)."""
    return [cell for cell in notebook.cells if cell.cell_type == "code"][number]


def assert_nbval_passes(result: subprocess.CompletedProcess, notebook: Path, where=lambda n: "") -> None:
    """Fail with nbval's report (and, per failed cell, ``where(n)``) unless every cell passed."""
    if result.returncode == 0:
        return
    origin = "".join(f"\nCell {n}: {where(n)}" for n in failed_cells(result.stdout) if where(n))
    pytest.fail(f"{notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook} fails under nbval "
                f"(exit {result.returncode}):\n{result.stdout[-12000:]}{origin}", pytrace=False)


def chapter_notebook(stem: str, folder: Path = BOOK) -> Path:
    """``book/<stem>.md`` converted with jupytext to ``<folder>/.nbval-<stem>.ipynb`` (the caller removes it)."""
    import jupytext

    path = folder / f".nbval-{stem}.ipynb"
    nbformat.write(jupytext.read(BOOK / f"{stem}.md"), path)
    return path


def myst_line(stem: str, notebook: Path, number: int) -> str:
    """Where code cell ``number`` of the converted chapter starts in ``book/<stem>.md``."""
    source = code_cell(nbformat.read(notebook, as_version=4), number).source
    text = (BOOK / f"{stem}.md").read_text(encoding="utf-8")
    at = text.find(source) if source else -1
    return f"book/{stem}.md, line {text.count(chr(10), 0, at) + 1}" if at >= 0 else f"book/{stem}.md"


def grade_id(notebook: Path, number: int) -> str:
    """The nbgrader ``grade_id`` of code cell ``number`` of a solution notebook, where it has one."""
    meta = code_cell(nbformat.read(notebook, as_version=4), number).metadata.get("nbgrader", {})
    return f"grade_id {meta['grade_id']!r}" if meta.get("grade_id") else ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Only as a plugin of an nbval run (``-p test_nbval``; pytest ignores hooks in test modules):
    an nbval cell that wrote to stderr fails, reported like any failed cell."""
    result = yield
    for output in getattr(item, "test_outputs", None) or []:
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            item.raise_cell_error(STDERR_MESSAGE, output.get("text", "")[:2000])
    return result


@pytest.mark.slow
@pytest.mark.parametrize("assignment", _assignments())
def test_solution_runs_under_nbval_with_every_visible_and_hidden_check_passing(assignment):
    from autograder.course import source_notebook

    notebook = source_notebook(ROOT, assignment)
    result = run_nbval(notebook, *NO_STDERR)
    assert_nbval_passes(result, notebook, lambda n: grade_id(notebook, n))
    hidden = [c for c in nbformat.read(notebook, as_version=4).cells
              if c.cell_type == "code" and "### BEGIN HIDDEN TESTS" in c.source]
    assert hidden, f"{assignment}: no hidden checks ran (no cell with ### BEGIN HIDDEN TESTS)"
    ran = re.search(r"(\d+) passed", result.stdout)
    code = sum(c.cell_type == "code" for c in nbformat.read(notebook, as_version=4).cells)
    assert ran and int(ran.group(1)) == code, f"nbval did not run every code cell ({code}):\n{result.stdout[-2000:]}"


# --- nbval's failure report, shown on small notebooks -----------------------------------------------

def _write(path: Path, *sources: str) -> Path:
    """A notebook of code cells (a source starting with ``md:`` is a markdown cell)."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:") else nbformat.v4.new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.mark.slow
def test_a_failing_cell_is_named_the_nbval_way(tmp_path):
    notebook = _write(tmp_path / "tiny.ipynb", "x = 1", "md:nbval counts code cells only", "y = 2",
                      "assert x == y, 'x is not 2'", "never = 'run'")
    result = run_nbval(notebook)
    assert result.returncode == 1, result.stdout
    assert failed_cells(result.stdout) == [2], result.stdout
    out = result.stdout
    assert "tiny.ipynb::Cell 2" in out and "Notebook cell execution failed" in out, out
    assert "Cell 2: Cell execution caused an exception" in out and "assert x == y, 'x is not 2'" in out, out
    assert "AssertionError: x is not 2" in out, out
    assert "1 failed, 2 passed" in out, out  # -x: the cells after the failure do not run
    with pytest.raises(pytest.fail.Exception, match=r"(?s)tiny\.ipynb fails under nbval.*::Cell 2.*\nCell 2: here$"):
        assert_nbval_passes(result, notebook, lambda n: "here")


@pytest.mark.slow
def test_a_solution_cell_writing_to_stderr_fails(tmp_path):
    notebook = _write(tmp_path / "noisy.ipynb", "import sys", "sys.stderr.write('a warning\\n')")
    result = run_nbval(notebook, *NO_STDERR)
    assert failed_cells(result.stdout) == [1], result.stdout
    assert f"Cell 1: {STDERR_MESSAGE}" in result.stdout and "a warning" in result.stdout, result.stdout
    assert run_nbval(notebook).returncode == 0, "without the plugin, stderr alone is not a failure"


@pytest.mark.slow
def test_a_wrong_answer_fails_its_hidden_check_under_nbval(tmp_path):
    """The net catches a wrong answer through the hidden checks alone: chapter 1's solution cut down
    to its set-up and one concept question, answered wrongly, with the visible check removed."""
    from autograder.course import source_notebook

    source = nbformat.read(source_notebook(ROOT, "01-elbo"), as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source.cells}
    answer, checks = by_id["concept_vae_sampling"], by_id["test_concept_vae_sampling"]
    assert "ANSWER_VAE_SAMPLING = True" in answer.source and "suite=\"hidden\"" in checks.source
    answer.source = "ANSWER_VAE_SAMPLING = False  # wrong"
    checks.source = "\n".join(line for line in checks.source.splitlines() if "suite=" in line or line.startswith("###"))
    source.cells = [by_id["install"], by_id["setup"], answer, checks]
    nbformat.write(source, tmp_path / "wrong.ipynb")

    result = run_nbval(tmp_path / "wrong.ipynb", *NO_STDERR)
    assert failed_cells(result.stdout) == [3], result.stdout
    assert "Notebook cell execution failed" in result.stdout and "### BEGIN HIDDEN TESTS" in result.stdout
    assert "CheckFailed: [concept_vae_sampling]" in result.stdout, result.stdout
    assert grade_id(tmp_path / "wrong.ipynb", 3) == "grade_id 'test_concept_vae_sampling'"
