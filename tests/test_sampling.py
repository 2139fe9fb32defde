"""Tests of dgm.sampling: inverse CDF, rejection, importance sampling, Markov chains, MCMC, diagnostics.

Every sampler is judged by a statistical test against an independent value, never by one draw:

* Kolmogorov–Smirnov (``scipy.stats.kstest``) and chi-square (``scipy.stats.chisquare``) tests against
  scipy's distributions or an exact enumeration must give p > ``P_MIN`` = 1e-5: a correct sampler
  fails one such check with probability 1e-5. They are applied to *independent* draws: the final
  states of many independent chains (the chain dimension is a batch), never to correlated draws.
* Moments are compared in units of their Monte Carlo standard error (SE from the effective sample
  size for correlated draws): |z| < ``Z_MAX`` = 6 fails with probability 2e-9 for a correct sampler
  (normal tails; the sample sizes make the CLT accurate).

The seeds are fixed, so every test is deterministic; the rates above say how unlucky a fixed seed
would have to be. Sweeps run seeds 0..7. The oracles: scipy.stats, numpy matrix powers, an
enumeration of all 2^9 Ising states written with numpy, and closed forms derived in the comments
(the AR(1) autocorrelation time, the stationary variance of ULA on a Gaussian).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import torch

from conftest import requires_cuda
from dgm import sampling as S
from dgm.device import manual_seed

f64 = torch.float64
#: smallest p-value a KS or chi-square test of a correct sampler may give (false alarm 1e-5 per check)
P_MIN = 1e-5
#: largest |z| of a moment in Monte Carlo standard errors (false alarm 2e-9 per check)
Z_MAX = 6.0
SEEDS = range(8)


@pytest.fixture(autouse=True)
def one_thread():
    """Run every test on one CPU thread, and restore the count afterwards. The tensors here are small (hundreds
    to thousands of chains): a second thread gains nothing, and on a busy 2-core machine two OpenMP threads
    wait for each other at every float64 exp or log (MKL) — the MCMC loops ran 20 to 50 times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ks(samples, cdf) -> float:
    return scipy.stats.kstest(np.asarray(samples, dtype=np.float64).ravel(), cdf).pvalue


