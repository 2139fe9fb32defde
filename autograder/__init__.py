"""The course's grader: nbgrader configuration, release, grading, self-checks, samples, mutants.

Run ``python -m autograder --help``. Modules, by job:

* :mod:`autograder.nbgrader_config` — the nbgrader configuration (why each setting is there);
* :mod:`autograder.course` — the course's paths, scratch copies, :class:`~autograder.course.GradingError`;
* :mod:`autograder.release` — ``release`` / ``check-release`` (``exercises/`` from ``solutions/``);
* :mod:`autograder.launch` — what the website's launch buttons open: the install cell of every
  exercise, the chapters as notebooks (``notebooks/`` from ``book/``), the launch links;
* :mod:`autograder.program` — what grading runs: the source notebook's cells with the student's answers;
* :mod:`autograder.grade` — ``grade DIR``: the pipeline, in parallel; :mod:`autograder.submissions`
  (finding and reading submissions), :mod:`autograder.runner` (one submission in its sandbox, the
  statuses), :mod:`autograder.shards` (split runs and ``merge``);
* :mod:`autograder.sandbox`, :mod:`autograder.worker` — the sandbox and the student's kernel in it;
  :mod:`autograder.judge` — value answers judged in a child process; :mod:`autograder.static` —
  reading answers without running them;
* :mod:`autograder.reports` — every report of a run: CSV and summary here, :mod:`autograder.feedback`
  (HTML pages), :mod:`autograder.histograms` (PNG), :mod:`autograder.similarity` (similar answers);
* :mod:`autograder.validate` — ``validate NOTEBOOK`` (a student's self-check);
* :mod:`autograder.samples` — ``make-samples`` and the mutants in ``mutants/``;
  :mod:`autograder.redteam` — the hostile submissions; :mod:`autograder.benchmark` — timing a class.

Nothing here names a chapter: each chapter's tasks, forbidden modules, references and warm-ups
come from its declaration in :mod:`coursework` (see docs/adding-a-chapter.md).
"""

import os as _os
import sys as _sys

# nbgrader shells out to console scripts of its own environment (``alembic`` for the gradebook's
# schema). When the course's Python is run by path (``.venv/bin/python -m autograder``, as the
# Makefile does) that environment's bin/ is not on PATH, so put it there, first.
_bin = _os.path.dirname(_sys.executable)
if _bin not in _os.environ.get("PATH", "").split(_os.pathsep):
    _os.environ["PATH"] = _bin + _os.pathsep + _os.environ.get("PATH", "")
