"""Normalizing flows: why triangular Jacobians, and which direction of an autoregressive flow is fast.

(a) **Log-determinant by formula vs autograd.** An :class:`dgm.flows.AffineCoupling` returns
log|det ∂y/∂x| = Σ_j s_j(x_a) from the same pass that computes y (O(D) extra work);
:func:`dgm.flows.log_det_autograd` builds the full D × D Jacobian of every example with D backward
passes and takes its ``slogdet`` (O(D³)). For D = 2, 4, …, 256 (a batch of :data:`BATCH`, a
conditioner of width :data:`HIDDEN`), both are timed in float32 and their answers compared in
float64 (largest difference, against :data:`SAME_ANSWER_BUDGET`); the ratio of the times
(formula / autograd) must stay under :data:`LOG_DET_RATIO_BUDGET` at D = :data:`BUDGET_DIM`, and
shrinks as D grows.

(b) **One pass vs D passes.** A :class:`dgm.flows.MAF` evaluates a density in one MADE pass per
layer and samples in D; an :class:`dgm.flows.IAF` samples in one pass and evaluates the density of
an arbitrary point in D. For D = :data:`AR_DIM` the fast direction's time over the slow one's must
stay under :data:`ONE_PASS_RATIO_BUDGET` for both (it is about 1/D when the passes dominate).

Everything runs on :data:`THREADS` CPU thread (``torch.set_num_threads``, restored afterwards;
``--threads 2`` for two), best of ``repeats`` runs; with CUDA present, the same ratios are measured
on the GPU and reported without a budget. One thread by default: these networks are tiny, and on
a shared 2-core machine two OpenMP threads wait for each other at every operation — with two other
jobs running, 2 threads made the D = 2 formula 50 times slower than 1 thread (11.6 ms against
0.21 ms) and turned the MAF ratio upside down (density 88 ms, sampling 8.5 ms), so a ratio measured
there says nothing about the algorithms.

``python -m benchmarks.flows [--quick] [--repeats R] [--threads T]`` prints every time and ratio;
:func:`flows_rows` gives the rows of ``python -m benchmarks``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from benchmarks.table import Row, failed

#: The coupling's log-det by formula over the autograd Jacobian's, at D = BUDGET_DIM: at most 1/10
#: (at least 10 times faster; measured 1/80 … 1/65 on one thread of a loaded 2-core Xeon, and the gap
#: widens with D: 1/450 at D = 256).
LOG_DET_RATIO_BUDGET = 1 / 10
BUDGET_DIM = 64
#: The fast direction of MAF (density) and IAF (sampling) over the slow one, at most (D = AR_DIM):
#: about 1/D when the MADE passes dominate; 0.5 leaves room for a loaded machine.
ONE_PASS_RATIO_BUDGET = 0.5
#: The largest |formula − autograd| log-det (float64, nats) that still counts as the same answer.
SAME_ANSWER_BUDGET = 1e-8
DIMS, QUICK_DIMS = (2, 4, 8, 16, 32, 64, 128, 256), (2, 8, 64)
AR_DIM, QUICK_AR_DIM = 32, 16
AR_LAYERS = 2
BATCH, HIDDEN = 64, 64
AR_BATCH = 256
DEFAULT_REPEATS, QUICK_REPEATS = 5, 2
THREADS = 1
SEED = 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], repeats: int, device: torch.device, min_seconds: float = 0.02) -> float:
    """The best over ``repeats`` of the mean time of one call of ``fn``; each repeat calls it often
    enough to last about ``min_seconds`` (after one warm-up call)."""
    fn()
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    once = max(time.perf_counter() - start, 1e-7)
    inner = max(1, int(min_seconds / once))
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def _coupling(D: int, dtype: torch.dtype, device) -> torch.nn.Module:
    from dgm.flows import AffineCoupling

    return AffineCoupling(D, D // 2, HIDDEN, generator=torch.Generator().manual_seed(SEED), dtype=dtype, device=device)


def log_det_difference(D: int) -> float:
    """max |formula − autograd| of the coupling's log-det in float64 (8 points), nats."""
    from dgm.flows import log_det_autograd

    layer = _coupling(D, torch.float64, None)
    x = torch.randn(8, D, generator=torch.Generator().manual_seed(SEED + 1), dtype=torch.float64)
    with torch.no_grad():
        formula = layer(x)[1]
    return float((formula - log_det_autograd(layer, x)).abs().max())