def chi2_p(observed_labels, probabilities) -> float:
    """Chi-square p-value of labels 0..K−1 against probabilities (bins with expected count < 5 merged
    into their neighbour, so the chi-square approximation holds)."""
    n = len(observed_labels)
    counts = np.bincount(observed_labels, minlength=len(probabilities)).astype(float)
    expected = n * np.asarray(probabilities, dtype=float)
    obs, exp, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(counts, expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5:
            obs.append(acc_o)
            exp.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0:
        obs[-1] += acc_o
        exp[-1] += acc_e
    return scipy.stats.chisquare(obs, exp).pvalue


# --------------------------------------------------------------------------------------------
# inverse CDF
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_inverse_cdf_exponential_and_truncated_normal_match_scipy(seed):
    g = manual_seed(seed)
    x = S.inverse_cdf_sample(lambda u: -torch.log1p(-u) / 2.0, 20_000, g)   # F⁻¹ of Exp(rate 2)
    assert x.shape == (20_000,) and x.dtype == f64
    assert ks(x, scipy.stats.expon(scale=0.5).cdf) > P_MIN
    # N(0, 1) truncated to [a, b]: F⁻¹(u) = Φ⁻¹(Φ(a) + u (Φ(b) − Φ(a)))
    a, b = -0.5, 2.0
    lo, hi = scipy.stats.norm.cdf(a), scipy.stats.norm.cdf(b)
    y = S.inverse_cdf_sample(lambda u: torch.special.ndtri(lo + u * (hi - lo)), 20_000, g)
    assert y.min() >= a and y.max() <= b
    assert ks(y, scipy.stats.truncnorm(a, b).cdf) > P_MIN


@pytest.mark.parametrize("seed", SEEDS)
def test_inverse_cdf_needs_no_continuity_the_generalised_inverse_samples_a_binomial(seed):
    """003 §4.1.1 says F must be continuous and strictly increasing; F⁻¹(u) = min{k : F(k) ≥ u} works for any CDF."""
    pmf = scipy.stats.binom(10, 0.3).pmf(np.arange(11))
    cdf = torch.tensor(np.cumsum(pmf), dtype=f64)
    k = S.inverse_cdf_sample(lambda u: torch.searchsorted(cdf, u), 20_000, manual_seed(seed))
    assert chi2_p(k.numpy(), pmf) > P_MIN


def test_normal_draws_in_place_of_uniform_ones_break_inverse_cdf():
    """003 §4.1.1 suggests np.random.randn() as the uniform generator: most of its draws fall outside [0, 1],
    and the same F⁻¹ of Exp(1) that samples correctly from uniforms gives negative values and NaN."""
    def icdf(u):
        return -torch.log1p(-u)

    g = manual_seed(0)
    assert ks(S.inverse_cdf_sample(icdf, 20_000, g), scipy.stats.expon.cdf) > P_MIN
    u = torch.randn(20_000, generator=g, dtype=f64)
    assert float(((u < 0) | (u > 1)).double().mean()) > 0.6
    x = icdf(u)
    assert bool(torch.isnan(x).any()) and ks(x[torch.isfinite(x)], scipy.stats.expon.cdf) < 1e-10


# --------------------------------------------------------------------------------------------
# rejection sampling
# --------------------------------------------------------------------------------------------


def uniform_proposal(m, generator):
    return torch.rand(m, dtype=f64, generator=generator)


def beta_log_pdf(x, a=2.0, b=5.0):
    return torch.tensor(scipy.stats.beta(a, b).logpdf(x.numpy()), dtype=f64)


@pytest.mark.parametrize("seed", SEEDS)
def test_rejection_samples_a_beta_and_accepts_one_in_m(seed):
    M = scipy.stats.beta(2, 5).pdf(0.2)   # the density's maximum, at the mode (a − 1)/(a + b − 2): the tightest envelope
    out = S.rejection_sample(beta_log_pdf, uniform_proposal, lambda x: torch.zeros_like(x), math.log(M), 20_000,
                             manual_seed(seed))
    assert out.samples.shape == (20_000,) and float(out.envelope_violation) == 0.0
    assert ks(out.samples, scipy.stats.beta(2, 5).cdf) > P_MIN
    rate, n = float(out.acceptance_rate), out.n_proposed
    se = math.sqrt((1 / M) * (1 - 1 / M) / n)   # accepted / proposed is a binomial proportion
    assert abs(rate - 1 / M) < Z_MAX * se


@pytest.mark.parametrize("seed", SEEDS)
def test_rejection_with_an_unnormalised_target_accepts_z_over_m(seed):
    """p̃(x) = x (1 − x)^4 has Z = B(2, 5) = 1/30 and maximum 0.2 · 0.8^4 at x = 0.2."""
    Z, M = 1 / 30, 0.2 * 0.8**4
    out = S.rejection_sample(lambda x: torch.log(x) + 4 * torch.log1p(-x), uniform_proposal,
                             lambda x: torch.zeros_like(x), math.log(M), 20_000, manual_seed(seed))
    assert ks(out.samples, scipy.stats.beta(2, 5).cdf) > P_MIN
    r = Z / M
    assert abs(float(out.acceptance_rate) - r) < Z_MAX * math.sqrt(r * (1 - r) / out.n_proposed)


@pytest.mark.parametrize("seed", SEEDS)
def test_rejection_from_an_exponential_envelope_samples_a_normal_tail(seed):
    """N(0, 1) truncated to x > 2 from the shifted Exp(λ = 2) proposal: p̃/q = exp(−x²/2 + 2(x − 2))/2 is largest at x = 2."""
    lam, a = 2.0, 2.0
    log_M = -a * a / 2 - math.log(lam)

    def sample(m, generator):
        return a - torch.log1p(-torch.rand(m, dtype=f64, generator=generator)) / lam

    out = S.rejection_sample(lambda x: -0.5 * x * x, sample, lambda x: math.log(lam) - lam * (x - a), log_M, 10_000,
                             manual_seed(seed))
    assert float(out.envelope_violation) == 0.0
    assert ks(out.samples, scipy.stats.truncnorm(a, np.inf).cdf) > P_MIN
    r = math.sqrt(2 * math.pi) * scipy.stats.norm.sf(a) / math.exp(log_M)   # Z / M
    assert abs(float(out.acceptance_rate) - r) < Z_MAX * math.sqrt(r * (1 - r) / out.n_proposed)


@pytest.mark.parametrize("seed", SEEDS)
def test_rejection_with_an_invalid_envelope_samples_min_of_p_and_mq(seed):
    """q = N(0, 0.7²), M = 1.2: M q < p for |x| > c (the target's tails stick out). The kept points follow
    min(p, M q) normalised — lighter tails than p — and the violation is reported."""
    s, M = 0.7, 1.2
    c = math.sqrt(math.log(M / s) / (1 / (2 * s * s) - 0.5))   # p(c) = M q(c)
    p, q = scipy.stats.norm(), scipy.stats.norm(scale=s)
    mass_inside = p.cdf(c) - p.cdf(-c)                          # ∫ min(p, Mq) = ∫_{|x|<c} p + M ∫_{|x|>c} q
    mass_tails = M * 2 * q.sf(c)
    total = mass_inside + mass_tails

    def cdf(x):
        x = np.asarray(x)
        left = M * q.cdf(np.minimum(x, -c))
        middle = np.clip(p.cdf(np.minimum(x, c)) - p.cdf(-c), 0, None) * (x > -c)
        right = M * np.clip(q.cdf(x) - q.cdf(c), 0, None)
        return (left + middle + right) / total

    with pytest.warns(RuntimeWarning, match="the envelope p~ <= M q fails"):
        out = S.rejection_sample(lambda x: -0.5 * x * x - 0.5 * math.log(2 * math.pi),
                                 lambda m, gen: s * torch.randn(m, dtype=f64, generator=gen),
                                 lambda x: -0.5 * (x / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi),
                                 math.log(M), 40_000, manual_seed(seed))
    assert ks(out.samples, cdf) > P_MIN
    assert ks(out.samples, p.cdf) < 1e-8           # not the target
    v, n = 2 * q.sf(c), out.n_proposed             # fraction of proposals where p > M q
    assert abs(float(out.envelope_violation) - v) < Z_MAX * math.sqrt(v * (1 - v) / n)
    r = total / M                                  # acceptance E_q[min(1, p/(Mq))] = ∫ min(p, Mq) / M
    assert abs(float(out.acceptance_rate) - r) < Z_MAX * math.sqrt(r * (1 - r) / n)


def test_rejection_gives_up_after_max_rounds():
    with pytest.raises(RuntimeError, match="accepted only 0 of the 10 draws asked for in max_rounds=1"):
        S.rejection_sample(lambda x: torch.full_like(x, -60.0), uniform_proposal, lambda x: torch.zeros_like(x),
                           0.0, 10, manual_seed(0), max_rounds=1)


# --------------------------------------------------------------------------------------------
# importance sampling
# --------------------------------------------------------------------------------------------


def normal_log_pdf(mean, std):
    return lambda x: -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def normal_sampler(mean, std):
    return lambda n, gen: mean + std * torch.randn(n, dtype=f64, generator=gen)


@pytest.mark.parametrize("seed", SEEDS)
def test_importance_estimate_is_unbiased_within_its_standard_error(seed):
    """E_{N(1, 1)}[x²] = 2 from q = N(0, 2²); and [x, x²] jointly. The mean of 50 independent estimates
    is compared with 2 in units of their spread / √50 (unbiasedness, not only consistency)."""
    g = manual_seed(seed)
    args = (normal_log_pdf(1.0, 1.0), normal_sampler(0.0, 2.0), normal_log_pdf(0.0, 2.0))
    est, se, ess = S.importance_estimate(lambda x: x * x, *args, 20_000, g)
    assert abs(float(est) - 2.0) < Z_MAX * float(se) and 1 < float(ess) < 20_000
    joint = S.importance_estimate(lambda x: torch.stack([x, x * x], -1), *args, 20_000, g)
    assert joint.estimate.shape == (2,)
    assert (torch.abs(joint.estimate - torch.tensor([1.0, 2.0], dtype=f64)) < Z_MAX * joint.standard_error).all()
    many = torch.stack([S.importance_estimate(lambda x: x * x, *args, 200, g).estimate for _ in range(50)])
    assert abs(float(many.mean()) - 2.0) < Z_MAX * float(many.std()) / math.sqrt(50)


def test_importance_ess_of_hand_picked_weights():
    """Weights (1, 1, 2): ESS = (Σw)²/Σw² = 16/6; estimate Σ w f / n and the self-normalised Σ w f / Σ w."""
    points = torch.tensor([0.0, 1.0, 2.0], dtype=f64)
    log_w = torch.log(torch.tensor([1.0, 1.0, 2.0], dtype=f64))

    def sample(n, gen):
        return points.clone()

    def log_target(x):
        return log_w[x.long()]

    plain = S.importance_estimate(lambda x: x, log_target, sample, lambda x: torch.zeros_like(x), 3)
    torch.testing.assert_close(plain.ess, torch.tensor(16 / 6, dtype=f64))
    torch.testing.assert_close(plain.estimate, torch.tensor((0 + 1 + 4) / 3, dtype=f64))
    torch.testing.assert_close(plain.standard_error, torch.tensor(np.std([0, 1, 4], ddof=1) / math.sqrt(3), dtype=f64))
    self_norm = S.importance_estimate(lambda x: x, log_target, sample, lambda x: torch.zeros_like(x), 3,
                                      self_normalised=True)
    torch.testing.assert_close(self_norm.estimate, torch.tensor(5 / 4, dtype=f64))
    w = np.array([1, 1, 2]) / 4
    torch.testing.assert_close(self_norm.standard_error,
                               torch.tensor(math.sqrt(np.sum(w**2 * (np.array([0, 1, 2]) - 1.25) ** 2)), dtype=f64))
    # equal weights: ESS = n
    equal = S.importance_estimate(lambda x: x, lambda x: torch.zeros_like(x), sample, lambda x: torch.zeros_like(x), 3)
    torch.testing.assert_close(equal.ess, torch.tensor(3.0, dtype=f64))


@pytest.mark.parametrize("seed", SEEDS)
def test_self_normalised_importance_needs_no_normaliser(seed):
    """p̃ = 5·N(1, 1) (Z = 5): the plain estimator of E[1] estimates Z, the self-normalised one E_p[x²] = 2
    whatever Z; its error shrinks like its SE (consistency)."""
    g = manual_seed(seed)
    log_p_tilde = lambda x: normal_log_pdf(1.0, 1.0)(x) + math.log(5.0)   # noqa: E731
    args = (log_p_tilde, normal_sampler(0.0, 2.0), normal_log_pdf(0.0, 2.0))
    z = S.importance_estimate(lambda x: torch.ones_like(x), *args, 20_000, g)
    assert abs(float(z.estimate) - 5.0) < Z_MAX * float(z.standard_error)
    errors = []
    for n in (2_000, 50_000):
        r = S.importance_estimate(lambda x: x * x, *args, n, g, self_normalised=True)
        assert abs(float(r.estimate) - 2.0) < Z_MAX * float(r.standard_error)
        errors.append(float(r.standard_error))
    assert 3 < errors[0] / errors[1] < 8   # the SE shrinks like 1/√n: √25 = 5


# --------------------------------------------------------------------------------------------
# finite Markov chains
# --------------------------------------------------------------------------------------------


def random_transition_matrix(seed, S_=5):
    g = manual_seed(seed)
    P = torch.rand(S_, S_, generator=g, dtype=f64) + 0.05
    return P / P.sum(1, keepdim=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_stationary_distribution_is_the_limit_of_matrix_powers(seed):
    P = random_transition_matrix(seed)
    pi = S.stationary_distribution(P)
    limit = np.linalg.matrix_power(P.numpy(), 200)   # every row converges to π (irreducible, aperiodic)
    np.testing.assert_allclose(limit, np.tile(pi.numpy(), (5, 1)), atol=1e-12)
    torch.testing.assert_close(pi @ P, pi)


def metropolis_chain(pi):
    """A Metropolis chain on a path 0 − 1 − … − S−1 with uniform ±1 proposals: reversible w.r.t. π."""
    S_ = len(pi)
    P = np.zeros((S_, S_))
    for i in range(S_):
        for j in (i - 1, i + 1):
            if 0 <= j < S_:
                P[i, j] = 0.5 * min(1.0, pi[j] / pi[i])
        P[i, i] = 1 - P[i].sum()
    return torch.tensor(P, dtype=f64)


def test_detailed_balance_true_and_false_cases():
    pi = np.array([0.1, 0.2, 0.3, 0.4])
    P = metropolis_chain(pi)
    holds, violation = S.check_detailed_balance(P, torch.tensor(pi, dtype=f64))
    assert holds and float(violation) < 1e-15
    torch.testing.assert_close(S.stationary_distribution(P), torch.tensor(pi, dtype=f64))
    # a cycle 0 → 1 → 2 → 0 (mostly): stationary (uniform, P doubly stochastic) but not reversible
    C = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]], dtype=f64)
    u = torch.full((3,), 1 / 3, dtype=f64)
    torch.testing.assert_close(u @ C, u)
    holds, violation = S.check_detailed_balance(C, u)
    assert not holds and float(violation) == pytest.approx((0.8 - 0.1) / 3)
    # the wrong π for a reversible chain
    assert not S.check_detailed_balance(P, torch.full((4,), 0.25, dtype=f64))[0]


