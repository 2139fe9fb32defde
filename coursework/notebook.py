"""What a student sees in their own notebook when something goes wrong.

Importing :mod:`coursework` (every exercise's set-up cell does) installs two helpers in the IPython
shell it runs in, and nothing outside one:

* a failed check shows its message alone (:class:`coursework.CheckFailed` renders itself), and an
  error raised by the student's own function names the line of their cell;
* a name that is undefined because the cell defining it failed to run — a syntax error, an
  exception half-way — is reported as that, with the cell's error, instead of a bare ``NameError``
  in the later cell that uses it (:func:`install`).

The grading sandbox never runs these: it creates its shell after importing :mod:`coursework`, and
the grader words its own messages (:mod:`autograder.runner`).
"""

from __future__ import annotations

import re
from typing import Any

#: names a cell binds at its top level, read by pattern so that a cell with a syntax error still
#: tells which names it was meant to define
_DEFINES = re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)|^([A-Za-z_]\w*)\s*(?::[^=\n]*)?=(?!=)",
                      flags=re.MULTILINE)


def defined_names(source: str) -> set[str]:
    """The names ``source`` binds at its top level (``def f``, ``class C``, ``x = ...``, ``x: int = ...``)."""
    return {a or b for a, b in _DEFINES.findall(source)}


def describe_error(err: BaseException) -> str:
    """One line for a cell's error: a syntax error by message, line and text, anything else by
    type and message."""
    if isinstance(err, SyntaxError):
        text = (err.text or "").strip()
        return f"SyntaxError: {err.msg} (line {err.lineno}" + (f": {text[:120]}" if text else "") + ")"
    try:
        message = str(err)
    except Exception:  # noqa: BLE001 - a hostile __str__
        message = ""
    return f"{type(err).__name__}: {message[:200]}" if message else type(err).__name__


class _Tracker:
    """Remembers, per name, the error of the last cell that was meant to define it and failed."""

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}

    def after_cell(self, result: Any) -> None:
        source = getattr(getattr(result, "info", None), "raw_cell", None) or ""
        error = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
        for name in defined_names(source):
            if error is None:
                self.failed.pop(name, None)
            else:
                self.failed[name] = describe_error(error)

    def on_name_error(self, shell: Any, etype: type, value: BaseException, tb: Any,
                      tb_offset: Any = None) -> list[str] | None:
        """IPython's custom handler of NameError (it shows what it returns itself): the cell that
        did not run, or IPython's own traceback for any other undefined name."""
        name = getattr(value, "name", None)
        if name not in self.failed:
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return None
        stb = [f"NameError: `{name}` is not defined because the cell that defines it did not run "
               f"({self.failed[name]}).", "Fix that cell and run it, then run this one again."]
        shell._showtraceback(etype, value, stb)
        return stb


def install(shell: Any = None) -> bool:
    """Install the helpers in ``shell`` (default: the running IPython shell); True when installed
    now, False outside IPython or when already installed."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None or getattr(shell, "_coursework_tracker", None) is not None:
        return False
    tracker = _Tracker()
    shell.events.register("post_run_cell", tracker.after_cell)
    shell.set_custom_exc((NameError,), tracker.on_name_error)
    shell._coursework_tracker = tracker
    return True
