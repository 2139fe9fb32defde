"""Finding, naming and reading the submissions of a folder: steps 1 and 2 of ``grade DIR``.

* :func:`discover` — ``DIR/<student>.ipynb`` or nbgrader's ``DIR/<student>/<a>/<a>.ipynb``; student
  ids are sanitised (:func:`sanitise_student_id`) so that no id can leave its folder, and two
  files never share an id. Ids are compared exactly: ``victim`` and ``VICTIM`` are two students,
  each graded under its own id and both flagged (their report files get distinct names,
  :func:`autograder.results.report_names`); no student's id ever changes because of another's.
* :func:`check_submission` — readable JSON with a list of cells, of this assignment; otherwise the
  submission's status is :data:`INVALID` with a reason, and the others go on. *Any* failure while
  reading one file makes that file invalid, never the run: its JSON is measured before it is
  parsed (:func:`json_shape`: nesting depth and number of lists and objects, in linear time and
  without recursion), so a file nested thousands deep or holding millions of cells is refused
  with a reason instead of exhausting the stack, the memory or the clock.

A submission is :data:`PENDING` until it is graded (:mod:`autograder.runner` sets the other statuses).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import nbformat
import numpy as np

from autograder.course import GradingError
from autograder.results import clean_strings, report_names

#: the status of a submission not yet graded
PENDING = "pending"
#: the status of a submission that could not be read as a notebook of the assignment (nothing ran)
INVALID = "invalid"

#: Largest submission read (bytes); a bigger file is ``invalid``.
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
#: Deepest nesting of lists and objects in a submission's JSON (a notebook needs about 6; an
#: output's JSON data a few more); a deeper file is ``invalid`` (parsing it would recurse).
MAX_JSON_DEPTH = 64
#: Most lists and objects in a submission's JSON (a real notebook holds a few thousand); a file
#: with more is ``invalid`` before it is parsed (each costs memory and time to build and check).
MAX_JSON_CONTAINERS = 500_000
#: Most cells in a submission (a real one has fewer than 200); more is ``invalid``.
MAX_CELLS = 5_000
#: Above this many lists and objects, nbformat's schema is not checked (seconds of jsonschema for
#: a note that changes nothing: the answer cells are read either way).
MAX_VALIDATED_CONTAINERS = 100_000

log = logging.getLogger("autograder.grade")


class Unreadable(ValueError):
    """Why a file cannot be read as a notebook; its message is the reason given for ``invalid``."""


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
    read_seconds: float = 0.0            # reading and checking the file (check_submission)

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
    ``taken`` gets ``-2``, ``-3``... Ids are compared exactly: ``VICTIM`` does not clash with
    ``victim`` (see :func:`discover`). The result is added to ``taken``.
    """
    base = _UNSAFE.sub("_", raw).strip("._-")[:64] or "student"
    candidate, n = base, 1
    while candidate in taken:
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
    names = report_names(ids.values())
    folded: dict[str, list[str]] = {}
    for sid in sorted(ids.values()):
        folded.setdefault(sid.casefold(), []).append(sid)
    subs = []
    for i, (raw, path, problem) in enumerate(found):
        sid = ids[i]
        sub = Submission(student_id=sid, origin=str(path.relative_to(folder)), path=path)
        if sid != raw:
            sub.notes.append(f"student id {raw!r} graded as {sid!r}")
        twins = [t for t in folded[sid.casefold()] if t != sid]
        if twins:
            sub.notes.append(f"student id {sid!r} differs from {', '.join(map(repr, twins))} only in letter case: "
                             f"each is graded under its own id; check which file is whose. This one's reports are "
                             f"{names[sid]}.html and {names[sid]}.ipynb, so that none overwrites another on a "
                             "case-insensitive file system")
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


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
#: A JSON escape of a UTF-16 surrogate (``\ud800``-``\udfff``): the only way one can reach a
#: string decoded from UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def json_shape(text: str) -> tuple[int, int]:
    """(deepest nesting, number of lists and objects) of the JSON ``text``, counted without parsing
    it: strings are cut out (an unterminated one runs to the end of the text), then the brackets
    left are counted. Linear in the length, no recursion; exact for valid JSON, a bound for the
    rest (which :func:`json.loads` refuses anyway)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets:
        return 0, 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    opens = (codes == ord("[")) | (codes == ord("{"))
    depth = np.cumsum(opens.astype(np.int8) * np.int8(2) - np.int8(1), dtype=np.int32)
    return int(depth.max()), int(opens.sum())


def parse_json(text: str) -> tuple[Any, int]:
    """``json.loads(text)`` for JSON no deeper than :data:`MAX_JSON_DEPTH` and with at most
    :data:`MAX_JSON_CONTAINERS` lists and objects (measured first, :func:`json_shape`), and that
    number of lists and objects. Raises :class:`Unreadable` with the reason, for those and for
    invalid JSON."""
    depth, containers = json_shape(text)
    if depth > MAX_JSON_DEPTH:
        raise Unreadable(f"not a notebook: its JSON is nested {depth:,} levels deep (a notebook needs fewer "
                         f"than 10; at most {MAX_JSON_DEPTH} are read)")
    if containers > MAX_JSON_CONTAINERS:
        raise Unreadable(f"not a notebook: its JSON holds {containers:,} lists and objects (a notebook holds a "
                         f"few thousand; at most {MAX_JSON_CONTAINERS:,} are read)")
    try:
        return json.loads(text), containers
    except json.JSONDecodeError as err:
        raise Unreadable(f"not a notebook: the file is not valid JSON ({err.msg} at line {err.lineno}, "
                         f"column {err.colno}; a truncated or corrupted file?)") from err
    except (RecursionError, ValueError, MemoryError) as err:  # not expected after json_shape: still refused
        raise Unreadable(f"not a notebook: its JSON cannot be read ({type(err).__name__})") from err


def read_submission_file(path: Path) -> bytes:
    """The bytes of ``path``, never following a symbolic link nor blocking on a FIFO, at most
    :data:`MAX_NOTEBOOK_BYTES`; raises :class:`Unreadable` with the reason."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Unreadable("not a regular file")
            data = f.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError as err:
        raise Unreadable(f"cannot read the file: {err.strerror or type(err).__name__}") from err
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise Unreadable(f"file larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
    return data


class NotebookJSON(NamedTuple):
    """A submission's notebook as read by :func:`read_notebook_json`."""

    raw: dict              # the JSON object, every surrogate in its strings replaced by U+FFFD
    surrogates: int        # how many were replaced
    containers: int        # its number of lists and objects


def read_notebook_json(path: Path) -> NotebookJSON:
    """The JSON object of the notebook at ``path`` — UTF-8, bounded (:func:`read_submission_file`,
    :func:`parse_json`), with a list of at most :data:`MAX_CELLS` cells — with every lone UTF-16
    surrogate in its strings replaced by U+FFFD. Raises :class:`Unreadable` with the reason."""
    data = read_submission_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Unreadable(f"cannot read the file: not UTF-8 text (byte {err.start:,}: {err.reason})") from err
    raw, containers = parse_json(text)
    if not isinstance(raw, dict) or "cells" not in raw:
        raise Unreadable("not a notebook: JSON without a list of cells")
    if not isinstance(raw["cells"], list) or not all(isinstance(c, dict) for c in raw["cells"]):
        raise Unreadable("not a notebook: its cells are not a list of cells")
    if len(raw["cells"]) > MAX_CELLS:
        raise Unreadable(f"not a notebook of this course: {len(raw['cells']):,} cells (a submission has fewer "
                         f"than 200; at most {MAX_CELLS:,} are read)")
    replaced = 0
    if _SURROGATE_ESCAPE.search(text):
        raw, replaced = clean_strings(raw)
    return NotebookJSON(raw, replaced, containers)


def check_submission(sub: Submission, assignment: str, expected_answers: set[str]) -> None:
    """Read and validate ``sub``; sets ``sub.notebook`` or marks it ``invalid`` with a reason. Never
    raises: whatever goes wrong with one file makes that submission invalid, naming what."""
    if sub.status == INVALID:
        return None
    start = time.perf_counter()
    try:
        _check(sub, assignment, expected_answers)
    except Unreadable as err:
        sub.invalid(str(err))
    except Exception as err:  # noqa: BLE001 - one file never stops the class
        log.warning("reading %s failed", sub.origin, exc_info=True)
        detail = str(err).splitlines()[0][:200] if str(err).strip() else ""
        sub.invalid(f"the file could not be read as a notebook ({type(err).__name__}{': ' + detail if detail else ''})")
    finally:
        sub.read_seconds = time.perf_counter() - start
        if sub.read_seconds > 2.0:
            log.warning("reading %s took %.1f s", sub.origin, sub.read_seconds)
    if sub.status == INVALID:
        sub.notebook = None
    return None


def _check(sub: Submission, assignment: str, expected_answers: set[str]) -> None:
    read = read_notebook_json(sub.path)
    if read.surrogates:
        sub.notes.append(f"the notebook held {read.surrogates} lone UTF-16 surrogate(s) (text that is not "
                         "valid Unicode); each was read as U+FFFD")
    nb = nbformat.from_dict(read.raw)
    if read.containers <= MAX_VALIDATED_CONTAINERS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nbformat.validate(nb)
        except Exception as err:  # noqa: BLE001 - only a note: the answer cells are read anyway
            first = str(err).splitlines()[0][:120] if str(err).strip() else type(err).__name__
            sub.notes.append(f"the notebook does not follow nbformat's schema ({first}); "
                             "its answer cells were read anyway")
    else:
        sub.notes.append(f"the notebook holds {read.containers:,} JSON lists and objects: nbformat's schema was not "
                         f"checked (only up to {MAX_VALIDATED_CONTAINERS:,}); its answer cells were read anyway")
    present = set()
    for c in nb.cells:
        meta = c.get("metadata", {})
        gid = meta.get("nbgrader", {}).get("grade_id") if isinstance(meta, dict) and isinstance(meta.get("nbgrader"), dict) else None
        if isinstance(gid, str):
            present.add(gid)
    if expected_answers and not (present & expected_answers):
        raise Unreadable(f"not a {assignment} notebook: none of its answer cells "
                         f"({', '.join(sorted(expected_answers)[:4])}...) are present")
    sub.notebook = nb
