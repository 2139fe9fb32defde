"""Finding, naming and reading the submissions of a folder: steps 1 and 2 of ``grade DIR``.

* :func:`discover` — ``DIR/<student>.ipynb`` or nbgrader's ``DIR/<student>/<a>/<a>.ipynb``; student
  ids are sanitised (:func:`sanitise_student_id`) so that no id can leave its folder, and two
  files never share an id.
* :func:`check_submission` — readable JSON with a list of cells, of this assignment; otherwise the
  submission's status is :data:`INVALID` with a reason, and the others go on.

A submission is :data:`PENDING` until it is graded (:mod:`autograder.runner` sets the other statuses).
"""

from __future__ import annotations

import json
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.course import GradingError

#: the status of a submission not yet graded
PENDING = "pending"
#: the status of a submission that could not be read as a notebook of the assignment (nothing ran)
INVALID = "invalid"

#: Largest submission read (bytes); a bigger file is ``invalid``.
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024


def answer_ids(source: Path) -> set[str]:
    """grade_ids of the answer (solution) cells of a source notebook."""
    nb = nbformat.read(source, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


@dataclass
class Submission:
    """One student's submission and everything learned about it while grading."""

    student_id: str                      # sanitised: safe as a folder and file name
    origin: str                          # where it came from, relative to DIR
    path: Path
    status: str = PENDING
    notes: list[str] = field(default_factory=list)
    notebook: nbformat.NotebookNode | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.notes)

    def invalid(self, why: str) -> None:
        self.status = INVALID
        self.notes.append(why)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def sanitise_student_id(raw: str, taken: set[str]) -> str:
    """A folder-safe, unique student id from a file or folder name.

    Anything but letters, digits, ``_``, ``.`` and ``-`` becomes ``_``; leading/trailing dots,
    dashes and underscores go (so ``..`` and hidden names are impossible); a clash with an id in
    ``taken`` gets ``-2``, ``-3``... The result is added to ``taken``.
    """
    base = _UNSAFE.sub("_", raw).strip("._-")[:64] or "student"
    candidate, n = base, 1
    while candidate.lower() in {t.lower() for t in taken}:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def discover(folder: Path, assignment: str) -> list[Submission]:
    """The submissions in ``folder``: ``<student>.ipynb`` files or ``<student>/<a>/<a>.ipynb``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradingError(f"{folder} is not a folder of submissions")
    found: list[tuple[str, Path, str | None]] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(("._", ".~")) or entry.name == ".ipynb_checkpoints":
            continue  # editor lock files, macOS metadata, Jupyter checkpoints
        if entry.suffix == ".ipynb" and (entry.is_symlink() or entry.is_file()):
            found.append((entry.stem, entry, _link_problem(folder, entry)))
        elif entry.is_dir() and not entry.name.startswith("."):
            nested = entry / assignment / f"{assignment}.ipynb"
            if nested.is_file() or nested.is_symlink():
                found.append((entry.name, nested, _link_problem(folder, nested)))
    if not found:
        raise GradingError(
            f"no notebooks in {folder}: expected <student_id>.ipynb files or "
            f"<student_id>/{assignment}/{assignment}.ipynb")
    # ids that need no change are given first, so "alice!" can never take "alice" from alice
    taken: set[str] = set()
    ids: dict[int, str] = {}
    order = sorted(range(len(found)), key=lambda i: (sanitise_student_id(found[i][0], set()) != found[i][0], i))
    for i in order:
        ids[i] = sanitise_student_id(found[i][0], taken)
    subs = []
    for i, (raw, path, problem) in enumerate(found):
        sid = ids[i]
        sub = Submission(student_id=sid, origin=str(path.relative_to(folder)), path=path)
        if sid != raw:
            sub.notes.append(f"student id {raw!r} graded as {sid!r}")
        if problem:
            sub.invalid(problem)
        subs.append(sub)
    return subs


def _link_problem(folder: Path, path: Path) -> str | None:
    """Why ``path`` may not be read as a submission: a symbolic link anywhere on its way from
    ``folder`` (it could point at the solutions or at another student's file), else None."""
    current = Path(folder)
    for part in path.relative_to(folder).parts:
        current = current / part
        if current.is_symlink():
            return f"{current.relative_to(folder)} is a symbolic link, not a file: links are never followed"
    return None


def check_submission(sub: Submission, assignment: str, expected_answers: set[str]) -> None:
    """Read and validate ``sub``; sets ``sub.notebook`` or marks it ``invalid`` with a reason."""
    if sub.status == INVALID:
        return None
    try:
        fd = os.open(sub.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return sub.invalid("not a regular file")
            data = f.read(MAX_NOTEBOOK_BYTES + 1)
        if len(data) > MAX_NOTEBOOK_BYTES:
            return sub.invalid(f"file larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        return sub.invalid(f"cannot read the file: {why}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        return sub.invalid(f"not a notebook: the file is not valid JSON ({err.msg} at line {err.lineno}, "
                           f"column {err.colno}; a truncated or corrupted file?)")
    if not isinstance(raw, dict) or "cells" not in raw:
        return sub.invalid("not a notebook: JSON without a list of cells")
    if not isinstance(raw["cells"], list) or not all(isinstance(c, dict) for c in raw["cells"]):
        return sub.invalid("not a notebook: its cells are not a list of cells")
    nb = nbformat.from_dict(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - only a note: the answer cells are read anyway
        sub.notes.append(f"the notebook does not follow nbformat's schema ({str(err).splitlines()[0][:120]}); "
                         "its answer cells were read anyway")
    present = set()
    for c in nb.cells:
        meta = c.get("metadata", {})
        gid = meta.get("nbgrader", {}).get("grade_id") if isinstance(meta, dict) and isinstance(meta.get("nbgrader"), dict) else None
        if isinstance(gid, str):
            present.add(gid)
    if expected_answers and not (present & expected_answers):
        return sub.invalid(f"not a {assignment} notebook: none of its answer cells "
                           f"({', '.join(sorted(expected_answers)[:4])}...) are present")
    sub.notebook = nb
