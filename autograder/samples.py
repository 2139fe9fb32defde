"""Sample submissions and mutants, built from the release and the solution's answer cells.

* :func:`solution_answers` — every answer cell of the solution with its ``### BEGIN/END SOLUTION``
  lines removed: what a student who gets everything right would have typed.
* :func:`load_mutants` — ``mutants/<assignment>/<grade_id>__<slip>.py``: a module docstring naming the
  mistake and the ``grade_id`` it replaces, then the full source of that answer cell.
* :func:`filled_release` — the release notebook with some answer cells replaced: how every sample
  and every mutant submission in the tests is made, so they stay in step with ``solutions/``.
* :func:`make_samples` — ``autograder/samples/``: ``alice`` (everything from the solution),
  ``bob`` (partial: some tasks right, some still stubs, one wrong — a mutant), ``carol`` (alice's
  file truncated half-way: not valid JSON). Deterministic, so a test can check they are current.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import REPO_ROOT, release_notebook, source_notebook
from autograder.release import normalise_notebook

ASSIGNMENT = "01-elbo"
SAMPLES_DIR = Path("autograder") / "samples"
MUTANTS_DIR = REPO_ROOT / "mutants"

#: bob's submission: which answers come from the solution, and which mutant he handed in;
#: every other answer cell stays the release's stub.
BOB_RIGHT = ("gaussian_kl_diag", "kl_monte_carlo", "concept_vae_sampling", "concept_kl_asymmetry",
             "kl_derivation_steps")
BOB_MUTANT = "mixture_responsibilities__weights_ignored"

_DELIMITER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def strip_solution_markers(source: str) -> str:
    """``source`` without its ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines."""
    return "\n".join(line for line in source.splitlines() if not _DELIMITER.match(line)).strip("\n")


def solution_answers(root: Path = REPO_ROOT, assignment: str = ASSIGNMENT) -> dict[str, str]:
    """grade_id → the solution's source of every answer cell, solution markers removed."""
    nb = nbformat.read(source_notebook(root, assignment), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: strip_solution_markers(c.source)
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}


@dataclass(frozen=True)
class Mutant:
    """A known-wrong implementation of one answer cell."""

    name: str        # file stem, e.g. "gaussian_kl_diag__swapped_args"
    grade_id: str    # the answer cell it replaces
    mistake: str     # the docstring's first paragraph
    source: str      # the cell source (the file without its docstring)


def load_mutants(assignment: str = ASSIGNMENT, folder: Path = MUTANTS_DIR) -> list[Mutant]:
    """Every mutant of ``assignment`` (``folder/<assignment>/*.py``), sorted by name; raises
    ValueError on a malformed file."""
    mutants = []
    for path in sorted((Path(folder) / assignment).glob("*.py")):
        text = path.read_text(encoding="utf-8")
        module = ast.parse(text)
        doc = ast.get_docstring(module)
        if doc is None or not module.body:
            raise ValueError(f"{path.name}: must start with a docstring naming the mistake and its grade_id")
        match = re.search(r"^grade_id:\s*(\S+)\s*$", doc, flags=re.MULTILINE)
        if match is None:
            raise ValueError(f"{path.name}: the docstring must contain a line 'grade_id: <answer cell id>'")
        grade_id = match.group(1)
        if not path.stem.startswith(f"{grade_id}__"):
            raise ValueError(f"{path.name}: the file name must start with '{grade_id}__'")
        body_start = module.body[0].end_lineno
        source = "\n".join(text.splitlines()[body_start:]).strip("\n")
        mutants.append(Mutant(path.stem, grade_id, doc.split("\n\n")[0], source))
    return mutants


def filled_release(answers: dict[str, str], root: Path = REPO_ROOT,
                   assignment: str = ASSIGNMENT) -> nbformat.NotebookNode:
    """The release notebook with the answer cells named in ``answers`` given those sources."""
    nb = nbformat.read(release_notebook(root, assignment), as_version=4)
    unknown = set(answers) - {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
    if unknown:
        raise ValueError(f"no answer cells {sorted(unknown)} in the release of {assignment}")
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return normalise_notebook(nb)


def sample_texts(root: Path = REPO_ROOT, assignment: str = ASSIGNMENT) -> dict[str, str]:
    """File name → contents of every sample submission."""
    answers = solution_answers(root, assignment)
    mutants = {m.name: m for m in load_mutants(assignment, Path(root) / "mutants")}
    alice = nbformat.writes(filled_release(answers, root, assignment))
    bob_answers = {gid: answers[gid] for gid in BOB_RIGHT}
    bob_answers[mutants[BOB_MUTANT].grade_id] = mutants[BOB_MUTANT].source
    bob = nbformat.writes(filled_release(bob_answers, root, assignment))
    carol = alice[: len(alice) // 2]   # a truncated upload: not valid JSON
    return {"alice.ipynb": alice + "\n", "bob.ipynb": bob + "\n", "carol.ipynb": carol}


def make_samples(root: Path = REPO_ROOT) -> list[Path]:
    """Write ``autograder/samples/*.ipynb``; returns the paths written."""
    folder = Path(root) / SAMPLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sample_texts(root).items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_samples(root: Path = REPO_ROOT) -> list[str]:
    """Sample files that are missing or differ from what :func:`make_samples` would write."""
    folder = Path(root) / SAMPLES_DIR
    stale = []
    for name, text in sample_texts(root).items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(str(SAMPLES_DIR / name))
    return stale
