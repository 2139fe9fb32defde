"""Tests of dgm.divergences, by kind (see STYLE.md, "Tests by kind").

Every expected value comes from an independent route: torch.distributions, scipy.stats,
torch.nn.functional, or a Monte Carlo estimate compared within K_SE standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, Independent, MultivariateNormal, Normal, kl_divergence

from conftest import K_SE, TOL, requires_cuda
from dgm.divergences import (
    categorical_cross_entropy,
    categorical_entropy,
    categorical_kl,
    gaussian_entropy,
    gaussian_entropy_full,
    gaussian_kl,
    gaussian_kl_full,
    kl_monte_carlo,
    monte_carlo_mean,
)

DTYPES = [torch.float32, torch.float64]


def diag_normal(mean, logvar):
    """The independent route: a torch.distributions diagonal Gaussian with event dim D."""
    return Independent(Normal(mean, torch.exp(0.5 * logvar)), 1)


def random_spd(gen, *batch_and_d, dtype=torch.float64):
    """A Aᵀ + I/2 with A standard normal: symmetric positive definite, well conditioned enough."""
    *batch, d = batch_and_d
    A = torch.randn(*batch, d, d, generator=gen, dtype=torch.float64)
    return (A @ A.transpose(-1, -2) / d + 0.5 * torch.eye(d, dtype=torch.float64)).to(dtype)


def random_simplex(gen, *shape, dtype=torch.float64):
    return torch.softmax(torch.randn(*shape, generator=gen, dtype=torch.float64), -1).to(dtype)


# --------------------------------------------------------------------------------------------
# Closed form vs. an independent library, with broadcasting and dtypes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_kl_matches_torch_distributions_with_broadcasting(generator, dtype):
    mean_q = torch.randn(4, 1, 3, generator=generator).to(dtype)
    logvar_q = torch.randn(3, generator=generator).to(dtype)
    mean_p = torch.randn(5, 3, generator=generator).to(dtype)
    logvar_p = torch.randn(4, 5, 3, generator=generator).to(dtype)
    got = gaussian_kl(mean_q, logvar_q, mean_p, logvar_p)
    shape = (4, 5, 3)
    expected = kl_divergence(
        diag_normal(mean_q.expand(shape), logvar_q.expand(shape)),
        diag_normal(mean_p.expand(shape), logvar_p.expand(shape)),
    )
    assert got.shape == (4, 5)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_kl_full_matches_torch_distributions_with_broadcasting(generator, dtype):
    D = 3
    mean_q = torch.randn(2, 1, D, generator=generator).to(dtype)
    cov_q = random_spd(generator, D, dtype=dtype)  # one covariance shared by the batch
    mean_p = torch.randn(4, D, generator=generator).to(dtype)
    cov_p = random_spd(generator, 2, 4, D, dtype=dtype)
    got = gaussian_kl_full(mean_q, cov_q, mean_p, cov_p)
    expected = kl_divergence(
        MultivariateNormal(mean_q.expand(2, 4, D), covariance_matrix=cov_q.expand(2, 4, D, D)),
        MultivariateNormal(mean_p.expand(2, 4, D), covariance_matrix=cov_p),
    )
    assert got.shape == (2, 4)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=TOL[dtype]["rtol"] * 100, atol=TOL[dtype]["atol"] * 100)


def test_gaussian_kl_full_with_diagonal_covariances_equals_gaussian_kl(generator):
    # two functions, two code paths (Cholesky solves vs. element-wise); they must agree
    mean_q, mean_p = torch.randn(2, 6, 4, generator=generator, dtype=torch.float64)
    logvar_q, logvar_p = torch.randn(2, 6, 4, generator=generator, dtype=torch.float64)
    full = gaussian_kl_full(mean_q, torch.diag_embed(logvar_q.exp()), mean_p, torch.diag_embed(logvar_p.exp()))
    torch.testing.assert_close(full, gaussian_kl(mean_q, logvar_q, mean_p, logvar_p), **TOL[torch.float64])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_entropy_matches_libraries(generator, dtype):
    logvar = torch.randn(5, 3, generator=generator).to(dtype)
    got = gaussian_entropy(logvar)
    assert got.shape == (5,) and got.dtype == dtype
    expected = diag_normal(torch.zeros_like(logvar), logvar).entropy()
    torch.testing.assert_close(got, expected, **TOL[dtype])
    scipy_value = scipy.stats.multivariate_normal(cov=np.diag(logvar[0].double().exp().numpy())).entropy()
    assert float(got[0]) == pytest.approx(scipy_value, rel=TOL[dtype]["rtol"], abs=TOL[dtype]["atol"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_entropy_full_matches_libraries(generator, dtype):
    cov = random_spd(generator, 3, 4, dtype=dtype)
    got = gaussian_entropy_full(cov)
    assert got.shape == (3,) and got.dtype == dtype
    expected = MultivariateNormal(torch.zeros(3, 4, dtype=dtype), covariance_matrix=cov).entropy()
    torch.testing.assert_close(got, expected, **TOL[dtype])
    for i in range(3):
        scipy_value = scipy.stats.multivariate_normal(cov=cov[i].double().numpy()).entropy()
        assert float(got[i]) == pytest.approx(scipy_value, rel=TOL[dtype]["rtol"], abs=TOL[dtype]["atol"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_entropy_matches_libraries(generator, dtype):
    p = random_simplex(generator, 6, 5, dtype=dtype)
    got = categorical_entropy(p)
    assert got.shape == (6,) and got.dtype == dtype
    torch.testing.assert_close(got, Categorical(probs=p).entropy(), **TOL[dtype])
    np.testing.assert_allclose(got.double().numpy(), scipy.stats.entropy(p.double().numpy(), axis=-1), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_kl_matches_libraries_with_broadcasting(generator, dtype):
    p = random_simplex(generator, 3, 1, 4, dtype=dtype)
    q = random_simplex(generator, 5, 4, dtype=dtype)
    got = categorical_kl(p, q)
    assert got.shape == (3, 5) and got.dtype == dtype
    expected = kl_divergence(Categorical(probs=p.expand(3, 5, 4)), Categorical(probs=q.expand(3, 5, 4)))
    torch.testing.assert_close(got, expected, **TOL[dtype])
    scipy_kl = scipy.stats.entropy(p.double().numpy(), q.double().numpy(), axis=-1)  # entropy(p, q) is KL(p‖q)
    np.testing.assert_allclose(got.double().numpy(), scipy_kl, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_cross_entropy_matches_torch_cross_entropy(generator, dtype):
    p = random_simplex(generator, 7, 5, dtype=dtype)
    q = random_simplex(generator, 7, 5, dtype=dtype)
    got = categorical_cross_entropy(p, q)
    assert got.shape == (7,) and got.dtype == dtype
    # F.cross_entropy with probability targets: -Σ_k p_k log softmax(logits)_k, and softmax(log q) = q
    expected = F.cross_entropy(torch.log(q), p, reduction="none")
    torch.testing.assert_close(got, expected, **TOL[dtype])


def test_mixed_float_dtypes_promote_to_float64(generator):
    """Decision: mixed float32/float64 arguments follow torch's promotion (the result is float64)."""
    mean_q = torch.randn(3, generator=generator)
    cov_q = random_spd(generator, 3, dtype=torch.float32)
    mean_p = torch.randn(3, generator=generator, dtype=torch.float64)
    cov_p = random_spd(generator, 3)
    got = gaussian_kl_full(mean_q, cov_q, mean_p, cov_p)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, gaussian_kl_full(mean_q.double(), cov_q.double(), mean_p, cov_p), **TOL[torch.float64])
    got_diag = gaussian_kl(mean_q, torch.zeros(3), mean_p, torch.zeros(3, dtype=torch.float64))
    assert got_diag.dtype == torch.float64


