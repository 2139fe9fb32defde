"""Shared fixtures of the test suite.

Seed policy
-----------
* Every random test draws from an explicit, seeded ``torch.Generator`` (the ``generator``
  fixture, or ``torch.Generator().manual_seed(...)`` with the seed written in the test), never
  from torch's global RNG, so a failure reproduces exactly.
* A Monte Carlo estimate is compared with its closed form within ``k`` standard errors, and
  ``k`` is stated next to the check. With ``k = 5`` a correct implementation fails one check
  with probability about 5.7e-7 (two-sided normal tail; the CLT holds well for the sample sizes
  used), so the suite can run thousands of such checks without a spurious failure, while a
  wrong constant (a missing 1/2, a swapped argument) moves the estimate by many SE.
* Tolerances for deterministic comparisons depend on dtype: ~1e-10 relative in float64,
  ~1e-5 in float32 (see ``TOL``).
"""

from __future__ import annotations

import pytest
import torch

SEED = 20240611

#: rtol/atol for comparing two deterministic routes to the same number, by dtype.
TOL = {
    torch.float64: {"rtol": 1e-10, "atol": 1e-10},
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
}

#: the number of standard errors a Monte Carlo estimate may deviate (false-failure < 1e-6).
K_SE = 5.0


def available_devices() -> list:
    """``["cpu"]`` plus ``"cuda"`` (marked ``cuda``) when a CUDA device is present."""
    devices: list = ["cpu"]
    if torch.cuda.is_available():
        devices.append(pytest.param("cuda", marks=pytest.mark.cuda))
    return devices


@pytest.fixture
def generator() -> torch.Generator:
    """A CPU generator seeded with ``SEED``: a fresh one for every test."""
    return torch.Generator().manual_seed(SEED)


@pytest.fixture(params=available_devices())
def device(request) -> torch.device:
    """Runs the test on the CPU and, where present, on CUDA."""
    return torch.device(request.param)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; torch.cuda.is_available() is False")


@pytest.fixture(autouse=True)
def allow_reference_calls(request, monkeypatch):
    """The exercises forbid answers that call dgm's reference implementations (each chapter's
    ``forbidden``, :class:`coursework.Chapter`). Tests of the checks build right and wrong answers
    from those very references, so lift the rule in tests/test_checks*.py, except in tests of the
    rule itself (marked ``forbid_rule``)."""
    if not request.node.path.name.startswith("test_checks") or "forbid_rule" in request.keywords:
        return
    from coursework import registry

    monkeypatch.setattr(registry, "forbid_calls", lambda *args, **kwargs: None)   # forbidden and allowed alike


def expect_check_fails(task, answer, suite="visible", match=None):
    """``coursework.check(task, answer, suite=suite)`` must raise CheckFailed matching ``match``."""
    from coursework import CheckFailed, check

    with pytest.raises(CheckFailed, match=match):
        check(task, answer, suite=suite)


# --- shared by the tests of every exercise's checks (tests/test_checks_chNN.py) -----------------------

def expect_task_inventory(assignment, functions, derivation, concepts):
    """The exercise registers exactly these tasks: the functions, one derivation, the concept checks."""
    from coursework import TASKS

    mine = {name: t.kind for name, t in TASKS.items() if t.chapter.assignment == assignment}
    assert mine == {**{name: "function" for name in functions}, derivation: "derivation",
                    **{name: "concept" for name in concepts}}


def expect_right_answer_passes(task, answer, seeds=range(8)):
    """A right answer passes the visible suite and the hidden one for every seed of ``seeds``."""
    from coursework import check, run_check

    check(task, answer, suite="visible")
    for seed in seeds:
        run_check(task, answer, suite="hidden", seed=seed)


def expect_concepts_graded(concepts):
    """Each concept check accepts its right letter (both suites) and refuses another one."""
    from coursework import CheckFailed, check

    for name, answer in concepts.items():
        check(name, answer)
        check(name, answer, suite="hidden", expected=answer)
        with pytest.raises(CheckFailed):
            check(name, "a" if answer != "a" else "b", suite="hidden", expected=answer)


def detached(answer):
    """``answer`` with every tensor argument and output detached: right values, no gradients."""
    import torch

    def fn(*args):
        out = answer(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
        return tuple(o.detach() for o in out) if isinstance(out, tuple) else out.detach()
    return fn


def expect_detached_answer_fails(task, answer, seeds=range(8)):
    """The detached ``answer`` fails the hidden gradient check for every seed, saying it is not differentiable."""
    from coursework import CheckFailed, run_check

    for seed in seeds:
        with pytest.raises(CheckFailed, match="differentiabl"):
            run_check(task, detached(answer), suite="hidden", seed=seed)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After a session that ran the seed sweep (tests/test_sweep.py), print and save its table."""
    import sys

    sweep = sys.modules.get("test_sweep")
    if sweep is None or not sweep.WRITTEN:  # the sweep did not run in this session
        return
    SWEEP_DIR, sweep_table = sweep.SWEEP_DIR, sweep.sweep_table
    table = sweep_table(files=sorted(set(sweep.WRITTEN)))
    if not table:
        return
    (SWEEP_DIR / "table.md").write_text(table + "\n", encoding="utf-8")
    terminalreporter.section("seed sweep: every recorded chapter result, per member")
    terminalreporter.write_line(table)
    terminalreporter.write_line(f"(also in {SWEEP_DIR / 'table.md'})")


#: what to run when a system tool the tests need is missing (make test tries it first)
INSTALL_HINT = "run `make system-deps` (Debian/Ubuntu: sudo apt-get install bubblewrap chromium slurmctld slurmd slurm-client munge)"


def require_sandbox() -> None:
    """Fail — never skip — when grading's sandbox cannot run here, saying how to install it: a
    machine without it must not end green while the grading tests did not run."""
    from autograder.sandbox import SandboxUnavailable, check_available

    try:
        check_available()
    except SandboxUnavailable as err:
        pytest.fail(f"grading needs its sandbox, which cannot run here: {err}. To install it, {INSTALL_HINT}",
                    pytrace=False)


@pytest.fixture(scope="session")
def site():
    """The built website, ``_build/html`` (``book/build.py``: incremental, unchanged chapters come
    from the execution cache), built once per test session for every test that reads it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, str(root / "book" / "build.py")], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, f"book/build.py failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return root / "_build" / "html"
