"""EM for Gaussian mixtures: :func:`dgm.em.fit_em` against scikit-learn's ``GaussianMixture``.

Both fit a K = 16 mixture to the same N = 200 000 points in D = 8 dimensions (drawn from a random
16-component mixture, seeded), from the same starting point — uniform weights, K distinct data
points as means, the data's covariance (``"full"``) or variances (``"diag"``) for every
component, handed to scikit-learn as ``weights_init``, ``means_init`` and ``precisions_init`` —
with the same variance floor (``reg_covar = 1e-6``), for exactly 30 iterations (``tol=0``), on the
same number of CPU threads (2: ``torch.set_num_threads`` for ours, ``threadpoolctl`` for
scikit-learn's BLAS and OpenMP). Both work in float64.

First the answers must agree: the largest relative difference (max |a − b| / max |b| over each
array) of the final weights, means and covariances and of the 30 lower bounds
(``lower_bounds_``, the mean log-likelihood at each E-step) must stay under
:data:`SAME_ANSWER_BUDGET`; then the times. scikit-learn's ``fit`` also runs one M-step from its
(overridden) ``init_params`` and a final E-step; ours computes the features once and a final
E-step (the log-likelihood of the returned parameters). Each is run ``repeats`` times, interleaved,
and the best times are compared: our time over scikit-learn's must stay under
:data:`RATIO_BUDGET` (at least 3 times faster). With CUDA present, ``fit_em`` is also timed on the
GPU (after a warm-up run; reported, no budget).

``python -m benchmarks.em [--quick] [--repeats R] [--threads T]`` prints every time, ratio and
difference; ``python -m benchmarks --only em`` prints the rows.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.table import Row, failed

#: Our time over scikit-learn's, at most: at least 3 times faster.
RATIO_BUDGET = 1 / 3
#: The largest relative difference of parameters and lower bounds that still counts as the same answer.
SAME_ANSWER_BUDGET = 1e-5
DEFAULT_N, QUICK_N = 200_000, 20_000
D, K, N_ITER, REG_COVAR, SEED = 8, 16, 30, 1e-6, 0
DEFAULT_REPEATS, QUICK_REPEATS = 3, 1
THREADS = 2
COVARIANCE_TYPES = ("diag", "full")


def problem(n: int = DEFAULT_N, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x (n, D), start means (K, D), start positions)``: points from a random K-component mixture
    (means 4·N(0, I), covariances AAᵀ with A = I + ½·N(0, 1)) and K distinct points among them."""
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(K, D, generator=g, dtype=torch.float64)
    scales = torch.eye(D, dtype=torch.float64) + 0.5 * torch.randn(K, D, D, generator=g, dtype=torch.float64)
    z = torch.randint(K, (n,), generator=g)
    x = centres[z] + (scales[z] @ torch.randn(n, D, 1, generator=g, dtype=torch.float64)).squeeze(-1)
    start = torch.randperm(n, generator=g)[:K]
    return x, x[start], start


def start_params(x: torch.Tensor, means: torch.Tensor, covariance_type: str):
    """θ_0: uniform weights, the given means, the data's covariance (or variances) for every component."""
    from dgm.em import GaussianMixtureParams

    weights = torch.full((K,), 1 / K, dtype=x.dtype, device=x.device)
    cov = torch.cov(x.T, correction=0)
    covariances = cov.repeat(K, 1, 1) if covariance_type == "full" else torch.diagonal(cov).repeat(K, 1)
    return GaussianMixtureParams.from_covariances(weights, means, covariances, covariance_type)


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-300))


