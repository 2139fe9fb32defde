"""Checks of Exercise 6 (Chapter 6: sampling, energy-based models and score matching).

Notation (the chapter's): a target density p (known up to its normaliser, log p̃), a proposal
q(y | x); the Metropolis–Hastings acceptance probability
α(x, y) = min(1, p(y) q(x | y) / (p(x) q(y | x))); unadjusted Langevin (ULA) with step size h,
x' = x + (h/2) ∇log p(x) + √h ξ; denoising score matching at noise level σ,
½ E‖s(x + σε) + ε/σ‖².

A sampler's wrong answer is a wrong *distribution*, so :func:`_mh_step` decides by statistical tests:
chains started from exact draws of the target take a few steps of the answer's kernel, and their final
states are compared with the target's CDF by Kolmogorov–Smirnov tests, each failing a right answer with
probability 1e-6 (the stated false-alarm rate; ``ALPHA``). A right kernel leaves the target invariant,
so the final states are exact draws whatever the number of steps.

The references are written out here in plain torch; ``tests/test_checks_ch06.py`` checks them against
:mod:`dgm.sampling`, :mod:`dgm.score`, scipy and autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from coursework.registry import Chapter, check  # noqa: F401 - check: the notebook's import
from coursework._core import Ctx, GradRequest, call, expect_derivation, expect_same_gradients, expect_tensor
from coursework._core import as_f64 as _f64, cast_like as _like

#: what the exercise notebook imports in its set-up cell (one line: ``from coursework.ch06 import ...``)
__all__ = ["check", "derivation_report", "mixture_target", "drift_proposal", "proposal_log_prob", "score_net",
           "ula_symbols", "ula_derivation_start", "ULA_REPORT_POINT"]

CHAPTER = Chapter(
    number=6,
    assignment="06-score",
    title="Sampling, energy-based models and score matching",
    forbidden=("dgm.sampling", "dgm.score"),  # the reference implementations Exercise 6's answers re-build
)

#: prints each derivation step's value at a point (default: this chapter's report point)
derivation_report = CHAPTER.derivation_report

#: the false-alarm rate of each statistical test of a sampler: a right answer fails one with this probability
ALPHA = 1e-6


# --------------------------------------------------------------------------------------------
# Objects handed to the answers (factories: a grading sandbox rebuilds them from their arguments)
# --------------------------------------------------------------------------------------------


class MixtureTarget:
    """A Gaussian mixture in ``dim`` dimensions with independent coordinates in each component:
    ``target(x)`` is log p(x) for ``x`` ``(N, dim)`` → ``(N,)``; ``cdf(t, d)`` is the marginal CDF of
    coordinate d; ``sample(n, generator)`` draws exactly. ``rho`` (dim = 2 only) correlates the two
    coordinates of every component (covariance [[s², ρs²], [ρs², s²]])."""

    def __init__(self, weights, means, scales, rho: float = 0.0):
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.means = torch.tensor(means, dtype=torch.float64)             # (K, dim)
        self.scales = torch.tensor(scales, dtype=torch.float64)           # (K,)
        self.rho = float(rho)
        self.dim = self.means.shape[1]

    def _cov(self):
        K, dim = self.means.shape
        eye = torch.eye(dim, dtype=torch.float64)
        corr = eye if dim != 2 else torch.tensor([[1.0, self.rho], [self.rho, 1.0]], dtype=torch.float64)
        return self.scales[:, None, None] ** 2 * corr.expand(K, dim, dim)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        comp = torch.distributions.MultivariateNormal(self.means.to(x.dtype), self._cov().to(x.dtype))
        return torch.logsumexp(torch.log(self.weights.to(x.dtype)) + comp.log_prob(x[:, None, :]), dim=-1)

    def marginal_cdf(self, t: torch.Tensor, d: int) -> torch.Tensor:
        normal = torch.distributions.Normal(self.means[:, d], self.scales)
        return (self.weights * normal.cdf(t.double()[:, None])).sum(-1)

    def sum_cdf(self, t: torch.Tensor) -> torch.Tensor:
        """CDF of x₁ + x₂ (dim = 2): each component's sum is N(μ₁ + μ₂, 2s²(1 + ρ))."""
        normal = torch.distributions.Normal(self.means.sum(1), self.scales * math.sqrt(2 * (1 + self.rho)))
        return (self.weights * normal.cdf(t.double()[:, None])).sum(-1)

    def diff_cdf(self, t: torch.Tensor) -> torch.Tensor:
        """CDF of x₁ − x₂ (dim = 2): each component's difference is N(μ₁ − μ₂, 2s²(1 − ρ))."""
        normal = torch.distributions.Normal(self.means[:, 0] - self.means[:, 1], self.scales * math.sqrt(2 * (1 - self.rho)))
        return (self.weights * normal.cdf(t.double()[:, None])).sum(-1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        L = torch.linalg.cholesky(self._cov())[k]                          # (n, dim, dim)
        return self.means[k] + (L @ torch.randn(n, self.dim, 1, generator=generator, dtype=torch.float64))[..., 0]


_TARGETS = {
    "bimodal": ([0.3, 0.7], [[-2.0], [1.5]], [0.5, 1.0], 0.0),
    "skewed": ([0.6, 0.3, 0.1], [[0.0], [2.0], [6.0]], [1.0, 0.7, 0.5], 0.0),
    "correlated": ([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]], [0.8, 0.6], 0.8),
}