# --------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------


def test_kl_is_non_negative_and_zero_only_on_equal_arguments(generator):
    mean_q, logvar_q, mean_p, logvar_p = torch.randn(4, 200, 3, generator=generator, dtype=torch.float64)
    assert bool((gaussian_kl(mean_q, logvar_q, mean_p, logvar_p) > 0).all())
    torch.testing.assert_close(gaussian_kl(mean_q, logvar_q, mean_q, logvar_q), torch.zeros(200, dtype=torch.float64))

    cov_q, cov_p = random_spd(generator, 2, 50, 3)
    assert bool((gaussian_kl_full(mean_q[:50], cov_q, mean_p[:50], cov_p) > 0).all())
    torch.testing.assert_close(
        gaussian_kl_full(mean_q[:50], cov_q, mean_q[:50], cov_q), torch.zeros(50, dtype=torch.float64), atol=1e-12, rtol=0
    )

    p, q = random_simplex(generator, 2, 200, 6)
    assert bool((categorical_kl(p, q) > 0).all())
    torch.testing.assert_close(categorical_kl(p, p), torch.zeros(200, dtype=torch.float64), atol=1e-15, rtol=0)


def test_kl_is_asymmetric_on_a_worked_example():
    # q = N(0, 1), p = N(0, 4): by hand KL(q‖p) = ½(log 4 + 1/4 - 1) ≈ 0.318 and
    # KL(p‖q) = ½(-log 4 + 4 - 1) ≈ 0.807; torch.distributions is the reference.
    zero = torch.zeros(1, dtype=torch.float64)
    log4 = torch.full((1,), math.log(4.0), dtype=torch.float64)
    kl_qp = gaussian_kl(zero, zero, zero, log4)
    kl_pq = gaussian_kl(zero, log4, zero, zero)
    torch.testing.assert_close(kl_qp, kl_divergence(diag_normal(zero, zero), diag_normal(zero, log4)))
    torch.testing.assert_close(kl_pq, kl_divergence(diag_normal(zero, log4), diag_normal(zero, zero)))
    assert float(kl_pq - kl_qp) > 0.4

    p = torch.tensor([0.9, 0.1], dtype=torch.float64)
    q = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert float(categorical_kl(p, q)) != pytest.approx(float(categorical_kl(q, p)), abs=0.05)


