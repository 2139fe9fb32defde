"""The grading worker: runs *inside* the sandbox, one per submission, as an unprivileged user.

It is the student's kernel: an IPython shell that runs the cells it is sent, and calls the
student's functions on arguments the grader chose. It judges nothing — the checks run in the
grader (:mod:`autograder.grade`), which also treats every reply as untrusted data.

Protocol: one JSON object per line. Requests arrive on the worker's standard input, replies leave
on the file descriptor named by its first argument (the second is the output cap, the third the
folders to import the course's packages from, the fourth the longest reply line) (both are moved to private descriptors at start, and standard input becomes
``/dev/null``, so a cell that reads input gets nothing). Every reply carries the request's ``id``.

* ``{"op": "run_cell", "id": n, "code": "..."}`` → ``ok``, ``ename``/``evalue``/``traceback`` when
  the cell raised, ``stdout``/``stderr`` (the first ``output_limit`` characters; ``dropped`` counts
  the rest).
* ``{"op": "get", "id": n, "name": "x"}`` → ``kind`` (``missing``, ``function`` or ``value``) and,
  for a value, ``value`` (:func:`coursework.wire.encode`).
* ``{"op": "call", "id": n, "name": "f", "args": [...], "grad": {...} | null}`` → the fields of
  :class:`coursework._core.Outcome`, values and gradients encoded.

This file is copied into the sandbox as a single script; it imports only the standard library,
IPython, torch, :mod:`dgm` and :mod:`coursework` — the copies the sandbox mounts, found through
the folders its third argument names (it runs with ``python -I``, so the environment cannot add
any, and these come first, before any installed copy).
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time

OUTPUT_LIMIT = int(sys.argv[2]) if len(sys.argv) > 2 else 65536  # characters kept per stream
# the folder holding the packages the sandbox mounts (dgm, coursework), first on the import path
sys.path[:0] = [p for p in (sys.argv[3].split(os.pathsep) if len(sys.argv) > 3 else []) if p]
#: the longest reply line the grader accepts; a longer reply is replaced by an error reply
REPLY_LIMIT = int(sys.argv[4]) if len(sys.argv) > 4 else 4 * 2**20


class Capped(io.TextIOBase):
    """A text stream that keeps its first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.size, self.dropped, self.parts = limit, 0, 0, []

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"

    def write(self, s) -> int:
        if not isinstance(s, str):
            s = str(s)
        room = self.limit - self.size
        if room > 0:
            self.parts.append(s[:room])
            self.size += min(len(s), room)
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.parts)


class Capture:
    """Swap ``sys.stdout``/``sys.stderr`` for capped buffers while a request runs."""

    def __enter__(self):
        self.out, self.err = Capped(OUTPUT_LIMIT), Capped(OUTPUT_LIMIT)
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self.out, self.err
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout, sys.stderr = self.saved

    def fields(self) -> dict:
        return {"stdout": self.out.getvalue(), "stderr": self.err.getvalue(),
                "dropped": self.out.dropped + self.err.dropped}


def main() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file-size cap fails instead of killing
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    reply_fd = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    replies = os.fdopen(os.dup(reply_fd), "wb", buffering=0)
    os.close(reply_fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    def reply(obj: dict) -> None:
        data = json.dumps(obj, allow_nan=False).encode("utf-8") + b"\n"
        if len(data) > REPLY_LIMIT:  # the grader would kill a longer line: say what happened instead
            data = json.dumps({"id": obj.get("id"), "ok": False,
                               "error": f"the reply ({len(data):,} bytes) is larger than the grader accepts "
                                        f"({REPLY_LIMIT:,} bytes); return less data"}).encode("utf-8") + b"\n"
        replies.write(data)

    start = time.perf_counter()
    import torch
    from IPython.core.interactiveshell import InteractiveShell

    from coursework import wire
    from coursework._core import GradRequest, invoke_local

    torch.set_num_threads(1)
    shell = InteractiveShell.instance()
    shell.colors = "nocolor" if hasattr(shell, "colors") else shell.colors
    last_error: dict = {}

    def record_traceback(etype, evalue, stb):  # IPython's hook: keep the text, print nothing
        last_error["traceback"] = "\n".join(stb)[-4000:]

    shell._showtraceback = record_traceback
    reply({"id": 0, "ok": True, "ready": True, "seconds": round(time.perf_counter() - start, 3)})

    while True:
        line = requests.readline()
        if not line:
            return
        try:
            request = json.loads(line)
            op, rid = request["op"], request["id"]
        except (ValueError, KeyError, TypeError):
            continue
        if op == "exit":
            reply({"id": rid, "ok": True})
            return
        try:
            if op == "run_cell":
                last_error.clear()
                with Capture() as cap:
                    result = shell.run_cell(request["code"], store_history=True)
                err = result.error_before_exec or result.error_in_exec
                out = {"id": rid, "ok": err is None, **cap.fields()}
                if err is not None:
                    out.update(ename=type(err).__name__, evalue=_describe(err), traceback=last_error.get("traceback", ""))
                reply(out)
            elif op == "get":
                name = request["name"]
                if name not in shell.user_ns:
                    reply({"id": rid, "ok": True, "kind": "missing"})
                    continue
                value = shell.user_ns[name]
                if callable(value) and not isinstance(value, type):
                    reply({"id": rid, "ok": True, "kind": "function"})
                else:
                    with Capture():
                        encoded = wire.encode(value)
                    reply({"id": rid, "ok": True, "kind": "value", "value": encoded})
            elif op == "call":
                fn = shell.user_ns.get(request["name"])
                grad = GradRequest.from_dict(request["grad"]) if request.get("grad") else None
                with Capture() as cap:
                    args = [wire.decode(a, strict=False) for a in request["args"]]
                    outcome = invoke_local(fn, args, grad)
                    value = wire.encode(outcome.value)
                    grads = None if outcome.grads is None else [wire.encode(g) for g in outcome.grads]
                    # the arguments as the call left them: the grader compares them with what it sent
                    after = None if grad is not None else [wire.encode(a) for a in args]
                reply({"id": rid, "ok": True, "value": value, "error_type": outcome.error_type,
                       "error_message": outcome.error_message, "error_where": outcome.error_where,
                       "stage": outcome.stage, "args_after": after,
                       "grads": grads, "differentiable": outcome.differentiable, **cap.fields()})
            else:
                reply({"id": rid, "ok": False, "error": f"unknown op {op!r}"})
        except BaseException as err:  # noqa: BLE001 - the worker must answer, whatever the student did (sys.exit too)
            reply({"id": rid, "ok": False, "error": f"{type(err).__name__}: {_text(err)}"})


def _describe(err: BaseException) -> str:
    """A cell's error for the reports: a syntax error by its message, line and text (its str names
    IPython's internal file name), anything else as :func:`_text`."""
    if isinstance(err, SyntaxError):
        text = (err.text or "").strip()
        return f"{err.msg} (line {err.lineno}" + (f": {text[:200]}" if text else "") + ")"
    return _text(err)


def _text(err: BaseException) -> str:
    try:
        return str(err)[:2000]
    except Exception:  # noqa: BLE001
        return ""


if __name__ == "__main__":
    main()
