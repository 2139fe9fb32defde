"""The overhead of :meth:`dgm.diffusion.GaussianDiffusion.p_sample_loop` over a bare loop.

Both loops draw x_T ~ N(0, I) and take T DDPM steps (Ho et al.'s Algorithm 2, σ_t² = β_t)

    x_{t−1} = (x_t − β_t / √(1 − ᾱ_t) · ε_θ(x_t, t)) / √α_t + σ_t z,   z ~ N(0, I) for t > 1,

calling the same network, a 2×2 linear map, so that the per-step bookkeeping dominates (the worst
case for overhead). The bare loop, :func:`dgm.diffusion.bare_sampling_loop`, has nothing but the
step, with the coefficients precomputed as Python floats from the diffusion's schedule
(:meth:`~dgm.diffusion.GaussianDiffusion.sampling_coefficients`; the comparison at the end of
``book/07-diffusion.md``).
First both loops are run once from the same generator state and must give the same draws; then
each is timed ``repeats`` times, interleaved, and the ratio of the best times is the row.
"""

from __future__ import annotations

import time

import torch

from benchmarks.table import Row, failed

#: p_sample_loop may take at most this many times the bare loop's time.
OVERHEAD_BUDGET = 2.0
DEFAULT_T, QUICK_T = 200, 20
DEFAULT_REPEATS, QUICK_REPEATS = 5, 2
BATCH = 64


def tiny_model() -> torch.nn.Module:
    """The network both loops call: ε̂ = x Wᵀ + b with fixed W = [[0.5, 0.1], [-0.2, 0.4]], b = 0."""
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.5, 0.1], [-0.2, 0.4]]))
        net.bias.zero_()
    return net


def measure(T: int = DEFAULT_T, repeats: int = DEFAULT_REPEATS) -> dict[str, float]:
    """Best seconds of each loop over ``repeats`` interleaved runs and their ratio:
    ``{"library": s, "bare": s, "ratio": library / bare}``. Raises RuntimeError when the two loops
    draw different samples from the same generator state (then the comparison is meaningless)."""
    from dgm.diffusion import GaussianDiffusion, bare_sampling_loop, linear_beta_schedule

    diffusion = GaussianDiffusion(linear_beta_schedule(T))   # the values do not matter for the timing
    net = tiny_model()
    coefs = diffusion.sampling_coefficients()
    shape = (BATCH, 2)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return net(x)

    runs = {"bare": lambda: bare_sampling_loop(model, coefs, shape, torch.Generator().manual_seed(0)),
            "library": lambda: diffusion.p_sample_loop(model, shape, torch.Generator().manual_seed(0))}
    with torch.no_grad():
        bare, library = runs["bare"](), runs["library"]()
        if not torch.allclose(bare, library, rtol=1e-4, atol=1e-4):
            raise RuntimeError("p_sample_loop and the bare loop drew different samples from the same generator "
                               f"(largest difference {float((bare - library).abs().max()):.3g})")
        times: dict[str, list[float]] = {"bare": [], "library": []}
        for _ in range(max(1, repeats)):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    return {**best, "ratio": best["library"] / best["bare"]}


def sampler_rows(T: int = DEFAULT_T, repeats: int = DEFAULT_REPEATS, budget: float = OVERHEAD_BUDGET) -> list[Row]:
    """One row: p_sample_loop's best time over the bare loop's (a ratio, against ``budget``)."""
    item = f"sampler: p_sample_loop / bare loop (T={T}, batch {BATCH}, best of {max(1, repeats)})"
    try:
        result = measure(T, repeats)
    except Exception as err:  # noqa: BLE001 - any failure is a row that could not run
        return [failed(item, "ratio", budget, f"{type(err).__name__}: {err}"[:300])]
    return [Row(item, result["ratio"], budget, "ratio")]
