"""Every known wrong answer (``mutants/``) fails its task's hidden checks for *every* seed.

The hidden suite draws fresh inputs at each grading run, so a check that catches a slip only for
most draws lets it through now and then (a real case: a density check whose "confident"
logits could all come out negative, where the slip is harmless). The grading tests
(tests/test_grading.py) grade each mutant once, with one run seed; here each mutant's answer is
run in this process, as the solution notebook's set-up defines it, against its task's hidden checks
for a sweep of seeds, and must fail on each.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from autograder.course import REPO_ROOT, assignments
from autograder.program import build_program
from autograder.samples import load_mutants, solution_answers
from coursework import CheckFailed, run_check

ASSIGNMENTS = assignments(REPO_ROOT)
MUTANTS = [(a, m) for a in ASSIGNMENTS for m in load_mutants(a)]
#: hidden-suite seeds each mutant must fail on (the sweep standard: at least 8)
SEEDS = range(16)


def _namespace(assignment: str, answers: dict[str, str], suites: tuple[str, ...] = ("hidden",)) -> tuple[dict, list]:
    """Run the program's set-up and answer cells (``answers`` by grade id) here; returns the
    namespace and the program's check calls of ``suites``."""
    program = build_program(REPO_ROOT, assignment)
    namespace: dict = {"__name__": "__main__"}
    calls = []
    with contextlib.redirect_stdout(io.StringIO()):
        for step in program.steps:
            if step.kind == "code":
                exec(compile(step.source, f"<{assignment} set-up>", "exec"), namespace)  # noqa: S102 - our own notebook
            elif step.kind == "answer" and program.answer_types.get(step.grade_id) == "code":
                exec(compile(answers.get(step.grade_id, step.source), f"<{step.grade_id}>", "exec"), namespace)  # noqa: S102
            elif step.kind == "test":
                calls += [c for c in step.checks if c.suite in suites]
    return namespace, calls


@pytest.mark.parametrize(("assignment", "mutant"), MUTANTS, ids=[f"{a}:{m.name}" for a, m in MUTANTS])
def test_mutant_fails_its_hidden_checks_for_every_seed(assignment, mutant):
    answers = {**solution_answers(REPO_ROOT, assignment), mutant.grade_id: mutant.source}
    namespace, calls = _namespace(assignment, answers)
    mine = [c for c in calls if c.task == mutant.grade_id or c.answer_name == mutant.grade_id]
    assert mine, f"no hidden check of {mutant.grade_id} in {assignment}"
    passed = []
    for seed in SEEDS:
        failed = False
        for c in mine:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    run_check(c.task, namespace[c.answer_name], suite="hidden", expected=c.expected, seed=seed)
            except CheckFailed:
                failed = True
        if not failed:
            passed.append(seed)
    assert not passed, f"{mutant.name} ({mutant.mistake}) passes the hidden checks for seeds {passed}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solution_passes_both_suites_with_the_rule_on(assignment):
    """The solution notebook's answers, run as its set-up defines them, pass every check of its
    test cells: the visible suite, and the hidden one for 8 seeds (the rule against calling the
    references is on: these are the notebook's own functions)."""
    namespace, calls = _namespace(assignment, solution_answers(REPO_ROOT, assignment), suites=("visible", "hidden"))
    assert {c.suite for c in calls} == {"visible", "hidden"}
    for c in calls:
        for seed in (SEEDS[:8] if c.suite == "hidden" else [None]):
            with contextlib.redirect_stdout(io.StringIO()):
                run_check(c.task, namespace[c.answer_name], suite=c.suite, expected=c.expected, seed=seed)
