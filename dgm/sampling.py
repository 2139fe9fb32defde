r"""Sampling: inverse CDF, rejection, importance sampling, Markov chains and MCMC (Chapter 6).

Every sampler here draws its randomness from a ``generator=`` (a ``torch.Generator`` on the
device of the states) and runs **many chains at once**: the chain index is a batch dimension,
never a Python loop. States of C chains in D dimensions are ``(C, D)``; a trajectory is
``(C, T, D)`` (chain first, then draw: ArviZ's and Stan's order), which the diagnostics take.

Independent draws
-----------------
* **Inverse CDF.** With U ~ U(0, 1) and F⁻¹(u) = inf{x : F(x) ≥ u}, X = F⁻¹(U) has CDF F, for any
  CDF (continuous or not): F⁻¹(u) ≤ x ⇔ u ≤ F(x), so P(X ≤ x) = P(U ≤ F(x)) = F(x).
* **Rejection.** For a target p = p̃ / Z known up to Z and a proposal q with an *envelope*
  p̃(x) ≤ M q(x) for all x: draw x ~ q, u ~ U(0, 1), keep x when u ≤ p̃(x) / (M q(x)). The pair
  (x, u·M q(x)) is uniform under the graph of M q, the kept ones are uniform under the graph of
  p̃, so kept x ~ p, and P(keep) = ∫ q(x) p̃(x)/(M q(x)) dx = Z / M (1/M for a normalised target).
  When the envelope fails somewhere, the acceptance probability is min(1, p̃/(M q)) and the kept
  points follow min(p̃, M q) normalised, not p: :func:`rejection_sample` reports the fraction of
  proposals at which p̃ > M q.
* **Importance sampling.** E_p[f] = E_q[w f] with w = p/q, estimated by (1/N) Σ w_n f(x_n),
  x_n ~ q; for p = p̃/Z the self-normalised Σ w̃_n f(x_n) / Σ w̃_n with w̃ = p̃/q (consistent, biased
  by O(1/N)). The effective sample size (Σ w)² / Σ w² counts how many equally weighted draws the
  weighted sample is worth.

Markov chains
-------------
A transition matrix P (rows sum to 1) leaves π invariant when πP = π. *Detailed balance*
π_i P_ij = π_j P_ji for all i, j implies it (sum over i). An irreducible aperiodic finite chain
converges to its unique π from any start; the fraction of time spent in state i converges to π_i.

MCMC samplers on R^D, with ε the step size
------------------------------------------
* **Metropolis–Hastings**: propose y ~ q(· | x), accept with probability
  α = min(1, p(y) q(x | y) / (p(x) q(y | x))). The chance of the move x → y is then
  q(y|x) α(x, y) and p(x) q(y|x) α(x, y) = min(p(x) q(y|x), p(y) q(x|y)) is symmetric in (x, y):
  detailed balance with p, so p is invariant; Z cancels in the ratio.
* **Unadjusted Langevin (ULA)**: x' = x + (ε/2) ∇log p(x) + √ε ξ, ξ ~ N(0, I). **Convention:** ε
  is the variance of the injected noise and the drift is ε/2 times the score (Song & Ermon's
  Algorithm 1, and the Euler–Maruyama step of dX = ∇log p(X) dt + √2 dW with time step ε/2). No
  accept/reject: its stationary law is *not* p for ε > 0. For p = N(0, s²) the update is the AR(1)
  x' = (1 − ε/(2s²)) x + √ε ξ, whose stationary variance is ε / (1 − (1 − ε/(2s²))²) =
  s² / (1 − ε/(4s²)) > s² (stable for ε < 4s²).
* **MALA**: the Langevin step as an MH proposal, q(y | x) = N(y; x + (ε/2)∇log p(x), εI) (not
  symmetric), with the Hastings ratio: exact invariance of p for every ε.
* **Gibbs**: update one coordinate (block) at a time from its exact conditional; each update is
  an MH move accepted with probability 1, so p is invariant.

Diagnostics
-----------
The autocorrelation ρ_k of a stationary chain gives the integrated autocorrelation time
τ = 1 + 2 Σ_{k ≥ 1} ρ_k; T correlated draws estimate a mean as well as T/τ independent ones
(the effective sample size). For an AR(1) chain x' = φ x + noise, ρ_k = φ^k and τ = (1 + φ)/(1 − φ).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch

from dgm._validate import (
    as_float_tensor,
    check_bool,
    check_callable,
    check_generator,
    check_int,
    check_number,
    check_probabilities,
    check_same_device,
    check_square,
)

__all__ = [
    "RejectionResult",
    "ImportanceResult",
    "ChainResult",
    "Proposal",
    "inverse_cdf_sample",
    "rejection_sample",
    "importance_estimate",
    "stationary_distribution",
    "check_detailed_balance",
    "simulate_chain",
    "random_walk_proposal",
    "langevin_proposal",
    "metropolis_hastings",
    "langevin",
    "mala",
    "gibbs_bivariate_gaussian",
    "ising_energy",
    "gibbs_ising",
    "autocorrelation",
    "effective_sample_size",
    "mean_z_score",
]

LogDensity = Callable[[torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor], torch.Tensor]

#: Rejection sampling never draws more proposals than this in one round (memory).
_MAX_ROUND = 1 << 22


class RejectionResult(NamedTuple):
    """What :func:`rejection_sample` returns.

    Attributes:
        samples: ``(n, ...)`` accepted draws, in the order they were proposed.
        acceptance_rate: ``()`` accepted / proposed over every proposal drawn (≈ Z/M).
        n_proposed: the number of proposals drawn.
        envelope_violation: ``()`` the fraction of proposals with p̃(x) > M q(x); 0 for a valid envelope.
    """

    samples: torch.Tensor
    acceptance_rate: torch.Tensor
    n_proposed: int
    envelope_violation: torch.Tensor


class ImportanceResult(NamedTuple):
    """What :func:`importance_estimate` returns: ``estimate`` and ``standard_error`` of the shape of
    one f value, and ``ess`` ``()`` = (Σ w)² / Σ w²."""

    estimate: torch.Tensor
    standard_error: torch.Tensor
    ess: torch.Tensor


class ChainResult(NamedTuple):
    """What the MCMC samplers return.

    Attributes:
        samples: ``(C, T, ...)`` the kept states of each chain (after ``burn_in``, every ``thin``-th),
            or ``(C, ...)`` the final states when ``trajectory=False``.
        acceptance_rate: ``(C,)`` the fraction of accepted proposals of each chain over all steps
            (1 for ULA and Gibbs, which accept every move).
    """

    samples: torch.Tensor
    acceptance_rate: torch.Tensor


class Proposal(NamedTuple):
    """A Metropolis–Hastings proposal q(y | x) for C chains.

    Attributes:
        sample: ``sample(x, generator) -> y``, ``(C, D) -> (C, D)``, one draw y ~ q(· | x) per chain.
        log_prob: ``log_prob(y, x) -> (C,)``, log q(y | x) up to a constant that does not depend on
            x or y (only the ratio q(x | y) / q(y | x) is used).
    """

    sample: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]
    log_prob: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _states(x0, name: str = "x0") -> torch.Tensor:
    x = as_float_tensor(x0, name)
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (C, D) (C chains in D dimensions); got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    return x.detach()


def _per_chain(value, name: str, x: torch.Tensor, what: str) -> torch.Tensor:
    """Check that a user function returned ``(C,)`` values for the ``(C, D)`` states x."""
    if not isinstance(value, torch.Tensor) or value.shape != x.shape[:1]:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must return {what} of shape ({x.shape[0]},) for states of shape "
                         f"{tuple(x.shape)}; got {got}")
    return value


def _like_states(value, name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.shape != x.shape:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must return a tensor of the shape of the states {tuple(x.shape)}; got {got}")
    return value


def _kept(steps: int, burn_in: int, thin: int) -> int:
    return (steps - burn_in) // thin


def _schedule(steps, burn_in, thin, trajectory):
    steps = check_int(steps, "steps", low=1)
    burn_in = check_int(burn_in, "burn_in", low=0, high=steps - 1,
                        expected=f"an integer in [0, steps - 1] = [0, {steps - 1}]")
    thin = check_int(thin, "thin", low=1)
    trajectory = check_bool(trajectory, "trajectory")
    if trajectory and _kept(steps, burn_in, thin) < 1:
        raise ValueError(f"no state would be kept: (steps - burn_in) // thin = ({steps} - {burn_in}) // {thin} = 0")
    return steps, burn_in, thin, trajectory


class _Recorder:
    """Keeps the state after step t (t = 1..steps) when t > burn_in and (t − burn_in) % thin == 0."""

    def __init__(self, x: torch.Tensor, steps: int, burn_in: int, thin: int, trajectory: bool):
        self.burn_in, self.thin, self.trajectory = burn_in, thin, trajectory
        n = _kept(steps, burn_in, thin) if trajectory else 0
        self.buffer = x.new_empty(x.shape[0], n, *x.shape[1:]) if trajectory else None
        self.i = 0

    def __call__(self, t: int, x: torch.Tensor) -> None:
        if self.trajectory and t > self.burn_in and (t - self.burn_in) % self.thin == 0:
            self.buffer[:, self.i] = x
            self.i += 1

    def result(self, x: torch.Tensor, accepted: torch.Tensor, steps: int) -> ChainResult:
        samples = self.buffer if self.trajectory else x
        return ChainResult(samples, accepted.to(x.dtype) / steps)


def _accept(log_alpha: torch.Tensor, generator) -> torch.Tensor:
    """Accept each entry with probability min(1, exp(log_alpha)): u < α ⇔ E > −log α with E = −log u ~ Exp(1).

    Drawing E directly keeps exp and log out of the loop: on a busy 2-core machine a float64 ``torch.exp`` of a
    few hundred entries (MKL, two OpenMP threads) took ~14 ms instead of microseconds. −log α = NaN or +∞
    (a proposal where log p̃ is NaN or −∞) is never accepted.
    """
    e = torch.empty_like(log_alpha).exponential_(generator=generator)
    return e > -log_alpha


def _uniform_open(shape, *, dtype, device, generator) -> torch.Tensor:
    """U(0, 1) draws that are never 0: torch.rand's [0, 1) with 0 (probability 2^-24 in float32,
    2^-53 in float64) replaced by the smallest positive normal number, so log u and F⁻¹(u) stay finite."""
    u = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    return u.clamp_(min=torch.finfo(dtype).tiny)


# --------------------------------------------------------------------------------------------
# independent draws
# --------------------------------------------------------------------------------------------


def inverse_cdf_sample(icdf: Callable[[torch.Tensor], torch.Tensor], n: int, generator: torch.Generator | None = None,
                       *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    r"""n independent draws X = F⁻¹(U), U ~ U(0, 1): inverse transform sampling.

    With the generalised inverse F⁻¹(u) = inf{x : F(x) ≥ u}, F⁻¹(u) ≤ x ⇔ u ≤ F(x), hence
    P(X ≤ x) = P(U ≤ F(x)) = F(x): X has CDF F, continuous or not (a discrete F works too; it
    need not be invertible). U is never 0 (a draw of 0 becomes the smallest positive normal
    number) and torch.rand never returns 1, so an unbounded F⁻¹ never returns ±∞.

    Args:
        icdf: the quantile function F⁻¹, ``(n,) -> (n, ...)``, applied to a tensor of u's.
        n: the number of draws, a positive integer.
        generator: ``torch.Generator`` on ``device``.
        dtype, device: of the uniforms (device defaults to the generator's, else the CPU).

    Returns:
        ``(n, ...)``: icdf(U).
    """
    check_callable(icdf, "icdf", "u -> F^-1(u)")
    n = check_int(n, "n", low=1)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype; got {dtype!r}")
    device = torch.device(device) if device is not None else (generator.device if isinstance(generator, torch.Generator)
                                                             else torch.device("cpu"))
    check_generator(generator, device)
    u = _uniform_open((n,), dtype=dtype, device=device, generator=generator)
    x = icdf(u)
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] != n:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"icdf must return a tensor of shape ({n}, ...) for {n} uniforms; got {got}")
    return x


def _log_values(fn, x, name: str, m: int) -> torch.Tensor:
    value = fn(x)
    if not isinstance(value, torch.Tensor) or value.shape != (m,):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must return ({m},) log-densities for {m} points; got {got}")
    return value


def _proposals(proposal_sample, m: int, generator) -> torch.Tensor:
    x = proposal_sample(m, generator)
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] != m:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"proposal_sample must return a tensor of shape ({m}, ...) when asked for {m} draws; got {got}")
    return x


def rejection_sample(log_target: LogDensity, proposal_sample, proposal_log_prob: LogDensity, log_M: float, n: int,
                     generator: torch.Generator | None = None, max_rounds: int = 100, *,
                     warn: bool = True) -> RejectionResult:
    r"""n draws from p = p̃/Z by rejection from a proposal q with envelope p̃ ≤ M q.

    Each proposal x ~ q is kept when log u < log p̃(x) − log M − log q(x), u ~ U(0, 1) (drawn as
    −log u ~ Exp(1)). Correctness:
    (x, u·M q(x)) is uniform under the graph of M q; keeping the points below p̃ leaves a uniform
    point under the graph of p̃, whose abscissa has density p̃/Z = p. The acceptance probability is
    E_q[p̃/(M q)] = Z/M (1/M when p̃ is normalised): choose M as small as the envelope allows.

    **Invalid envelope.** Where p̃(x) > M q(x) the ratio exceeds 1 and x is always kept, so the
    kept points follow min(p̃, M q) / ∫ min(p̃, M q) — too few draws where p̃ sticks out. This
    function counts the proposals with a ratio above 1 (``envelope_violation``) and, when
    ``warn``, issues a ``RuntimeWarning``; a zero count does not prove the envelope valid.

    Proposals are drawn in vectorised rounds (the first of about ⌈1.1·n·M⌉ + 16, then sized by
    the measured acceptance rate, at most 2²² each); the kept points are the first n accepted,
    in proposal order. The acceptance rate counts every proposal drawn.

    Args:
        log_target: log p̃, ``(m, ...) -> (m,)``; may be unnormalised.
        proposal_sample: ``proposal_sample(m, generator) -> (m, ...)``, m draws from q.
        proposal_log_prob: log q, ``(m, ...) -> (m,)``, normalised.
        log_M: log M, a finite number, with p̃ ≤ M q everywhere.
        n: the number of draws wanted, a positive integer.
        generator: ``torch.Generator`` passed to ``proposal_sample`` and used for u (on the
            proposals' device).
        max_rounds: give up (``RuntimeError``) when n draws are not accepted after this many rounds.
        warn: warn when some proposal had p̃ > M q.

    Returns:
        :class:`RejectionResult` ``(samples (n, ...), acceptance_rate (), n_proposed,
        envelope_violation ())``.
    """
    check_callable(log_target, "log_target", "x -> log p~(x)")
    check_callable(proposal_sample, "proposal_sample", "(m, generator) -> m draws from q")
    check_callable(proposal_log_prob, "proposal_log_prob", "x -> log q(x)")
    log_M = check_number(log_M, "log_M")
    n = check_int(n, "n", low=1)
    max_rounds = check_int(max_rounds, "max_rounds", low=1)
    warn = check_bool(warn, "warn")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    kept: list[torch.Tensor] = []
    n_kept = n_proposed = n_accepted = n_violations = 0
    rate = math.exp(-log_M) if log_M > -700 else 1.0
    for _ in range(max_rounds):
        need = n - n_kept
        m = min(_MAX_ROUND, int(math.ceil(1.1 * need / max(min(rate, 1.0), 1.0 / _MAX_ROUND))) + 16)
        x = _proposals(proposal_sample, m, generator)
        check_generator(generator, x.device)
        with torch.no_grad():
            log_ratio = _log_values(log_target, x, "log_target", m) - log_M - _log_values(
                proposal_log_prob, x, "proposal_log_prob", m)
            accept = _accept(log_ratio, generator)
        n_proposed += m
        n_violations += int((log_ratio > 0).sum())
        n_accepted += int(accept.sum())
        chosen = x[accept][:need]
        kept.append(chosen)
        n_kept += chosen.shape[0]
        rate = n_accepted / n_proposed
        if n_kept >= n:
            break
    else:
        raise RuntimeError(f"rejection_sample accepted only {n_kept} of the {n} draws asked for in max_rounds="
                           f"{max_rounds} rounds ({n_proposed} proposals, acceptance rate {n_accepted / n_proposed:.3g}); "
                           "lower log_M or use a proposal closer to the target")
    violation = n_violations / n_proposed
    if warn and n_violations:
        warnings.warn(f"the envelope p~ <= M q fails: {violation:.3g} of the {n_proposed} proposals had "
                      "p~(x) > M q(x); the samples follow min(p~, M q) normalised, not p", RuntimeWarning, stacklevel=2)
    samples = torch.cat(kept)
    dtype = samples.dtype if samples.is_floating_point() else torch.float64
    return RejectionResult(samples, torch.tensor(n_accepted / n_proposed, dtype=dtype, device=samples.device),
                           n_proposed, torch.tensor(violation, dtype=dtype, device=samples.device))


def importance_estimate(f: Callable[[torch.Tensor], torch.Tensor], log_target: LogDensity, proposal_sample,
                        proposal_log_prob: LogDensity, n: int, generator: torch.Generator | None = None,
                        self_normalised: bool = False) -> ImportanceResult:
    r"""Importance-sampling estimate of E_p[f] from n draws x_i ~ q, with its standard error and ESS.

    With weights w_i = p(x_i) / q(x_i) (computed as exp(log p − log q)):

    * plain (``self_normalised=False``): μ̂ = (1/n) Σ w_i f(x_i), unbiased for E_q[w f] = E_p[f] when
      p is normalised and q > 0 wherever p f ≠ 0; SE = sd(w f) / √n. For an unnormalised p̃ it
      estimates Z·E_p[f] (f ≡ 1 estimates Z).
    * self-normalised: μ̂ = Σ w_i f(x_i) / Σ w_i, which needs p only up to a constant (Z cancels);
      consistent, with a bias of order 1/n; delta-method SE = √(Σ w_i² (f(x_i) − μ̂)²) / Σ w_i.

    ESS = (Σ w_i)² / Σ w_i² ∈ [1, n] (Kish's effective sample size, computed in log space): n for
    equal weights, 1 when one weight dominates.

    Args:
        f: ``(n, ...) -> (n, ...)``, the integrand at every draw (trailing dimensions estimated jointly).
        log_target: log p (or log p̃), ``(n, ...) -> (n,)``.
        proposal_sample: ``proposal_sample(n, generator) -> (n, ...)``.
        proposal_log_prob: log q, ``(n, ...) -> (n,)``.
        n: the number of draws, at least 2.
        generator: ``torch.Generator`` passed to ``proposal_sample``.
        self_normalised: use the self-normalised estimator.

    Returns:
        :class:`ImportanceResult` ``(estimate, standard_error, ess)``, the first two of the shape of
        one f value.
    """
    check_callable(f, "f", "x -> f(x)")
    check_callable(log_target, "log_target", "x -> log p(x)")
    check_callable(proposal_sample, "proposal_sample", "(n, generator) -> n draws from q")
    check_callable(proposal_log_prob, "proposal_log_prob", "x -> log q(x)")
    n = check_int(n, "n", low=2)
    self_normalised = check_bool(self_normalised, "self_normalised")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    x = _proposals(proposal_sample, n, generator)
    log_w = _log_values(log_target, x, "log_target", n) - _log_values(proposal_log_prob, x, "proposal_log_prob", n)
    values = f(x)
    if not isinstance(values, torch.Tensor) or values.dim() < 1 or values.shape[0] != n:
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"f must return a tensor of shape ({n}, ...) for {n} draws; got {got}")
    dtype = torch.promote_types(values.dtype, log_w.dtype)
    values, log_w = values.to(dtype), log_w.to(dtype)
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
    w = torch.exp(log_w).reshape(n, *([1] * (values.dim() - 1)))
    if self_normalised:
        # weights relative to the largest one: the same ratios, no overflow
        w_rel = torch.exp(log_w - log_w.max()).reshape(w.shape)
        total = w_rel.sum(0)
        estimate = (w_rel * values).sum(0) / total
        se = torch.sqrt((w_rel.pow(2) * (values - estimate).pow(2)).sum(0)) / total
    else:
        weighted = w * values
        estimate = weighted.mean(0)
        se = weighted.std(0) / math.sqrt(n)
    return ImportanceResult(estimate, se, ess)


# --------------------------------------------------------------------------------------------
# finite Markov chains
# --------------------------------------------------------------------------------------------


def _transition_matrix(P) -> torch.Tensor:
    P = as_float_tensor(P, "P")
    check_square(P, "P")
    if P.dim() != 2:
        raise ValueError(f"P must have shape (S, S) (one transition matrix); got shape {tuple(P.shape)}")
    check_probabilities(P, "P")   # each row a distribution over the next state
    return P


def stationary_distribution(P) -> torch.Tensor:
    r"""The stationary distribution π of a transition matrix: πP = π, Σ_i π_i = 1.

    π is a left eigenvector of P for eigenvalue 1; equivalently (I − P)ᵀ πᵀ = 0. Those S equations
    have rank S − 1 when the chain is irreducible (π unique), so this solves the S + 1 equations
    [(I − P)ᵀ; 1ᵀ] π = [0; 1] by least squares (exact up to rounding). A reducible chain (more than
    one stationary distribution) raises ``ValueError``.

    Args:
        P: ``(S, S)``, P_ij = P(X_{t+1} = j | X_t = i), rows summing to 1.

    Returns:
        ``(S,)`` π, non-negative, summing to 1.
    """
    P = _transition_matrix(P)
    S = P.shape[0]
    eye = torch.eye(S, dtype=P.dtype, device=P.device)
    A = torch.cat([(eye - P).T, torch.ones(1, S, dtype=P.dtype, device=P.device)])
    b = torch.zeros(S + 1, 1, dtype=P.dtype, device=P.device)
    b[-1] = 1
    sv = torch.linalg.svdvals(A)
    if not bool(sv[-1] > 100 * S * torch.finfo(P.dtype).eps * sv[0]):
        raise ValueError("P has more than one stationary distribution (the chain is reducible: some states do not "
                         "communicate); π is not unique")
    pi = torch.linalg.pinv(A) @ b
    pi = pi.squeeze(-1).clamp(min=0)
    return pi / pi.sum()


def check_detailed_balance(P, pi, *, atol: float | None = None) -> tuple[bool, torch.Tensor]:
    r"""Whether π_i P_ij = π_j P_ji for all i, j (the chain is reversible with respect to π).

    Detailed balance implies stationarity: Σ_i π_i P_ij = Σ_i π_j P_ji = π_j. The converse fails:
    a chain can leave π invariant by circulating probability (π_i P_ij ≠ π_j P_ji).

    Args:
        P: ``(S, S)`` transition matrix.
        pi: ``(S,)`` probability vector.
        atol: tolerance on the flux difference (default 1e-12 in float64, 1e-6 in float32).

    Returns:
        ``(holds, violation)``: a Python bool, and ``()`` max_ij |π_i P_ij − π_j P_ji|.
    """
    P = _transition_matrix(P)
    pi = as_float_tensor(pi, "pi", like=P)
    S = P.shape[0]
    if pi.shape != (S,):
        raise ValueError(f"pi must have shape ({S},) to match P of shape ({S}, {S}); got shape {tuple(pi.shape)}")
    check_same_device(P=P, pi=pi)
    check_probabilities(pi, "pi")
    if atol is None:
        atol = 1e-12 if torch.promote_types(P.dtype, pi.dtype) == torch.float64 else 1e-6
    atol = check_number(atol, "atol", low=0)
    flux = pi[:, None] * P
    violation = (flux - flux.T).abs().max()
    return bool(violation <= atol), violation


def simulate_chain(P, x0, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""C trajectories of a finite Markov chain, all chains advanced at once.

    Each step draws u ~ U(0, 1) per chain and moves to the first state j with
    Σ_{k ≤ j} P_{x k} > u (inverse CDF on the current row), so P(next = j) = P_{x j}.

    Args:
        P: ``(S, S)`` transition matrix.
        x0: ``(C,)`` int64 starting states in 0..S−1 (or one int for one chain).
        steps: the number of transitions T ≥ 1.
        generator: ``torch.Generator`` on P's device.

    Returns:
        ``(C, T + 1)`` int64 states, column 0 the start.
    """
    P = _transition_matrix(P)
    S = P.shape[0]
    steps = check_int(steps, "steps", low=1)
    if isinstance(x0, int) and not isinstance(x0, bool):
        x0 = torch.tensor([x0], device=P.device)
    if not isinstance(x0, torch.Tensor) or x0.dtype not in (torch.int64, torch.int32) or x0.dim() != 1:
        got = f"{x0.dtype} of shape {tuple(x0.shape)}" if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise TypeError(f"x0 must be an integer tensor of shape (C,) holding states (or an int); got {got}")
    check_same_device(P=P, x0=x0)
    if x0.numel() < 1 or bool((x0 < 0).any()) or bool((x0 >= S).any()):
        raise ValueError(f"x0 must hold at least one state, each in 0..{S - 1}; got {x0.tolist()[:10]}")
    check_generator(generator, P.device)
    cdf = P.cumsum(1)
    out = torch.empty(x0.shape[0], steps + 1, dtype=torch.int64, device=P.device)
    x = x0.long()
    out[:, 0] = x
    for t in range(1, steps + 1):
        u = torch.rand(x.shape[0], 1, dtype=P.dtype, device=P.device, generator=generator)
        x = torch.searchsorted(cdf[x], u, right=True).squeeze(1).clamp_(max=S - 1)
        out[:, t] = x
    return out


# --------------------------------------------------------------------------------------------
# Metropolis–Hastings, Langevin, MALA
# --------------------------------------------------------------------------------------------


def random_walk_proposal(step_size: float) -> Proposal:
    r"""The Gaussian random walk y = x + σ ξ, q(y | x) = N(y; x, σ² I) (symmetric: q(y|x) = q(x|y)).

    Args:
        step_size: σ > 0.

    Returns:
        A :class:`Proposal`.
    """
    sigma = check_number(step_size, "step_size", low=0, closed_low=False)

    def sample(x, generator):
        return x + sigma * torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)

    def log_prob(y, x):
        return -0.5 * ((y - x) ** 2).sum(-1) / sigma**2

    return Proposal(sample, log_prob)


def langevin_proposal(score_fn: ScoreFn, step_size: float) -> Proposal:
    r"""The Langevin proposal y = x + (ε/2) ∇log p(x) + √ε ξ: q(y | x) = N(y; x + (ε/2) s(x), ε I).

    Not symmetric: q(x | y) ≠ q(y | x), so MH needs the full Hastings ratio (this is MALA; :func:`mala`
    does the same with one score evaluation per step instead of three).

    Args:
        score_fn: s(x) = ∇_x log p(x), ``(C, D) -> (C, D)``.
        step_size: ε > 0 (the noise variance; see the module's convention).

    Returns:
        A :class:`Proposal`.
    """
    check_callable(score_fn, "score_fn", "x -> grad log p(x)")
    eps = check_number(step_size, "step_size", low=0, closed_low=False)

    def mean(x):
        return x + 0.5 * eps * _like_states(score_fn(x), "score_fn", x)

    def sample(x, generator):
        return mean(x) + math.sqrt(eps) * torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)

    def log_prob(y, x):
        return -0.5 * ((y - mean(x)) ** 2).sum(-1) / eps

    return Proposal(sample, log_prob)


def _log_p(log_target, x) -> torch.Tensor:
    with torch.no_grad():
        return _per_chain(log_target(x), "log_target", x, "log-densities").detach()


def _check_start(logp: torch.Tensor) -> None:
    if not bool(torch.isfinite(logp).all()):
        bad = torch.nonzero(~torch.isfinite(logp)).flatten().tolist()[:5]
        raise ValueError(f"log_target must be finite at every starting state x0; it is not for chain(s) {bad}")


def metropolis_hastings(log_target: LogDensity, x0, steps: int, step_size: float = 1.0,
                        generator: torch.Generator | None = None, *, proposal: Proposal | None = None,
                        burn_in: int = 0, thin: int = 1, trajectory: bool = True) -> ChainResult:
    r"""Metropolis–Hastings for C chains at once.

    From x, propose y ~ q(· | x) and move to y with probability

    .. math::
        \alpha(x, y) = \min\Big(1,\ \frac{\tilde p(y)\, q(x \mid y)}{\tilde p(x)\, q(y \mid x)}\Big)

    (tested as E > −log α with E ~ Exp(1), i.e. u < α for u = e^{−E} ~ U(0, 1)); otherwise stay at x (the repeated state counts as a
    draw). Correctness: the probability flow p(x) q(y|x) α(x, y) = min(p(x) q(y|x), p(y) q(x|y))
    is symmetric in x and y — detailed balance — so p is invariant; only the ratio p̃(y)/p̃(x)
    enters, so Z is never needed. A proposal that is not symmetric needs the factor
    q(x|y)/q(y|x): without it the chain samples another distribution. Proposals where log p̃ is
    −∞ or NaN are rejected.

    Args:
        log_target: log p̃, ``(C, D) -> (C,)``, finite at x0.
        x0: ``(C, D)`` starting states, one row per chain.
        steps: the number of MH steps T ≥ 1.
        step_size: σ of the default Gaussian random walk y = x + σ ξ (ignored with ``proposal``).
        generator: ``torch.Generator`` on x0's device.
        proposal: a :class:`Proposal` (e.g. :func:`langevin_proposal`); None = the random walk,
            whose ratio q(x|y)/q(y|x) = 1 is skipped.
        burn_in: steps whose states are not kept; thin: keep every ``thin``-th state after it.
        trajectory: keep the states (``(C, (T − burn_in) // thin, D)``); False returns the final states.

    Returns:
        :class:`ChainResult` ``(samples, acceptance_rate (C,))``.
    """
    check_callable(log_target, "log_target", "x -> log p~(x)")
    x = _states(x0)
    steps, burn_in, thin, trajectory = _schedule(steps, burn_in, thin, trajectory)
    check_generator(generator, x.device)
    if proposal is None:
        sigma = check_number(step_size, "step_size", low=0, closed_low=False)
    elif not isinstance(proposal, Proposal):
        raise TypeError(f"proposal must be a dgm.sampling.Proposal (sample, log_prob) or None; "
                        f"got {type(proposal).__name__}")
    logp = _log_p(log_target, x)
    _check_start(logp)
    C = x.shape[0]
    accepted = torch.zeros(C, dtype=torch.int64, device=x.device)
    record = _Recorder(x, steps, burn_in, thin, trajectory)
    for t in range(1, steps + 1):
        with torch.no_grad():
            if proposal is None:
                y = x + sigma * torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
            else:
                y = _like_states(proposal.sample(x, generator), "proposal.sample", x).detach()
            logp_y = _log_p(log_target, y)
            log_alpha = logp_y - logp
            if proposal is not None:   # the Hastings factor log q(x | y) − log q(y | x)
                log_alpha = log_alpha + (_per_chain(proposal.log_prob(x, y), "proposal.log_prob", x, "log-densities")
                                         - _per_chain(proposal.log_prob(y, x), "proposal.log_prob", x, "log-densities"))
            accept = _accept(log_alpha, generator)      # NaN or −∞ log α: rejected
            x = torch.where(accept[:, None], y, x)
            logp = torch.where(accept, logp_y, logp)
            accepted += accept
        record(t, x)
    return record.result(x, accepted, steps)


def _score_and_log_p(log_target, score_fn, x):
    """(log p̃(x) (C,), ∇log p̃(x) (C, D)), the score by autograd when ``score_fn`` is None."""
    if score_fn is not None:
        logp = _log_p(log_target, x)
        with torch.no_grad():
            score = _like_states(score_fn(x), "score_fn", x).detach()
        return logp, score
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        lp = _per_chain(log_target(xr), "log_target", x, "log-densities")
        (score,) = torch.autograd.grad(lp.sum(), xr)
    return lp.detach(), score.detach()


def langevin(score_fn: ScoreFn, x0, steps: int, step_size: float, generator: torch.Generator | None = None, *,
             burn_in: int = 0, thin: int = 1, trajectory: bool = True) -> ChainResult:
    r"""Unadjusted Langevin algorithm (ULA) for C chains: x ← x + (ε/2) ∇log p(x) + √ε ξ.

    ε = ``step_size`` is the variance of the Gaussian noise ξ·√ε and the drift is ε/2 times the
    score (the module's convention). As ε → 0 the chain follows the Langevin diffusion, which
    leaves p invariant; for ε > 0 there is no accept/reject and the chain's stationary law is off
    by O(ε): for p = N(0, s²) its variance is s²/(1 − ε/(4s²)). Only the score is needed, so an
    unnormalised or learned density (a score network) works.

    Args:
        score_fn: s(x) = ∇_x log p(x), ``(C, D) -> (C, D)``.
        x0: ``(C, D)`` starting states.
        steps: T ≥ 1; step_size: ε > 0.
        generator: ``torch.Generator`` on x0's device.
        burn_in, thin, trajectory: as in :func:`metropolis_hastings`.

    Returns:
        :class:`ChainResult`; the acceptance rate is 1 (every move is taken).
    """
    check_callable(score_fn, "score_fn", "x -> grad log p(x)")
    x = _states(x0)
    steps, burn_in, thin, trajectory = _schedule(steps, burn_in, thin, trajectory)
    eps = check_number(step_size, "step_size", low=0, closed_low=False)
    check_generator(generator, x.device)
    record = _Recorder(x, steps, burn_in, thin, trajectory)
    noise_scale = math.sqrt(eps)
    for t in range(1, steps + 1):
        with torch.no_grad():
            drift = _like_states(score_fn(x), "score_fn", x).detach()
            x = x + 0.5 * eps * drift + noise_scale * torch.randn(x.shape, dtype=x.dtype, device=x.device,
                                                                  generator=generator)
        record(t, x)
    steps_taken = torch.full((x.shape[0],), steps, dtype=torch.int64, device=x.device)
    return record.result(x, steps_taken, steps)


def mala(log_target: LogDensity, x0, steps: int, step_size: float, generator: torch.Generator | None = None, *,
         score_fn: ScoreFn | None = None, burn_in: int = 0, thin: int = 1, trajectory: bool = True) -> ChainResult:
    r"""Metropolis-adjusted Langevin algorithm (MALA) for C chains.

    Proposal y = x + (ε/2) s(x) + √ε ξ with s = ∇log p̃, i.e. q(y | x) = N(y; x + (ε/2) s(x), ε I),
    accepted with probability min(1, p̃(y) q(x|y) / (p̃(x) q(y|x))), where

    .. math::
        \log\frac{q(x \mid y)}{q(y \mid x)} = \frac{\|y - x - \tfrac\varepsilon2 s(x)\|^2
        - \|x - y - \tfrac\varepsilon2 s(y)\|^2}{2\varepsilon}.

    It is :func:`metropolis_hastings` with :func:`langevin_proposal` (so p is exactly invariant, the
    bias of :func:`langevin` is gone), with log p̃ and s cached: one evaluation of each per step.

    Args:
        log_target: log p̃, ``(C, D) -> (C,)``, finite at x0.
        x0: ``(C, D)`` starting states.
        steps: T ≥ 1; step_size: ε > 0 (the proposal's noise variance).
        generator: ``torch.Generator`` on x0's device.
        score_fn: ∇_x log p̃, ``(C, D) -> (C, D)``; None computes it by autograd of ``log_target``.
        burn_in, thin, trajectory: as in :func:`metropolis_hastings`.

    Returns:
        :class:`ChainResult` ``(samples, acceptance_rate (C,))``.
    """
    check_callable(log_target, "log_target", "x -> log p~(x)")
    if score_fn is not None:
        check_callable(score_fn, "score_fn", "x -> grad log p(x)")
    x = _states(x0)
    steps, burn_in, thin, trajectory = _schedule(steps, burn_in, thin, trajectory)
    eps = check_number(step_size, "step_size", low=0, closed_low=False)
    check_generator(generator, x.device)
    logp, score = _score_and_log_p(log_target, score_fn, x)
    _check_start(logp)
    C = x.shape[0]
    accepted = torch.zeros(C, dtype=torch.int64, device=x.device)
    record = _Recorder(x, steps, burn_in, thin, trajectory)
    half, root = 0.5 * eps, math.sqrt(eps)
    for t in range(1, steps + 1):
        xi = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        y = x + half * score + root * xi
        logp_y, score_y = _score_and_log_p(log_target, score_fn, y)
        with torch.no_grad():
            back = x - y - half * score_y
            log_q_ratio = 0.5 * (xi * xi).sum(-1) - 0.5 * (back * back).sum(-1) / eps   # log q(x|y) − log q(y|x)
            log_alpha = logp_y - logp + log_q_ratio
            accept = _accept(log_alpha, generator)
            x = torch.where(accept[:, None], y, x)
            logp = torch.where(accept, logp_y, logp)
            score = torch.where(accept[:, None], score_y, score)
            accepted += accept
        record(t, x)
    return record.result(x, accepted, steps)


# --------------------------------------------------------------------------------------------
# Gibbs sampling
# --------------------------------------------------------------------------------------------


def gibbs_bivariate_gaussian(rho: float, x0, steps: int, generator: torch.Generator | None = None, *,
                             mean=(0.0, 0.0), std=(1.0, 1.0), burn_in: int = 0, thin: int = 1,
                             trajectory: bool = True) -> ChainResult:
    r"""Systematic-scan Gibbs sampling of N(μ, Σ) in 2-D with correlation ρ, for C chains.

    The exact conditionals of a bivariate Gaussian with standard deviations σ_1, σ_2:

    .. math::
        x_1 \mid x_2 \sim \mathcal N\big(\mu_1 + \rho\tfrac{\sigma_1}{\sigma_2}(x_2 - \mu_2),\
        \sigma_1^2 (1 - \rho^2)\big), \quad\text{and symmetrically for } x_2 \mid x_1 .

    One step updates x_1 then x_2 (a sweep); each update keeps p invariant (it redraws one
    coordinate from p's own conditional), so the sweep does. In standardised coordinates each
    coordinate's chain is AR(1) with coefficient ρ² per sweep: mixing slows as |ρ| → 1.

    Args:
        rho: the correlation, in (−1, 1).
        x0: ``(C, 2)`` starting states.
        steps: sweeps T ≥ 1.
        generator: ``torch.Generator`` on x0's device.
        mean: (μ_1, μ_2); std: (σ_1, σ_2), positive.
        burn_in, thin, trajectory: as in :func:`metropolis_hastings`.

    Returns:
        :class:`ChainResult` with acceptance rate 1.
    """
    rho = check_number(rho, "rho", low=-1, high=1, closed_low=False, closed_high=False)
    x = _states(x0)
    if x.shape[1] != 2:
        raise ValueError(f"x0 must have shape (C, 2) for a bivariate Gaussian; got shape {tuple(x.shape)}")
    steps, burn_in, thin, trajectory = _schedule(steps, burn_in, thin, trajectory)
    check_generator(generator, x.device)
    if not isinstance(mean, (tuple, list)) or len(mean) != 2:
        raise ValueError(f"mean must be a pair (mu_1, mu_2); got {mean!r}")
    if not isinstance(std, (tuple, list)) or len(std) != 2:
        raise ValueError(f"std must be a pair (sigma_1, sigma_2); got {std!r}")
    m1, m2 = (check_number(m, f"mean[{i}]") for i, m in enumerate(mean))
    s1, s2 = (check_number(s, f"std[{i}]", low=0, closed_low=False) for i, s in enumerate(std))
    c = math.sqrt(1 - rho * rho)
    C = x.shape[0]
    x1, x2 = x[:, 0].clone(), x[:, 1].clone()
    record = _Recorder(x, steps, burn_in, thin, trajectory)
    for t in range(1, steps + 1):
        z = torch.randn(2, C, dtype=x.dtype, device=x.device, generator=generator)
        x1 = m1 + rho * s1 / s2 * (x2 - m2) + s1 * c * z[0]
        x2 = m2 + rho * s2 / s1 * (x1 - m1) + s2 * c * z[1]
        if record.trajectory:
            record(t, torch.stack([x1, x2], dim=1))
    final = torch.stack([x1, x2], dim=1)
    return record.result(final, torch.full((C,), steps, device=x.device), steps)


def _ising_neighbours(L: int, periodic: bool, device) -> torch.Tensor:
    """``(L², 4)`` flat indices of each site's up, down, left and right neighbours; L² (a padding
    column holding 0) where a free boundary has none."""
    idx = torch.arange(L * L, device=device).reshape(L, L)
    i, j = torch.meshgrid(torch.arange(L, device=device), torch.arange(L, device=device), indexing="ij")
    out = []
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ni, nj = i + di, j + dj
        if periodic:
            out.append(idx[ni % L, nj % L])
        else:
            inside = (ni >= 0) & (ni < L) & (nj >= 0) & (nj < L)
            out.append(torch.where(inside, idx[ni.clamp(0, L - 1), nj.clamp(0, L - 1)], torch.full_like(ni, L * L)))
    return torch.stack(out, dim=-1).reshape(L * L, 4)


def _spins(s, name: str = "s") -> torch.Tensor:
    s = as_float_tensor(s, name)
    if s.dim() != 3 or s.shape[1] != s.shape[2] or s.shape[1] < 2 or s.shape[0] < 1:
        raise ValueError(f"{name} must have shape (C, L, L) (C chains of L x L spins, L >= 2); got shape {tuple(s.shape)}")
    if not bool(((s == 1) | (s == -1)).all()):
        raise ValueError(f"{name} must hold spins -1 and +1 only")
    return s.detach()


def ising_energy(s, J: float = 1.0, h: float = 0.0, *, periodic: bool = True) -> torch.Tensor:
    r"""E(s) = −J Σ_⟨ij⟩ s_i s_j − h Σ_i s_i on an L × L grid of spins s_i ∈ {−1, +1}.

    ⟨ij⟩ runs over nearest-neighbour pairs: written as −(J/2) Σ_i s_i Σ_{j ∈ N(i)} s_j with N(i)
    the up, down, left and right neighbours (wrapping around when ``periodic``; missing at a free
    boundary). The Ising model is p(s) ∝ exp(−β E(s)). For L = 2 with periodic boundaries the up
    and down neighbours are the same site, and so each bond counts twice (as ``torch.roll`` does).

    Args:
        s: ``(C, L, L)`` spins ±1.
        J: the coupling; h: the external field.
        periodic: wrap around the edges.

    Returns:
        ``(C,)`` energies.
    """
    s = _spins(s)
    J = check_number(J, "J")
    h = check_number(h, "h")
    periodic = check_bool(periodic, "periodic")
    C, L, _ = s.shape
    flat = torch.cat([s.reshape(C, L * L), s.new_zeros(C, 1)], dim=1)
    nb = _ising_neighbours(L, periodic, s.device)
    field = flat[:, nb].sum(-1)                       # (C, L²)
    spins = flat[:, :-1]
    return -0.5 * J * (spins * field).sum(-1) - h * spins.sum(-1)


def gibbs_ising(s0, beta: float, steps: int, generator: torch.Generator | None = None, *, J: float = 1.0,
                h: float = 0.0, scan: str = "systematic", periodic: bool = True, burn_in: int = 0, thin: int = 1,
                trajectory: bool = True) -> ChainResult:
    r"""Single-site Gibbs sampling of the Ising model p(s) ∝ exp(−β E(s)) for C chains.

    The conditional of one spin given the others depends only on its neighbours' sum:

    .. math::
        p(s_i = +1 \mid s_{-i}) = \sigma\big(2\beta\,(J \textstyle\sum_{j \in N(i)} s_j + h)\big),
        \qquad \sigma(a) = 1/(1 + e^{-a}),

    (the ratio p(s_i = +1 | ·)/p(s_i = −1 | ·) = exp(2β(J Σ s_j + h))). Each update redraws one spin
    from its exact conditional, which leaves p invariant. One step is L² updates: the sites in
    raster order (``scan="systematic"``) or L² sites drawn uniformly at random, independently per
    chain (``"random"``).

    Args:
        s0: ``(C, L, L)`` starting spins ±1.
        beta: inverse temperature β ≥ 0.
        steps: sweeps T ≥ 1.
        generator: ``torch.Generator`` on s0's device.
        J, h, periodic: as in :func:`ising_energy`.
        scan: ``"systematic"`` or ``"random"``.
        burn_in, thin, trajectory: as in :func:`metropolis_hastings`.

    Returns:
        :class:`ChainResult`: samples ``(C, T', L, L)`` (or ``(C, L, L)``), acceptance rate 1.
    """
    s = _spins(s0, "s0")
    beta = check_number(beta, "beta", low=0)
    J = check_number(J, "J")
    h = check_number(h, "h")
    periodic = check_bool(periodic, "periodic")
    if scan not in ("systematic", "random"):
        raise ValueError(f"scan must be 'systematic' or 'random'; got {scan!r}")
    steps, burn_in, thin, trajectory = _schedule(steps, burn_in, thin, trajectory)
    check_generator(generator, s.device)
    C, L, _ = s.shape
    n_sites = L * L
    nb = _ising_neighbours(L, periodic, s.device)
    flat = torch.cat([s.reshape(C, n_sites), s.new_zeros(C, 1)], dim=1)
    rows = torch.arange(C, device=s.device)
    record = _Recorder(s, steps, burn_in, thin, trajectory)
    for t in range(1, steps + 1):
        u = torch.rand(n_sites, C, dtype=s.dtype, device=s.device, generator=generator)
        if scan == "random":
            sites = torch.randint(n_sites, (n_sites, C), device=s.device, generator=generator)
        for k in range(n_sites):
            if scan == "systematic":
                field = J * flat[:, nb[k]].sum(-1) + h
                flat[:, k] = torch.where(u[k] < torch.sigmoid(2 * beta * field), 1.0, -1.0)
            else:
                site = sites[k]
                field = J * flat[rows[:, None], nb[site]].sum(-1) + h
                flat[rows, site] = torch.where(u[k] < torch.sigmoid(2 * beta * field), 1.0, -1.0).to(s.dtype)
        record(t, flat[:, :n_sites].reshape(C, L, L))
    final = flat[:, :n_sites].reshape(C, L, L).clone()
    return record.result(final, torch.full((C,), steps, device=s.device), steps)


# --------------------------------------------------------------------------------------------
# diagnostics
# --------------------------------------------------------------------------------------------


def _chains(chains, name: str = "chains") -> torch.Tensor:
    x = as_float_tensor(chains, name)
    if x.dim() not in (2, 3) or x.shape[0] < 1 or x.shape[1] < 4:
        raise ValueError(f"{name} must have shape (C, T) or (C, T, D) with T >= 4 draws per chain; "
                         f"got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    return x.detach()


def _autocovariance(x: torch.Tensor) -> torch.Tensor:
    """Biased autocovariances γ_k = (1/T) Σ_t (x_t − x̄)(x_{t+k} − x̄), k = 0..T−1, along dim 1, by FFT."""
    T = x.shape[1]
    xc = x - x.mean(1, keepdim=True)
    n_fft = 1 << (2 * T - 1).bit_length()
    f = torch.fft.rfft(xc, n=n_fft, dim=1)
    return torch.fft.irfft(f * f.conj(), n=n_fft, dim=1)[:, :T] / T


def autocorrelation(chains, max_lag: int | None = None) -> torch.Tensor:
    r"""The sample autocorrelation ρ̂_k = γ̂_k / γ̂_0 of each chain, k = 0..max_lag.

    γ̂_k = (1/T) Σ_{t=1}^{T−k} (x_t − x̄)(x_{t+k} − x̄) (the biased estimator: positive
    semi-definite, the one ESS estimators use), computed for all lags at once by FFT. A constant
    chain has γ̂_0 = 0 and gives NaN.

    Args:
        chains: ``(C, T)`` or ``(C, T, D)``; T ≥ 4.
        max_lag: the largest lag, in [0, T − 1] (default T − 1).

    Returns:
        ``(C, max_lag + 1)`` or ``(C, max_lag + 1, D)``; entry 0 is 1.
    """
    x = _chains(chains)
    T = x.shape[1]
    max_lag = T - 1 if max_lag is None else check_int(max_lag, "max_lag", low=0, high=T - 1)
    acov = _autocovariance(x)
    return (acov / acov[:, :1])[:, : max_lag + 1]


def effective_sample_size(chains) -> torch.Tensor:
    r"""Effective sample size of C chains of T draws, by Geyer's initial monotone sequence.

    The multi-chain estimator of Stan and ArviZ (Gelman et al., BDA3 §11.5; without splitting
    chains and without rank normalisation): with γ̂_{k,m} the biased autocovariances of chain m,
    s_m² = γ̂_{0,m} T/(T−1), W = mean_m s_m², B/T = the variance of the chain means (0 for C = 1),
    var⁺ = (T−1)/T · W + B/T and

    .. math::
        \hat\rho_k = 1 - \frac{W - \overline{\hat\gamma_{k,\cdot}}}{\mathrm{var}^+},\qquad
        \hat\tau = -1 + 2\sum_{j=0}^{K-1} P_j,\qquad \mathrm{ESS} = \frac{C\,T}{\hat\tau},

    with the pair sums P_j = ρ̂_{2j} + ρ̂_{2j+1}, truncated before the first P_K ≤ 0 (the initial
    positive sequence: for a reversible chain the true P_j are positive and decreasing) and made
    non-increasing (P_j ← min_{i ≤ j} P_i). τ̂ is floored at 1/log10(CT) as in Stan. For an AR(1)
    chain with coefficient φ, τ = (1 + φ)/(1 − φ).

    Args:
        chains: ``(C, T)`` or ``(C, T, D)`` draws (chain, draw[, dimension]); T ≥ 4.

    Returns:
        ``()`` or ``(D,)`` the ESS of each coordinate's mean (NaN for a constant coordinate).
    """
    x = _chains(chains)
    squeeze = x.dim() == 2
    if squeeze:
        x = x.unsqueeze(-1)
    C, T, D = x.shape
    acov = _autocovariance(x)                                   # (C, T, D)
    chain_var = acov[:, 0] * T / (T - 1)                        # (C, D)
    W = chain_var.mean(0)
    var_plus = W * (T - 1) / T
    if C > 1:
        var_plus = var_plus + x.mean(1).var(0)
    rho = 1 - (W - acov.mean(0)) / var_plus                     # (T, D)
    rho[0] = 1.0
    K = T // 2
    pairs = rho[0:2 * K:2] + rho[1:2 * K:2]                      # (K, D)
    keep = torch.cumprod((pairs > 0).to(x.dtype), dim=0)
    monotone = torch.cummin(pairs, dim=0).values
    tau = -1 + 2 * (keep * monotone).sum(0)
    tau = torch.clamp(tau, min=1 / math.log10(C * T))
    ess = C * T / tau
    ess = torch.where(var_plus > 0, ess, torch.full_like(ess, float("nan")))
    return ess[0] if squeeze else ess


def mean_z_score(samples, true_mean, ess=None) -> torch.Tensor:
    r"""z = (x̄ − μ) / (sd / √ESS): how many Monte Carlo standard errors the sample mean is from μ.

    x̄ and sd are the mean and standard deviation of all draws of all chains; the standard error
    of x̄ is sd/√ESS (the CLT for Markov chains). For a correct sampler z is approximately N(0, 1),
    so |z| < 6 fails with probability about 2e-9 per coordinate.

    Args:
        samples: ``(C, T)`` or ``(C, T, D)`` draws.
        true_mean: ``()`` or ``(D,)`` the exact mean μ.
        ess: the effective sample size, ``()`` or ``(D,)``; None computes :func:`effective_sample_size`.

    Returns:
        ``()`` or ``(D,)`` z-scores.
    """
    x = _chains(samples, "samples")
    mu = as_float_tensor(true_mean, "true_mean", like=x)
    event = x.shape[2:]
    if tuple(mu.shape) not in (tuple(event), ()):
        raise ValueError(f"true_mean must have shape {tuple(event)} (one mean per coordinate); got shape {tuple(mu.shape)}")
    check_same_device(samples=x, true_mean=mu)
    ess = effective_sample_size(x) if ess is None else as_float_tensor(ess, "ess", like=x)
    check_same_device(samples=x, ess=ess)
    if not bool((ess > 0).all()):
        raise ValueError(f"ess must be positive; got {ess}")
    flat = x.reshape(-1, *event)
    return (flat.mean(0) - mu) / (flat.std(0) / torch.sqrt(ess))