def test_cross_entropy_is_entropy_plus_kl(generator):
    p = random_simplex(generator, 30, 5)
    q = random_simplex(generator, 30, 5)
    torch.testing.assert_close(categorical_cross_entropy(p, q), categorical_entropy(p) + categorical_kl(p, q))
    # with zeros in p (0 · log 0 = 0), still finite and still additive
    p0 = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q0 = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    torch.testing.assert_close(categorical_cross_entropy(p0, q0), categorical_entropy(p0) + categorical_kl(p0, q0))


def test_categorical_kl_is_infinite_where_q_misses_mass_of_p():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert float(categorical_kl(p, q)) == math.inf
    assert float(categorical_cross_entropy(p, q)) == math.inf
    # the other direction: q puts no mass where p has none, so it is finite: KL(q‖p) = log 2
    assert float(categorical_kl(q, p)) == pytest.approx(scipy.stats.entropy([1.0, 0.0, 0.0], [0.5, 0.5, 0.0]))


def test_zero_log_zero_is_zero():
    one_hot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    h = categorical_entropy(one_hot)
    assert not bool(torch.isnan(h).any())
    torch.testing.assert_close(h, torch.zeros(2, dtype=torch.float64), atol=0, rtol=0)
    torch.testing.assert_close(categorical_kl(one_hot, one_hot), torch.zeros(2, dtype=torch.float64), atol=0, rtol=0)


@pytest.mark.parametrize("K", [1, 2, 7, 100])
def test_entropy_of_uniform_is_log_k_and_the_maximum(generator, K):
    uniform = torch.full((K,), 1.0 / K, dtype=torch.float64)
    assert float(categorical_entropy(uniform)) == pytest.approx(math.log(K), abs=1e-12)
    others = random_simplex(generator, 50, K)
    assert bool((categorical_entropy(others) <= math.log(K) + 1e-12).all())


def test_gaussian_entropy_shifts_by_half_log_det_under_scaling(generator):
    # H(aX) = H(X) + D log|a|: an invariant that does not use the formula itself
    cov = random_spd(generator, 3)
    a = 2.5
    torch.testing.assert_close(gaussian_entropy_full(a**2 * cov), gaussian_entropy_full(cov) + 3 * math.log(a))


# --------------------------------------------------------------------------------------------
# Monte Carlo vs. closed form (tolerance K_SE standard errors, seeded)
# --------------------------------------------------------------------------------------------


