"""nbgrader's ``Execute`` with a budget for the whole notebook, not only per cell.

nbgrader 0.9.6 limits each cell (``Execute.timeout``) but not a notebook, so a submission made of
many slow cells could hold the grader for ``cells × timeout``. :class:`BudgetedExecute` starts a
clock when the kernel is started, gives each cell ``min(timeout, what is left)`` seconds, and once
the budget is spent records an error output ``NotebookBudgetExceeded`` on every remaining code cell
without running it (an error output scores a test cell 0 and is reported as status ``timeout``).
"""

from __future__ import annotations

import math
import time

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

#: ``ename`` of the error output written on cells skipped because the notebook budget ran out.
BUDGET_ENAME = "NotebookBudgetExceeded"
#: ``ename`` nbgrader writes on a cell interrupted at its per-cell timeout.
TIMEOUT_ENAME = "CellTimeoutError"


class BudgetedExecute(Execute):
    """Execute a notebook with a per-cell timeout and a per-notebook budget (seconds)."""

    notebook_budget = Integer(
        180, help="Seconds the whole notebook may run, kernel start included.").tag(config=True)

    _started_at: float = 0.0

    def preprocess(self, nb, resources=None, km=None):
        self._started_at = time.monotonic()
        return super().preprocess(nb, resources, km)

    def _left(self) -> float:
        return self.notebook_budget - (time.monotonic() - self._started_at)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return super().preprocess_cell(cell, resources, index)
        left = self._left()
        if left <= 0:
            cell.outputs = [NotebookNode(
                output_type="error", ename=BUDGET_ENAME,
                evalue=f"not run: the notebook used up its {self.notebook_budget} s budget",
                traceback=[f"{BUDGET_ENAME}: not run, the notebook used up its "
                           f"{self.notebook_budget} s budget"])]
            cell.execution_count = None
            return cell, resources
        per_cell = self.timeout
        self.timeout_func = None
        budget_left = max(1, math.ceil(left))
        saved = self.timeout
        self.timeout = budget_left if per_cell is None else min(per_cell, budget_left)
        try:
            return super().preprocess_cell(cell, resources, index)
        finally:
            self.timeout = saved