def test_reversibility_is_q_equal_p_not_p_ij_equal_q_ji():
    """003 §4.2.2 calls a chain time-reversible when p(i, j) = q(j, i); with q(j, i) = π_i p_ij / π_j that would
    force π_i = π_j. Reversible means the reversed chain equals the forward one, q(i, j) = p(i, j)."""
    pi = np.array([0.1, 0.2, 0.3, 0.4])
    P = metropolis_chain(pi).numpy()
    q = (pi[None, :] * P.T) / pi[:, None]          # q[j, i] = π_i P_ij / π_j: the reversed chain
    np.testing.assert_allclose(q, P, atol=1e-15)   # reversible: q = P
    assert np.abs(P - q.T).max() > 0.05            # the seed's condition p(i, j) = q(j, i) fails here


def test_a_periodic_chain_has_a_stationary_distribution_but_does_not_converge_to_it():
    """003 §4.2.2 ('no matter where we start ... π_n approaches π') needs aperiodicity too."""
    P = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=f64)
    torch.testing.assert_close(S.stationary_distribution(P), torch.tensor([0.5, 0.5], dtype=f64))
    assert S.check_detailed_balance(P, torch.tensor([0.5, 0.5], dtype=f64))[0]   # even reversible
    start = np.array([1.0, 0.0])
    assert np.allclose(start @ np.linalg.matrix_power(P.numpy(), 101), [0.0, 1.0])   # π_n alternates forever


def test_reducible_chain_is_refused():
    P = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=f64)
    with pytest.raises(ValueError, match="more than one stationary distribution"):
        S.stationary_distribution(P)


@pytest.mark.parametrize("seed", SEEDS)
def test_simulated_chain_visits_states_with_stationary_frequencies(seed):
    P = random_transition_matrix(seed)
    pi = S.stationary_distribution(P).numpy()
    g = manual_seed(seed)
    x = S.simulate_chain(P, torch.zeros(4000, dtype=torch.int64), 60, g)
    assert x.shape == (4000, 61) and x.dtype == torch.int64 and bool((x[:, 0] == 0).all())
    # the final states of independent chains: i.i.d. draws from ≈ π (|π_60 − π| < 1e-12 here)
    assert chi2_p(x[:, -1].numpy(), pi) > P_MIN
    # one-step transitions: counts of (i → j) over all chains and steps match P row by row
    pairs = x[:, :-1] * 5 + x[:, 1:]
    counts = np.bincount(pairs.flatten().numpy(), minlength=25).reshape(5, 5)
    for i in range(5):
        assert scipy.stats.chisquare(counts[i], counts[i].sum() * P[i].numpy()).pvalue > P_MIN
    # time averages of one long run per chain, SE from the indicator chains' ESS
    long = S.simulate_chain(P, torch.arange(20) % 5, 1000, g)[:, 1:]
    indicators = torch.stack([(long == k).double() for k in range(5)], -1)
    z = S.mean_z_score(indicators, torch.tensor(pi, dtype=f64))
    assert (z.abs() < Z_MAX).all(), z


# --------------------------------------------------------------------------------------------
# Metropolis–Hastings, ULA, MALA on Gaussians and mixtures
# --------------------------------------------------------------------------------------------


MU = torch.tensor([1.0, -2.0], dtype=f64)
SIGMA = torch.tensor([[2.0, 1.2], [1.2, 1.0]], dtype=f64)
PREC = torch.linalg.inv(SIGMA)


def gauss_log_p(x):
    d = x - MU.to(x)
    return -0.5 * ((d @ PREC.to(x)) * d).sum(-1)


def gauss_score(x):
    return -(x - MU.to(x)) @ PREC.to(x)


def overdispersed(seed, C, dtype=f64):
    return MU.to(dtype) + 3 * torch.randn(C, 2, generator=manual_seed(1000 + seed), dtype=dtype)


def check_gaussian_moments(chains, mean, cov):
    """Means, variances and the covariance of (C, T, 2) chains within Z_MAX SEs (ESS of each function's chain)."""
    d = chains - mean
    z_mean = S.mean_z_score(chains, mean)
    second = torch.stack([d[..., 0] ** 2, d[..., 1] ** 2, d[..., 0] * d[..., 1]], -1)
    z_second = S.mean_z_score(second, torch.stack([cov[0, 0], cov[1, 1], cov[0, 1]]))
    assert (z_mean.abs() < Z_MAX).all() and (z_second.abs() < Z_MAX).all(), (z_mean, z_second)
    return z_second