def test_kl_monte_carlo_agrees_with_diagonal_closed_form(generator):
    D = 3
    mean_q, logvar_q = torch.tensor([0.3, -1.0, 0.5]), torch.tensor([0.2, -0.5, 0.0])
    mean_p, logvar_p = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 0.4, -0.3])
    q, p = diag_normal(mean_q.double(), logvar_q.double()), diag_normal(mean_p.double(), logvar_p.double())
    z = mean_q.double() + torch.exp(0.5 * logvar_q.double()) * torch.randn(20_000, D, generator=generator, dtype=torch.float64)
    estimate, se = kl_monte_carlo(q.log_prob(z), p.log_prob(z))
    closed = gaussian_kl(mean_q, logvar_q, mean_p, logvar_p).double()
    assert estimate.shape == () and se.shape == ()
    assert abs(float(estimate - closed)) < K_SE * float(se), (float(estimate), float(closed), float(se))


def test_kl_monte_carlo_agrees_with_full_closed_form_batched(generator):
    D, B = 2, 3
    mean_q, mean_p = torch.randn(2, B, D, generator=generator, dtype=torch.float64)
    cov_q, cov_p = random_spd(generator, 2, B, D)
    L_q = torch.linalg.cholesky(cov_q)
    z = mean_q + (L_q @ torch.randn(20_000, B, D, 1, generator=generator, dtype=torch.float64)).squeeze(-1)
    log_q = MultivariateNormal(mean_q, covariance_matrix=cov_q).log_prob(z)
    log_p = MultivariateNormal(mean_p, covariance_matrix=cov_p).log_prob(z)
    estimate, se = kl_monte_carlo(log_q, log_p)
    closed = gaussian_kl_full(mean_q, cov_q, mean_p, cov_p)
    assert estimate.shape == (B,)
    assert bool(((estimate - closed).abs() < K_SE * se).all()), (estimate, closed, se)


def test_monte_carlo_mean_estimate_and_standard_error_are_calibrated(generator):
    """R independent estimates, each from S normal draws with known mean μ and sd σ.

    * The true standard error is σ/√S. Reported SE² = s²/S is unbiased for it; its average over R
      estimates has relative sd √(2/(S-1))/√R ≈ 0.3 %, so 5 SE is ±1.7 %.
    * The empirical variance of the R estimates also estimates σ²/S, with relative sd √(2/(R-1))
      ≈ 1 %; 5 SE is ±5 %. Dividing by S instead of √S, or using the biased variance with
      small S, moves the ratio far outside both bands.
    * The estimates themselves average to μ within 5 SE of the grand mean.
    """
    S, R, mu, sigma = 10, 20_000, 1.5, 2.0
    values = mu + sigma * torch.randn(S, R, generator=generator, dtype=torch.float64)
    estimate, se = monte_carlo_mean(values)
    assert estimate.shape == (R,) and se.shape == (R,)
    true_var = sigma**2 / S
    assert float(se.pow(2).mean()) / true_var == pytest.approx(1.0, abs=K_SE * math.sqrt(2 / (S - 1)) / math.sqrt(R))
    assert float(estimate.var()) / true_var == pytest.approx(1.0, abs=K_SE * math.sqrt(2 / (R - 1)))
    assert abs(float(estimate.mean()) - mu) < K_SE * math.sqrt(true_var / R)


def test_monte_carlo_mean_of_a_skewed_variable_is_within_five_se(generator):
    # E[Exp(1)] = 1; the CLT with S = 5000 makes the normal tail bound apply
    values = -torch.log(torch.rand(5000, generator=generator, dtype=torch.float64))
    estimate, se = monte_carlo_mean(values)
    assert abs(float(estimate) - 1.0) < K_SE * float(se)
    assert float(se) == pytest.approx(1 / math.sqrt(5000), rel=0.1)  # sd of Exp(1) is 1


def test_monte_carlo_mean_dtype_follows_input(generator):
    values = torch.randn(10, 2, generator=generator)
    estimate, se = monte_carlo_mean(values)
    assert estimate.dtype == se.dtype == torch.float32


# --------------------------------------------------------------------------------------------
# gradcheck (float64)
# --------------------------------------------------------------------------------------------


