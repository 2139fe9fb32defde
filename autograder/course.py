"""Paths of the course, throwaway copies of it for nbgrader to work in, and the error raised when
grading itself cannot run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autograder import nbgrader_config as cfg

class GradingError(RuntimeError):
    """Grading itself could not run (as opposed to a student's notebook failing): no such folder,
    no notebooks, an unknown assignment, shards that do not fit together."""


#: The repository root: the course root of every command unless ``--root`` says otherwise.
REPO_ROOT = Path(__file__).resolve().parent.parent


def assignments(root: Path) -> list[str]:
    """The assignments of the course: folders ``solutions/<a>/`` holding ``<a>.ipynb``."""
    source = Path(root) / cfg.SOURCE_DIR
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())


def source_notebook(root: Path, assignment: str) -> Path:
    return Path(root) / cfg.SOURCE_DIR / assignment / f"{assignment}.ipynb"


def release_notebook(root: Path, assignment: str) -> Path:
    return Path(root) / cfg.RELEASE_DIR / assignment / f"{assignment}.ipynb"


@contextmanager
def scratch_course(root: Path, assignment_ids: list[str], prefix: str = "dgm-course-") -> Iterator[Path]:
    """A fresh temporary course root holding copies of ``solutions/<a>/`` only (and its gradebook folder).

    nbgrader writes its gradebook, releases and graded copies there, so the repository's own
    database and folders are never touched and students are never mixed with an earlier run.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        scratch = Path(tmp)
        for a in assignment_ids:
            shutil.copytree(Path(root) / cfg.SOURCE_DIR / a, scratch / cfg.SOURCE_DIR / a,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))
        cfg.ensure_gradebook_dir(scratch)
        yield scratch