def ks_gaussian_marginals(final, mean, cov):
    """KS of each coordinate and of the projection on (1, 1)/√2 of independent final states."""
    u = torch.tensor([1.0, 1.0], dtype=f64) / math.sqrt(2)
    tests = [(final[:, d], float(mean[d]), float(cov[d, d])) for d in range(2)]
    tests.append((final @ u.to(final), float(u @ mean), float(u @ cov @ u)))
    return min(ks(x.double(), scipy.stats.norm(m, math.sqrt(v)).cdf) for x, m, v in tests)


@pytest.mark.parametrize("seed", SEEDS)
def test_metropolis_hastings_samples_a_correlated_gaussian(seed):
    g = manual_seed(seed)
    run = S.metropolis_hastings(gauss_log_p, overdispersed(seed, 200), 1000, 1.2, g, burn_in=200)
    assert run.samples.shape == (200, 800, 2) and run.acceptance_rate.shape == (200,)
    assert 0.2 < float(run.acceptance_rate.mean()) < 0.7
    check_gaussian_moments(run.samples, MU, SIGMA)
    final = S.metropolis_hastings(gauss_log_p, overdispersed(seed, 3000), 300, 1.2, g, trajectory=False).samples
    assert final.shape == (3000, 2)
    assert ks_gaussian_marginals(final, MU, SIGMA) > P_MIN


@pytest.mark.parametrize("seed", SEEDS)
def test_mala_samples_a_correlated_gaussian_with_or_without_a_score(seed):
    g = manual_seed(seed)
    run = S.mala(gauss_log_p, overdispersed(seed, 200), 1000, 0.5, g, burn_in=200)
    assert 0.5 < float(run.acceptance_rate.mean()) < 0.95
    check_gaussian_moments(run.samples, MU, SIGMA)
    final = S.mala(gauss_log_p, overdispersed(seed, 3000), 200, 0.5, g, score_fn=gauss_score, trajectory=False)
    assert ks_gaussian_marginals(final.samples, MU, SIGMA) > P_MIN


def ula_covariance(cov, eps):
    """Stationary covariance of ULA on N(μ, Σ): x' − μ = A(x − μ) + √ε ξ with A = I − (ε/2)Σ⁻¹, so
    V = A V Aᵀ + εI. In Σ's eigenbasis (eigenvalue λ) v = ε / (1 − (1 − ε/(2λ))²) = λ / (1 − ε/(4λ))."""
    lam, U = torch.linalg.eigh(cov)
    return U @ torch.diag(lam / (1 - eps / (4 * lam))) @ U.T


@pytest.mark.parametrize("seed", SEEDS)
def test_ula_has_the_predicted_covariance_and_exact_mean_on_a_gaussian(seed):
    g = manual_seed(seed)
    eps = 0.2
    run = S.langevin(gauss_score, overdispersed(seed, 200), 1200, eps, g, burn_in=200)
    assert float(run.acceptance_rate.min()) == 1.0
    check_gaussian_moments(run.samples, MU, ula_covariance(SIGMA, eps))   # the mean is exact, the covariance inflated
    # the bias is real: along Σ's eigenvector of eigenvalue λ = 0.2 ULA's variance is λ/(1 − ε/(4λ)) = 4λ/3,
    # many SEs away from λ
    lam, U = torch.linalg.eigh(SIGMA)
    along = ((run.samples - MU) @ U[:, :1]) ** 2
    assert float(S.mean_z_score(along, lam[:1]).abs().min()) > Z_MAX
    # the stationary law is exactly Gaussian: KS of independent final states against N(μ, V_ULA)
    final = S.langevin(gauss_score, overdispersed(seed, 3000), 300, eps, g, trajectory=False).samples
    assert ks_gaussian_marginals(final, MU, ula_covariance(SIGMA, eps)) > P_MIN


@pytest.mark.parametrize("eps", [0.5, 1.0, 2.0])
def test_ula_step_size_bias_in_one_dimension_and_mala_removes_it(eps):
    """p = N(0, s²), s² = 2: ULA is x' = (1 − ε/(2s²)) x + √ε ξ, an AR(1) with stationary variance
    ε / (1 − (1 − ε/(2s²))²) = s² / (1 − ε/(4s²)). Independent chains started at 0 (after 400 steps the
    start is forgotten: |1 − ε/(2s²)|^200 < 1e-11): the final states are N(0, v) exactly, so
    (n − 1)·var̂/v ~ χ²_{n−1}; z = (var̂ − v)/(v √(2/n))."""
    s2, n = 2.0, 20_000
    g = manual_seed(int(eps * 10))
    x0 = torch.zeros(n, 1, dtype=f64)
    ula = S.langevin(lambda x: -x / s2, x0, 200, eps, g, trajectory=False).samples[:, 0]
    v = s2 / (1 - eps / (4 * s2))
    z = (float(ula.var()) - v) / (v * math.sqrt(2 / n))
    assert abs(z) < Z_MAX
    assert ks(ula, scipy.stats.norm(0, math.sqrt(v)).cdf) > P_MIN
    if eps >= 1.0:   # a bias of 14 % and more: over 10 SEs (at ε = 0.5 it is 6.7 %, about 7 SEs — too close to call)
        assert (float(ula.var()) - s2) / (s2 * math.sqrt(2 / n)) > Z_MAX   # ULA's variance is not s²
    mala = S.mala(lambda x: -0.5 * (x**2).sum(-1) / s2, x0, 200, eps, g, trajectory=False).samples[:, 0]
    z_mala = (float(mala.var()) - s2) / (s2 * math.sqrt(2 / n))
    assert abs(z_mala) < Z_MAX
    assert ks(mala, scipy.stats.norm(0, math.sqrt(s2)).cdf) > P_MIN


W_MIX, MU_MIX, SD_MIX = (0.3, 0.7), (-1.5, 1.5), 0.7


def mix_log_p(x):
    w = torch.tensor(W_MIX, dtype=x.dtype)
    m = torch.tensor(MU_MIX, dtype=x.dtype)
    return torch.logsumexp(torch.log(w) - 0.5 * ((x - m) / SD_MIX) ** 2, -1)   # x: (C, 1) broadcast against K


def mix_score(x):
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(mix_log_p(xr).sum(), xr)
    return grad


def mix_cdf(x):
    return sum(w * scipy.stats.norm(m, SD_MIX).cdf(x) for w, m in zip(W_MIX, MU_MIX))


MIX_MEAN = sum(w * m for w, m in zip(W_MIX, MU_MIX))
MIX_VAR = sum(w * (SD_MIX**2 + m * m) for w, m in zip(W_MIX, MU_MIX)) - MIX_MEAN**2


def mix_draws(n, g):
    z = torch.rand(n, generator=g, dtype=f64) < W_MIX[1]
    return torch.where(z, MU_MIX[1], MU_MIX[0])[:, None] + SD_MIX * torch.randn(n, 1, generator=g, dtype=f64)


