"""MCMC: effective samples per second of MH, ULA, MALA and Gibbs, one chain against many at once.

Every sampler of :mod:`dgm.sampling` advances all its chains together (the chain index is a batch
dimension), so a step of 10 000 chains costs little more than a step of one: Python's per-step
overhead is paid once. This part measures what that buys. The target is the correlated Gaussian
N(0, Σ), Σ = [[1, ρ], [ρ, 1]], ρ = :data:`RHO`; each sampler starts at exact draws (no burn-in)
and runs T steps for C ∈ :data:`CHAINS` chains (T shrinks as C grows, :data:`DRAWS` draws in
all, at least :data:`MIN_STEPS` steps):

* ``mh``: random-walk Metropolis–Hastings, step σ = :data:`MH_STEP`;
* ``ula``: unadjusted Langevin, ε = :data:`ULA_STEP` (biased: its stationary covariance is
  Σ(I − εΣ⁻¹/4)⁻¹; reported for its speed only);
* ``mala``: Metropolis-adjusted Langevin, ε = :data:`MALA_STEP`, closed-form score;
* ``gibbs``: systematic-scan Gibbs with the exact conditionals.

The effective sample size is :func:`dgm.sampling.effective_sample_size` of the trajectory (the
smaller of the two coordinates'), computed after the timer stops; ESS/s is its ratio to the
sampling time, the best of ``repeats`` runs. The budget row of each sampler: the ESS/s of one
chain as a percentage of the ESS/s of :data:`BUDGET_CHAINS` chains must stay under
100 / :data:`SPEEDUP_BUDGET` % (the batched sampler at least that many times more productive). Everything runs on
:data:`THREADS` CPU threads (``torch.set_num_threads``, restored afterwards); with CUDA present the
same runs on the GPU are reported without a budget.

``python -m benchmarks.mcmc [--quick] [--repeats R] [--threads T]`` prints every measurement;
:func:`mcmc_rows` gives the rows of ``python -m benchmarks``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import torch

from benchmarks.table import Row, failed

#: ESS/s of BUDGET_CHAINS chains over ESS/s of one chain, at least: the budget row is 1 chain's
#: ESS/s as a percentage of BUDGET_CHAINS chains' and must stay under 100/SPEEDUP_BUDGET %. Measured
#: on 2 threads of a loaded 2-core Xeon (load average 5), quick mode: 208 (ULA), 224 (MH), 318 (MALA)
#: and 357 (Gibbs) times; 20 leaves a factor of 10 for a slower or busier machine.
SPEEDUP_BUDGET = 20.0
CHAINS = (1, 100, 10_000)
BUDGET_CHAINS = 10_000
RHO = 0.9
MH_STEP, ULA_STEP, MALA_STEP = 0.6, 0.05, 0.15
#: total draws per run (chains × steps) and the fewest steps, by mode
DRAWS, QUICK_DRAWS = 2_000_000, 200_000
MIN_STEPS, QUICK_MIN_STEPS = 200, 100
MAX_STEPS, QUICK_MAX_STEPS = 20_000, 4_000
DEFAULT_REPEATS, QUICK_REPEATS = 3, 1
THREADS = 2
SEED = 0
SAMPLERS = ("mh", "ula", "mala", "gibbs")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps_for(chains: int, quick: bool) -> int:
    """T for C chains: DRAWS / C, clipped to [MIN_STEPS, MAX_STEPS] (quick: the QUICK_ sizes)."""
    draws, low, high = (QUICK_DRAWS, QUICK_MIN_STEPS, QUICK_MAX_STEPS) if quick else (DRAWS, MIN_STEPS, MAX_STEPS)
    return int(min(high, max(low, draws // chains)))


def _target(device: torch.device):
    cov = torch.tensor([[1.0, RHO], [RHO, 1.0]], dtype=torch.float64, device=device)
    prec = torch.linalg.inv(cov)

    def log_p(x):
        return -0.5 * ((x @ prec) * x).sum(-1)

    def score(x):
        return -x @ prec

    return cov, log_p, score


def run_sampler(name: str, chains: int, steps: int, device: torch.device, seed: int = SEED
                ) -> tuple[torch.Tensor, float]:
    """One timed run: ``(trajectory (C, T, 2), seconds)``."""
    from dgm.sampling import gibbs_bivariate_gaussian, langevin, mala, metropolis_hastings

    cov, log_p, score = _target(device)
    g = torch.Generator(device=device).manual_seed(seed)
    x0 = torch.randn(chains, 2, dtype=torch.float64, device=device, generator=g) @ torch.linalg.cholesky(cov).T
    runs = {
        "mh": lambda: metropolis_hastings(log_p, x0, steps, MH_STEP, g),
        "ula": lambda: langevin(score, x0, steps, ULA_STEP, g),
        "mala": lambda: mala(log_p, x0, steps, MALA_STEP, g, score_fn=score),
        "gibbs": lambda: gibbs_bivariate_gaussian(RHO, x0, steps, g),
    }
    _sync(device)
    start = time.perf_counter()
    result = runs[name]()
    _sync(device)
    return result.samples, time.perf_counter() - start


def measure(name: str, chains: int, steps: int, repeats: int, device: torch.device = torch.device("cpu")) -> dict:
    """``{"ess": min over coordinates, "seconds": best time, "ess_per_s": best ESS/s, "steps": T}``."""
    from dgm.sampling import effective_sample_size

    if device.type == "cuda":
        run_sampler(name, chains, min(steps, 20), device)   # warm-up: CUDA context, kernels
    best = {"ess_per_s": -math.inf}
    for r in range(max(1, repeats)):
        samples, seconds = run_sampler(name, chains, steps, device, SEED + r)
        ess = float(effective_sample_size(samples).min())
        if ess / seconds > best["ess_per_s"]:
            best = {"ess": ess, "seconds": seconds, "ess_per_s": ess / seconds, "steps": steps}
    return best


def _with_threads(threads: int | None, fn: Callable[[], object]):
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def mcmc_rows(quick: bool = False, echo: Callable[[str], None] = lambda line: None, *,
              repeats: int | None = None, threads: int = THREADS, budget: float = 100 / SPEEDUP_BUDGET) -> list[Row]:
    """The rows: ESS/s of every sampler for every chain count (reported), and per sampler one chain's
    ESS/s as a percentage of :data:`BUDGET_CHAINS` chains' (against ``budget`` = 100/:data:`SPEEDUP_BUDGET`
    %); with CUDA, the GPU's ESS/s (reported). A sampler that could not run gives a failed row."""
    repeats = repeats if repeats is not None else (QUICK_REPEATS if quick else DEFAULT_REPEATS)
    rows: list[Row] = []
    for name in SAMPLERS:
        rates: dict[int, float] = {}
        try:
            for chains in CHAINS:
                steps = steps_for(chains, quick)
                result = _with_threads(threads, lambda: measure(name, chains, steps, repeats))
                rates[chains] = result["ess_per_s"]
                echo(f"  {name}: {chains} chain(s) x {steps} steps in {result['seconds']:.3f} s, ESS {result['ess']:.0f}, "
                     f"{result['ess_per_s']:.3g} ESS/s")
                rows.append(Row(f"mcmc {name}: ESS/s, {chains} chain(s) x {steps} steps, {threads} threads",
                                result["ess_per_s"], None, "ESS/s"))
        except Exception as err:  # noqa: BLE001 - any failure is a row that could not run
            rows.append(failed(f"mcmc {name}: ESS/s of 1 chain as % of {BUDGET_CHAINS} chains'", "%", budget,
                               f"{type(err).__name__}: {err}"[:300]))
            continue
        ratio = rates[1] / rates[BUDGET_CHAINS]
        echo(f"  {name}: {BUDGET_CHAINS} chains give {1 / ratio:.0f} times the ESS/s of one chain")
        rows.append(Row(f"mcmc {name}: ESS/s of 1 chain as % of {BUDGET_CHAINS} chains'", 100 * ratio, budget, "%"))
        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            result = measure(name, BUDGET_CHAINS, steps_for(BUDGET_CHAINS, quick), repeats, gpu)
            rows.append(Row(f"mcmc {name}: ESS/s, {BUDGET_CHAINS} chains on {torch.cuda.get_device_name()}",
                            result["ess_per_s"], None, "ESS/s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the machine, every measurement and the rows; exit 0 when every budget holds, 1 when one
    is broken, 2 when a sampler could not run."""
    from benchmarks.table import part_main

    return part_main(argv, prog="python -m benchmarks.mcmc", description=__doc__.splitlines()[0],
                     quick_help=f"{QUICK_DRAWS} draws per run (at least {QUICK_MIN_STEPS} steps), "
                                f"best of {QUICK_REPEATS}",
                     default_repeats=DEFAULT_REPEATS, threads=THREADS, rows=mcmc_rows)


if __name__ == "__main__":
    sys.exit(main())
