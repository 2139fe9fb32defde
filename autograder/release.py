"""``release``: regenerate ``exercises/<a>/`` from ``solutions/<a>/`` with nbgrader; ``check-release``.

nbgrader's ``generate_assignment`` runs in a scratch copy of the course with its own throwaway
gradebook (the repository's gradebook is never touched). Its notebooks are then normalised so
that regenerating gives byte-identical files: outputs and execution counts removed, volatile
metadata dropped (see :func:`normalise_notebook`), written with sorted keys and a final newline.

Before nbgrader runs, each source notebook gets the install cell that ``_config.yml``'s repository
and ``pyproject.toml``'s version give (its first code cell, locked); after it, the book's pages
with code are written as notebooks into ``notebooks/``. Both are what the website's launch buttons
open (:mod:`autograder.launch`).
"""

from __future__ import annotations

import filecmp
import logging
import shutil
import tempfile
from pathlib import Path

import nbformat

from autograder import nbgrader_config as cfg
from autograder.course import assignments, scratch_course

#: Notebook-level metadata kept in a release; everything else (widgets state, toc, papermill,
#: jupytext...) is volatile or editor-specific.
KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")
#: Cell-level metadata kept; nbgrader's is what grading needs, the others are harmless and stable.
KEEP_CELL_METADATA = ("nbgrader", "deletable", "editable", "tags")
#: Keys of ``language_info`` that do not depend on the machine that generated the release.
KEEP_LANGUAGE_INFO = ("name", "file_extension", "mimetype", "nbconvert_exporter", "pygments_lexer",
                      "codemirror_mode")


class ReleaseError(RuntimeError):
    """nbgrader could not generate an assignment."""


def normalise_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip outputs, execution counts and volatile metadata, in place; returns ``nb``."""
    nb.metadata = nbformat.from_dict({k: nb.metadata[k] for k in KEEP_NOTEBOOK_METADATA if k in nb.metadata})
    if "language_info" in nb.metadata:
        info = nb.metadata["language_info"]
        nb.metadata["language_info"] = nbformat.from_dict({k: info[k] for k in KEEP_LANGUAGE_INFO if k in info})
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict({k: cell.metadata[k] for k in KEEP_CELL_METADATA if k in cell.metadata})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if "attachments" in cell and not cell["attachments"]:
            del cell["attachments"]
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write ``nb`` deterministically: validated, 1-space indent, sorted keys, final newline."""
    nbformat.validate(nb)
    text = nbformat.writes(nb, version=4)  # sorted keys, 1-space indent, sources split in lines
    if not text.endswith("\n"):
        text += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def generate(root: Path, out_dir: Path, assignment_ids: list[str] | None = None,
             log_level: int = logging.WARNING) -> list[str]:
    """Generate the releases of ``assignment_ids`` (all when None) into ``out_dir/<a>/``.

    Returns the assignment ids generated. Raises :class:`ReleaseError` when nbgrader fails.
    """
    from nbgrader.converters import GenerateAssignment

    root = Path(root).resolve()
    ids = _assignment_ids(root, assignment_ids)
    out_dir = Path(out_dir)
    with scratch_course(root, ids, prefix="dgm-release-") as scratch:
        config = cfg.course_config(scratch)
        for a in ids:
            converter = GenerateAssignment(coursedir=_coursedir(config, a), config=config)
            converter.force = True
            converter.log.setLevel(log_level)
            try:
                converter.start()
            except Exception as err:  # nbgrader raises NbGraderException and friends
                raise ReleaseError(f"nbgrader generate_assignment failed for {a}: {err}") from err
            generated = scratch / cfg.RELEASE_DIR / a
            if not (generated / f"{a}.ipynb").is_file():
                raise ReleaseError(f"nbgrader produced no {a}.ipynb for {a}")
            target = out_dir / a
            if target.exists():
                shutil.rmtree(target)
            for src in sorted(generated.rglob("*")):
                if src.is_dir():
                    continue
                dest = target / src.relative_to(generated)
                if src.suffix == ".ipynb":
                    nb = nbformat.read(src, as_version=4)
                    write_notebook(normalise_notebook(nb), dest)
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)
    return ids


def _assignment_ids(root: Path, assignment_ids: list[str] | None) -> list[str]:
    """``assignment_ids`` (all the course's when None or empty), each checked to exist."""
    ids = assignments(root) if not assignment_ids else list(assignment_ids)
    known = set(assignments(root))
    missing = [a for a in ids if a not in known]
    if missing:
        raise ReleaseError(f"no source notebook solutions/<a>/<a>.ipynb for: {', '.join(missing)} "
                           f"(known: {', '.join(sorted(known)) or 'none'})")
    if not ids:
        raise ReleaseError(f"no assignments under {root / cfg.SOURCE_DIR}")
    return ids


def _coursedir(config, assignment_id: str):
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment_id
    return coursedir


def release(root: Path, assignment_ids: list[str] | None = None) -> list[str]:
    """Regenerate ``<root>/exercises/<a>/`` for the given assignments (all when None), after
    writing the install cell into their source notebooks; then write the notebook forms of the
    pages with the same names (of every page with code when None). Returns the assignment ids."""
    from autograder.launch import LaunchError, write_chapter_notebooks, write_install_cells

    root = Path(root).resolve()
    ids = _assignment_ids(root, assignment_ids)
    try:
        write_install_cells(root, ids)
    except LaunchError as err:
        raise ReleaseError(str(err)) from err
    done = generate(root, root / cfg.RELEASE_DIR, ids)
    write_chapter_notebooks(root, list(assignment_ids) if assignment_ids else None)
    return done


def stale_release_files(root: Path, assignment_ids: list[str] | None = None) -> list[str]:
    """Files of ``exercises/`` that differ from a fresh generation (missing, extra or changed),
    source notebooks whose install cell is not the current one, and chapter notebooks that differ
    from their page (:mod:`autograder.launch`).

    Paths are relative to the course root; an empty list means the release is up to date.
    """
    from autograder.launch import install_cell_problems, stale_chapter_notebooks

    root = Path(root).resolve()
    ids = _assignment_ids(root, assignment_ids)
    with tempfile.TemporaryDirectory(prefix="dgm-check-release-") as tmp:
        fresh = Path(tmp)
        generate(root, fresh, ids)
        differing: list[str] = []
        for a in ids:
            committed_dir = root / cfg.RELEASE_DIR / a
            fresh_files = {p.relative_to(fresh / a) for p in (fresh / a).rglob("*") if p.is_file()}
            committed_files = ({p.relative_to(committed_dir) for p in committed_dir.rglob("*") if p.is_file()
                                and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts}
                               if committed_dir.is_dir() else set())
            for rel in sorted(fresh_files | committed_files):
                name = f"{cfg.RELEASE_DIR}/{a}/{rel.as_posix()}"
                if rel not in committed_files:
                    differing.append(f"{name} (missing)")
                elif rel not in fresh_files:
                    differing.append(f"{name} (not generated from solutions/)")
                elif not filecmp.cmp(fresh / a / rel, committed_dir / rel, shallow=False):
                    differing.append(f"{name} (differs)")
    return (install_cell_problems(root, ids) + differing
            + stale_chapter_notebooks(root, list(assignment_ids) if assignment_ids else None))