def measure_log_det(D: int, repeats: int, device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """``{"formula": s, "autograd": s, "ratio": formula / autograd}`` for a batch of BATCH in float32."""
    from dgm.flows import log_det_autograd

    layer = _coupling(D, torch.float32, device)
    x = torch.randn(BATCH, D, generator=torch.Generator().manual_seed(SEED + 2)).to(device)
    formula = best_time(lambda: layer(x)[1], repeats, device)
    autograd = best_time(lambda: log_det_autograd(layer, x), repeats, device)
    return {"formula": formula, "autograd": autograd, "ratio": formula / autograd}


def measure_directions(D: int, repeats: int, device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Times (float32, no gradient) of MAF's density and sampling and IAF's sampling and density,
    AR_LAYERS layers, a batch of AR_BATCH; ``maf_ratio`` = density / sampling, ``iaf_ratio`` =
    sampling / density."""
    from dgm.flows import IAF, MAF

    g = torch.Generator().manual_seed(SEED + 3)
    maf = MAF(D, AR_LAYERS, HIDDEN, generator=g, device=device)
    iaf = IAF(D, AR_LAYERS, HIDDEN, generator=g, device=device)
    x = torch.randn(AR_BATCH, D, generator=g).to(device)
    with torch.no_grad():
        t = {"maf_density": best_time(lambda: maf.log_prob(x), repeats, device),
             "maf_sampling": best_time(lambda: maf.sample(AR_BATCH, g), repeats, device),
             "iaf_sampling": best_time(lambda: iaf.sample_with_log_prob(AR_BATCH, g), repeats, device),
             "iaf_density": best_time(lambda: iaf.log_prob(x), repeats, device)}
    t["maf_ratio"] = t["maf_density"] / t["maf_sampling"]
    t["iaf_ratio"] = t["iaf_sampling"] / t["iaf_density"]
    return t


def _with_threads(threads: int | None, fn: Callable[[], object]):
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def flows_rows(quick: bool = False, echo: Callable[[str], None] = lambda line: None, *,
               budget: float = LOG_DET_RATIO_BUDGET, repeats: int | None = None, threads: int = THREADS) -> list[Row]:
    """The rows: the largest log-det difference (against :data:`SAME_ANSWER_BUDGET`), formula /
    autograd at D = :data:`BUDGET_DIM` (against ``budget``, :data:`LOG_DET_RATIO_BUDGET` by default) and at the largest D
    (reported), MAF density / sampling and IAF sampling / density (against
    :data:`ONE_PASS_RATIO_BUDGET`), and with CUDA the same ratios on the GPU (reported). A part
    that fails gives a failed row."""
    dims = QUICK_DIMS if quick else DIMS
    on = f"{threads} thread{'s' if threads != 1 else ''}"
    ar_dim = QUICK_AR_DIM if quick else AR_DIM
    repeats = repeats or (QUICK_REPEATS if quick else DEFAULT_REPEATS)
    rows: list[Row] = []
    item = f"flows: coupling log-det, formula / autograd Jacobian (batch {BATCH}, {on})"
    try:
        difference = max(log_det_difference(D) for D in dims)
        rows.append(Row(f"flows: coupling log-det, largest difference formula vs autograd (D <= {dims[-1]}, float64)",
                        difference, SAME_ANSWER_BUDGET, "nats"))
        ratios = {}
        for D in dims:
            result = _with_threads(threads, lambda: measure_log_det(D, repeats))
            ratios[D] = result["ratio"]
            echo(f"  D={D:>3}: formula {1e3 * result['formula']:.3f} ms, autograd {1e3 * result['autograd']:.2f} ms, "
                 f"formula / autograd {result['ratio']:.4f} ({1 / result['ratio']:.0f}x faster)")
        rows.append(Row(f"{item}, D={BUDGET_DIM}", ratios[BUDGET_DIM], budget, "ratio"))
        if dims[-1] != BUDGET_DIM:
            rows.append(Row(f"{item}, D={dims[-1]}", ratios[dims[-1]], None, "ratio"))
    except Exception as err:  # noqa: BLE001 - any failure is a row that could not run
        rows.append(failed(f"{item}, D={BUDGET_DIM}", "ratio", budget, f"{type(err).__name__}: {err}"[:300]))
    ar = f"(D={ar_dim}, {AR_LAYERS} layers, batch {AR_BATCH}, {on})"
    try:
        t = _with_threads(threads, lambda: measure_directions(ar_dim, repeats))
        echo(f"  MAF {ar}: density {1e3 * t['maf_density']:.2f} ms (one pass), sampling "
             f"{1e3 * t['maf_sampling']:.2f} ms (D passes)")
        echo(f"  IAF {ar}: sampling {1e3 * t['iaf_sampling']:.2f} ms (one pass), density "
             f"{1e3 * t['iaf_density']:.2f} ms (D passes)")
        rows.append(Row(f"flows: MAF density / MAF sampling {ar}", t["maf_ratio"], ONE_PASS_RATIO_BUDGET, "ratio"))
        rows.append(Row(f"flows: IAF sampling / IAF density {ar}", t["iaf_ratio"], ONE_PASS_RATIO_BUDGET, "ratio"))
    except Exception as err:  # noqa: BLE001
        rows.append(failed(f"flows: MAF density / MAF sampling {ar}", "ratio", ONE_PASS_RATIO_BUDGET,
                           f"{type(err).__name__}: {err}"[:300]))
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        name = torch.cuda.get_device_name()
        try:
            result = measure_log_det(BUDGET_DIM, repeats, gpu)
            t = measure_directions(ar_dim, repeats, gpu)
            echo(f"  on {name}: log-det formula / autograd {result['ratio']:.4f} at D={BUDGET_DIM}; "
                 f"MAF density / sampling {t['maf_ratio']:.3f}, IAF sampling / density {t['iaf_ratio']:.3f}")
            rows.append(Row(f"flows: coupling log-det, formula / autograd, D={BUDGET_DIM}, on {name}", result["ratio"],
                            None, "ratio"))
            rows.append(Row(f"flows: MAF density / sampling (D={ar_dim}) on {name}", t["maf_ratio"], None, "ratio"))
            rows.append(Row(f"flows: IAF sampling / density (D={ar_dim}) on {name}", t["iaf_ratio"], None, "ratio"))
        except Exception as err:  # noqa: BLE001
            rows.append(failed(f"flows on {name}", "ratio", None, f"{type(err).__name__}: {err}"[:300]))
    else:
        echo("  no CUDA device: no GPU rows")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the machine, every time and ratio, and the rows; exit 0 when every budget holds, 1 when
    one is broken, 2 when a part could not run."""
    from benchmarks.table import part_main

    return part_main(argv, prog="python -m benchmarks.flows", description=__doc__.splitlines()[0],
                     quick_help=f"D in {QUICK_DIMS}, MAF/IAF at D={QUICK_AR_DIM}, best of {QUICK_REPEATS}",
                     default_repeats=DEFAULT_REPEATS, threads=THREADS, rows=flows_rows)


if __name__ == "__main__":
    sys.exit(main())
