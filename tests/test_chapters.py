"""The mould: every chapter is one declaration (:class:`coursework.Chapter`) plus new files.

* Every assignment in ``solutions/`` has its declaration, and every declaration its notebook; the
  tasks a notebook checks are exactly the tasks its chapter registers, each in both suites.
* What a declaration names exists: reference functions, forbidden modules, the set-up cell's one
  import from the chapter's own module.
* The packages keep to their rooms: ``dgm`` imports neither ``coursework`` nor the grader, and
  each package's third-party imports are declared in ``pyproject.toml``.
* A dry run adds a toy chapter to a copy of the course — a ``dgm`` module, a checks module, a
  source notebook, a mutant — and releases and grades it there without any file of ``autograder/``
  changing (docs/adding-a-chapter.md is the guide it follows).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import nbformat
import pytest

import coursework
from autograder.course import REPO_ROOT, assignments, source_notebook
from autograder.program import build_program

ASSIGNMENTS = assignments(REPO_ROOT)
CHAPTERS = coursework.chapters()


def test_every_assignment_has_its_chapter_and_every_chapter_its_notebook():
    assert ASSIGNMENTS, "no assignments found in solutions/"
    assert set(ASSIGNMENTS) == set(CHAPTERS), (f"undeclared assignments: {sorted(set(ASSIGNMENTS) - set(CHAPTERS))}; "
                                               f"declarations without a notebook: {sorted(set(CHAPTERS) - set(ASSIGNMENTS))}")
    for name, chapter in CHAPTERS.items():
        assert chapter.assignment == name and name.startswith(f"{chapter.number:02d}-")
        assert type(chapter).__module__ == "coursework.registry"
        module = importlib.import_module(f"coursework.ch{chapter.number:02d}")
        assert module.CHAPTER is chapter, f"coursework/ch{chapter.number:02d}.py must declare {name}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_notebook_checks_exactly_the_chapters_tasks_in_both_suites(assignment):
    program = build_program(REPO_ROOT, assignment)
    suites: dict[str, set[str]] = {}
    for step in program.steps:
        for call in step.checks:
            suites.setdefault(call.task, set()).add(call.suite)
    chapter = CHAPTERS[assignment]
    assert set(suites) == set(chapter.tasks), (f"checked but not registered: {sorted(set(suites) - set(chapter.tasks))}; "
                                               f"registered but never checked: {sorted(set(chapter.tasks) - set(suites))}")
    assert all(s == {"visible", "hidden"} for s in suites.values()), suites
    assert {t.kind for t in chapter.tasks.values()} <= set(coursework.KINDS)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_what_a_declaration_names_exists(assignment):
    chapter = CHAPTERS[assignment]
    for module in chapter.forbidden:
        importlib.import_module(module)
    assert chapter.hidden_modules(), f"{assignment} hides no dgm module from its sandboxes"
    for task, specs in chapter.references().items():
        assert specs, task
        for spec in specs:
            module, _, qualname = spec.partition(":")
            assert module.split(".")[0] == "dgm", f"{task}: a reference must be a dgm function; got {spec}"
            obj = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            assert inspect.getsource(obj), spec
    for task in chapter.tasks.values():
        if task.kind == "derivation":
            coursework.registry.numeric(task.start(), task.point)  # the report point is in the start's domain


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_set_up_cell_is_one_import_from_the_chapters_module(assignment):
    chapter = CHAPTERS[assignment]
    module_name = f"coursework.ch{chapter.number:02d}"
    module = importlib.import_module(module_name)
    nb = nbformat.read(source_notebook(REPO_ROOT, assignment), as_version=4)
    imports = [node for c in nb.cells if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get("solution")
               for node in ast.walk(ast.parse(c.source)) if isinstance(node, (ast.Import, ast.ImportFrom))
               and (getattr(node, "module", None) or node.names[0].name).split(".")[0] == "coursework"]
    assert len(imports) == 1, f"{assignment}: {len(imports)} imports of coursework (want one, from {module_name})"
    (node,) = imports
    assert isinstance(node, ast.ImportFrom) and node.module == module_name
    names = {a.name for a in node.names}
    assert "check" in names and names <= set(module.__all__), names - set(module.__all__)
    assert all(hasattr(module, n) for n in module.__all__)


# --------------------------------------------------------------------------------------------
# the rooms: who imports what
# --------------------------------------------------------------------------------------------

#: import name → distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "IPython": "ipython", "markdown_it": "markdown-it-py",
                "mdit_py_plugins": "mdit-py-plugins", "yaml": "pyyaml"}


def _imports(package: str) -> set[str]:
    """Top-level modules imported anywhere in ``package``'s .py files (relative imports left out)."""
    found = set()
    for path in (REPO_ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def _third_party(names: set[str]) -> set[str]:
    return {DISTRIBUTION.get(n, n) for n in names if n not in sys.stdlib_module_names and n != "__future__"}


def test_dgm_is_the_math_library_alone():
    imported = _imports("dgm")
    assert not imported & {"coursework", "autograder", "sympy"}, imported & {"coursework", "autograder", "sympy"}
    assert not _imports("coursework") & {"autograder"}


def test_each_package_declares_what_it_imports():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {re.split(r"[<>=!~ ;\[]", d)[0] for d in project["dependencies"]}
    extras = {k: {re.split(r"[<>=!~ ;\[]", d)[0] for d in v} for k, v in project["optional-dependencies"].items()}
    assert _third_party(_imports("dgm")) - {"dgm"} <= base, _third_party(_imports("dgm")) - base
    assert _third_party(_imports("coursework")) - {"dgm", "coursework"} <= base | extras["coursework"]
    assert _third_party(_imports("autograder")) - {"dgm", "coursework", "autograder"} <= base | extras["grading"]
    # and nothing declared goes unused
    assert base <= _third_party(_imports("dgm")), base - _third_party(_imports("dgm"))
    assert extras["coursework"] <= _third_party(_imports("coursework"))


# --------------------------------------------------------------------------------------------
# the dry run: a toy chapter is new files only
# --------------------------------------------------------------------------------------------

TOY_LIBRARY = '''
"""A toy module, as a new chapter would add one: the log of a mean of exponentials."""

import math

import torch


def log_mean_exp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log((1/n) sum_i exp(x_i)) along ``dim``, stable for any magnitude (logsumexp - log n)."""
    return torch.logsumexp(x, dim) - math.log(x.shape[dim])
'''

TOY_CHECKS = '''
"""Checks of the toy exercise (the dry run of tests/test_chapters.py)."""

import torch

from coursework._core import Ctx, call, expect_tensor
from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import

__all__ = ["check"]

CHAPTER = Chapter(number=98, assignment="98-toy", title="A toy chapter", forbidden=("dgm.toy",))


@CHAPTER.function("log_mean_exp", references=("dgm.toy:log_mean_exp",))
def _log_mean_exp(ctx: Ctx, fn, expected) -> None:
    from dgm.toy import log_mean_exp as ref

    x = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64) if not ctx.hidden else ctx.randn(4, 5)
    expect_tensor(ctx, call(ctx, fn, x, where="ordinary values"), ref(x), "log-mean-exp", "ordinary values")
    if ctx.hidden:
        x = torch.cat([ctx.uniform(800, 1000, 2, 5), ctx.randn(2, 5)])
        expect_tensor(ctx, call(ctx, fn, x, where="extremes"), ref(x), "log-mean-exp", "extremes with ordinary values")


CHAPTER.concept("concept_toy", (True, False))
'''

TOY_MUTANT = '''"""Mistake: exponentiates first, so large values overflow.

grade_id: log_mean_exp
"""
def log_mean_exp(x, dim=-1):
    return torch.log(torch.exp(x).mean(dim))
'''


def _toy_notebook() -> nbformat.NotebookNode:
    def cell(kind, source, grade_id, **flags):
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        c = make(textwrap.dedent(source).strip("\n"))
        c.metadata["nbgrader"] = {"grade": flags.get("points") is not None, "grade_id": grade_id,
                                  "locked": not flags.get("solution", False), "schema_version": 3,
                                  "solution": flags.get("solution", False), "task": False}
        if flags.get("points") is not None:
            c.metadata["nbgrader"]["points"] = flags["points"]
        return c

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    nb.cells = [
        cell("markdown", "# Toy exercise\n\nImplement log-mean-exp.", "intro"),
        cell("code", "import torch\n\nfrom coursework.ch98 import check", "setup"),
        cell("code", '''
            def log_mean_exp(x, dim=-1):
                """log of the mean of exp(x) along dim."""
                ### BEGIN SOLUTION
                return torch.logsumexp(x, dim) - torch.log(torch.tensor(float(x.shape[dim]), dtype=x.dtype))
                ### END SOLUTION
            ''', "log_mean_exp", solution=True),
        cell("code", 'check("log_mean_exp", log_mean_exp)', "test_log_mean_exp_visible", points=1),
        cell("code", '''
            ### BEGIN HIDDEN TESTS
            check("log_mean_exp", log_mean_exp, suite="hidden")
            ### END HIDDEN TESTS
            ''', "test_log_mean_exp_hidden", points=2),
        cell("code", '''
            ANSWER_TOY = None  # True or False: is log-mean-exp at most the maximum?
            ### BEGIN SOLUTION
            ANSWER_TOY = True
            ### END SOLUTION
            ''', "concept_toy", solution=True),
        cell("code", '''
            check("concept_toy", ANSWER_TOY)
            ### BEGIN HIDDEN TESTS
            check("concept_toy", ANSWER_TOY, suite="hidden", expected=True)
            ### END HIDDEN TESTS
            ''', "test_concept_toy", points=1),
    ]
    return nb


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_a_new_chapter_is_new_files_only_and_grades(tmp_path):
    """Copy the course, add a toy chapter's files, release and grade it there: solution full marks,
    the mutant less on its task, the blank notebook nothing — and no file of autograder/ changed."""
    from autograder.sandbox import bwrap_path

    if bwrap_path() is None:
        pytest.fail("bubblewrap is not installed: grading needs its sandbox (the README's set-up installs it)")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    course = tmp_path / "course"
    for rel in filter(None, listed):
        if (REPO_ROOT / rel).is_file() and not rel.startswith(("book/", "_build/")):
            (course / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / rel, course / rel)
    before = _digest(course / "autograder")
    files_before = set(_digest(course))

    new_files = {
        "dgm/toy.py": TOY_LIBRARY.lstrip(),
        "coursework/ch98.py": TOY_CHECKS.lstrip(),
        "mutants/98-toy/log_mean_exp__exp_first.py": TOY_MUTANT,
    }
    for rel, text in new_files.items():
        (course / rel).parent.mkdir(parents=True, exist_ok=True)
        (course / rel).write_text(text, encoding="utf-8")
    (course / "solutions/98-toy").mkdir(parents=True)
    nbformat.write(_toy_notebook(), course / "solutions/98-toy/98-toy.ipynb")

    env = {**os.environ, "PYTHONPATH": str(course), "PYTHONDONTWRITEBYTECODE": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, *args], cwd=course, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    where = run("-c", "import coursework, dgm, autograder; print(coursework.__file__, dgm.__file__, autograder.__file__)")
    assert all(p.startswith(str(course)) for p in where.stdout.split()), where.stdout  # the copy, not the repository
    run("-m", "autograder", "release", "98-toy")
    subs = tmp_path / "submissions"
    subs.mkdir()
    run("-c", textwrap.dedent(f"""
        import shutil, nbformat
        from pathlib import Path
        from autograder.course import release_notebook
        from autograder.samples import filled_release, load_mutants, solution_answers
        subs, root = Path({str(subs)!r}), Path.cwd()
        answers = solution_answers(root, "98-toy")
        nbformat.write(filled_release(answers, root, "98-toy"), subs / "solution.ipynb")
        for m in load_mutants("98-toy", root / "mutants"):
            nbformat.write(filled_release({{**answers, m.grade_id: m.source}}, root, "98-toy"), subs / f"{{m.name}}.ipynb")
        shutil.copyfile(release_notebook(root, "98-toy"), subs / "blank.ipynb")
        """))
    out = tmp_path / "reports"
    run("-m", "autograder", "grade", str(subs), "--assignment", "98-toy", "--out", str(out), "--workers", "1",
        "--no-progress")
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert {r["status"] for r in rows.values()} == {"graded"}, rows
    assert float(rows["solution"]["total"]) == float(rows["solution"]["max_total"]) == 4.0
    mutant = rows["log_mean_exp__exp_first"]
    assert float(mutant["log_mean_exp"]) < 3.0 and float(mutant["concept_toy"]) == 1.0
    assert float(rows["blank"]["total"]) == 0.0

    assert _digest(course / "autograder") == before, "a file under autograder/ changed"
    added = set(_digest(course)) - files_before
    expected = {*new_files, "solutions/98-toy/98-toy.ipynb", "exercises/98-toy/98-toy.ipynb"}
    assert added == expected, sorted(added ^ expected)
    assert not any(a.startswith("autograder/") for a in added)
