"""Tests of dgm.distributions, by kind (see STYLE.md, "Tests by kind").

Expected values come from torch.distributions, scipy.stats / scipy.special, or Monte Carlo
moments compared within K_SE standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal

from conftest import K_SE, TOL, requires_cuda
from dgm.distributions import bernoulli_log_prob, gaussian_log_prob, gaussian_rsample, mvn_log_prob

DTYPES = [torch.float32, torch.float64]


def random_spd(gen, *batch_and_d, dtype=torch.float64):
    """A Aᵀ/D + I/2 with A standard normal: symmetric positive definite."""
    *batch, d = batch_and_d
    A = torch.randn(*batch, d, d, generator=gen, dtype=torch.float64)
    return (A @ A.transpose(-1, -2) / d + 0.5 * torch.eye(d, dtype=torch.float64)).to(dtype)


# --------------------------------------------------------------------------------------------
# Closed form vs. an independent library
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_log_prob_matches_libraries_with_broadcasting(generator, dtype):
    x = torch.randn(6, 1, 3, generator=generator).to(dtype)
    mean = torch.randn(4, 3, generator=generator).to(dtype)
    logvar = torch.randn(3, generator=generator).to(dtype)
    got = gaussian_log_prob(x, mean, logvar)
    assert got.shape == (6, 4) and got.dtype == dtype
    expected = Independent(Normal(mean, torch.exp(0.5 * logvar)), 1).log_prob(x)
    torch.testing.assert_close(got, expected, **TOL[dtype])
    scipy_value = scipy.stats.norm.logpdf(
        x.double().numpy(), mean.double().numpy(), np.exp(0.5 * logvar.double().numpy())
    ).sum(-1)
    np.testing.assert_allclose(got.double().numpy(), scipy_value, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mvn_log_prob_matches_libraries_with_broadcasting(generator, dtype):
    D = 3
    x = torch.randn(5, 1, D, generator=generator).to(dtype)
    mean = torch.randn(4, D, generator=generator).to(dtype)
    cov = random_spd(generator, 4, D, dtype=dtype)
    got = mvn_log_prob(x, mean, cov)
    assert got.shape == (5, 4) and got.dtype == dtype
    torch.testing.assert_close(got, MultivariateNormal(mean, covariance_matrix=cov).log_prob(x), **TOL[dtype])
    for j in range(4):
        ref = scipy.stats.multivariate_normal(mean[j].double().numpy(), cov[j].double().numpy()).logpdf(
            x[:, 0].double().numpy()
        )
        np.testing.assert_allclose(got[:, j].double().numpy(), ref, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)


def test_mvn_log_prob_with_a_single_shared_covariance_broadcasts(generator):
    x = torch.randn(7, 2, generator=generator, dtype=torch.float64)
    cov = random_spd(generator, 2)
    got = mvn_log_prob(x, torch.zeros(2, dtype=torch.float64), cov)
    ref = scipy.stats.multivariate_normal(np.zeros(2), cov.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_mvn_log_prob_with_diagonal_covariance_equals_gaussian_log_prob(generator):
    x, mean, logvar = torch.randn(3, 8, 4, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(mvn_log_prob(x, mean, torch.diag_embed(logvar.exp())), gaussian_log_prob(x, mean, logvar))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_log_prob_matches_torch_distributions(generator, dtype):
    logits = (3 * torch.randn(5, 4, generator=generator)).to(dtype)
    y = (torch.rand(5, 4, generator=generator) < 0.5).to(dtype)
    got = bernoulli_log_prob(y, logits)
    assert got.shape == (5, 4) and got.dtype == dtype
    torch.testing.assert_close(got, Bernoulli(logits=logits).log_prob(y), **TOL[dtype])


def test_bernoulli_log_prob_is_stable_for_large_logits():
    logits = torch.tensor([-200.0, -30.0, 30.0, 200.0], dtype=torch.float64)
    for label in (0.0, 1.0):
        y = torch.full_like(logits, label)
        got = bernoulli_log_prob(y, logits)
        # log σ(a) and log σ(-a) from scipy's dedicated, stable log_expit
        ref = scipy.special.log_expit(logits.numpy() if label == 1.0 else -logits.numpy())
        assert bool(torch.isfinite(got).all())
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_bernoulli_log_prob_accepts_integer_and_bool_labels():
    logits = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    y = torch.tensor([1, 0, 1])
    expected = Bernoulli(logits=logits).log_prob(y.double())
    torch.testing.assert_close(bernoulli_log_prob(y, logits), expected)
    torch.testing.assert_close(bernoulli_log_prob(y.bool(), logits), expected)


def test_log_probs_integrate_to_one_in_one_dimension():
    # ∫ N(x; μ, σ²) dx = 1 by quadrature: checks the normalising constant without restating it
    from scipy.integrate import quad

    for mean, logvar in [(0.0, 0.0), (1.5, -1.0), (-2.0, 1.3)]:
        def density(x, mean=mean, logvar=logvar):
            t = torch.tensor([x], dtype=torch.float64)
            return math.exp(float(gaussian_log_prob(t, torch.tensor([mean], dtype=torch.float64), torch.tensor([logvar], dtype=torch.float64))))

        total, err = quad(density, -np.inf, np.inf)
        assert total == pytest.approx(1.0, abs=1e-8)


# --------------------------------------------------------------------------------------------
# Sampling: noise used exactly, reproducibility, moments
# --------------------------------------------------------------------------------------------


def test_rsample_uses_given_noise_exactly(generator):
    mean = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    logvar = torch.randn(3, generator=generator, dtype=torch.float64)
    noise = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    got = gaussian_rsample(mean, logvar, noise=noise)
    # the reparameterisation with torch.distributions' own scale: loc + scale · ε
    expected = Normal(mean, torch.exp(0.5 * logvar)).loc + Normal(mean, torch.exp(0.5 * logvar)).scale * noise
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-15)
    # zero noise gives the mean, whatever the variance
    torch.testing.assert_close(gaussian_rsample(mean, logvar, noise=torch.zeros(4, 3, dtype=torch.float64)), mean, rtol=0, atol=0)


def test_rsample_generator_draws_standard_normal_noise_of_the_broadcast_shape():
    mean = torch.zeros(2, 1, 3)
    logvar = torch.zeros(5, 3)
    a = gaussian_rsample(mean, logvar, generator=torch.Generator().manual_seed(7))
    noise = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(7))
    assert a.shape == (2, 5, 3) and a.dtype == torch.float32
    torch.testing.assert_close(a, gaussian_rsample(mean, logvar, noise=noise), rtol=0, atol=0)


def test_rsample_is_reproducible_with_a_seed():
    mean, logvar = torch.zeros(100, 2), torch.zeros(100, 2)
    a = gaussian_rsample(mean, logvar, generator=torch.Generator().manual_seed(1))
    b = gaussian_rsample(mean, logvar, generator=torch.Generator().manual_seed(1))
    c = gaussian_rsample(mean, logvar, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rsample_is_reproducible_on_every_device(device):
    """Runs on the CPU and, where present, CUDA (the ``device`` fixture)."""
    mean = torch.zeros(50, 2, device=device)
    logvar = torch.zeros(50, 2, device=device)
    a = gaussian_rsample(mean, logvar, generator=torch.Generator(device=device).manual_seed(11))
    b = gaussian_rsample(mean, logvar, generator=torch.Generator(device=device).manual_seed(11))
    assert a.device.type == device.type
    assert torch.equal(a, b)


def test_rsample_moments_match_within_standard_errors(generator):
    N = 20_000
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    logvar = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    z = gaussian_rsample(mean.expand(N, 3), logvar.expand(N, 3), generator=generator)
    var = logvar.exp()
    # sample mean: SE = σ/√N; sample variance of normal draws: SE = σ²·√(2/(N-1))
    assert bool(((z.mean(0) - mean).abs() < K_SE * torch.sqrt(var / N)).all())
    assert bool(((z.var(0) - var).abs() < K_SE * var * math.sqrt(2 / (N - 1))).all())
    # and the shape of the distribution: Kolmogorov–Smirnov against N(μ, σ²), per coordinate
    for d in range(3):
        p_value = scipy.stats.kstest(z[:, d].numpy(), "norm", args=(float(mean[d]), float(var[d].sqrt()))).pvalue
        assert p_value > 1e-6


# --------------------------------------------------------------------------------------------
# gradcheck (float64)
# --------------------------------------------------------------------------------------------


def test_gradcheck_gaussian_log_prob(generator):
    args = [torch.randn(2, 3, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(3)]
    assert torch.autograd.gradcheck(gaussian_log_prob, args)


def test_gradcheck_mvn_log_prob(generator):
    x, mean = (torch.randn(2, 3, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(2))
    A = torch.randn(3, 3, generator=generator, dtype=torch.float64).requires_grad_()
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, mean, A: mvn_log_prob(x, mean, A @ A.T + eye), (x, mean, A))


def test_gradcheck_gaussian_rsample_with_fixed_noise(generator):
    mean, logvar = (torch.randn(2, 3, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(2))
    noise = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda m, lv: gaussian_rsample(m, lv, noise=noise), (mean, logvar))


def test_gradcheck_bernoulli_log_prob(generator):
    logits = torch.randn(5, generator=generator, dtype=torch.float64).requires_grad_()
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: bernoulli_log_prob(y, a), (logits,))


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------

f64 = torch.float64
Z3 = torch.zeros(3, dtype=f64)
EYE3 = torch.eye(3, dtype=f64)
NAN3 = torch.tensor([0.0, float("nan"), 0.0], dtype=f64)
ASYM = torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=f64)
NOT_PD = torch.diag(torch.tensor([1.0, 0.0, 1.0], dtype=f64))
META3 = torch.zeros(3, device="meta", dtype=f64)

BAD_INPUTS = [
    ("glp int", gaussian_log_prob, (torch.zeros(3, dtype=torch.int64), Z3, Z3), {}, TypeError, "x must be a floating-point"),
    ("glp scalar", gaussian_log_prob, (Z3, torch.tensor(0.0, dtype=f64), Z3), {}, ValueError, "mean must have shape"),
    ("glp broadcast", gaussian_log_prob, (torch.zeros(2, 3, dtype=f64), torch.zeros(4, 3, dtype=f64), Z3), {}, ValueError, "do not broadcast"),
    ("glp nan", gaussian_log_prob, (Z3, Z3, NAN3), {}, ValueError, "logvar must be finite"),
    ("glp device", gaussian_log_prob, (Z3, META3, Z3), {}, ValueError, "mean on meta"),
    ("mvn wrong D", mvn_log_prob, (Z3, torch.zeros(2, dtype=f64), EYE3), {}, ValueError, "mean must have shape"),
    ("mvn cov D", mvn_log_prob, (Z3, Z3, torch.eye(2, dtype=f64)), {}, ValueError, "cov must have shape"),
    ("mvn not square", mvn_log_prob, (Z3, Z3, torch.zeros(3, 2, dtype=f64)), {}, ValueError, "square"),
    ("mvn batch", mvn_log_prob, (torch.zeros(4, 3, dtype=f64), Z3, EYE3.expand(2, 3, 3)), {}, ValueError, "batch shapes do not broadcast"),
    ("mvn asym", mvn_log_prob, (Z3, Z3, ASYM), {}, ValueError, "cov must be symmetric"),
    ("mvn not PD", mvn_log_prob, (Z3, Z3, NOT_PD), {}, ValueError, "positive definite"),
    ("mvn nan", mvn_log_prob, (Z3, Z3, torch.diag(NAN3)), {}, ValueError, "cov must be finite"),
    ("mvn int", mvn_log_prob, (Z3, Z3, torch.eye(3, dtype=torch.int64)), {}, TypeError, "cov must be a floating-point"),
    ("mvn device", mvn_log_prob, (Z3, Z3, torch.eye(3, device="meta", dtype=f64)), {}, ValueError, "cov on meta"),
    ("bern label", bernoulli_log_prob, (torch.tensor([0.0, 0.5]), torch.zeros(2)), {}, ValueError, "only the labels 0 and 1"),
    ("bern int logits", bernoulli_log_prob, (torch.tensor([0.0, 1.0]), torch.zeros(2, dtype=torch.int64)), {}, TypeError, "logits must be a floating-point"),
    ("bern broadcast", bernoulli_log_prob, (torch.zeros(3), torch.zeros(4)), {}, ValueError, "do not broadcast"),
    ("bern device", bernoulli_log_prob, (torch.zeros(3), torch.zeros(3, device="meta")), {}, ValueError, "logits on meta"),
    ("rs noise shape", gaussian_rsample, (Z3, Z3), {"noise": torch.zeros(2, 3, dtype=f64)}, ValueError, r"noise must have shape \(3,\)"),
    ("rs nan", gaussian_rsample, (Z3, NAN3), {}, ValueError, "logvar must be finite"),
    ("rs broadcast", gaussian_rsample, (Z3, torch.zeros(4, dtype=f64)), {}, ValueError, "do not broadcast"),
    ("rs int", gaussian_rsample, (torch.zeros(3, dtype=torch.int64), Z3), {}, TypeError, "mean must be a floating-point"),
    ("rs int noise", gaussian_rsample, (Z3, Z3), {"noise": torch.zeros(3, dtype=torch.int64)}, TypeError, "noise must be a floating-point"),
    ("rs device", gaussian_rsample, (Z3, Z3), {"noise": META3}, ValueError, "noise on meta"),
]


@pytest.mark.parametrize("fn, args, kwargs, error, match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_raise_clear_errors(fn, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_the_bad_input_table_covers_every_public_function():
    import dgm.distributions

    assert {c[1].__name__ for c in BAD_INPUTS} == set(dgm.distributions.__all__)


# --------------------------------------------------------------------------------------------
# CPU / CUDA parity
# --------------------------------------------------------------------------------------------


@pytest.mark.cuda
@requires_cuda
def test_cpu_cuda_parity(generator):
    x, mean, logvar, noise = torch.randn(4, 6, 3, generator=generator, dtype=torch.float64)
    cov = random_spd(generator, 6, 3)
    y = (torch.rand(6, 3, generator=generator) < 0.5).double()
    cases = [
        (gaussian_log_prob, (x, mean, logvar), {}),
        (mvn_log_prob, (x, mean, cov), {}),
        (bernoulli_log_prob, (y, logvar), {}),
        (gaussian_rsample, (mean, logvar), {"noise": noise}),
    ]
    for fn, args, kwargs in cases:
        cpu = fn(*args, **{k: v for k, v in kwargs.items()})
        gpu = fn(*(a.cuda() for a in args), **{k: v.cuda() for k, v in kwargs.items()})
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)
    # a generator on the GPU drives sampling there
    z = gaussian_rsample(mean.cuda(), logvar.cuda(), generator=torch.Generator(device="cuda").manual_seed(0))
    assert z.device.type == "cuda" and z.shape == mean.shape
