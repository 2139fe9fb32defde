"""Imported only by the judge's fork server (:mod:`autograder.judge`): pays once, there, for what
every judging child would otherwise pay again — importing SciPy's quadrature and SymPy's code
printers, and filling SymPy's caches by evaluating each chapter's derivation start numerically
(:meth:`coursework.Chapter.warm_up`). The children are forked from the server and inherit all of it."""

from __future__ import annotations

import scipy.integrate  # noqa: F401 - numeric() integrates with quad
import sympy.utilities.lambdify  # noqa: F401

from autograder import judge  # noqa: F401
from coursework import chapters


def warm_up() -> None:
    for chapter in chapters().values():
        try:
            chapter.warm_up()
        except Exception:  # noqa: BLE001 - a warm-up only
            pass


warm_up()
