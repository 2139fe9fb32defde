"""Grading one submission in its own sandbox: step 4 of ``grade DIR``.

:func:`grade_submission` runs the assignment's program (:mod:`autograder.program`) for one student:
set-up and answer cells execute in a sandbox (:mod:`autograder.sandbox`, driven by :class:`Runner`);
at each test cell the grader runs the task's checks (:func:`coursework.run_check`) in *its own*
process, calling the student's functions in the sandbox on inputs drawn now
(:class:`RemoteFunction`) and reading values back as plain data (:mod:`coursework.wire`); value
answers (derivations, concepts) are judged in a child process (:mod:`autograder.judge`). A timeout
or a crash kills the sandbox; a fresh one replays the cells that had run and grading goes on,
within the notebook's budget.

The statuses a graded submission can end with are defined here (:data:`STATUSES`, with
:data:`autograder.submissions.INVALID` for one that could not be read).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autograder.course import GradingError
from autograder.judge import JudgeUnavailable
from autograder.program import Program, student_answers, tasks_table
from autograder.sandbox import Limits, Sandbox, SandboxFailure
from autograder.submissions import INVALID, Submission

#: every check ran (whatever the points)
GRADED = "graded"
#: a cell or check ran past its time limit, or the notebook used up its budget
TIMEOUT = "timeout"
#: the sandbox ran out of memory
OUT_OF_MEMORY = "out-of-memory"
#: the kernel died, or grading the submission failed (the reason says which)
CRASHED = "crashed"
#: every status of a record, in the order reports list them
STATUSES = (GRADED, TIMEOUT, OUT_OF_MEMORY, CRASHED, INVALID)

log = logging.getLogger("autograder.grade")


_OOM = re.compile(r"MemoryError|can't allocate memory|not enough memory|out of memory|Cannot allocate memory")


class Runner:
    """A submission's sandbox over its whole grading: starts it, restarts it after a timeout or a
    crash (replaying the cells that had run), and enforces the per-step and per-notebook limits."""

    def __init__(self, limits: Limits, slot: int, hidden_modules: tuple[str, ...]) -> None:
        self.limits, self.slot, self.hidden_modules = limits, slot, hidden_modules
        self.sandbox: Sandbox | None = None
        self.replay: list[str] = []
        self.starts = 0
        self.budget_end = time.monotonic() + limits.notebook_budget
        self.step_end = self.budget_end
        self.events: list[tuple[str, str]] = []   # (kind, where): timeout, oom, died, protocol, budget

    def begin_step(self) -> None:
        self.step_end = min(time.monotonic() + self.limits.cell_timeout, self.budget_end)

    @property
    def out_of_budget(self) -> bool:
        return time.monotonic() >= self.budget_end

    @property
    def exhausted(self) -> bool:
        return self.starts > self.limits.max_restarts

    def _ensure(self) -> Sandbox:
        if self.sandbox is not None and self.sandbox.alive:
            return self.sandbox
        if self.sandbox is not None:
            self.sandbox.close()
        if self.exhausted:
            raise SandboxFailure("died", f"the kernel was restarted {self.limits.max_restarts} times; "
                                         "the rest of the notebook was not run")
        self.starts += 1
        self.sandbox = Sandbox(self.limits, self.slot, self.hidden_modules)
        self.sandbox.start(deadline=self.budget_end)
        for code in self.replay:  # a fresh kernel: the cells that had run, in order
            reply = self.sandbox.request("run_cell", self.budget_end, code=code)
            if not reply.get("ok"):
                break
        return self.sandbox

    def request(self, op: str, **fields: Any) -> dict:
        restarting = self.sandbox is None or not self.sandbox.alive
        sandbox = self._ensure()
        if restarting:  # starting and replaying do not eat into this step's time
            self.begin_step()
        reply = sandbox.request(op, self.step_end, **fields)
        if not isinstance(reply, dict):
            raise SandboxFailure("protocol", "the kernel sent a malformed reply")
        return reply

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None


class RemoteFunction:
    """A student's function that lives in a sandbox; :func:`coursework._core.call` calls it through
    :meth:`invoke_remote`, and :func:`coursework._core.forbid_calls` reads its source instead of its
    objects (:meth:`forbidden_uses`)."""

    def __init__(self, runner: Runner, name: str, sources: list[str]) -> None:
        self.runner, self.name, self.sources = runner, name, sources

    def __repr__(self) -> str:
        return f"<student function {self.name}>"

    def invoke_remote(self, args: list, grad) -> Any:
        from coursework import wire
        from coursework._core import Outcome

        reply = self.runner.request("call", name=self.name, args=[wire.encode(a) for a in args],
                                    grad=None if grad is None else grad.as_dict())
        if not reply.get("ok"):
            return Outcome(error_type="Error", error_message=str(reply.get("error", ""))[:300])
        outcome = Outcome(error_type=_str_or_none(reply.get("error_type")),
                          error_message=str(reply.get("error_message", ""))[:500],
                          error_where=str(reply.get("error_where") or "")[:300],
                          stage="grad" if reply.get("stage") == "grad" else "call",
                          differentiable=reply.get("differentiable") is not False)
        if grad is None and outcome.error_type is None:  # judged here, on the arguments as sent and as returned
            outcome.mutated = _changed(args, reply.get("args_after"))
        if outcome.error_type and _OOM.search(f"{outcome.error_type}: {outcome.error_message}"):
            self.runner.events.append(("oom", f"{self.name} in the checks"))
        if outcome.error_type is None:  # no function task returns SymPy: never rebuild it here
            outcome.value = wire.decode(reply.get("value"), sympy=False)
            grads = reply.get("grads")
            if grad is not None and outcome.differentiable:
                if not isinstance(grads, list) or len(grads) > 64:
                    outcome.differentiable = False
                else:
                    outcome.grads = [wire.decode(g, sympy=False) for g in grads]
        return outcome

    def forbidden_uses(self, forbidden: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
        """What the answer uses outside its task's allow-list, read from the answer cells' sources
        (:func:`autograder.static.forbidden_uses`); the set-up cells that have run (the release's
        code cells, never the student's) say what the names they import are."""
        from autograder.static import forbidden_uses

        answers = set(self.sources)
        setup = [code for code in self.runner.replay if code not in answers]
        return forbidden_uses(self.sources, self.name, forbidden, allowed, setup=setup)


def _changed(sent: list, after: Any) -> bool:
    """Whether a call changed one of its arguments in place — a tensor, or a list of tensors (items added,
    removed, replaced or changed): ``after`` is the sandbox's encoding of the arguments after the call;
    anything but one readable copy per argument counts as changed."""
    from coursework import wire
    from coursework._core import same_tensor

    if type(after) is not list or len(after) != len(sent):  # noqa: E721
        return True
    for a, data in zip(sent, after):
        if not isinstance(a, torch.Tensor) and type(a) is not list:  # noqa: E721 - other arguments: not judged
            continue
        try:
            back = wire.decode(data, sympy=False)
        except wire.WireError:
            return True
        if isinstance(a, torch.Tensor):
            if not same_tensor(back, a):
                return True
            continue
        if type(back) is not list or len(back) != len(a):  # noqa: E721
            return True
        for item, item_back in zip(a, back):
            if isinstance(item, torch.Tensor) and not (isinstance(item_back, torch.Tensor)
                                                       and same_tensor(item_back, item)):
                return True
    return False


def _str_or_none(x: Any) -> str | None:
    return None if x is None else str(x)[:100]


def check_seed(run_seed: int, student_id: str, grade_id: str, index: int) -> int:
    """The hidden suite's seed for one check: fixed by the run's seed and the check's place, so a
    student's result never depends on who else is graded, in what order, or on how many workers."""
    digest = hashlib.sha256(f"{run_seed}/{student_id}/{grade_id}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def hidden_modules_for(assignment: str) -> tuple[str, ...]:
    """The ``dgm`` modules an assignment's answers re-implement (hidden in its sandbox): its
    chapter's declaration (:class:`coursework.Chapter`) says which; () for an undeclared assignment."""
    from coursework import chapter_for

    chapter = chapter_for(assignment)
    return () if chapter is None else chapter.hidden_modules()


def _cell_record(step_kind: str, grade_id: str | None, source: str) -> dict:
    return {"kind": step_kind, "grade_id": grade_id, "source": source, "stdout": "", "stderr": "", "error": None}


def grade_submission(sub: Submission, program: Program, limits: Limits, *, slot: int = 0, run_seed: int = 0,
                     hidden_modules: tuple[str, ...] = ()) -> dict:
    """Grade one valid submission in its own sandbox; returns its record (plain data, see
    :mod:`autograder.reports` for the schema)."""
    from coursework import CheckFailed, run_check
    from coursework.wire import WireError, decode

    start = time.perf_counter()
    answers, notes = student_answers(sub.notebook, program)
    tasks = tasks_table(program)
    record = {"student_id": sub.student_id, "origin": sub.origin, "status": "graded",
              "reasons": list(sub.notes) + notes, "scores": {}, "total": 0.0, "max_total": 0.0, "seconds": 0.0,
              "answers": {gid: src for gid, src in answers.items()}, "cells": []}
    cells = record["cells"]
    points: dict[str, float] = {t["name"]: 0.0 for t in tasks if not t["manual"]}
    manual_answered: set[str] = set()
    answer_sources = [answers.get(s.grade_id, s.source) for s in program.steps if s.kind == "answer"]
    runner = Runner(limits, slot, hidden_modules)
    stopped: str | None = None
    failed_answers: dict[str, str] = {}   # answer cell's grade id -> the error that stopped it
    try:
        for step in program.steps:
            if step.kind == "markdown":
                cells.append({"kind": "markdown", "grade_id": None, "source": step.source})
                continue
            if step.kind == "manual":
                text = answers.get(step.grade_id, step.source)
                cells.append({"kind": "manual", "grade_id": step.grade_id, "source": text,
                              "max_points": step.points})
                if text.strip() != step.source.strip():
                    manual_answered.add(step.task)
                continue
            if step.kind in ("code", "answer"):
                source = step.source if step.kind == "code" else answers.get(step.grade_id, step.source)
                rec = _cell_record(step.kind, step.grade_id, source)
                cells.append(rec)
                if step.cell_type != "code":
                    continue
                if stopped:
                    rec["error"] = {"ename": "NotRun", "evalue": stopped}
                    continue
                runner.begin_step()
                where = step.grade_id or "the set-up cell"
                try:
                    reply = runner.request("run_cell", code=source)
                except SandboxFailure as failure:
                    runner.events.append((failure.kind, where))
                    rec["error"] = {"ename": _failure_name(failure.kind), "evalue": str(failure)}
                    if runner.out_of_budget or runner.exhausted:
                        stopped = _stop_reason(runner, limits)
                    continue
                for key in ("stdout", "stderr"):
                    rec[key] = str(reply.get(key, ""))[: limits.output_chars]
                dropped = reply.get("dropped")
                if isinstance(dropped, int) and dropped > 0:
                    rec["stderr"] += f"\n[... {dropped} more characters of output were not kept]"
                if reply.get("ok"):
                    runner.replay.append(source)
                    failed_answers.pop(step.grade_id, None)
                else:
                    ename, evalue = str(reply.get("ename", "Error"))[:100], str(reply.get("evalue", ""))[:2000]
                    rec["error"] = {"ename": ename, "evalue": evalue}
                    if step.kind == "answer":
                        failed_answers[step.grade_id] = f"{ename}: {evalue[:300]}"
                    if _OOM.search(f"{ename}: {evalue}"):
                        runner.events.append(("oom", where))
                continue
            # a test cell: the grader runs the checks
            rec = {"kind": "test", "grade_id": step.grade_id, "task": step.task, "points": 0.0,
                   "max_points": step.points, "checks": []}
            cells.append(rec)
            passed_all = True
            for index, call in enumerate(step.checks):
                if stopped:
                    rec["checks"].append({"suite": call.suite, "passed": False, "message": f"not run: {stopped}"})
                    passed_all = False
                    continue
                runner.begin_step()
                seed = check_seed(run_seed, sub.student_id, step.grade_id, index)
                try:
                    answer = _resolve_answer(runner, call, answer_sources, failed_answers)
                    if isinstance(answer, RemoteFunction):
                        run_check(call.task, answer, suite=call.suite, expected=call.expected, seed=seed)
                    elif _has_sympy(answer.data):  # SymPy: judged in a child with a time and memory limit
                        _judge_value_answer(call, answer, seed, runner, limits)
                    else:  # plain data (a concept's letter): nothing in it can be expensive to check
                        run_check(call.task, decode(answer.data, sympy=False), suite=call.suite,
                                  expected=call.expected, seed=seed)
                    message, passed = f"{call.task}: all {call.suite} checks passed", True
                except CheckFailed as err:
                    message, passed = str(err)[:2000], False
                except JudgeUnavailable:
                    raise
                except SandboxFailure as failure:
                    runner.events.append((failure.kind, f"the checks of {call.task}"))
                    message, passed = f"[{call.task}] the checks stopped: {failure}", False
                    if runner.out_of_budget or runner.exhausted:
                        stopped = _stop_reason(runner, limits)
                except WireError as err:
                    message, passed = (f"[{call.task}] your answer sent something the grader cannot read ({err}); "
                                       "return tensors, numbers, strings or tuples of them"), False
                except Exception as err:  # noqa: BLE001 - a fault in the checks themselves: logged, not shown
                    log.exception("checks of %s failed on %s", call.task, sub.student_id)
                    message, passed = (f"[{call.task}] the checks could not run on your answer "
                                       f"({type(err).__name__}); tell your instructor"), False
                passed_all = passed_all and passed
                rec["checks"].append({"suite": call.suite, "passed": passed, "message": message})
            if passed_all:
                rec["points"] = step.points
                points[step.task] = points.get(step.task, 0.0) + step.points
    finally:
        runner.close()
    # a written answer left as the release's stub scores 0 at once; an answered one waits for a person
    record["scores"] = {t["name"]: (None if t["name"] in manual_answered else 0.0) if t["manual"]
                        else points.get(t["name"], 0.0) for t in tasks}
    record["total"] = sum(points.values())
    record["max_total"] = sum(t["max_points"] for t in tasks if not t["manual"])
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["status"], reasons = _status(runner.events, limits, stopped)
    record["reasons"].extend(reasons)
    return record


@dataclass(frozen=True)
class EncodedValue:
    """A value answer as the sandbox sent it (:mod:`coursework.wire` data), not yet decoded."""

    data: Any


def _resolve_answer(runner: Runner, call, sources: list[str],
                    failed_answers: dict[str, str] | None = None) -> RemoteFunction | EncodedValue:
    from coursework import CheckFailed

    reply = runner.request("get", name=call.answer_name)
    kind = reply.get("kind")
    if kind == "missing" or not reply.get("ok"):
        failed = (failed_answers or {}).get(call.task)
        if failed:
            raise CheckFailed(f"[{call.task}] `{call.answer_name}` is not defined because its answer cell "
                              f"({call.task}) did not run: {failed}")
        raise CheckFailed(f"[{call.task}] `{call.answer_name}` is not defined: did its answer cell raise an error?")
    if kind == "function":
        return RemoteFunction(runner, call.answer_name, sources)
    return EncodedValue(reply.get("value"))


def _has_sympy(data: Any, depth: int = 0) -> bool:
    """Whether encoded data holds a SymPy expression anywhere (containers searched, bounded)."""
    if depth > 16 or not isinstance(data, dict):
        return False
    if data.get("$") == "sympy":
        return True
    items = data.get("items")
    return isinstance(items, list) and any(_has_sympy(x, depth + 1) for x in items[:10_000])


def _judge_value_answer(call, answer: EncodedValue, seed: int, runner: Runner, limits: Limits) -> None:
    """The checks of a value answer, in a limited child (:mod:`autograder.judge`); raises like
    :func:`coursework.run_check` does."""
    from autograder.judge import judge_value
    from coursework import CheckFailed
    from coursework.wire import WireError

    timeout = max(1.0, runner.step_end - time.monotonic())
    result = judge_value(call.task, answer.data, suite=call.suite, expected=call.expected, seed=seed,
                         timeout=timeout, memory_bytes=limits.judge_memory_bytes)
    outcome, message = result["outcome"], result["message"]
    if outcome == "pass":
        return
    if outcome == "fail":
        raise CheckFailed(message)
    if outcome == "wire":
        raise WireError(message)
    if outcome == "timeout":
        raise CheckFailed(f"[{call.task}] checking your answer took longer than {timeout:.0f} s: an expression "
                          "whose numbers explode when evaluated (a huge power?) cannot be checked")
    if outcome == "memory":
        raise CheckFailed(f"[{call.task}] checking your answer needed more than "
                          f"{limits.judge_memory_bytes // 2**20} MiB: an expression too large to evaluate")
    raise RuntimeError(f"the checks of {call.task} failed in the judge ({message})")


def _failure_name(kind: str) -> str:
    return {"timeout": "Timeout", "oom": "OutOfMemory", "protocol": "KernelProtocolError"}.get(kind, "KernelDied")


def _stop_reason(runner: Runner, limits: Limits) -> str:
    if runner.out_of_budget:
        runner.events.append(("budget", ""))
        return f"the notebook used up its {limits.notebook_budget:g} s budget"
    return f"the kernel failed {runner.starts} times"


def _status(events: list[tuple[str, str]], limits: Limits, stopped: str | None) -> tuple[str, list[str]]:
    """The submission's status and reasons from what happened in its sandbox."""
    reasons = []
    kinds = [k for k, _ in events]
    timeouts = [w for k, w in events if k == "timeout"]
    ooms = [w for k, w in events if k == "oom"]
    deaths = [(k, w) for k, w in events if k in ("died", "protocol")]
    if timeouts:
        reasons.append(f"{', '.join(dict.fromkeys(timeouts))} ran past the {limits.cell_timeout:g} s limit")
    if ooms:
        reasons.append(f"out of memory in {', '.join(dict.fromkeys(ooms))} (limit {limits.memory_bytes // 2**20} MiB)")
    if deaths:
        reasons.append("the kernel died in " + ", ".join(dict.fromkeys(w for _, w in deaths)))
    if stopped:
        reasons.append(stopped + "; the cells after it were not run")
    if "budget" in kinds or timeouts:
        return TIMEOUT, reasons
    if ooms:
        return OUT_OF_MEMORY, reasons
    if deaths or stopped:
        return CRASHED, reasons
    return GRADED, reasons


def invalid_record(sub: Submission, program: Program) -> dict:
    """The record of a submission that could not be read: 0 everywhere (nothing to grade by hand)."""
    tasks = tasks_table(program)
    return {"student_id": sub.student_id, "origin": sub.origin, "status": INVALID, "reasons": list(sub.notes),
            "scores": {t["name"]: 0.0 for t in tasks}, "total": 0.0,
            "max_total": sum(t["max_points"] for t in tasks if not t["manual"]), "seconds": 0.0,
            "answers": {}, "cells": []}


def self_test(root: Path, program: Program, limits: Limits, *, run_seed: int = 0) -> dict:
    """Grade the assignment's own solution in a sandbox before any student: it must get full marks.

    A grader that cannot (a sandbox that mounts one copy of the course while the environment
    imports another, a broken environment, checks that disagree with the solution) would otherwise
    report every student as crashed or failing and exit 0. Returns the solution's record; raises
    :class:`GradingError` saying what went wrong."""
    from autograder.samples import filled_release, solution_answers

    answers = solution_answers(root, program.assignment)
    sub = Submission("self-test", "the solution", Path("<solution>"), notebook=filled_release(answers, root,
                                                                                               program.assignment))
    record = grade_submission(sub, program, limits, slot=0, run_seed=run_seed,
                              hidden_modules=hidden_modules_for(program.assignment))
    if record["status"] != GRADED or record["total"] != record["max_total"]:
        failed = [f"{c.get('grade_id')}: {check.get('message')}" for c in record["cells"]
                  for check in c.get("checks", []) if not check.get("passed")]
        raise GradingError(
            f"self-test failed: the solution of {program.assignment} got {record['total']:g}/{record['max_total']:g} "
            f"({record['status']}: {'; '.join(record['reasons']) or 'no reason given'})"
            + (f"; failed checks: {'; '.join(failed[:3])}" if failed else "")
            + ". Nothing was graded: fix the grading environment first (`make env`, docs/grading.md).")
    return record
