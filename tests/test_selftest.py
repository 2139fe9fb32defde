"""The grader's self-test: before a class is graded, the assignment's solution is graded in a
sandbox; a grader that cannot give it full marks (here: a sandbox that mounts a broken copy of the
course's checks, as when the environment imports another checkout) refuses with exit code 2
instead of reporting every student as crashed and exiting 0."""

from __future__ import annotations

import nbformat
import pytest

from autograder import sandbox as sandbox_module
from autograder.__main__ import main
from autograder.course import REPO_ROOT
from autograder.samples import filled_release, solution_answers
from conftest import require_sandbox

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _sandbox_here():
    require_sandbox()


@pytest.fixture
def class_folder(tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    nbformat.write(filled_release(solution_answers(REPO_ROOT, "01-elbo"), REPO_ROOT, "01-elbo"), subs / "alice.ipynb")
    return subs


def test_a_misconfigured_sandbox_stops_grading_with_exit_2(class_folder, tmp_path, monkeypatch, capsys):
    broken = tmp_path / "view" / "coursework"   # the kernel's checks package: a copy missing its modules
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("from coursework.registry import check\n", encoding="utf-8")
    real_view = sandbox_module.package_view
    monkeypatch.setattr(sandbox_module, "package_view",
                        lambda hidden=(), name="dgm": broken if name == "coursework" else real_view(hidden, name))
    out = tmp_path / "reports"
    code = main(["grade", str(class_folder), "--assignment", "01-elbo", "--out", str(out), "--no-progress",
                 "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "self-test failed: the solution of 01-elbo got 0/" in err and "Nothing was graded" in err
    assert not (out / "grades.csv").exists()


def test_a_sound_grader_passes_its_self_test_and_grades(class_folder, tmp_path, capsys):
    out = tmp_path / "reports"
    assert main(["grade", str(class_folder), "--assignment", "01-elbo", "--out", str(out), "--no-progress",
                 "--workers", "1"]) == 0
    assert "alice" in (out / "grades.csv").read_text(encoding="utf-8")
