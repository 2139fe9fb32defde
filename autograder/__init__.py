"""The course's grader: nbgrader configuration, release, grading, self-checks, samples, mutants.

Run ``python -m autograder --help``. Modules:

* :mod:`autograder.nbgrader_config` — the nbgrader configuration (why each setting is there);
* :mod:`autograder.release` — ``release`` / ``check-release`` (``exercises/`` from ``solutions/``);
* :mod:`autograder.grade` — ``grade DIR`` (CSV, feedback HTML, summary);
* :mod:`autograder.validate` — ``validate NOTEBOOK`` (a student's self-check);
* :mod:`autograder.samples` — ``make-samples`` and the mutants in ``autograder/mutants/``.
"""

import os as _os
import sys as _sys

# nbgrader shells out to console scripts of its own environment (``alembic`` for the gradebook's
# schema). When the course's Python is run by path (``.venv/bin/python -m autograder``, as the
# Makefile does) that environment's bin/ is not on PATH, so put it there, first.
_bin = _os.path.dirname(_sys.executable)
if _bin not in _os.environ.get("PATH", "").split(_os.pathsep):
    _os.environ["PATH"] = _bin + _os.pathsep + _os.environ.get("PATH", "")