def _sklearn(x: np.ndarray, init, covariance_type: str, threads: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    gmm = GaussianMixture(n_components=K, covariance_type=covariance_type, max_iter=N_ITER, tol=0.0,
                          reg_covar=REG_COVAR, init_params="random_from_data", random_state=0,
                          weights_init=init.weights.numpy(), means_init=init.means.numpy(),
                          precisions_init=init.precisions().numpy())
    with threadpool_limits(limits=threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # tol=0 never "converges": 30 iterations, as asked
        start = time.perf_counter()
        gmm.fit(x)
        seconds = time.perf_counter() - start
    return gmm, seconds


def _ours(x: torch.Tensor, init, threads: int | None):
    from dgm.em import fit_em

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        params, history = fit_em(x, init, n_iter=N_ITER, tol=0.0, reg_covar=REG_COVAR)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    return params, history, seconds


def differences(params, history: torch.Tensor, gmm) -> dict[str, float]:
    """The largest relative difference of each final parameter and of the lower bounds."""
    return {"weights": _relative(params.weights.cpu().numpy(), gmm.weights_),
            "means": _relative(params.means.cpu().numpy(), gmm.means_),
            "covariances": _relative(params.covariances.cpu().numpy(), gmm.covariances_),
            "lower bounds": _relative(history[:-1].cpu().numpy(), np.asarray(gmm.lower_bounds_))}


def measure(covariance_type: str, n: int = DEFAULT_N, repeats: int = DEFAULT_REPEATS, threads: int = THREADS,
            echo: Callable[[str], None] = lambda line: None) -> dict:
    """Time both fits ``repeats`` times (interleaved) and compare their answers.

    Returns ``{"ours": [s...], "sklearn": [s...], "ratio": best ours / best sklearn, "speedup": its
    inverse, "differences": {...}, "max_difference": float, "gpu": [s...] or None,
    "gpu_difference": float or None}``.
    """
    x, means, _ = problem(n)
    init = start_params(x, means, covariance_type)
    xn = x.numpy()
    times: dict[str, list[float]] = {"ours": [], "sklearn": []}
    diffs: dict[str, float] = {}
    for r in range(max(1, repeats)):
        gmm, seconds = _sklearn(xn, init, covariance_type, threads)
        times["sklearn"].append(seconds)
        params, history, seconds = _ours(x, init, threads)
        times["ours"].append(seconds)
        echo(f"  {covariance_type} run {r + 1}: scikit-learn {times['sklearn'][-1]:.2f} s, fit_em {seconds:.3f} s")
        for name, value in differences(params, history, gmm).items():
            diffs[name] = max(diffs.get(name, 0.0), value)
    result = {**times, "ratio": min(times["ours"]) / min(times["sklearn"]),
              "differences": diffs, "max_difference": max(diffs.values()), "gpu": None, "gpu_difference": None}
    result["speedup"] = 1 / result["ratio"]
    if torch.cuda.is_available():
        xg = x.cuda()
        init_g = start_params(xg, means.cuda(), covariance_type)
        _ours(xg, init_g, None)   # warm-up: CUDA context, kernels
        gpu = [_ours(xg, init_g, None) for _ in range(max(1, repeats))]
        result["gpu"] = [seconds for _, _, seconds in gpu]
        result["gpu_difference"] = max(_relative(a.cpu().numpy(), b.numpy()) for a, b in
                                       zip((gpu[0][0].weights, gpu[0][0].means, gpu[0][0].covariances, gpu[0][1]),
                                           (params.weights, params.means, params.covariances, history)))
    return result


def em_rows(n: int = DEFAULT_N, repeats: int = DEFAULT_REPEATS, budget: float = RATIO_BUDGET,
            threads: int = THREADS, echo: Callable[[str], None] = lambda line: None) -> list[Row]:
    """Per covariance type: the largest relative difference from scikit-learn (against
    :data:`SAME_ANSWER_BUDGET`), our best time over scikit-learn's (against ``budget``), and the
    GPU time when CUDA is present (reported only); or one failed row."""
    rows: list[Row] = []
    for covariance_type in COVARIANCE_TYPES:
        item = f"em ({covariance_type}, N={n}, D={D}, K={K}, {N_ITER} it., {threads} threads)"
        try:
            result = measure(covariance_type, n, repeats, threads, echo)
        except Exception as err:  # noqa: BLE001 - any failure is a row that could not run
            rows.append(failed(f"{item}: fit_em / scikit-learn", "ratio", budget, f"{type(err).__name__}: {err}"[:300]))
            continue
        echo(f"  {covariance_type}: best scikit-learn {min(result['sklearn']):.2f} s, best fit_em "
             f"{min(result['ours']):.3f} s: {result['speedup']:.1f}x faster; largest relative difference "
             f"{result['max_difference']:.2g}")
        rows.append(Row(f"{item}: largest relative difference from scikit-learn", result["max_difference"],
                        SAME_ANSWER_BUDGET, "relative"))
        rows.append(Row(f"{item}: fit_em / scikit-learn, best of {max(1, repeats)}", result["ratio"], budget, "ratio"))
        if result["gpu"] is not None:
            rows.append(Row(f"em ({covariance_type}, N={n}): fit_em on {torch.cuda.get_device_name()}",
                            min(result["gpu"]), None, "s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the machine, every run's times, the ratios and the differences; exit 1 when a budget breaks."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.em", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"N={QUICK_N}, one run")
    p.add_argument("--repeats", type=int, default=None, help=f"runs of each fit (default {DEFAULT_REPEATS})")
    p.add_argument("--threads", type=int, default=THREADS, help=f"CPU threads of both fits (default {THREADS})")
    args = p.parse_args(argv)
    from benchmarks.table import load_average, machine_line

    n = QUICK_N if args.quick else DEFAULT_N
    repeats = args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS)
    print(machine_line(), flush=True)
    ok = True
    for covariance_type in COVARIANCE_TYPES:
        result = measure(covariance_type, n, repeats, args.threads, echo=lambda line: print(line, flush=True))
        spread = {name: f"best {min(v):.3f} s, worst {max(v):.3f} s" for name, v in result.items()
                  if name in ("ours", "sklearn")}
        print(f"{covariance_type}: scikit-learn {spread['sklearn']}; fit_em {spread['ours']}; "
              f"ratio {result['ratio']:.3f} ({result['speedup']:.1f}x faster)")
        print("  largest relative differences: " + ", ".join(f"{k} {v:.2g}" for k, v in result["differences"].items()))
        if result["gpu"] is not None:
            print(f"  on {torch.cuda.get_device_name()}: fit_em best {min(result['gpu']):.3f} s "
                  f"(largest relative difference from the CPU fit {result['gpu_difference']:.2g})")
        else:
            print("  no CUDA device: no GPU time")
        ok = ok and result["ratio"] <= RATIO_BUDGET and result["max_difference"] <= SAME_ANSWER_BUDGET
    print(f"at the end: {load_average()} (other jobs on the machine slow every run)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
