"""Imported only by the judge's fork server (:mod:`autograder.judge`): pays once, there, for what
every judging child would otherwise pay again — importing SciPy's quadrature and SymPy's code
printers, and filling SymPy's caches by evaluating each chapter's derivation start numerically.
The children are forked from the server and inherit all of it."""

from __future__ import annotations

import scipy.integrate  # noqa: F401 - numeric() integrates with quad
import sympy.utilities.lambdify  # noqa: F401

from autograder import judge  # noqa: F401
from dgm.checks import _core, ch01, ch05, ch07


def warm_up() -> None:
    for start, point in ((ch01.kl_derivation_start(), ch01.KL_REPORT_POINT),
                         (ch05.cg_derivation_start(), ch05.CG_REPORT_POINT),
                         (ch07.posterior_derivation_start(), ch07.POSTERIOR_REPORT_POINT)):
        try:
            _core.numeric(start, point)
            _core.numeric(_core._evaluated(start), point)
        except Exception:  # noqa: BLE001 - a warm-up only
            pass


warm_up()