def test_gradcheck_gaussian_kl(generator):
    args = [torch.randn(2, 3, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(4)]
    assert torch.autograd.gradcheck(gaussian_kl, args)


def test_gradcheck_gaussian_kl_full(generator):
    D = 3
    eye = torch.eye(D, dtype=torch.float64)
    mean_q, mean_p = (torch.randn(2, D, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(2))
    A_q, A_p = (torch.randn(2, D, D, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(2))

    def kl(mean_q, A_q, mean_p, A_p):  # covariances A Aᵀ + I stay SPD (and symmetric) under perturbation
        return gaussian_kl_full(mean_q, A_q @ A_q.transpose(-1, -2) + eye, mean_p, A_p @ A_p.transpose(-1, -2) + eye)

    assert torch.autograd.gradcheck(kl, (mean_q, A_q, mean_p, A_p))


def test_gradcheck_entropies(generator):
    logvar = torch.randn(2, 3, generator=generator, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(gaussian_entropy, (logvar,))
    A = torch.randn(3, 3, generator=generator, dtype=torch.float64).requires_grad_()
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda A: gaussian_entropy_full(A @ A.T + eye), (A,))
    logits = torch.randn(4, generator=generator, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: categorical_entropy(torch.softmax(a, -1)), (logits,))


# --------------------------------------------------------------------------------------------
# Bad inputs: each raises the named error with a message naming the argument
# --------------------------------------------------------------------------------------------

f64 = torch.float64
Z3 = torch.zeros(3, dtype=f64)
EYE3 = torch.eye(3, dtype=f64)
P3 = torch.full((3,), 1 / 3, dtype=f64)
ASYM = torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=f64)
NOT_PD = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=f64))
NAN3 = torch.tensor([0.0, float("nan"), 0.0], dtype=f64)
META3 = torch.zeros(3, device="meta", dtype=f64)