@pytest.mark.parametrize("seed", SEEDS)
def test_mh_and_mala_sample_a_bimodal_mixture(seed):
    g = manual_seed(seed)
    x0 = 3 * torch.randn(3000, 1, generator=g, dtype=f64)
    mh = S.metropolis_hastings(mix_log_p, x0, 250, 2.0, g, trajectory=False)
    assert ks(mh.samples, mix_cdf) > P_MIN
    mala = S.mala(mix_log_p, x0, 300, 0.8, g, trajectory=False)
    assert ks(mala.samples, mix_cdf) > P_MIN
    # moments of correlated draws, SE from the ESS
    run = S.metropolis_hastings(mix_log_p, x0[:100], 1000, 2.0, g, burn_in=200)
    moments = torch.cat([run.samples, (run.samples - MIX_MEAN) ** 2], -1)
    assert (S.mean_z_score(moments, torch.tensor([MIX_MEAN, MIX_VAR], dtype=f64)).abs() < Z_MAX).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_ula_on_the_mixture_with_a_small_step_keeps_the_moments(seed):
    """ULA's bias is O(ε): at ε = 0.01 it stays below the Monte Carlo error of 200 chains × 1000 steps. The
    chains start at exact draws, so what is measured is ULA's stationary law, not mode-hopping."""
    g = manual_seed(seed)
    run = S.langevin(mix_score, mix_draws(200, g), 1000, 0.01, g, thin=2)
    moments = torch.cat([run.samples, (run.samples - MIX_MEAN) ** 2], -1)
    assert (S.mean_z_score(moments, torch.tensor([MIX_MEAN, MIX_VAR], dtype=f64)).abs() < Z_MAX).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_an_asymmetric_proposal_needs_the_hastings_factor(seed):
    """Proposal y = x + 0.5 + N(0, 1) (drifts right) on N(0, 1). With q(x|y)/q(y|x) the chain is exact; with
    the plain min(1, p(y)/p(x)) of 001 §7 (correct only for symmetric proposals) it is shifted right."""
    def sample(x, gen):
        return x + 0.5 + torch.randn(x.shape, dtype=x.dtype, generator=gen)

    def log_q(y, x):
        return -0.5 * ((y - x - 0.5) ** 2).sum(-1)

    def log_p(x):
        return -0.5 * (x**2).sum(-1)

    g = manual_seed(seed)
    x0 = torch.randn(4000, 1, generator=g, dtype=f64)
    right = S.metropolis_hastings(log_p, x0, 100, generator=g, proposal=S.Proposal(sample, log_q), trajectory=False)
    assert ks(right.samples, scipy.stats.norm.cdf) > P_MIN
    symmetric_claim = S.Proposal(sample, lambda y, x: torch.zeros(y.shape[0], dtype=y.dtype))
    wrong = S.metropolis_hastings(log_p, x0, 100, generator=g, proposal=symmetric_claim, trajectory=False)
    assert ks(wrong.samples, scipy.stats.norm.cdf) < 1e-10
    assert float(wrong.samples.mean()) > 0.15   # 60 standard errors of a mean of 4000 N(0, 1) draws


def test_mh_with_a_langevin_proposal_is_mala_and_the_random_walk_proposal_is_the_default():
    g1, g2 = manual_seed(3), manual_seed(3)
    x0 = overdispersed(0, 50)
    default = S.metropolis_hastings(gauss_log_p, x0, 40, 0.9, g1)
    explicit = S.metropolis_hastings(gauss_log_p, x0, 40, generator=g2, proposal=S.random_walk_proposal(0.9))
    assert torch.equal(default.samples, explicit.samples)        # same draws, the Hastings factor is exactly 0
    assert torch.equal(default.acceptance_rate, explicit.acceptance_rate)
    # MH with the Langevin proposal and MALA are the same Markov chain: compare their final states (KS, two samples)
    a = S.metropolis_hastings(gauss_log_p, overdispersed(1, 3000), 150, generator=manual_seed(4),
                              proposal=S.langevin_proposal(gauss_score, 0.5), trajectory=False).samples
    b = S.mala(gauss_log_p, overdispersed(2, 3000), 150, 0.5, manual_seed(5), trajectory=False).samples
    for d in range(2):
        assert scipy.stats.ks_2samp(a[:, d].numpy(), b[:, d].numpy()).pvalue > P_MIN
    assert ks_gaussian_marginals(a, MU, SIGMA) > P_MIN


def test_mh_never_leaves_the_support_of_the_target():
    """log p = −x on x > 0 and −∞ elsewhere (Exp(1)): proposals outside are rejected."""
    def log_p(x):
        return torch.where(x[:, 0] > 0, -x[:, 0], torch.full_like(x[:, 0], -math.inf))

    g = manual_seed(7)
    final = S.metropolis_hastings(log_p, torch.ones(4000, 1, dtype=f64), 200, 1.5, g, trajectory=False).samples
    assert float(final.min()) > 0
    assert ks(final, scipy.stats.expon.cdf) > P_MIN
    with pytest.raises(ValueError, match="log_target must be finite at every starting state"):
        S.metropolis_hastings(log_p, -torch.ones(3, 1, dtype=f64), 5, 1.0, g)


def test_burn_in_thin_and_trajectory_agree():
    x0 = overdispersed(0, 7)
    full = S.metropolis_hastings(gauss_log_p, x0, 20, 1.0, manual_seed(1))
    kept = S.metropolis_hastings(gauss_log_p, x0, 20, 1.0, manual_seed(1), burn_in=5, thin=3)
    last = S.metropolis_hastings(gauss_log_p, x0, 20, 1.0, manual_seed(1), trajectory=False)
    assert full.samples.shape == (7, 20, 2) and kept.samples.shape == (7, 5, 2) and last.samples.shape == (7, 2)
    assert torch.equal(kept.samples, full.samples[:, 7::3])      # states after steps 8, 11, 14, 17, 20
    assert torch.equal(last.samples, full.samples[:, -1])
    assert torch.equal(full.acceptance_rate, kept.acceptance_rate)
    # acceptance rate = fraction of steps at which the state changed (a continuous proposal never repeats a state)
    states = torch.cat([x0[:, None], full.samples], 1)
    moved = (states[:, 1:] != states[:, :-1]).any(-1).double().mean(1)
    torch.testing.assert_close(full.acceptance_rate, moved)


# --------------------------------------------------------------------------------------------
# Gibbs sampling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_gibbs_bivariate_gaussian_moments_and_correlation(seed):
    rho, mean, std = 0.9, (1.0, -2.0), (2.0, 0.5)
    cov = torch.tensor([[std[0] ** 2, rho * std[0] * std[1]], [rho * std[0] * std[1], std[1] ** 2]], dtype=f64)
    g = manual_seed(seed)
    x0 = torch.tensor(mean, dtype=f64) + torch.randn(200, 2, generator=g, dtype=f64) * torch.tensor(std, dtype=f64) * 3
    run = S.gibbs_bivariate_gaussian(rho, x0, 1500, g, mean=mean, std=std, burn_in=300)
    assert float(run.acceptance_rate.min()) == 1.0
    check_gaussian_moments(run.samples, torch.tensor(mean, dtype=f64), cov)
    final = S.gibbs_bivariate_gaussian(rho, x0.repeat(15, 1), 300, g, mean=mean, std=std, trajectory=False).samples
    assert ks_gaussian_marginals(final, torch.tensor(mean, dtype=f64), cov) > P_MIN


