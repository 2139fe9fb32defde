"""``grade DIR``: grade a folder of submissions — sandboxed, judged outside the student's process,
in parallel, optionally as one shard of a cluster job.

The pipeline, one function per step:

1. :func:`discover` — ``DIR/<student>.ipynb`` or nbgrader's ``DIR/<student>/<a>/<a>.ipynb``; student
   ids are sanitised (:func:`sanitise_student_id`) so that no id can leave its folder.
2. :func:`check_submission` — readable JSON with a list of cells, of this assignment; otherwise the
   student's status is ``invalid`` with a reason, and the others go on.
3. :func:`autograder.program.student_answers` — only the text of the answer cells is taken from the
   submission (last copy of a duplicated cell; matched by grade id and cell type); everything else
   comes from the instructors' source notebook (:func:`autograder.program.build_program`).
4. :func:`grade_submission` — runs the program in a fresh sandbox (:mod:`autograder.sandbox`): set-up
   and answer cells execute there; at each test cell the grader runs the task's checks
   (:func:`dgm.checks.run_check`) in *its own* process, calling the student's functions in the sandbox
   on inputs drawn now (:class:`RemoteFunction`) and reading values back as plain data
   (:mod:`dgm.checks.wire`). A timeout or a crash kills the sandbox; a fresh one replays the cells
   that had run and grading goes on, within the notebook's budget.
5. :func:`grade_all` — every submission, on ``workers`` parallel sandboxes (threads here drive the
   sandboxes; the student code runs in their processes); results come back to one thread, the only
   writer of the reports.
6. :func:`autograder.reports.write_reports` — grades.csv (per-task points, status, reason),
   feedback HTML, histograms, the similarity report, results.json; :func:`write_autograded` — the
   graded notebooks with their outputs, for hand grading.

``--shard i/n`` grades every n-th submission (from the i-th, 0-based) and writes only
``results.json``; :func:`merge` joins the shards' results into the full reports.

Exit codes of the command: 0 when grading ran (whatever the students' statuses), 2 when grading
itself failed (no such folder, no notebooks, unknown assignment, no sandbox).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import secrets
import stat
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from autograder import nbgrader_config as cfg
from autograder.course import REPO_ROOT, assignments, source_notebook
from autograder.judge import JudgeUnavailable
from autograder.program import (
    Program,
    ProgramError,
    build_program,
    student_answers,
    tasks_table,
)
from autograder.reports import RESULTS_FORMAT, STATUSES  # noqa: F401 - STATUSES is part of this module's API
from autograder.sandbox import (
    Limits,
    Sandbox,
    SandboxFailure,
    SandboxUnavailable,
    check_available,
)

#: Largest submission read (bytes); a bigger file is ``invalid``.
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024

log = logging.getLogger("autograder.grade")


class GradingError(RuntimeError):
    """Grading itself could not run (as opposed to a student's notebook failing)."""


def answer_ids(source: Path) -> set[str]:
    """grade_ids of the answer (solution) cells of a source notebook."""
    nb = nbformat.read(source, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


# --------------------------------------------------------------------------------------------
# 1. discover, 2. check
# --------------------------------------------------------------------------------------------


@dataclass
class Submission:
    """One student's submission and everything learned about it while grading."""

    student_id: str                      # sanitised: safe as a folder and file name
    origin: str                          # where it came from, relative to DIR
    path: Path
    status: str = "pending"
    notes: list[str] = field(default_factory=list)
    notebook: nbformat.NotebookNode | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.notes)

    def invalid(self, why: str) -> None:
        self.status = "invalid"
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


# --------------------------------------------------------------------------------------------
# 2. check
# --------------------------------------------------------------------------------------------


def check_submission(sub: Submission, assignment: str, expected_answers: set[str]) -> None:
    """Read and validate ``sub``; sets ``sub.notebook`` or marks it ``invalid`` with a reason."""
    if sub.status == "invalid":
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




# --------------------------------------------------------------------------------------------
# 4. one submission in its sandbox
# --------------------------------------------------------------------------------------------

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
    """A student's function that lives in a sandbox; :func:`dgm.checks._core.call` calls it through
    :meth:`invoke_remote`, and :func:`dgm.checks._core.forbid_calls` reads its source instead of its
    objects (:meth:`forbidden_uses`)."""

    def __init__(self, runner: Runner, name: str, sources: list[str]) -> None:
        self.runner, self.name, self.sources = runner, name, sources

    def __repr__(self) -> str:
        return f"<student function {self.name}>"

    def invoke_remote(self, args: list, grad) -> Any:
        from dgm.checks import wire
        from dgm.checks._core import Outcome

        reply = self.runner.request("call", name=self.name, args=[wire.encode(a) for a in args],
                                    grad=None if grad is None else grad.as_dict())
        if not reply.get("ok"):
            return Outcome(error_type="Error", error_message=str(reply.get("error", ""))[:300])
        outcome = Outcome(error_type=_str_or_none(reply.get("error_type")),
                          error_message=str(reply.get("error_message", ""))[:500],
                          stage="grad" if reply.get("stage") == "grad" else "call",
                          mutated=reply.get("mutated") is True,
                          differentiable=reply.get("differentiable") is not False)
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

    def forbidden_uses(self, modules: tuple[str, ...]) -> list[str]:
        from autograder.static import forbidden_uses

        return forbidden_uses(self.sources, self.name, modules)


def _str_or_none(x: Any) -> str | None:
    return None if x is None else str(x)[:100]


def check_seed(run_seed: int, student_id: str, grade_id: str, index: int) -> int:
    """The hidden suite's seed for one check: fixed by the run's seed and the check's place, so a
    student's result never depends on who else is graded, in what order, or on how many workers."""
    digest = hashlib.sha256(f"{run_seed}/{student_id}/{grade_id}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def hidden_modules_for(assignment: str) -> tuple[str, ...]:
    """The ``dgm`` modules an assignment's answers re-implement (hidden in its sandbox)."""
    return tuple(m for m in forbidden_for(assignment) if m.startswith("dgm."))


def forbidden_for(assignment: str) -> tuple[str, ...]:
    import importlib

    match = re.match(r"(\d+)", assignment)
    if not match:
        return ()
    try:
        module = importlib.import_module(f"dgm.checks.ch{int(match.group(1)):02d}")
    except ImportError:
        return ()
    return tuple(getattr(module, "FORBIDDEN", ()))


def _cell_record(step_kind: str, grade_id: str | None, source: str) -> dict:
    return {"kind": step_kind, "grade_id": grade_id, "source": source, "stdout": "", "stderr": "", "error": None}


def grade_submission(sub: Submission, program: Program, limits: Limits, *, slot: int = 0, run_seed: int = 0,
                     hidden_modules: tuple[str, ...] = ()) -> dict:
    """Grade one valid submission in its own sandbox; returns its record (plain data, see
    :mod:`autograder.reports` for the schema)."""
    from dgm.checks import CheckFailed, run_check
    from dgm.checks.wire import WireError, decode

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
                else:
                    ename, evalue = str(reply.get("ename", "Error"))[:100], str(reply.get("evalue", ""))[:2000]
                    rec["error"] = {"ename": ename, "evalue": evalue}
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
                    answer = _resolve_answer(runner, call, answer_sources)
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
    """A value answer as the sandbox sent it (:mod:`dgm.checks.wire` data), not yet decoded."""

    data: Any


def _resolve_answer(runner: Runner, call, sources: list[str]) -> RemoteFunction | EncodedValue:
    from dgm.checks import CheckFailed

    reply = runner.request("get", name=call.answer_name)
    kind = reply.get("kind")
    if kind == "missing" or not reply.get("ok"):
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
    :func:`dgm.checks.run_check` does."""
    from autograder.judge import judge_value
    from dgm.checks import CheckFailed
    from dgm.checks.wire import WireError

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
        return "timeout", reasons
    if ooms:
        return "out-of-memory", reasons
    if deaths or stopped:
        return "crashed", reasons
    return "graded", reasons


def invalid_record(sub: Submission, program: Program) -> dict:
    """The record of a submission that could not be read: 0 everywhere (nothing to grade by hand)."""
    tasks = tasks_table(program)
    return {"student_id": sub.student_id, "origin": sub.origin, "status": "invalid", "reasons": list(sub.notes),
            "scores": {t["name"]: 0.0 for t in tasks}, "total": 0.0,
            "max_total": sum(t["max_points"] for t in tasks if not t["manual"]), "seconds": 0.0,
            "answers": {}, "cells": []}


# --------------------------------------------------------------------------------------------
# 5. the class, in parallel; shards
# --------------------------------------------------------------------------------------------


def default_workers() -> int:
    """One worker per core this process may use (a pod's CPU quota is not seen: pass --workers)."""
    from autograder.sandbox import MAX_SLOTS

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_SLOTS, cores))


def grade_all(subs: list[Submission], program: Program, limits: Limits, *, workers: int = 1, run_seed: int = 0,
              progress: bool = True) -> list[dict]:
    """Records of every submission (invalid ones included), sorted by student id."""
    from tqdm import tqdm

    hidden = hidden_modules_for(program.assignment)
    records = [invalid_record(s, program) for s in subs if s.status == "invalid"]
    valid = [s for s in subs if s.status != "invalid"]
    from autograder.sandbox import MAX_SLOTS

    if not 1 <= workers <= MAX_SLOTS:
        raise GradingError(f"--workers must be between 1 and {MAX_SLOTS}; got {workers}")
    slots: queue.Queue[int] = queue.Queue()
    for i in range(workers):
        slots.put(i)

    def one(sub: Submission) -> dict:
        slot = slots.get()
        try:
            return grade_submission(sub, program, limits, slot=slot, run_seed=run_seed, hidden_modules=hidden)
        finally:
            slots.put(slot)

    bar = tqdm(total=len(valid), desc=f"grading {program.assignment}", unit="nb", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade") as pool:
        futures = {pool.submit(one, s): s for s in valid}
        for future in as_completed(futures):
            sub = futures[future]
            try:
                records.append(future.result())
            except (SandboxUnavailable, JudgeUnavailable):
                raise
            except Exception as err:  # noqa: BLE001 - one student's failure never stops the class
                log.exception("grading %s failed", sub.student_id)
                rec = invalid_record(sub, program)
                rec["status"] = "crashed"
                rec["reasons"].append(f"grading this submission failed ({type(err).__name__}: {err})")
                records.append(rec)
            bar.set_postfix_str(sub.student_id)
            bar.update()
    bar.close()
    return sorted(records, key=lambda r: r["student_id"])


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0 ≤ i < n) → (i, n)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise GradingError(f"--shard must look like i/n (0-based, e.g. 0/4); got {text!r}")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 0 <= i < n:
        raise GradingError(f"--shard {text}: need 0 <= i < n")
    return i, n


def select_shard(subs: list[Submission], shard: tuple[int, int]) -> list[Submission]:
    """The submissions of shard ``i`` of ``n``: every n-th in the sorted order, from the i-th."""
    i, n = shard
    return [s for k, s in enumerate(sorted(subs, key=lambda s: s.student_id)) if k % n == i]


def results_object(program: Program, records: list[dict], run_seed: int, shard: tuple[int, int],
                   limits: Limits) -> dict:
    return {"format": RESULTS_FORMAT, "assignment": program.assignment, "seed": str(run_seed),
            "shard": list(shard), "limits": {"cell_timeout": limits.cell_timeout,
                                             "notebook_budget": limits.notebook_budget},
            "tasks": tasks_table(program), "submissions": records}


def merge(parts: list[Path]) -> dict:
    """One results object from the ``results.json`` of every shard; checks that the shards belong to
    one run of one assignment, that none is missing and that no student appears twice."""
    loaded = []
    for part in parts:
        path = Path(part) / "results.json" if Path(part).is_dir() else Path(part)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise GradingError(f"cannot read shard results {path}: {err}") from err
        if data.get("format") != RESULTS_FORMAT:
            raise GradingError(f"{path} is not a results file of this grader")
        loaded.append((path, data))
    if not loaded:
        raise GradingError("nothing to merge")
    first = loaded[0][1]
    n = first["shard"][1]
    seen_shards: set[int] = set()
    students: dict[str, str] = {}
    for path, data in loaded:
        if data["assignment"] != first["assignment"] or data["shard"][1] != n or data["tasks"] != first["tasks"]:
            raise GradingError(f"{path} belongs to another assignment or another split than {loaded[0][0]}")
        if data.get("limits") != first.get("limits"):
            raise GradingError(f"{path} was graded with other limits ({data.get('limits')}) than {loaded[0][0]} "
                               f"({first.get('limits')}): grade every shard with the same options")
        i = data["shard"][0]
        if i in seen_shards:
            raise GradingError(f"shard {i}/{n} is given twice")
        seen_shards.add(i)
        for rec in data["submissions"]:
            if rec["student_id"] in students:
                raise GradingError(f"{rec['student_id']} appears in {students[rec['student_id']]} and {path}")
            students[rec["student_id"]] = str(path)
    missing = sorted(set(range(n)) - seen_shards)
    if missing:
        raise GradingError(f"shards missing: {', '.join(f'{i}/{n}' for i in missing)}")
    seeds = sorted({d["seed"] for _, d in loaded})
    records = sorted((r for _, d in loaded for r in d["submissions"]), key=lambda r: r["student_id"])
    return {**first, "seed": seeds[0] if len(seeds) == 1 else ",".join(seeds), "shard": [0, 1],
            "submissions": records}


# --------------------------------------------------------------------------------------------
# 6. reports
# --------------------------------------------------------------------------------------------


def write_autograded(results: dict, out: Path) -> Path:
    """``out/autograded/<student>.ipynb``: each graded notebook as it ran — sources, outputs, and each
    test cell's outcome as a markdown cell (the checks' code is never in it)."""
    folder = Path(out) / "autograded"
    if folder.exists():
        for old in folder.glob("*.ipynb"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for rec in results["submissions"]:
        if not rec["cells"]:
            continue
        nb = nbformat.v4.new_notebook()
        nb.metadata["dgm_grading"] = {"student_id": rec["student_id"], "status": rec["status"],
                                      "reasons": rec["reasons"], "total": rec["total"], "max_total": rec["max_total"]}
        for cell in rec["cells"]:
            kind = cell["kind"]
            if kind == "markdown":
                nb.cells.append(nbformat.v4.new_markdown_cell(cell["source"]))
            elif kind == "manual":  # the student's text, shown as text: no HTML, images or fake results
                text = str(cell["source"])
                fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
                md = nbformat.v4.new_markdown_cell(
                    f"**Written answer `{cell['grade_id']}`** (graded by hand, {cell.get('max_points', 0):g} points), "
                    f"as the student wrote it:\n\n{fence}text\n{text}\n{fence}")
                md.metadata["dgm_grading"] = {"grade_id": cell["grade_id"], "graded_by_hand": True,
                                              "max_points": cell.get("max_points")}
                nb.cells.append(md)
            elif kind in ("code", "answer"):
                code = nbformat.v4.new_code_cell(cell["source"])
                for name in ("stdout", "stderr"):
                    if cell.get(name):
                        code.outputs.append(nbformat.v4.new_output("stream", name=name, text=cell[name]))
                if cell.get("error"):
                    code.outputs.append(nbformat.v4.new_output("error", ename=cell["error"]["ename"],
                                                               evalue=cell["error"]["evalue"], traceback=[]))
                if cell["grade_id"]:
                    code.metadata["dgm_grading"] = {"grade_id": cell["grade_id"]}
                nb.cells.append(code)
            elif kind == "test":
                lines = [f"**{cell['grade_id']}**: {cell['points']:g} / {cell['max_points']:g}"]
                lines += [f"- {'passed' if c['passed'] else 'FAILED'} ({c['suite']}): {c['message']}"
                          for c in cell["checks"]]
                md = nbformat.v4.new_markdown_cell("\n".join(lines))
                md.metadata["dgm_grading"] = {"grade_id": cell["grade_id"], "points": cell["points"],
                                              "max_points": cell["max_points"]}
                nb.cells.append(md)
        target = (folder / f"{rec['student_id']}.ipynb").resolve()
        if folder.resolve() not in target.parents:
            raise GradingError(f"student id {rec['student_id']!r} escapes the report folder")
        nbformat.write(nb, target)
    return folder


def write_all(results: dict, out: Path, program: Program, seconds: float | None = None) -> tuple[dict, str]:
    """Every report of a (merged or unsharded) run; returns (paths, summary text)."""
    from autograder import reports

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = reports.write_reports(results, out, stubs=program.stubs)
    paths["autograded"] = write_autograded(results, out)
    summary = reports.format_summary(results, seconds)
    paths["summary"].write_text(summary + "\n", encoding="utf-8", errors="replace")
    width = max(len(name) for name in paths) + 2
    lines = [summary, ""] + [f"{name + ':':<{width}}{path}" for name, path in paths.items()]
    return paths, "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------


@dataclass
class GradingRun:
    assignment: str
    results: dict
    paths: dict[str, Path]
    seconds: float
    summary: str
    submissions: list[Submission] = field(default_factory=list)

    @property
    def records(self) -> dict[str, dict]:
        return {r["student_id"]: r for r in self.results["submissions"]}


def resolve_assignment(root: Path, assignment: str | None, folder: Path | None = None) -> str:
    """The assignment to grade: the one named, the only one there is, or the one the submissions in
    ``folder`` belong to (nbgrader's ``<student>/<a>/`` folders, or the answer cells' grade ids)."""
    known = assignments(root)
    if assignment is not None:
        if assignment not in known:
            raise GradingError(f"unknown assignment {assignment!r} (known: {', '.join(known) or 'none'})")
        return assignment
    if len(known) == 1:
        return known[0]
    detected = _detect_assignment(root, known, folder) if folder is not None else set()
    if len(detected) == 1:
        return detected.pop()
    why = (f"the submissions look like {', '.join(sorted(detected))}" if detected
           else "the submissions do not say which")
    raise GradingError(f"say which assignment with --assignment ({why}; known: {', '.join(known) or 'none'})")


def _detect_assignment(root: Path, known: list[str], folder: Path) -> set[str]:
    """Assignments the readable notebooks in ``folder`` belong to, by folder name or answer-cell ids."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradingError(f"{folder} is not a folder of submissions")
    if not any(p.suffix == ".ipynb" for p in folder.rglob("*.ipynb")):
        raise GradingError(f"no notebooks in {folder}: expected <student_id>.ipynb files or "
                           "<student_id>/<assignment>/<assignment>.ipynb")
    answers = {a: answer_ids(source_notebook(root, a)) for a in known}
    found: set[str] = set()
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            found |= {a for a in known if (entry / a / f"{a}.ipynb").is_file()}
        elif entry.suffix == ".ipynb" and entry.is_file() and entry.stat().st_size <= MAX_NOTEBOOK_BYTES:
            try:
                nb = json.loads(entry.read_text(encoding="utf-8"))
                ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])}
            except (OSError, ValueError, AttributeError, TypeError):
                continue  # unreadable notebooks are reported later, as invalid
            best = max(known, key=lambda a: len(answers[a] & ids))
            if answers[best] & ids:
                found.add(best)
    return found



def grade_folder(folder: Path, assignment: str | None = None, out: Path | None = None,
                 cell_timeout: float = cfg.CELL_TIMEOUT_S, notebook_budget: float = cfg.NOTEBOOK_BUDGET_S,
                 root: Path = REPO_ROOT, progress: bool = True, workers: int | None = None,
                 shard: str | tuple[int, int] | None = None, seed: int | None = None,
                 limits: Limits | None = None) -> GradingRun:
    """Grade the submissions in ``folder`` (or shard ``i/n`` of them); see the module docstring.

    Writes the full reports to ``out`` — or, for a shard of a split run (n > 1), only
    ``out/results.json``, for :func:`merge`. Raises :class:`GradingError`.
    """
    start = time.perf_counter()
    root = Path(root).resolve()
    try:
        check_available()
    except SandboxUnavailable as err:
        raise GradingError(str(err)) from err
    assignment = resolve_assignment(root, assignment, Path(folder))
    out = Path(out) if out is not None else root / "autograder" / "reports"
    try:
        program = build_program(root, assignment)
    except ProgramError as err:
        raise GradingError(str(err)) from err
    expected = answer_ids(source_notebook(root, assignment))
    subs = discover(Path(folder), assignment)
    shard_t = parse_shard(shard) if isinstance(shard, str) else (shard or (0, 1))
    subs = select_shard(subs, shard_t)
    for sub in subs:
        check_submission(sub, assignment, expected)
    limits = limits or Limits(cell_timeout=float(cell_timeout), notebook_budget=float(notebook_budget))
    run_seed = secrets.randbits(62) if seed is None else int(seed)
    workers = default_workers() if workers is None else workers
    try:
        records = grade_all(subs, program, limits, workers=workers, run_seed=run_seed, progress=progress)
    except (SandboxUnavailable, JudgeUnavailable) as err:
        raise GradingError(str(err)) from err
    results = results_object(program, records, run_seed, shard_t, limits)
    seconds = time.perf_counter() - start
    if shard_t[1] > 1:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "results.json"
        path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        summary = (f"shard {shard_t[0]}/{shard_t[1]} of {assignment}: {len(records)} submission(s) in {seconds:.1f} s\n"
                   f"results: {path}\nmerge every shard's folder with `python -m autograder merge OUT DIR...`")
        return GradingRun(assignment, results, {"results": path}, seconds, summary, subs)
    paths, summary = write_all(results, out, program, seconds)
    return GradingRun(assignment, results, paths, seconds, summary, subs)


def merge_folders(parts: list[Path], out: Path, root: Path = REPO_ROOT) -> GradingRun:
    """``merge OUT DIR...``: the full reports of a run split into shards."""
    start = time.perf_counter()
    results = merge(parts)
    try:
        program = build_program(Path(root).resolve(), results["assignment"])
    except ProgramError as err:
        raise GradingError(str(err)) from err
    paths, summary = write_all(results, Path(out), program, None)
    return GradingRun(results["assignment"], results, paths, time.perf_counter() - start, summary)
