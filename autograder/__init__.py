"""The course's grader: nbgrader configuration, release, grading, self-checks, samples, mutants.

Run ``python -m autograder --help``. Modules:

* :mod:`autograder.nbgrader_config` — the nbgrader configuration (why each setting is there);
* :mod:`autograder.release` — ``release`` / ``check-release`` (``exercises/`` from ``solutions/``);
* :mod:`autograder.grade` — ``grade DIR`` (CSV, feedback HTML, summary);
* :mod:`autograder.validate` — ``validate NOTEBOOK`` (a student's self-check);
* :mod:`autograder.samples` — ``make-samples`` and the mutants in ``autograder/mutants/``.
"""