def test_gibbs_bivariate_chain_is_ar1_with_coefficient_rho_squared():
    """In standardised coordinates x_1 ← ρ x_2 + noise, x_2 ← ρ x_1 + noise: each sweep multiplies by ρ², so
    the lag-k autocorrelation of x_2 is ρ^{2k} and τ = (1 + ρ²)/(1 − ρ²)."""
    rho = 0.8
    g = manual_seed(11)
    x0 = torch.randn(64, 2, generator=g, dtype=f64)
    x0[:, 1] = rho * x0[:, 0] + math.sqrt(1 - rho**2) * x0[:, 1]   # an exact draw: stationary from the start
    run = S.gibbs_bivariate_gaussian(rho, x0, 4000, g)
    acf = S.autocorrelation(run.samples[..., 1], max_lag=5).mean(0)
    np.testing.assert_allclose(acf.numpy(), rho ** (2 * np.arange(6)), atol=0.02)   # SE of the mean acf ≈ 0.004
    ess = float(S.effective_sample_size(run.samples[..., 1]))
    expected = 64 * 4000 * (1 - rho**2) / (1 + rho**2)
    assert abs(ess / expected - 1) < 0.15


def ising_exact(L, beta, J=1.0, h=0.0, periodic=True):
    """Every state of the L×L Ising model with numpy: (states (2^(L²), L, L), probabilities), the energy
    −J Σ over bonds (each nearest-neighbour pair once; for periodic L ≥ 3 the right and down bonds of every
    site) − h Σ s."""
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=L * L))).reshape(-1, L, L)
    if periodic:
        bonds = (states * np.roll(states, -1, 1)).sum((1, 2)) + (states * np.roll(states, -1, 2)).sum((1, 2))
    else:
        bonds = (states[:, 1:, :] * states[:, :-1, :]).sum((1, 2)) + (states[:, :, 1:] * states[:, :, :-1]).sum((1, 2))
    energy = -J * bonds - h * states.sum((1, 2))
    w = np.exp(-beta * (energy - energy.min()))
    return states, energy, w / w.sum()


@pytest.mark.parametrize("periodic", [True, False])
def test_ising_energy_matches_the_enumeration(periodic):
    states, energy, _ = ising_exact(3, 0.3, J=0.7, h=0.2, periodic=periodic)
    got = S.ising_energy(torch.tensor(states), 0.7, 0.2, periodic=periodic)
    np.testing.assert_allclose(got.numpy(), energy, atol=1e-12)


@pytest.mark.parametrize("scan", ["systematic", "random"])
@pytest.mark.parametrize("seed", SEEDS)
def test_ising_gibbs_magnetisation_and_energy_match_exact_enumeration(scan, seed):
    """L = 3, β = 0.4, h = 0.1: 4000 independent chains, 40 sweeps from random spins; the final states'
    magnetisation and energy against the exact distributions of all 512 states (chi-square, p > 1e-5)."""
    beta, h = 0.4, 0.1
    states, energy, p = ising_exact(3, beta, h=h)
    magnetisation = states.sum((1, 2))
    g = manual_seed(seed)
    s0 = torch.where(torch.rand(4000, 3, 3, generator=g) < 0.5, 1.0, -1.0).to(f64)
    final = S.gibbs_ising(s0, beta, 40, g, h=h, scan=scan, trajectory=False).samples
    assert final.shape == (4000, 3, 3) and bool(((final == 1) | (final == -1)).all())
    m_values = np.arange(-9, 10, 2)
    p_m = np.array([p[magnetisation == m].sum() for m in m_values])
    m_labels = np.searchsorted(m_values, final.sum((1, 2)).numpy())
    assert chi2_p(m_labels, p_m) > P_MIN
    e_values = np.unique(energy.round(9))
    p_e = np.array([p[np.isclose(energy, e)].sum() for e in e_values])
    e_got = S.ising_energy(final, 1.0, h).numpy()
    e_labels = np.array([np.argmin(np.abs(e_values - e)) for e in e_got])
    assert chi2_p(e_labels, p_e) > P_MIN


def test_ising_gibbs_on_a_free_boundary_and_the_full_state_distribution():
    """Free boundary, L = 2 (16 states): the frequency of every state against its exact probability."""
    beta = 0.5
    states, _, p = ising_exact(2, beta, periodic=False)
    g = manual_seed(21)
    s0 = torch.ones(20_000, 2, 2, dtype=f64)
    final = S.gibbs_ising(s0, beta, 30, g, periodic=False, trajectory=False).samples.numpy()
    index = ((final.reshape(-1, 4) > 0) * (2 ** np.arange(3, -1, -1))).sum(1)   # itertools.product order
    assert chi2_p(index, p) > P_MIN
    traj = S.gibbs_ising(torch.ones(3, 2, 2, dtype=f64), beta, 10, g, periodic=False, burn_in=4, thin=2)
    assert traj.samples.shape == (3, 3, 2, 2)


# --------------------------------------------------------------------------------------------
# diagnostics: autocorrelation, ESS, z-scores
# --------------------------------------------------------------------------------------------