def mixture_target(name: str = "bimodal"):
    """The checks' targets: ``"bimodal"`` and ``"skewed"`` (1-D), ``"correlated"`` (2-D, correlation 0.8
    in each component). ``mixture_target(name)(x)`` is log p(x) for ``x`` ``(N, D)``."""
    from coursework.wire import factory_object

    weights, means, scales, rho = _TARGETS[name]
    return factory_object(MixtureTarget(weights, means, scales, rho), "coursework.ch06:mixture_target", name)


class DriftProposal:
    """q(y | x) = N(y; x + drift, scale² I): ``propose(x, generator)`` draws y ``(N, D)``;
    ``log_prob(y, x)`` is log q(y | x), ``(N,)``. Not symmetric when drift ≠ 0."""

    def __init__(self, drift: float, scale: float):
        self.drift, self.scale = float(drift), float(scale)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + self.drift + self.scale * torch.randn(x.shape, generator=generator, dtype=x.dtype)

    def log_prob(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z = (y - x - self.drift) / self.scale
        return (-0.5 * z ** 2 - math.log(self.scale) - 0.5 * math.log(2 * math.pi)).sum(-1)


def drift_proposal(drift: float = 0.8, scale: float = 0.6):
    """The checks' proposal: ``propose = drift_proposal(...)``; ``propose(x, generator)`` draws y ~ q(· | x),
    ``propose.log_prob(y, x)`` is log q(y | x)."""
    from coursework.wire import factory_object

    return factory_object(DriftProposal(drift, scale), "coursework.ch06:drift_proposal", float(drift), float(scale))


class _ProposalLogProb:
    """``(y, x) -> log q(y | x)`` of a :class:`DriftProposal`."""

    def __init__(self, drift: float, scale: float):
        self.q = DriftProposal(drift, scale)

    def __call__(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.q.log_prob(y, x)


def proposal_log_prob(drift: float = 0.8, scale: float = 0.6):
    """log q(y | x) of :func:`drift_proposal` as a function ``(y, x) -> (N,)`` (a factory too)."""
    from coursework.wire import factory_object

    return factory_object(_ProposalLogProb(drift, scale), "coursework.ch06:proposal_log_prob", float(drift),
                          float(scale))


def score_net(dim: int, seed: int = 0, dtype=torch.float64) -> nn.Module:
    """The checks' score network: a tanh MLP ``(N, dim) -> (N, dim)`` with weights drawn from ``seed``."""
    from coursework.wire import factory_object
    from dgm.nets import mlp

    net = mlp(dim, 16, dim, depth=2, activation="tanh", generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return factory_object(net, "coursework.ch06:score_net", int(dim), int(seed), dtype)


def _seed(ctx: Ctx) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.gen))


# --------------------------------------------------------------------------------------------
# The references
# --------------------------------------------------------------------------------------------


def ref_inverse_cdf(u, weights):
    """inf{k : F(k) ≥ u} with F the CDF of the normalised ``weights``, clamped to the last category of positive
    weight (where rounding leaves the computed F just below 1, u = 1 would otherwise fall past it)."""
    cdf = torch.cumsum(weights / weights.sum(), 0)
    last = int(torch.nonzero(weights > 0).max())
    return torch.searchsorted(cdf, u.contiguous(), right=False).clamp(max=last)


def _rounds_below_one(ctx: Ctx, K: int, trailing_zeros: int) -> torch.Tensor:
    """Weights (K positive, then ``trailing_zeros`` zeros) whose CDF ends below 1 in float64 both when computed as
    cumsum(w / Σw) and as cumsum(w) / Σw, so that u = 1 falls past the end of either (drawn until it does)."""
    for _ in range(2000):
        w = torch.cat([ctx.uniform(0.1, 2.0, K), torch.zeros(trailing_zeros, dtype=torch.float64)])
        if float(torch.cumsum(w / w.sum(), 0)[-1]) < 1 and float(torch.cumsum(w, 0)[-1] / w.sum()) < 1:
            return w
    w = torch.full((10,), 0.1, dtype=torch.float64)   # cumsum(w / Σw) ends at 0.9999999999999999
    return torch.cat([w, torch.zeros(trailing_zeros, dtype=torch.float64)])


def ref_log_acceptance(log_p_x, log_p_y, log_q_y_given_x, log_q_x_given_y):
    """log α = min(0, log p(y) − log p(x) + log q(x | y) − log q(y | x))."""
    ratio = log_p_y - log_p_x + log_q_x_given_y - log_q_y_given_x
    return torch.clamp(ratio, max=0.0)


def ref_dsm_loss(score, x, sigma, eps):
    """½ mean_n ‖s(x_n + σ ε_n) + ε_n / σ‖²."""
    return 0.5 * ((score(x + sigma * eps) + eps / sigma) ** 2).sum(-1).mean()


# --------------------------------------------------------------------------------------------
# Task 1: the inverse CDF of a discrete distribution
# --------------------------------------------------------------------------------------------


@CHAPTER.function("discrete_inverse_cdf", references=("dgm.sampling:inverse_cdf_sample",))
def _discrete_inverse_cdf(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(u, weights, where):
        got = call(ctx, fn, u, weights, where=where)
        want = ref_inverse_cdf(u, weights)
        if type(got) is not torch.Tensor:  # noqa: E721
            ctx.fail(f"{where}: return a torch.Tensor of indices, got {type(got).__name__}")
        if got.dtype != torch.int64:
            ctx.fail(f"{where}: the indices must be int64 (torch.long), got {got.dtype}")
        cdf = torch.cumsum(weights / weights.sum(), 0)
        raw = torch.cumsum(weights, 0)
        expect_tensor(ctx, got, want, "the indices", where, 0, 0, hints=[
            ("u is compared with the CDF strictly (searchsorted right=True): at u = F(k) exactly the index must be k, "
             "since F⁻¹(u) = inf{k : F(k) ≥ u}",
             torch.searchsorted(cdf, u.contiguous(), right=True).clamp(max=weights.shape[0] - 1)),
            ("the weights are not normalised: divide by their sum first",
             torch.searchsorted(raw, u.contiguous()).clamp(max=weights.shape[0] - 1)),
            ("the index is off by one (the number of k with F(k) ≤ u is inf{k : F(k) > u})",
             (torch.searchsorted(cdf, u.contiguous()) + 1).clamp(max=weights.shape[0] - 1)),
            ("the index is not clamped: where rounding leaves the computed F(K − 1) just below 1, u = 1 falls past the "
             "end", torch.searchsorted(cdf, u.contiguous())),
            ("the index is clamped to K − 1, which can be a category of weight 0: clamp to the last category of "
             "positive weight", torch.searchsorted(cdf, u.contiguous()).clamp(max=weights.shape[0] - 1))])

    if not ctx.hidden:
        w = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
        compare(torch.tensor([0.1, 0.2, 0.5, 0.7, 0.71, 0.95, 1.0], dtype=torch.float64), w,
                "weights [0.2, 0.5, 0.3]; u = 0.2 and 0.7 sit exactly on the CDF (index 0 and 1)")
        compare(torch.tensor([0.05, 0.3, 0.9], dtype=torch.float64), torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64),
                "unnormalised weights [1, 0, 3] (category 1 has probability 0 and is never drawn)")
        return
    for dtype in (torch.float64, torch.float32):
        K = int(torch.randint(3, 9, (1,), generator=ctx.gen))
        w = ctx.uniform(0.1, 2.0, K).to(dtype)
        compare(ctx.uniform(1e-6, 1.0, 200).to(dtype), w, f"K={K} unnormalised weights, 200 uniforms ({dtype})")
    # u exactly on the CDF's steps, u = 1, zero-probability categories (first, inside, last)
    # weights in eighths times a power of 2: every way of normalising gives the same, exact CDF
    w = torch.tensor([0.0, 0.125, 0.25, 0.0, 0.5, 0.125, 0.0], dtype=torch.float64) \
        * 2.0 ** int(torch.randint(-3, 4, (1,), generator=ctx.gen))
    steps = torch.cumsum(w / w.sum(), 0)
    u = torch.cat([steps[1:3], steps[4:6], torch.tensor([1.0], dtype=torch.float64), ctx.uniform(1e-9, 1.0, 50)])
    compare(u[torch.randperm(len(u), generator=ctx.gen)], w, "u exactly on the CDF's steps and u = 1, zero-probability "
            "categories first, inside and last, mixed with ordinary u")
    # weights whose cumulative sum rounds below 1 at the end, with u = 1 exactly; then the same with zero-weight
    # categories at the end (u = 1 must give the last category of positive weight, never a zero-weight one)
    for zeros in (0, 2):
        w = _rounds_below_one(ctx, 7, zeros)
        compare(torch.cat([torch.ones(3, dtype=torch.float64), ctx.uniform(0.0001, 1.0, 20)]), w,
                "u = 1 where the CDF's last value rounds to just below 1" + (", the last two categories of weight 0"
                                                                             if zeros else ""))
    # u far below every step, with a zero-weight first category: the index is 1, never 0
    w = torch.cat([torch.zeros(1, dtype=torch.float64), ctx.uniform(0.1, 2.0, 4)])
    compare(torch.cat([torch.tensor([1e-300, 1e-15, 1e-12], dtype=torch.float64), ctx.uniform(1e-6, 1.0, 10)]), w,
            "u of 1e-300, 1e-15 and 1e-12 with a zero-weight first category")
    compare(ctx.uniform(1e-6, 1.0, 30), torch.tensor([3.0], dtype=torch.float64), "K = 1: every index is 0")
    compare(ctx.uniform(1e-6, 1.0, 4, 5), ctx.uniform(0.1, 1.0, 4), "u of shape (4, 5): the indices keep u's shape")
    w = torch.tensor([1e-12, 1.0, 1e-12], dtype=torch.float64)
    compare(torch.cat([torch.tensor([1e-13, 0.5, 1.0], dtype=torch.float64), ctx.uniform(1e-6, 1.0, 10)]), w,
            "tiny weights next to a large one")


# --------------------------------------------------------------------------------------------
# Task 2: the Metropolis–Hastings acceptance probability, in log space
# --------------------------------------------------------------------------------------------


@CHAPTER.function("mh_log_acceptance", references=("dgm.sampling:metropolis_hastings",))
def _mh_log_acceptance(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(lpx, lpy, lqyx, lqxy, where, tol=(1e-6, 1e-8), grads=False):
        dtype = lpx.dtype
        got = call(ctx, fn, lpx, lpy, lqyx, lqxy, where=where)
        a, b, c, d = _f64(lpx, lpy, lqyx, lqxy)
        want = _like(ref_log_acceptance(a, b, c, d), dtype)
        expect_tensor(ctx, got, want, "log α", where, *tol, hints=[
            ("the proposal correction is left out (that is Metropolis's rule, right only for a symmetric q)",
             _like(torch.clamp(b - a, max=0.0), dtype)),
            ("the proposal correction is upside down: it is q(x | y) / q(y | x), the reverse move over the forward one",
             _like(torch.clamp(b - a + c - d, max=0.0), dtype)),
            ("the min with 1 (0 in log space) is missing: an acceptance probability cannot exceed 1",
             _like(b - a + d - c, dtype)),
            ("the min is taken with 1 in log space; log 1 = 0", _like(torch.clamp(b - a + d - c, max=1.0), dtype)),
            ("the whole ratio is upside down: p(x) q(y | x) / (p(y) q(x | y))",
             _like(torch.clamp(a - b + c - d, max=0.0), dtype))])
        if grads:
            expect_same_gradients(ctx, fn, ref_log_acceptance, [lpx, lpy, lqyx, lqxy], wrt=(0, 1, 2, 3),
                                  where=f"{where}: gradients with respect to the four log-densities")

    if not ctx.hidden:
        compare(torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64), torch.tensor([-2.0, -1.0, -3.5], dtype=torch.float64),
                torch.tensor([-0.5, -1.0, -2.0], dtype=torch.float64), torch.tensor([-1.5, -0.5, -0.2], dtype=torch.float64),
                "three proposals (one accepted surely, two with probability below 1)")
        return
    for dtype, tol in ((torch.float64, (1e-6, 1e-8)), (torch.float32, (1e-5, 1e-5))):
        vals = [-ctx.uniform(0.1, 10, 40) for _ in range(4)]
        compare(*(v.to(dtype) for v in vals), f"40 random proposals ({dtype})", tol)
    vals = [-ctx.uniform(0.1, 10, 12) for _ in range(4)]
    # keep every ratio away from 0 so the min is differentiable at each point
    vals[1] = vals[0] + torch.where(torch.arange(12) % 2 == 0, 1.0, -1.0).double() * ctx.uniform(0.5, 3, 12) \
        - vals[3] + vals[2]
    compare(*vals, "ratios on both sides of 1 (away from the kink)", grads=True)
    compare(-ctx.uniform(0.1, 5, 5, 1), -ctx.uniform(0.1, 5, 3), -ctx.uniform(0.1, 5, 5, 3), -ctx.uniform(0.1, 5, 3),
            "broadcast: (5, 1), (3,), (5, 3) and (3,)")
    # extremes: a proposal outside the support (log p(y) = −inf: never accepted), log-densities near −1e4 and +1e3
    # (exp overflows or underflows), among ordinary proposals
    n = 20
    lpx, lpy, lqyx, lqxy = (-ctx.uniform(0.1, 10, n) for _ in range(4))
    idx = torch.randperm(n, generator=ctx.gen)
    lpy[idx[0]] = -math.inf
    lpx[idx[1]], lpy[idx[1]] = -1e4 - float(ctx.uniform(0, 10)), -1e4 + float(ctx.uniform(0, 10))
    lpx[idx[2]], lpy[idx[2]] = 1e3, 1e3 + float(ctx.uniform(-5, 5))
    lqyx[idx[3]], lqxy[idx[3]] = -800.0, -1.0
    lpy[idx[4]] = lpx[idx[4]] - float(ctx.uniform(800, 1000))    # log α about −900: α underflows, log α does not
    lpy[idx[5]] = lpx[idx[5]] - float(ctx.uniform(150, 300))     # log α about −200: α underflows in float32
    compare(lpx, lpy, lqyx, lqxy, "a proposal outside the support (log p(y) = −inf), log-densities near −1e4 and "
            "+1e3, a proposal density near e^-800, log α near −900 and −200, among ordinary ones", tol=(1e-9, 1e-8))
    compare(lpx.float(), lpy.float(), lqyx.float(), lqxy.float(), "the same in float32", tol=(1e-5, 1e-2))
    compare(torch.tensor(-1.0, dtype=torch.float64), torch.tensor(-0.5, dtype=torch.float64),
            torch.tensor(-2.0, dtype=torch.float64), torch.tensor(-1.0, dtype=torch.float64), "0-d inputs")


# --------------------------------------------------------------------------------------------
# Task 3: one Metropolis–Hastings step of N chains (tested as a distribution)
# --------------------------------------------------------------------------------------------


def _ks_pvalue(samples: torch.Tensor, cdf: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """The KS test's p-value of ``samples`` (1-D) against ``cdf`` (scipy's asymptotic distribution: n ≥ 4000 here)."""
    import scipy.stats

    x = samples.detach().double().numpy()
    return float(scipy.stats.kstest(x, lambda t: cdf(torch.as_tensor(t)).numpy(), method="asymp").pvalue)


def _run_chains(ctx: Ctx, fn: Callable, target, propose, qlog, x: torch.Tensor, steps: int, where: str) -> torch.Tensor:
    for k in range(steps):
        gen = torch.Generator().manual_seed(_seed(ctx))
        y = call(ctx, fn, x, target, propose, qlog, gen, where=f"{where}, step {k + 1}")  # call() judges in-place changes
        if type(y) is not torch.Tensor:  # noqa: E721
            ctx.fail(f"{where}: return a torch.Tensor of the new states, got {type(y).__name__}")
        if y.shape != x.shape or y.dtype != x.dtype:
            ctx.fail(f"{where}: the new states have shape {tuple(y.shape)} and dtype {y.dtype}; expected the states' "
                     f"{tuple(x.shape)} and {x.dtype}")
        if not bool(torch.isfinite(y).all()):
            ctx.fail(f"{where}: the new states contain NaN or infinity")
        moved_rows = torch.nonzero((y != x).any(-1)).flatten().tolist()
        before_rows = {x[n].numpy().tobytes(): n for n in range(x.shape[0])}
        if any(before_rows.get(y[n].detach().numpy().tobytes(), n) != n for n in moved_rows):
            ctx.fail(f"{where}: a chain's new state is another chain's old state — the chains were mixed up (each "
                     "row of the result must be its own chain's next state: stay at x[n] or move to the proposal y[n])")
        partial = (y == x).any(-1) & (y != x).any(-1)
        if bool(partial.any()):
            ctx.fail(f"{where}: {int(partial.sum())} chains moved in some coordinates and stayed in others — a "
                     "proposal is accepted or rejected as a whole: one uniform per chain, for all its coordinates")
        if not bool((y != x).any()):
            ctx.fail(f"{where}: no chain moved in one step — the proposals are never accepted")
        x = y
    return x


@CHAPTER.function("mh_step", references=("dgm.sampling:metropolis_hastings",))
def _mh_step(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def law(name, n, steps, where, drift=0.8, scale=0.6):
        target = mixture_target(name)
        propose, qlog = drift_proposal(drift, scale), proposal_log_prob(drift, scale)
        start_gen = torch.Generator().manual_seed(_seed(ctx))
        x0 = target.sample(n, start_gen)
        x = _run_chains(ctx, fn, target, propose, qlog, x0, steps, where)
        tests = [(f"coordinate {d + 1}", x[:, d], lambda t, d=d: target.marginal_cdf(t, d)) for d in range(target.dim)]
        if target.dim == 2:
            tests.append(("x₁ + x₂", x.sum(-1), target.sum_cdf))
            tests.append(("x₁ − x₂", x[:, 0] - x[:, 1], target.diff_cdf))
        for what, values, cdf in tests:
            p = _ks_pvalue(values, cdf)
            if p < ALPHA:
                ctx.fail(f"{where}: after {steps} steps from exact draws of the target, the chains' {what} does not "
                         f"follow the target (Kolmogorov–Smirnov p = {p:.1e} < {ALPHA:g}; a right kernel leaves the "
                         "target invariant, so it fails this test with probability 1e-6) — check the acceptance "
                         "ratio, including the proposal correction q(x | y) / q(y | x), and that one uniform decides "
                         "per chain (not per coordinate)")

    def reproducible(where):
        target, propose, qlog = mixture_target("bimodal"), drift_proposal(), proposal_log_prob()
        # 2000 chains: each decision differs between two independent uniforms with probability 2α(1 − α), so a
        # global generator gives identical states for all of them only with a negligible probability
        x = target.sample(2000, torch.Generator().manual_seed(_seed(ctx)))
        seed = _seed(ctx)
        a = call(ctx, fn, x, target, propose, qlog, torch.Generator().manual_seed(seed), where=where)
        b = call(ctx, fn, x, target, propose, qlog, torch.Generator().manual_seed(seed), where=where)
        if type(a) is not torch.Tensor or type(b) is not torch.Tensor or not torch.equal(a, b):  # noqa: E721
            ctx.fail(f"{where}: two calls with generators of the same seed gave different states — draw every random "
                     "number (the proposal's and the uniforms) from `generator`, never from torch's global generator")

    def rate(x0, n, where, drift=0.8, scale=0.6):
        """From one start x0 (1-D bimodal target), the fraction of n chains that move in one step must be the MH
        acceptance probability E_y[α(x0, y)] (a fine-grid integral over the proposal): a binomial test, two-sided,
        false-alarm rate 1e-6 (|z| > 4.89). A kernel that accepts less often (Barker's rule, a lazy kernel) keeps the
        target invariant — the KS tests cannot see it — but moves at another rate."""
        target, propose, qlog = mixture_target("bimodal"), drift_proposal(drift, scale), proposal_log_prob(drift, scale)
        x = torch.full((n, 1), float(x0), dtype=torch.float64)
        gen = torch.Generator().manual_seed(_seed(ctx))
        y = call(ctx, fn, x, target, propose, qlog, gen, where=where)
        if type(y) is not torch.Tensor or y.shape != x.shape:  # noqa: E721
            ctx.fail(f"{where}: return a tensor of the states' shape {tuple(x.shape)}")
        moved = float((y != x).any(-1).double().mean())
        grid = torch.linspace(x0 + drift - 12 * scale, x0 + drift + 12 * scale, 200_001, dtype=torch.float64)[:, None]
        xs = torch.full_like(grid, float(x0))
        q = torch.exp(qlog(grid, xs))
        alpha = torch.exp(torch.clamp(target(grid) - target(xs) + qlog(xs, grid) - qlog(grid, xs), max=0.0))
        p = float(torch.trapezoid(q * alpha, grid[:, 0]))
        z = (moved - p) / math.sqrt(p * (1 - p) / n)
        if abs(z) > 4.89:
            ctx.fail(f"{where}: {moved:.4f} of the chains moved, but the Metropolis–Hastings kernel moves with "
                     f"probability {p:.4f} from this start (z = {z:.1f}; a right kernel fails this test with "
                     "probability 1e-6) — accept with probability exactly min(1, ratio): draw u ~ U(0, 1) and accept "
                     "when u < α (log u < log α)")

    if not ctx.hidden:
        reproducible("the same generator seed twice (2000 chains)")
        law("bimodal", 4000, 2, "4000 chains on the bimodal 1-D target, drifting proposal")
        rate(0.5, 4000, "4000 chains started at x = 0.5: how many move in one step")
        return
    reproducible("the same generator seed twice (2000 chains)")
    law("bimodal", 10000, 3, "10 000 chains on the bimodal target, drifting proposal (drift 0.8)")
    law("skewed", 10000, 3, "10 000 chains on a skewed three-component target, drifting proposal (drift −0.8)",
        drift=-0.8)
    law("correlated", 10000, 3, "10 000 chains on a 2-D target with correlated coordinates (drift 0.5 in both)",
        drift=0.5, scale=0.5)
    law("bimodal", 10000, 3, "a symmetric proposal (drift 0, scale 2)", drift=0.0, scale=2.0)
    for x0 in (float(ctx.uniform(-3.0, -1.0)), float(ctx.uniform(0.0, 2.5))):
        rate(x0, 20000, f"20 000 chains started at x = {x0:.2f}: how many move in one step")


# --------------------------------------------------------------------------------------------
# Task 4: the denoising score-matching loss
# --------------------------------------------------------------------------------------------


@CHAPTER.function("dsm_loss", references=("dgm.score:denoising_score_matching_loss",))
def _dsm_loss(ctx: Ctx, fn: Callable, expected: Any) -> None:
    def compare(D, N, sigma, where, dtype=torch.float64, tol=(1e-6, 1e-8), scale=1.0, grads=True):
        net = score_net(D, _seed(ctx), dtype)
        x = (scale * ctx.randn(N, D)).to(dtype)
        eps = ctx.randn(N, D).to(dtype)
        got, mine = call(ctx, fn, net, x, sigma, eps, where=where, grad=GradRequest(inputs=(1, 3), params_of=0))
        want = ref_dsm_loss(net, x, sigma, eps).detach()
        with torch.no_grad():
            xt = x + sigma * eps
            s_xt, s_x = net(xt), net(x)
        expect_tensor(ctx, got, want, "the loss", where, *tol, hints=[
            ("the target has the wrong sign: the score of N(x, σ²I) at x + σε is −ε/σ, so the residual is s + ε/σ",
             0.5 * ((s_xt - eps / sigma) ** 2).sum(-1).mean()),
            ("σ² divides ε instead of σ: the target score is −(x̃ − x)/σ² = −ε/σ",
             0.5 * ((s_xt + eps / sigma ** 2) ** 2).sum(-1).mean()),
            ("the score is evaluated at the clean x instead of the noisy x + σε",
             0.5 * ((s_x + eps / sigma) ** 2).sum(-1).mean()),
            ("the ½ is missing", ((s_xt + eps / sigma) ** 2).sum(-1).mean()),
            ("the squared norm is averaged over the coordinates instead of summed",
             0.5 * ((s_xt + eps / sigma) ** 2).mean()),
            ("the loss is summed over the batch instead of averaged", 0.5 * ((s_xt + eps / sigma) ** 2).sum()),
            ("the noise is added as σ²ε (the variance, not the standard deviation)",
             0.5 * ((net(x + sigma ** 2 * eps).detach() + eps / sigma) ** 2).sum(-1).mean())])
        if not grads:
            return
        if mine is None:
            ctx.fail(f"{where}: the loss does not depend differentiably on the network's parameters — it must train them")
        inputs = [x.detach().clone().requires_grad_(True), eps.detach().clone().requires_grad_(True)]
        params = list(net.parameters())
        theirs = torch.autograd.grad(ref_dsm_loss(net, inputs[0], sigma, inputs[1]), inputs + params)
        names = ["x", "eps"] + [f"the network's parameter {i + 1}" for i in range(len(params))]
        for name, g, r in zip(names, mine, theirs):
            g = torch.zeros_like(r) if g is None else g
            if type(g) is not torch.Tensor or g.shape != r.shape or not bool(torch.allclose(g, r, rtol=1e-6, atol=1e-8)):  # noqa: E721
                ctx.fail(f"{where}: the gradient with respect to {name} is wrong")

    if not ctx.hidden:
        compare(2, 5, 0.5, "5 points in 2-D, σ = 0.5")
        compare(3, 4, 2.0, "4 points in 3-D, σ = 2")
        return
    compare(2, 64, float(ctx.uniform(0.1, 1.0)), "64 points in 2-D, σ in (0.1, 1)")
    compare(4, 32, float(ctx.uniform(1.0, 5.0)), "32 points in 4-D, σ in (1, 5)", dtype=torch.float32, tol=(1e-5, 1e-5),
            grads=False)
    compare(1, 16, 0.3, "D = 1")
    compare(3, 1, 0.7, "N = 1")
    compare(2, 32, float(ctx.uniform(1e-3, 1e-2)), "a small σ in (1e-3, 1e-2): the target ε/σ is large", tol=(1e-8, 1e-8))
    compare(2, 32, float(ctx.uniform(20, 50)), "a large σ in (20, 50)")
    compare(2, 32, 0.5, "data far from the origin (about 1e3)", scale=1e3)
    compare(3, 32, 0.01, "float32 data near 1e3 with σ = 0.01: the noise is σε itself; recovered as (x̃ − x) it loses "
            "most of its digits", dtype=torch.float32, tol=(1e-5, 1e-5), scale=1e3, grads=False)


# --------------------------------------------------------------------------------------------
# Concept checks (the correct options live in the hidden test cells)
# --------------------------------------------------------------------------------------------

CHAPTER.concept("concept_rejection_rate", ("a", "b", "c", "d"))
CHAPTER.concept("concept_periodic_chain", ("a", "b", "c", "d"))
CHAPTER.concept("concept_ula_bias", ("a", "b", "c", "d"))
CHAPTER.concept("concept_dsm_optimum", ("a", "b", "c", "d"))


# --------------------------------------------------------------------------------------------
# Step-checked derivation: ULA's stationary variance on N(0, s²)
# --------------------------------------------------------------------------------------------


def ula_symbols() -> tuple:
    """The symbols of the ULA derivation: ``(h, v)`` — the step size h (the chapter's letter; ε is reserved for
    Gaussian noise) and the variance v of the target N(0, v) (both positive)."""
    import sympy as sp

    return sp.symbols("h v", positive=True)


def ula_derivation_start():
    r"""ULA on N(0, v): x' = x + (h/2)(−x/v) + √h ξ = (1 − h/(2v)) x + √h ξ, so a stationary variance w
    satisfies w = (1 − h/(2v))² w + h, whose solution is w = h / (1 − (1 − h/(2v))²)."""
    h, v = ula_symbols()
    return h / (1 - (1 - h / (2 * v)) ** 2)


#: the point at which derivation_report evaluates the steps of Exercise 6
ULA_REPORT_POINT = {"h": 0.1, "v": 1.0}


def _ula_target(point) -> float:
    """The stationary variance of the AR(1) chain x' = a x + √h ξ, a = 1 − h/(2v): the solution of the discrete
    Lyapunov equation w = a w a + h, by scipy (an independent route from the closed forms)."""
    import numpy as np
    import scipy.linalg

    a = 1 - point["h"] / (2 * point["v"])
    return float(scipy.linalg.solve_discrete_lyapunov(np.array([[a]]), np.array([[point["h"]]]))[0, 0])


def _ula_points(ctx: Ctx) -> list[dict[str, float]]:
    """Random points, each regime every seed: a tiny step, an ordinary one, a step near the stability limit
    h < 4v (where the bias is large), small and large v."""
    points = []
    for v_lo, v_hi, frac_lo, frac_hi in ((0.25, 4.0, 1e-4, 1e-3), (0.25, 4.0, 0.01, 0.2), (0.25, 4.0, 0.5, 0.9),
                                         (1e-4, 1e-2, 0.01, 0.3), (100.0, 2500.0, 0.01, 0.3)):
        v = float(ctx.uniform(v_lo, v_hi))
        points.append({"h": float(ctx.uniform(frac_lo, frac_hi)) * 4 * v, "v": v})
    return points


@CHAPTER.derivation("ula_variance_steps", start=ula_derivation_start, point=ULA_REPORT_POINT)
def _ula_steps(ctx: Ctx, steps: Any, expected: Any) -> None:
    import sympy as sp

    symbols = ula_symbols()
    h, v = symbols
    points = _ula_points(ctx) if ctx.hidden else [
        ULA_REPORT_POINT, {"h": 3.0, "v": 1.0}, {"h": 1e-3, "v": 25.0}]
    expect_derivation(ctx, steps, start=ula_derivation_start(), symbols=symbols, points=points,
                      target=_ula_target, start_name="ula_derivation_start()", exact_numbers=True)
    factors = sp.Mul.make_args(steps[-1])
    if v not in factors:
        ctx.fail("the last step must be v times the bias factor, v / (1 - h / (4 * v)) (v as a factor in front, so "
                 "that the bias shows at a glance)")
    rest = sp.Mul(*[f for f in factors if f != v])
    if any(isinstance(e, sp.Pow) and e.exp == 2 and e.base.has(h) for e in sp.preorder_traversal(rest)):
        ctx.fail("the last step must have no square left in h: expand (1 − h/(2v))² and cancel the common factor h")
