"""nbgrader configuration of the course, built in Python and passed explicitly to nbgrader.

Every command of :mod:`autograder` calls :func:`course_config` and hands the resulting
``traitlets.config.Config`` to nbgrader's converters (no ``nbgrader_config.py`` is exec'd from the
working directory), so what nbgrader does never depends on where a command is started from.

Since grading moved into sandboxes (:mod:`autograder.grade`), nbgrader's part is the release
(``generate_assignment``: solution regions and hidden tests stripped) and the students' own
``validate``; ``grade`` does not run nbgrader's ``autograde``, so the execution settings below apply
to ``validate`` only, and the grader's limits live in :class:`autograder.sandbox.Limits`.

Why each setting is here
------------------------
``CourseDirectory.root``
    The course root is the repository root (or a throwaway copy of it while releasing/grading),
    so the paths below are relative to the checkout.
``CourseDirectory.course_id``
    nbgrader's gradebook keys everything by course; one fixed id keeps databases comparable.
``source_directory = "solutions"``, ``release_directory = "exercises"``
    The course's layout (DESIGN.md): ``solutions/<a>/<a>.ipynb`` is the only hand-edited source,
    ``exercises/<a>/<a>.ipynb`` is generated from it. ``directory_structure`` keeps nbgrader's
    default ``{nbgrader_step}/{student_id}/{assignment_id}`` so there is one folder per assignment.
``submitted/autograded/feedback_directory`` under ``autograder/``
    Everything that holds student work stays in the grader's room and is git-ignored
    (nbgrader 0.9.6 accepts nested paths here; measured).
``source_with_tests_directory``
    ``generate_assignment`` writes an intermediate copy there; keep it in the ignored grader room
    instead of the repository's top level.
``db_url = sqlite:///.../autograder/gradebook/gradebook.db?timeout=60``
    sqlite does not create the folder (we do, :func:`ensure_gradebook_dir`); ``timeout=60`` makes
    a second writer wait for the lock instead of failing with "database is locked".
``Execute.timeout`` (per cell, default :data:`CELL_TIMEOUT_S`)
    A student's infinite loop costs at most this long per cell; the cell is interrupted and
    recorded as ``CellTimeoutError`` (scores 0, status ``timeout``) and the rest still run.
``BudgetedExecute.notebook_budget`` (per notebook, :data:`NOTEBOOK_BUDGET_S`)
    nbgrader has no per-notebook limit; our :class:`autograder.execute.BudgetedExecute` shrinks
    each cell's timeout to what is left of the budget and skips the cells after it runs out.
``Execute.execute_retries = 0``
    A kernel that dies (``os._exit``, out of memory) is reported as ``crashed``; re-running a
    crashing notebook only doubles the time.
``Execute.shutdown_kernel = "immediate"``
    Kill the kernel once the last cell ran instead of nbclient's graceful shutdown, which waited
    about 2 s per student here (a graded kernel has nothing to save).
``Execute.extra_arguments``
    nbgrader's default (history in memory) plus a quiet kernel log: ipykernel's "running over TCP
    without encryption" warning would otherwise print once per student through the progress bar.
``Autograde.autograde_preprocessors``
    nbgrader's list with ``Execute`` replaced by ``BudgetedExecute``; everything else (sanitising,
    ``SaveAutoGrades``...) is stock nbgrader.
``OverwriteCells.add_missing_cells = True``
    A student who deletes a test cell gets it back from the source (the tests still run).
``ClearSolutions.code_stub`` / ``text_stub``
    The stubs every answer cell of ``exercises/`` starts with: code raises
    ``NotImplementedError`` (the course convention, see STYLE.md), text says where to write.
``GenerateAssignment.create_assignment = True``
    ``release`` runs against a throwaway gradebook that does not know the assignment yet.
``LimitOutput``
    Caps the lines of output kept per cell in autograded notebooks and feedback.
``CourseDirectory.ignore``
    Checkpoints and byte-code never travel into releases or graded copies.

Warnings and stderr (a measured nbgrader 0.9.6 pitfall): *any* ``stderr`` output in a test cell
scores that test 0. The kernels that grade or validate run with ``PYTHONWARNINGS=ignore`` in their
environment (:data:`KERNEL_ENV`, applied by :mod:`autograder.grade` and :mod:`autograder.validate`)
so that a harmless warning raised while a student's correct code runs does not cost marks; the
course's own tests and reference code must still not warn (the solution notebook test runs
without this setting and fails on stderr).
"""

from __future__ import annotations

from pathlib import Path

from traitlets.config import Config

#: The course id stored in every gradebook.
COURSE_ID = "dgm-derive-build"
#: Where the hand-edited sources and generated releases live, relative to the course root.
SOURCE_DIR = "solutions"
RELEASE_DIR = "exercises"
SUBMITTED_DIR = "autograder/submitted"
AUTOGRADED_DIR = "autograder/autograded"
FEEDBACK_DIR = "autograder/feedback"
SOURCE_WITH_TESTS_DIR = "autograder/source_with_tests"
GRADEBOOK_DIR = "autograder/gradebook"
#: Seconds one cell may run while grading or validating.
CELL_TIMEOUT_S = 60
#: Seconds one whole notebook may run while grading.
NOTEBOOK_BUDGET_S = 180
#: Extra environment of grading/validation kernels (see the module docstring).
KERNEL_ENV = {"PYTHONWARNINGS": "ignore"}

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"


def gradebook_url(root: Path) -> str:
    """The sqlite URL of the gradebook of the course rooted at ``root``."""
    return f"sqlite:///{(Path(root) / GRADEBOOK_DIR / 'gradebook.db').resolve()}?timeout=60"


def ensure_gradebook_dir(root: Path) -> Path:
    """Create the gradebook's folder (sqlite will not) and return it."""
    folder = Path(root) / GRADEBOOK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def course_config(root: Path, *, cell_timeout: int = CELL_TIMEOUT_S,
                  notebook_budget: int = NOTEBOOK_BUDGET_S) -> Config:
    """The nbgrader configuration of the course rooted at ``root`` (a checkout or a temp copy)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                        LimitOutput, SaveAutoGrades)

    from autograder.execute import BudgetedExecute

    root = Path(root).resolve()
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = SOURCE_DIR
    c.CourseDirectory.release_directory = RELEASE_DIR
    c.CourseDirectory.submitted_directory = SUBMITTED_DIR
    c.CourseDirectory.autograded_directory = AUTOGRADED_DIR
    c.CourseDirectory.feedback_directory = FEEDBACK_DIR
    c.CourseDirectory.source_with_tests_directory = SOURCE_WITH_TESTS_DIR
    c.CourseDirectory.db_url = gradebook_url(root)
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", ".DS_Store"]

    c.Execute.timeout = int(cell_timeout)
    c.Execute.execute_retries = 0
    c.Execute.shutdown_kernel = "immediate"
    c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR"]
    c.BudgetedExecute.notebook_budget = int(notebook_budget)
    c.Autograde.autograde_preprocessors = [
        BudgetedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
    ]
    c.OverwriteCells.add_missing_cells = True
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ClearSolutions.text_stub = TEXT_STUB
    c.GenerateAssignment.create_assignment = True
    c.LimitOutput.max_lines = 200
    c.LimitOutput.max_traceback = 60
    return c