def ar1(phi, C, T, seed):
    """C stationary AR(1) chains x_t = φ x_{t−1} + √(1 − φ²) e_t with unit variance (scipy.signal.lfilter)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((C, T))
    e[:, 0] /= math.sqrt(1 - phi**2)   # x_0 ~ N(0, 1): stationary from the start
    return torch.tensor(scipy.signal.lfilter([math.sqrt(1 - phi**2)], [1, -phi], e, axis=1), dtype=f64)


@pytest.mark.parametrize("phi, tolerance", [(-0.5, 0.15), (0.0, 0.06), (0.5, 0.10), (0.9, 0.24)])
@pytest.mark.parametrize("seed", SEEDS)
def test_ess_of_ar1_chains_matches_the_closed_form(phi, tolerance, seed):
    """ρ_k = φ^k, τ = 1 + 2 Σ_k φ^k = (1 + φ)/(1 − φ), ESS = CT(1 − φ)/(1 + φ) for 8 chains of 10 000 draws.
    The tolerance is 5 times the estimator's own relative spread, measured over 60 seeds (3.0 %, 1.2 %,
    2.1 % and 4.8 % for φ = −0.5, 0, 0.5, 0.9; largest deviations 7 %, 4 %, 5 %, 13 %)."""
    x = ar1(phi, 8, 10_000, seed)
    ess = float(S.effective_sample_size(x))
    expected = 8 * 10_000 * (1 - phi) / (1 + phi)
    assert abs(ess / expected - 1) < tolerance, (ess, expected)
    acf = S.autocorrelation(x, max_lag=4).mean(0).numpy()
    np.testing.assert_allclose(acf, phi ** np.arange(5), atol=0.05)


def test_autocorrelation_matches_a_direct_sum():
    x = torch.randn(3, 50, 2, generator=manual_seed(2), dtype=f64)
    got = S.autocorrelation(x, max_lag=10)
    assert got.shape == (3, 11, 2)
    xn = x.numpy()
    for c in range(3):
        for d in range(2):
            v = xn[c, :, d] - xn[c, :, d].mean()
            direct = np.array([np.sum(v[: 50 - k] * v[k:]) for k in range(11)]) / np.sum(v * v)
            np.testing.assert_allclose(got[c, :, d].numpy(), direct, atol=1e-12)


def test_ess_of_independent_draws_is_about_their_number_and_constant_chains_give_nan():
    x = torch.randn(4, 2000, 3, generator=manual_seed(3), dtype=f64)
    ess = S.effective_sample_size(x)
    assert ess.shape == (3,) and bool((ess > 0.85 * 8000).all()) and bool((ess < 1.15 * 8000).all())
    one = S.effective_sample_size(x[:1, :, 0])
    assert one.shape == () and 0.85 * 2000 < float(one) < 1.15 * 2000
    assert torch.isnan(S.effective_sample_size(torch.ones(2, 10, dtype=f64)))


def test_ess_sees_chains_stuck_in_different_places():
    """Two chains that never meet (means 0 and 5): the between-chain variance makes ESS tiny, as it should."""
    x = torch.randn(2, 1000, generator=manual_seed(4), dtype=f64)
    x[1] += 5.0
    assert float(S.effective_sample_size(x)) < 50


def test_mean_z_score_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]], dtype=f64)
    z = S.mean_z_score(x, 2.5, ess=4.0)
    draws = x.flatten().numpy()
    assert float(z) == pytest.approx((draws.mean() - 2.5) / (draws.std(ddof=1) / 2))


# --------------------------------------------------------------------------------------------
# dtypes, devices, bad inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samplers_keep_float32_and_float64(dtype):
    x0 = overdispersed(0, 300, dtype)
    g = manual_seed(8)
    for run in (S.metropolis_hastings(gauss_log_p, x0, 600, 1.2, g, burn_in=100),
                S.mala(gauss_log_p, x0, 600, 0.5, g, burn_in=100),
                S.gibbs_bivariate_gaussian(0.5, x0, 600, g, burn_in=100)):
        assert run.samples.dtype == dtype and run.acceptance_rate.dtype == dtype
    mh = S.metropolis_hastings(gauss_log_p, x0, 800, 1.2, g, burn_in=200)
    check_gaussian_moments(mh.samples.double(), MU, SIGMA)
    ula = S.langevin(gauss_score, x0, 50, 0.1, g)
    assert ula.samples.dtype == dtype
    assert S.effective_sample_size(mh.samples).dtype == dtype
    assert S.inverse_cdf_sample(lambda u: u, 5, g, dtype=dtype).dtype == dtype
    P32 = random_transition_matrix(0).to(dtype)
    assert S.stationary_distribution(P32).dtype == dtype
    P64 = P32.double() / P32.double().sum(1, keepdim=True)   # float32 rows sum to 1 only within 1e-7
    torch.testing.assert_close(S.stationary_distribution(P32).double(), S.stationary_distribution(P64),
                               rtol=1e-5, atol=1e-6)


def ok_log_p(x):
    return -0.5 * (x**2).sum(-1)


X0 = torch.zeros(4, 2, dtype=f64)
P_OK = torch.tensor([[0.5, 0.5], [0.2, 0.8]], dtype=f64)
Q0 = lambda x: torch.zeros_like(x)   # noqa: E731
UNIF = uniform_proposal

BAD_CALLS = [  # (function, args, kwargs, error, match)
    (S.inverse_cdf_sample, ("icdf", 10), {}, TypeError, "icdf must be a callable"),
    (S.inverse_cdf_sample, (lambda u: u, 0), {}, ValueError, "n must be a positive integer; got 0"),
    (S.inverse_cdf_sample, (lambda u: u[:3], 10), {}, ValueError, r"icdf must return a tensor of shape \(10, \.\.\.\)"),
    (S.inverse_cdf_sample, (lambda u: u, 10), {"generator": 3}, TypeError, "generator must be a torch.Generator"),
    (S.rejection_sample, (ok_log_p, UNIF, Q0, float("inf"), 10), {}, ValueError, "log_M must be a finite number"),
    (S.rejection_sample, (lambda x: x[:2], UNIF, Q0, 0.0, 10), {}, ValueError, r"log_target must return \(\d+,\)"),
    (S.rejection_sample, (ok_log_p, lambda m, g: torch.zeros(3), Q0, 0.0, 10), {}, ValueError,
     r"proposal_sample must return a tensor of shape"),
    (S.rejection_sample, (ok_log_p, UNIF, Q0, 0.0, 10), {"max_rounds": 0}, ValueError, "max_rounds must be a positive"),
    (S.importance_estimate, (lambda x: x, ok_log_p, UNIF, Q0, 1), {}, ValueError, "n must be an integer >= 2; got 1"),
    (S.importance_estimate, (lambda x: x[:1], lambda x: x, UNIF, Q0, 5), {}, ValueError, r"f must return a tensor of shape \(5"),
    (S.importance_estimate, (lambda x: x, lambda x: x, UNIF, Q0, 5), {"self_normalised": 1}, TypeError,
     "self_normalised must be True or False"),
    (S.stationary_distribution, (torch.tensor([[0.5, 0.6], [0.5, 0.5]], dtype=f64),), {}, ValueError,
     "P must sum to 1 over its last dimension"),
    (S.stationary_distribution, (torch.ones(2, 3, dtype=f64) / 3,), {}, ValueError, r"P must have shape \(\.\.\., D, D\)"),
    (S.stationary_distribution, (torch.tensor([[1.5, -0.5], [0.5, 0.5]], dtype=f64),), {}, ValueError,
     "P must be non-negative"),
    (S.check_detailed_balance, (P_OK, torch.tensor([0.5, 0.5, 0.0], dtype=f64)), {}, ValueError, r"pi must have shape \(2,\)"),
    (S.check_detailed_balance, (P_OK, torch.tensor([0.7, 0.7], dtype=f64)), {}, ValueError, "pi must sum to 1"),
    (S.simulate_chain, (P_OK, torch.tensor([0, 2]), 5), {}, ValueError, r"x0 must hold at least one state, each in 0\.\.1"),
    (S.simulate_chain, (P_OK, torch.tensor([0.0, 1.0]), 5), {}, TypeError, "x0 must be an integer tensor"),
    (S.simulate_chain, (P_OK, 0, 0), {}, ValueError, "steps must be a positive integer; got 0"),
    (S.random_walk_proposal, (0.0,), {}, ValueError, "step_size must be a finite positive number; got 0.0"),
    (S.langevin_proposal, (3, 0.1), {}, TypeError, "score_fn must be a callable"),
    (S.metropolis_hastings, (ok_log_p, torch.zeros(4, dtype=f64), 5), {}, ValueError, r"x0 must have shape \(C, D\)"),
    (S.metropolis_hastings, (ok_log_p, X0, 5, -1.0), {}, ValueError, "step_size must be a finite positive number"),
    (S.metropolis_hastings, (ok_log_p, X0, 5), {"burn_in": 5}, ValueError, r"burn_in must be an integer in \[0, steps - 1\]"),
    (S.metropolis_hastings, (ok_log_p, X0, 5), {"thin": 6}, ValueError, "no state would be kept"),
    (S.metropolis_hastings, (ok_log_p, X0, 5), {"proposal": "gaussian"}, TypeError, "proposal must be a dgm.sampling.Proposal"),
    (S.metropolis_hastings, (lambda x: x, X0, 5), {}, ValueError, r"log_target must return log-densities of shape \(4,\)"),
    (S.metropolis_hastings, (ok_log_p, torch.full((4, 2), float("nan"), dtype=f64), 5), {}, ValueError, "x0 must be finite"),
    (S.metropolis_hastings, (ok_log_p, X0, 5), {"generator": "seed"}, TypeError, "generator must be a torch.Generator"),
    (S.metropolis_hastings, (ok_log_p, X0, 2.5), {}, TypeError, "steps must be a positive integer; got 2.5"),
    (S.langevin, (lambda x: x[:, :1], X0, 5, 0.1), {}, ValueError, "score_fn must return a tensor of the shape of the states"),
    (S.langevin, (lambda x: -x, X0, 5, 0.0), {}, ValueError, "step_size must be a finite positive number"),
    (S.mala, (ok_log_p, X0, 5, 0.1), {"score_fn": "grad"}, TypeError, "score_fn must be a callable"),
    (S.mala, (ok_log_p, X0, 5, 0.1), {"trajectory": "yes"}, TypeError, "trajectory must be True or False"),
    (S.gibbs_bivariate_gaussian, (1.0, X0, 5), {}, ValueError, r"rho must be a number in \(-1, 1\); got 1.0"),
    (S.gibbs_bivariate_gaussian, (0.5, torch.zeros(4, 3, dtype=f64), 5), {}, ValueError, r"x0 must have shape \(C, 2\)"),
    (S.gibbs_bivariate_gaussian, (0.5, X0, 5), {"std": (1.0, 0.0)}, ValueError, r"std\[1\] must be a finite positive number"),
    (S.gibbs_bivariate_gaussian, (0.5, X0, 5), {"mean": 0.0}, ValueError, "mean must be a pair"),
    (S.ising_energy, (torch.zeros(2, 3, 3, dtype=f64),), {}, ValueError, "s must hold spins -1 and \\+1 only"),
    (S.ising_energy, (torch.ones(2, 3, 4, dtype=f64),), {}, ValueError, r"s must have shape \(C, L, L\)"),
    (S.gibbs_ising, (torch.ones(2, 3, 3, dtype=f64), -0.1, 5), {}, ValueError, "beta must be a finite non-negative number"),
    (S.gibbs_ising, (torch.ones(2, 3, 3, dtype=f64), 0.1, 5), {"scan": "checkerboard"}, ValueError,
     "scan must be 'systematic' or 'random'"),
    (S.autocorrelation, (torch.zeros(2, 3, dtype=f64),), {}, ValueError, r"chains must have shape \(C, T\) or \(C, T, D\) with T >= 4"),
    (S.autocorrelation, (torch.zeros(2, 10, dtype=f64),), {"max_lag": 10}, ValueError, r"max_lag must be an integer in \[0, 9\]"),
    (S.effective_sample_size, (torch.zeros(2, 10, 2, 2, dtype=f64),), {}, ValueError, "chains must have shape"),
    (S.effective_sample_size, (torch.tensor([[0.0, 1.0, float("inf"), 2.0]], dtype=f64),), {}, ValueError,
     "chains must be finite"),
    (S.mean_z_score, (torch.zeros(2, 10, 2, dtype=f64), torch.zeros(3, dtype=f64)), {}, ValueError,
     r"true_mean must have shape \(2,\)"),
    (S.mean_z_score, (torch.randn(2, 10, dtype=f64), 0.0), {"ess": 0.0}, ValueError, "ess must be positive"),
]


@pytest.mark.parametrize("fn, args, kwargs, error, match", BAD_CALLS,
                         ids=[f"{row[0].__name__}-{i}" for i, row in enumerate(BAD_CALLS)])
def test_bad_inputs(fn, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_every_public_function_has_bad_input_rows():
    public = {name for name in S.__all__ if callable(getattr(S, name)) and not isinstance(getattr(S, name), type)}
    assert {row[0].__name__ for row in BAD_CALLS} == public


def test_the_benchmark_rows_at_tiny_sizes(monkeypatch):
    """benchmarks/mcmc.py's rows with 1 and 50 chains and a few hundred draws (no time is asserted): one ESS/s
    row per sampler and chain count, one budget row per sampler, all measured and positive."""
    from benchmarks import mcmc as bench

    monkeypatch.setattr(bench, "CHAINS", (1, 50))
    monkeypatch.setattr(bench, "BUDGET_CHAINS", 50)
    monkeypatch.setattr(bench, "QUICK_DRAWS", 5_000)
    monkeypatch.setattr(bench, "QUICK_MAX_STEPS", 400)
    monkeypatch.setattr(bench, "QUICK_MIN_STEPS", 100)
    lines = []
    rows = bench.mcmc_rows(quick=True, echo=lines.append, threads=1)
    budget_rows = [r for r in rows if r.budget is not None]
    assert len(rows) == len(bench.SAMPLERS) * 3 and len(budget_rows) == len(bench.SAMPLERS)
    assert all(r.error is None and r.measured > 0 for r in rows)
    assert all(r.budget == pytest.approx(100 / bench.SPEEDUP_BUDGET) and r.unit == "%" for r in budget_rows)
    assert bench.steps_for(1, True) == 400 and bench.steps_for(50, True) == 100 and len(lines) == 3 * len(bench.SAMPLERS)


@pytest.mark.cuda
@requires_cuda
def test_cuda_matches_cpu():
    """Deterministic functions agree with the CPU; samplers run on the GPU (its own random stream) and pass the
    same statistical checks."""
    P = random_transition_matrix(1)
    torch.testing.assert_close(S.stationary_distribution(P.cuda()).cpu(), S.stationary_distribution(P))
    x = ar1(0.7, 4, 3000, 0)
    torch.testing.assert_close(S.effective_sample_size(x.cuda()).cpu(), S.effective_sample_size(x))
    torch.testing.assert_close(S.autocorrelation(x.cuda(), max_lag=20).cpu(), S.autocorrelation(x, max_lag=20))
    g = torch.Generator(device="cuda").manual_seed(0)
    x0 = overdispersed(0, 3000).cuda()
    with pytest.raises(ValueError, match="generator must be on the device of the states"):
        S.metropolis_hastings(gauss_log_p, x0, 5, 1.0, manual_seed(0))
    for run in (S.metropolis_hastings(gauss_log_p, x0, 300, 1.2, g, trajectory=False),
                S.mala(gauss_log_p, x0, 200, 0.5, g, trajectory=False),
                S.mala(gauss_log_p, x0, 200, 0.5, g, score_fn=gauss_score, trajectory=False)):
        assert run.samples.device.type == "cuda" and run.acceptance_rate.device.type == "cuda"
        assert ks_gaussian_marginals(run.samples.cpu(), MU, SIGMA) > P_MIN
    ula = S.langevin(gauss_score, x0, 300, 0.2, g, trajectory=False).samples.cpu()
    assert ks_gaussian_marginals(ula, MU, ula_covariance(SIGMA, 0.2)) > P_MIN
    gibbs = S.gibbs_bivariate_gaussian(0.5, x0, 100, g, trajectory=False).samples
    assert gibbs.device.type == "cuda"
    states, _, p = ising_exact(3, 0.4)
    s0 = torch.ones(4000, 3, 3, dtype=f64, device="cuda")
    final = S.gibbs_ising(s0, 0.4, 40, g, trajectory=False).samples.cpu()
    m_values = np.arange(-9, 10, 2)
    p_m = np.array([p[states.sum((1, 2)) == m].sum() for m in m_values])
    assert chi2_p(np.searchsorted(m_values, final.sum((1, 2)).numpy()), p_m) > P_MIN
    chain = S.simulate_chain(P.cuda(), torch.zeros(4000, dtype=torch.int64, device="cuda"), 60, g)
    assert chi2_p(chain[:, -1].cpu().numpy(), S.stationary_distribution(P).numpy()) > P_MIN
    rej = S.rejection_sample(lambda x: torch.zeros_like(x), lambda m, gen: torch.rand(m, device="cuda", generator=gen,
                                                                                    dtype=f64),
                             lambda x: torch.zeros_like(x), 0.0, 100, g)
    assert rej.samples.device.type == "cuda"
