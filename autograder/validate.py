"""``validate NOTEBOOK``: a student's self-check that, unlike ``nbgrader validate``, fails loudly.

``nbgrader validate`` (0.9.6) exits 0 even when tests fail. This runs the notebook once with
nbgrader's :class:`~nbgrader.validator.Validator` preprocessors (the same execution as grading:
per-cell timeout, ``PYTHONWARNINGS=ignore``), then prints one line per test cell — PASS or FAIL
with the last line of the error — and unanswered cells, and returns 1 when any test failed.
In a student's copy only the visible tests exist; hidden tests run at grading time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat

from autograder import nbgrader_config as cfg


@contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    """Set environment variables (inherited by the kernel started inside) and restore them."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _last_error_line(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}".strip()
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            text = output.get("text", "").strip().splitlines()
            return f"wrote to stderr: {text[-1] if text else ''}"
    return "failed"


def run_checks(path: Path, cell_timeout: int = cfg.CELL_TIMEOUT_S) -> list[tuple[str, str, str]]:
    """Execute ``path`` and return ``(grade_id, "pass"|"fail"|"unanswered", message)`` per graded cell."""
    from nbgrader import utils
    from nbgrader.validator import Validator
    from traitlets.config import Config

    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    config = Config()
    config.Execute.timeout = int(cell_timeout)
    config.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR"]
    validator = Validator(config=config)
    cwd = os.getcwd()
    try:
        os.chdir(path.parent)
        with _environment(cfg.KERNEL_ENV):
            # Validator.validate() keeps only failures; its preprocessing step gives every cell.
            executed = validator._preprocess(nb)
    finally:
        os.chdir(cwd)
    results = []
    for cell in executed.cells:
        if not utils.is_grade(cell):
            continue
        gid = cell.metadata.nbgrader["grade_id"]
        if utils.is_solution(cell):
            unanswered = cell.metadata.nbgrader.get("checksum") == utils.compute_checksum(cell)
            results.append((gid, "unanswered" if unanswered else "by hand",
                            "still the stub" if unanswered else "graded by hand"))
            continue
        code = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not code:  # a hidden-test cell of a student's copy: its tests were removed
            results.append((gid, "hidden", "runs when the notebook is graded"))
            continue
        score, max_points = utils.determine_grade(cell)
        if score is not None and score >= max_points:
            results.append((gid, "pass", ""))
        else:
            results.append((gid, "fail", _last_error_line(cell)))
    return results


def validate_notebook(path: Path, cell_timeout: int = cfg.CELL_TIMEOUT_S) -> int:
    """Print the checks of ``path``; 0 when every test passes, 1 otherwise (2: unreadable)."""
    path = Path(path)
    try:
        results = run_checks(path, cell_timeout)
    except Exception as err:  # noqa: BLE001 - unreadable notebook, kernel failure...
        print(f"could not run {path}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    width = max([len(gid) for gid, _, _ in results] + [4])
    failed = 0
    for gid, outcome, message in results:
        mark = {"pass": "PASS", "fail": "FAIL", "unanswered": "TODO", "by hand": "HAND", "hidden": "----"}[outcome]
        failed += outcome == "fail"
        print(f"{mark}  {gid:<{width}}  {message}".rstrip())
    tests = sum(1 for _, o, _ in results if o in ("pass", "fail"))
    print(f"{tests - failed}/{tests} tests passed" + ("" if not failed else " — fix the failing ones"))
    return 1 if failed else 0
