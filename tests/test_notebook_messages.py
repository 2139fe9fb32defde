"""What a student sees in their own notebook when a check fails or a cell did not run
(coursework.notebook, CheckFailed._render_traceback_, coursework._core.student_line).

The notebooks here run in a real Jupyter kernel (nbclient), as a student's would: the error
outputs they produce are what Jupyter shows under the cell.
"""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from coursework import CheckFailed
from coursework.notebook import _Tracker, defined_names, describe_error

SETUP = "from coursework.ch01 import check"


def _run(*sources: str) -> list[nbformat.NotebookNode]:
    """Execute the cells in a fresh kernel, going on after errors; returns the code cells."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            extra_arguments=["--HistoryManager.hist_file=:memory:"])
    try:
        client.execute()
    except CellExecutionError as err:  # allow_errors: not expected
        pytest.fail(str(err))
    return nb.cells


def _error(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, cell.outputs
    return errors[0]


@pytest.mark.slow
def test_a_failed_check_shows_its_message_alone_and_the_students_line():
    cells = _run(SETUP,
                 "def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):\n"
                 "    ratio = logvar_q - logvar_p\n"
                 "    return ratio[100]\n",
                 'check("gaussian_kl_diag", gaussian_kl_diag)',
                 "def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):\n"
                 "    return (mean_q - mean_p).sum(-1)\n",
                 'check("gaussian_kl_diag", gaussian_kl_diag)')
    raised = _error(cells[2])
    assert raised.ename == "CheckFailed"
    assert raised.traceback == [f"CheckFailed: {raised.evalue}"], raised.traceback   # no frames of the checks
    assert "your function raised IndexError" in raised.evalue
    assert "at line 3 of your cell: `return ratio[100]`" in raised.evalue
    wrong = _error(cells[4])   # the message's own lines (expected / got), and no frame of the checks
    assert wrong.traceback[0].startswith("CheckFailed: ") and "wrong value of the KL" in wrong.traceback[0]
    assert [line.split()[0] for line in wrong.traceback[1:]] == ["expected", "got"], wrong.traceback


@pytest.mark.slow
def test_a_cell_that_did_not_run_is_named_where_its_function_is_used():
    cells = _run(SETUP,
                 "def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p)\n"   # the colon is missing
                 "    return 0\n",
                 'check("gaussian_kl_diag", gaussian_kl_diag)',
                 "undefined_elsewhere + 1",
                 "def gaussian_kl_diag(mean_q, logvar_q, mean_p, logvar_p):\n"
                 "    log_ratio = logvar_q - logvar_p\n"
                 "    return 0.5 * (torch.exp(log_ratio) + (mean_q - mean_p) ** 2 * torch.exp(-logvar_p)"
                 " - 1.0 - log_ratio).sum(-1)\n",
                 "import torch",
                 'check("gaussian_kl_diag", gaussian_kl_diag)')
    assert _error(cells[1]).ename == "SyntaxError"
    missing = _error(cells[2])
    assert missing.ename == "NameError"
    assert missing.traceback[0].startswith("NameError: `gaussian_kl_diag` is not defined because the cell that "
                                           "defines it did not run (SyntaxError: expected ':' (line 1")
    other = _error(cells[3])   # any other undefined name keeps IPython's own traceback
    assert other.ename == "NameError" and "undefined_elsewhere" in other.evalue and len(other.traceback) > 1
    assert not [o for o in cells[6].outputs if o.output_type == "error"], cells[6].outputs
    assert "all visible checks passed" in "".join(o.get("text", "") for o in cells[6].outputs)


def test_check_failed_renders_its_message_lines():
    err = CheckFailed("[t] first line\nsecond line")
    assert err._render_traceback_() == ["CheckFailed: [t] first line", "second line"]


def test_defined_names_reads_a_cell_even_with_a_syntax_error():
    source = "import torch\ndef f(x)\n    return x\nclass C: pass\ny: int = 3\nz = 1\nz == 2\n  w = 4\nasync def g(): pass\n"
    assert defined_names(source) == {"f", "C", "y", "z", "g"}


def test_describe_error_names_the_line_of_a_syntax_error():
    try:
        compile("def f(x)\n    return x\n", "<cell>", "exec")
    except SyntaxError as err:
        text = describe_error(err)
    assert text.startswith("SyntaxError: expected ':' (line 1: def f(x))"), text
    assert describe_error(ValueError("bad")) == "ValueError: bad"


def test_a_later_successful_run_forgets_the_failure():
    class Result:
        def __init__(self, source, error=None):
            self.info = type("Info", (), {"raw_cell": source})()
            self.error_before_exec, self.error_in_exec = error, None

    tracker = _Tracker()
    tracker.after_cell(Result("def f(x)\n  return x", SyntaxError("expected ':'")))
    assert "f" in tracker.failed
    tracker.after_cell(Result("def f(x):\n  return x"))
    assert tracker.failed == {}
