"""Judging a *value* answer (a derivation's SymPy steps, a concept answer) in a child process.

A function answer is judged in the grader by calling it in the sandbox; its replies are tensors
of bounded size. A value answer is different: the checks compute with it in the grader, and a
SymPy expression can be built to make that computation explode (``10**(10**39 * x**0)`` is cheap
to send and endless to evaluate once ``x`` is substituted). So value answers are judged in a
child of the grader — forked from a server that has the checks already imported, so a judgement
costs milliseconds — with a wall-clock limit and a memory cap, and killed when it overruns.
Parent and child exchange JSON text only.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import threading
from typing import Any

# the checks and SymPy are imported once, in the fork server, not in every child
import sympy  # noqa: F401

import coursework  # noqa: F401

_CONTEXT = None
_LOCK = threading.Lock()


class JudgeUnavailable(RuntimeError):
    """The judging child could not be started (grading itself fails: no student is to blame)."""


def _context():
    global _CONTEXT
    with _LOCK:
        if _CONTEXT is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["autograder.judge", "autograder.judge_warmup", *_main_preload()])
            _CONTEXT = ctx
        return _CONTEXT


def _main_preload() -> list[str]:
    """The grader's modules, for the fork server to import once besides the checks. Every child
    of the server first makes the parent's main module its own (multiprocessing's rule: a main run
    with ``-m`` is run again by name, unless it is a package's ``__main__``; one run as a file, by
    path). With the grader's modules already imported in the server, that costs the main's body
    alone instead of importing the grader's whole command line again for each judgement (about a
    second each). The main module itself is not preloaded: runpy would run it over its own copy."""
    return ["autograder.grade", "autograder.samples"]


def _child(conn, task: str, encoded: str, suite: str, expected: Any, seed: int, memory_bytes: int) -> None:
    from coursework import CheckFailed, run_check
    from coursework.wire import WireError, decode

    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ValueError, OSError):
        pass
    try:
        value = decode(json.loads(encoded))
        run_check(task, value, suite=suite, expected=expected, seed=seed)
        result = {"outcome": "pass", "message": ""}
    except CheckFailed as err:
        result = {"outcome": "fail", "message": str(err)[:2000]}
    except WireError as err:
        result = {"outcome": "wire", "message": str(err)[:300]}
    except MemoryError:
        result = {"outcome": "memory", "message": ""}
    except RecursionError:
        result = {"outcome": "memory", "message": "recursion"}
    except Exception as err:  # noqa: BLE001 - a fault in the checks on this answer
        result = {"outcome": "error", "message": type(err).__name__}
    try:
        conn.send_bytes(json.dumps(result).encode("utf-8"))
    finally:
        conn.close()


def judge_value(task: str, encoded: Any, *, suite: str, expected: Any, seed: int, timeout: float,
                memory_bytes: int = 2 * 2**30) -> dict:
    """Run ``task``'s checks on an encoded value answer (:mod:`coursework.wire` data) in a child;
    returns ``{"outcome": "pass" | "fail" | "wire" | "memory" | "timeout" | "error", "message": ...}``."""
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, task, json.dumps(encoded), suite, expected, seed, memory_bytes),
                       daemon=True)
    try:
        proc.start()
    except Exception as err:  # noqa: BLE001 - the fork server could not start
        raise JudgeUnavailable(f"the judge's child process could not start ({type(err).__name__}: {err}); "
                               "a script calling grade_folder needs an `if __name__ == \"__main__\":` guard") from err
    sender.close()
    try:
        if receiver.poll(timeout):
            try:
                data = json.loads(receiver.recv_bytes(1 << 20).decode("utf-8"))
            except (EOFError, OSError, ValueError):
                proc.join(5)
                if proc.exitcode not in (None, 0) and proc.exitcode > 0:
                    raise JudgeUnavailable(f"the judge's child process exited with code {proc.exitcode} before "
                                           "judging (could it import the course? a script calling grade_folder "
                                           "needs an `if __name__ == \"__main__\":` guard)") from None
                data = {"outcome": "memory", "message": "the judge was killed"}
        else:
            data = {"outcome": "timeout", "message": ""}
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receiver.close()
    if not isinstance(data, dict) or data.get("outcome") not in ("pass", "fail", "wire", "memory", "timeout", "error"):
        return {"outcome": "error", "message": "malformed result"}
    return data