BAD_INPUTS = [
    # gaussian_kl
    ("kl int", gaussian_kl, (torch.zeros(3, dtype=torch.int64), Z3, Z3, Z3), TypeError, "mean_q must be a floating-point"),
    ("kl scalar", gaussian_kl, (torch.tensor(0.0), Z3, Z3, Z3), ValueError, r"mean_q must have shape \(\.\.\., D\)"),
    ("kl broadcast", gaussian_kl, (Z3, Z3, torch.zeros(4, dtype=f64), Z3), ValueError, "do not broadcast"),
    ("kl nan logvar", gaussian_kl, (Z3, NAN3, Z3, Z3), ValueError, "logvar_q must be finite"),
    ("kl string", gaussian_kl, ("a", Z3, Z3, Z3), TypeError, "mean_q must be a tensor"),
    ("kl device", gaussian_kl, (Z3, Z3, META3, Z3), ValueError, "same device.*mean_p on meta"),
    # gaussian_kl_full
    ("klf not square", gaussian_kl_full, (Z3, torch.zeros(3, 2, dtype=f64), Z3, EYE3), ValueError, "cov_q must have shape"),
    ("klf D mismatch", gaussian_kl_full, (Z3, EYE3, torch.zeros(2, dtype=f64), torch.eye(2, dtype=f64)), ValueError, "same event size"),
    ("klf cov vs mean", gaussian_kl_full, (Z3, torch.eye(2, dtype=f64), Z3, EYE3), ValueError, "cov_q must have shape"),
    ("klf batch", gaussian_kl_full, (Z3, EYE3.expand(2, 3, 3), Z3, EYE3.expand(4, 3, 3)), ValueError, "batch shapes do not broadcast"),
    ("klf asym", gaussian_kl_full, (Z3, ASYM, Z3, EYE3), ValueError, "cov_q must be symmetric"),
    ("klf not PD", gaussian_kl_full, (Z3, EYE3, Z3, NOT_PD), ValueError, "cov_p must be symmetric positive definite"),
    ("klf int", gaussian_kl_full, (Z3, torch.eye(3, dtype=torch.int64), Z3, EYE3), TypeError, "cov_q must be a floating-point"),
    ("klf device", gaussian_kl_full, (Z3, EYE3, Z3, torch.eye(3, device="meta", dtype=f64)), ValueError, "cov_p on meta"),
    # entropies
    ("H nan", gaussian_entropy, (NAN3,), ValueError, "logvar must be finite"),
    ("H scalar", gaussian_entropy, (torch.tensor(0.0),), ValueError, "logvar must have shape"),
    ("H int", gaussian_entropy, (torch.zeros(3, dtype=torch.int32),), TypeError, "logvar must be a floating-point"),
    ("Hfull asym", gaussian_entropy_full, (ASYM,), ValueError, "cov must be symmetric"),
    ("Hfull not PD", gaussian_entropy_full, (NOT_PD,), ValueError, "positive definite"),
    ("Hfull vector", gaussian_entropy_full, (Z3,), ValueError, "cov must have shape"),
    ("Hcat sum", categorical_entropy, (torch.tensor([0.5, 0.6], dtype=f64),), ValueError, "p must sum to 1"),
    ("Hcat negative", categorical_entropy, (torch.tensor([1.5, -0.5], dtype=f64),), ValueError, "p must be non-negative"),
    ("Hcat int", categorical_entropy, (torch.tensor([1, 0]),), TypeError, "p must be a floating-point"),
    ("Hcat scalar", categorical_entropy, (torch.tensor(1.0),), ValueError, "p must have shape"),
    # categorical cross-entropy and KL
    ("CE q sum", categorical_cross_entropy, (P3, torch.tensor([0.5, 0.5, 0.5], dtype=f64)), ValueError, "q must sum to 1"),
    ("CE broadcast", categorical_cross_entropy, (P3, torch.full((4,), 0.25, dtype=f64)), ValueError, "do not broadcast"),
    ("CE device", categorical_cross_entropy, (P3, torch.full((3,), 1 / 3, device="meta", dtype=f64)), ValueError, "same device"),
    ("KLcat negative", categorical_kl, (torch.tensor([1.5, -0.5], dtype=f64), torch.tensor([0.5, 0.5], dtype=f64)), ValueError, "p must be non-negative"),
    ("KLcat nan", categorical_kl, (P3, NAN3), ValueError, "q must be finite"),
    ("KLcat broadcast", categorical_kl, (torch.full((2, 3), 1 / 3, dtype=f64), torch.full((4, 3), 1 / 3, dtype=f64)), ValueError, "do not broadcast"),
    # Monte Carlo
    ("MC one sample", monte_carlo_mean, (torch.zeros(1, 3),), ValueError, "at least 2 samples"),
    ("MC scalar", monte_carlo_mean, (torch.tensor(1.0),), ValueError, r"values must have shape \(S, \.\.\.\)"),
    ("MC int", monte_carlo_mean, (torch.zeros(5, dtype=torch.int64),), TypeError, "values must be a floating-point"),
    ("KLMC shapes", kl_monte_carlo, (torch.zeros(10, 2), torch.zeros(10, 3)), ValueError, "same shape"),
    ("KLMC one sample", kl_monte_carlo, (torch.zeros(1), torch.zeros(1)), ValueError, "at least 2 samples"),
    ("KLMC device", kl_monte_carlo, (torch.zeros(10), torch.zeros(10, device="meta")), ValueError, "log_p on meta"),
]


@pytest.mark.parametrize("fn, args, error, match", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_raise_clear_errors(fn, args, error, match):
    with pytest.raises(error, match=match):
        fn(*args)


def test_the_bad_input_table_covers_every_public_function():
    import dgm.divergences

    covered = {case[1].__name__ for case in BAD_INPUTS}
    assert covered == set(dgm.divergences.__all__)


# --------------------------------------------------------------------------------------------
# CPU / CUDA parity
# --------------------------------------------------------------------------------------------


@pytest.mark.cuda
@requires_cuda
def test_cpu_cuda_parity(generator):
    mean_q, logvar_q, mean_p, logvar_p = torch.randn(4, 5, 3, generator=generator, dtype=torch.float64)
    cov_q, cov_p = random_spd(generator, 2, 5, 3)
    p, q = random_simplex(generator, 2, 5, 4)
    cases = [
        (gaussian_kl, (mean_q, logvar_q, mean_p, logvar_p)),
        (gaussian_kl_full, (mean_q, cov_q, mean_p, cov_p)),
        (gaussian_entropy_full, (cov_q,)),
        (categorical_kl, (p, q)),
        (categorical_cross_entropy, (p, q)),
    ]
    for fn, args in cases:
        cpu = fn(*args)
        gpu = fn(*(a.cuda() for a in args))
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)
