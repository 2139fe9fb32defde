"""Tests of dgm.linear_gaussian: z ~ N(0, I_K), x | z ~ N(Wz + b, σ² I_D).

Independent routes used here: scipy.stats.multivariate_normal with the covariance of the joint
Gaussian of (z, x) (written in the test from x = Wz + b + ε, never read from dgm); numerical
integration over z (scipy.integrate.quad) for K = 1; Bayes' rule on a grid; Monte Carlo
estimates within K_SE standard errors; torch.distributions for log q.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from torch.distributions import MultivariateNormal

from conftest import K_SE, TOL, requires_cuda
from dgm import linear_gaussian as lg
from dgm.divergences import gaussian_kl_full

f64 = torch.float64


def make_model(gen, D=3, K=2, dtype=f64, sigma2=0.5):
    W = torch.randn(D, K, generator=gen, dtype=f64).to(dtype)
    b = torch.randn(D, generator=gen, dtype=f64).to(dtype)
    return W, b, torch.tensor(sigma2, dtype=dtype)


def joint_covariance(W, sigma2):
    """Covariance of (z, x) from x = Wz + b + ε with z ~ N(0, I), ε ~ N(0, σ² I) independent:
    Cov(z) = I, Cov(x, z) = W, Cov(x) = W Wᵀ + σ² I. Returns numpy ``(K + D, K + D)``."""
    W = W.double().numpy()
    D, K = W.shape
    top = np.hstack([np.eye(K), W.T])
    bottom = np.hstack([W, W @ W.T + float(sigma2) * np.eye(D)])
    return np.vstack([top, bottom])


def random_q(gen, K, *batch):
    q_mean = torch.randn(*batch, K, generator=gen, dtype=f64)
    A = torch.randn(*batch, K, K, generator=gen, dtype=f64)
    return q_mean, A @ A.transpose(-1, -2) / K + 0.3 * torch.eye(K, dtype=f64)


# --------------------------------------------------------------------------------------------
# Closed form vs. scipy / quadrature / Bayes on a grid
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_log_marginal_matches_scipy_with_batches(generator, dtype):
    W, b, sigma2 = make_model(generator, dtype=dtype)
    D, K = W.shape
    x = torch.randn(5, 4, D, generator=generator, dtype=f64).to(dtype)
    got = lg.log_marginal(x, W, b, sigma2)
    assert got.shape == (5, 4) and got.dtype == dtype
    cov_x = joint_covariance(W, sigma2)[K:, K:]
    ref = scipy.stats.multivariate_normal(b.double().numpy(), cov_x).logpdf(x.double().numpy())
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)


def test_marginal_matches_sample_moments(generator):
    W, b, sigma2 = make_model(generator)
    D, K = W.shape
    N = 40_000
    x, z = lg.sample(N, W, b, sigma2, generator=generator)
    assert x.shape == (N, D) and z.shape == (N, K) and x.dtype == f64
    mean, cov = lg.marginal(W, b, sigma2)
    # sample mean: SE_d = √(Σ_dd / N); sample covariance of Gaussians: SE_ij = √((Σ_ii Σ_jj + Σ_ij²) / N)
    var = torch.diagonal(cov)
    assert bool(((x.mean(0) - mean).abs() < K_SE * torch.sqrt(var / N)).all())
    se_cov = torch.sqrt((var[:, None] * var[None, :] + cov.pow(2)) / N)
    assert bool(((torch.cov(x.T) - cov).abs() < K_SE * se_cov).all())
    # the latents are standard normal, and the residual x - Wz - b has variance σ² per coordinate
    assert bool((z.mean(0).abs() < K_SE / math.sqrt(N)).all())
    assert bool(((z.var(0) - 1).abs() < K_SE * math.sqrt(2 / (N - 1))).all())
    resid = x - z @ W.T - b
    assert bool(((resid.var(0) - sigma2).abs() < K_SE * sigma2 * math.sqrt(2 / (N - 1))).all())
    # and the marginal matches the x-block of the joint covariance (independent route)
    np.testing.assert_allclose(cov.numpy(), joint_covariance(W, sigma2)[K:, K:], rtol=1e-12)


def test_log_marginal_equals_integral_of_joint_over_z_for_k_equal_1(generator):
    W, b, sigma2 = make_model(generator, D=2, K=1)
    for x in torch.randn(3, 2, generator=generator, dtype=f64):
        def joint(z, x=x):
            return math.exp(float(lg.log_joint(x, torch.tensor([z], dtype=f64), W, b, sigma2)))

        integral, err = scipy.integrate.quad(joint, -np.inf, np.inf, epsabs=0, epsrel=1e-11)
        assert math.log(integral) == pytest.approx(float(lg.log_marginal(x, W, b, sigma2)), abs=1e-9)


def test_log_joint_integrates_to_one_over_x_and_z():
    # D = K = 1: ∫∫ p(x, z) dx dz = 1 (normalisation of both factors). The trapezoidal rule on a
    # wide grid converges exponentially fast for a smooth, Gaussian-tailed integrand.
    W, b, sigma2 = torch.tensor([[1.3]], dtype=f64), torch.tensor([0.4], dtype=f64), torch.tensor(0.7, dtype=f64)
    grid = torch.linspace(-12, 12, 1201, dtype=f64)
    xs, zs = torch.meshgrid(grid, grid, indexing="ij")
    density = torch.exp(lg.log_joint(xs[..., None], zs[..., None], W, b, sigma2))
    total = torch.trapezoid(torch.trapezoid(density, grid, dim=1), grid, dim=0)
    assert float(total) == pytest.approx(1.0, abs=1e-9)


def test_log_joint_matches_scipy_prior_plus_likelihood(generator):
    W, b, sigma2 = make_model(generator)
    D, K = W.shape
    x = torch.randn(4, D, generator=generator, dtype=f64)
    z = torch.randn(6, 1, K, generator=generator, dtype=f64)
    got = lg.log_joint(x, z, W, b, sigma2)
    assert got.shape == (6, 4)
    zn, xn, Wn, bn = z.numpy(), x.numpy(), W.numpy(), b.numpy()
    for i in range(6):
        for j in range(4):
            prior = scipy.stats.multivariate_normal(np.zeros(K), np.eye(K)).logpdf(zn[i, 0])
            lik = scipy.stats.multivariate_normal(Wn @ zn[i, 0] + bn, float(sigma2) * np.eye(D)).logpdf(xn[j])
            assert float(got[i, j]) == pytest.approx(prior + lik, abs=1e-10)


def test_posterior_matches_bayes_rule_on_a_grid(generator):
    W, b, sigma2 = make_model(generator, D=3, K=1)
    x = torch.randn(3, generator=generator, dtype=f64)
    grid = torch.linspace(-10, 10, 20_001, dtype=f64)
    log_unnorm = lg.log_joint(x, grid[:, None], W, b, sigma2)
    weights = torch.exp(log_unnorm - log_unnorm.max())
    weights = weights / torch.trapezoid(weights, grid)
    grid_mean = torch.trapezoid(weights * grid, grid)
    grid_var = torch.trapezoid(weights * (grid - grid_mean) ** 2, grid)
    mean, cov = lg.posterior(x, W, b, sigma2)
    assert mean.shape == (1,) and cov.shape == (1, 1)
    assert float(mean) == pytest.approx(float(grid_mean), abs=1e-8)
    assert float(cov) == pytest.approx(float(grid_var), rel=1e-7)


def test_posterior_matches_gaussian_conditioning_of_the_joint(generator):
    W, b, sigma2 = make_model(generator, D=4, K=2)
    D, K = W.shape
    x = torch.randn(5, D, generator=generator, dtype=f64)
    C = joint_covariance(W, sigma2)
    # z | x ~ N(C_zx C_xx⁻¹ (x - b), C_zz - C_zx C_xx⁻¹ C_xz)
    C_zz, C_zx, C_xx = C[:K, :K], C[:K, K:], C[K:, K:]
    gain = np.linalg.solve(C_xx, C_zx.T).T
    ref_mean = (x.numpy() - b.numpy()) @ gain.T
    ref_cov = C_zz - gain @ C_zx.T
    mean, cov = lg.posterior(x, W, b, sigma2)
    assert mean.shape == (5, K) and cov.shape == (K, K)
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov.numpy(), ref_cov, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The ELBO
# --------------------------------------------------------------------------------------------


def test_elbo_at_the_posterior_equals_log_marginal(generator):
    W, b, sigma2 = make_model(generator, D=5, K=3)
    x = torch.randn(7, 5, generator=generator, dtype=f64)
    mean, cov = lg.posterior(x, W, b, sigma2)
    torch.testing.assert_close(lg.elbo(x, mean, cov, W, b, sigma2), lg.log_marginal(x, W, b, sigma2), rtol=1e-10, atol=1e-10)


def test_elbo_gap_is_kl_to_the_posterior(generator):
    W, b, sigma2 = make_model(generator, D=4, K=2)
    x = torch.randn(6, 4, generator=generator, dtype=f64)
    q_mean, q_cov = random_q(generator, 2, 6)
    post_mean, post_cov = lg.posterior(x, W, b, sigma2)
    gap = lg.log_marginal(x, W, b, sigma2) - lg.elbo(x, q_mean, q_cov, W, b, sigma2)
    torch.testing.assert_close(gap, gaussian_kl_full(q_mean, q_cov, post_mean, post_cov), rtol=1e-10, atol=1e-10)
    assert bool((gap > 0).all())  # ELBO < log p(x) whenever q is not the posterior


def test_elbo_matches_monte_carlo_estimate(generator):
    W, b, sigma2 = make_model(generator, D=3, K=2)
    x = torch.randn(3, generator=generator, dtype=f64)
    q_mean, q_cov = random_q(generator, 2)
    S = 20_000
    z = q_mean + torch.randn(S, 2, generator=generator, dtype=f64) @ torch.linalg.cholesky(q_cov).T
    values = lg.log_joint(x, z, W, b, sigma2) - MultivariateNormal(q_mean, covariance_matrix=q_cov).log_prob(z)
    estimate, se = float(values.mean()), float(values.std() / math.sqrt(S))
    assert abs(estimate - float(lg.elbo(x, q_mean, q_cov, W, b, sigma2))) < K_SE * se


def test_elbo_broadcasts_and_keeps_dtype(generator):
    W, b, sigma2 = make_model(generator, D=3, K=2, dtype=torch.float32)
    x = torch.randn(4, 3, generator=generator)
    q_mean = torch.randn(2, 1, 2, generator=generator)
    q_cov = torch.eye(2)
    got = lg.elbo(x, q_mean, q_cov, W, b, sigma2)
    assert got.shape == (2, 4) and got.dtype == torch.float32
    ref = lg.elbo(x.double(), q_mean.double(), q_cov.double(), W.double(), b.double(), sigma2.double())
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-4)


def test_mixed_dtypes_promote_to_float64(generator):
    """Decision: float32 and float64 arguments are promoted (as torch arithmetic does)."""
    W, b, sigma2 = make_model(generator, dtype=torch.float32)
    x = torch.randn(3, generator=generator, dtype=f64)
    z = torch.randn(2, generator=generator, dtype=f64)
    q_cov = torch.eye(2, dtype=f64)
    ref_args = (W.double(), b.double(), sigma2.double())
    for got, ref in [
        (lg.log_joint(x, z, W, b, sigma2), lg.log_joint(x, z, *ref_args)),
        (lg.log_marginal(x, W, b, sigma2), lg.log_marginal(x, *ref_args)),
        (lg.elbo(x, z.float(), q_cov, W, b, sigma2), lg.elbo(x, z.float().double(), q_cov, *ref_args)),
        (lg.posterior(x, W, b, sigma2)[0], lg.posterior(x, *ref_args)[0]),
    ]:
        assert got.dtype == f64
        torch.testing.assert_close(got, ref, **TOL[f64])


# --------------------------------------------------------------------------------------------
# gradcheck (float64)
# --------------------------------------------------------------------------------------------


def test_gradcheck_elbo_wrt_q(generator):
    W, b, sigma2 = make_model(generator, D=3, K=2)
    x = torch.randn(2, 3, generator=generator, dtype=f64)
    q_mean = torch.randn(2, 2, generator=generator, dtype=f64).requires_grad_()
    A = torch.randn(2, 2, generator=generator, dtype=f64).requires_grad_()
    eye = torch.eye(2, dtype=f64)
    assert torch.autograd.gradcheck(lambda m, A: lg.elbo(x, m, A @ A.T + eye, W, b, sigma2), (q_mean, A))


def test_gradcheck_log_marginal_wrt_parameters(generator):
    W, b, sigma2 = make_model(generator, D=3, K=2)
    x = torch.randn(2, 3, generator=generator, dtype=f64)
    W.requires_grad_()
    b.requires_grad_()
    log_s = torch.log(sigma2).requires_grad_()
    assert torch.autograd.gradcheck(lambda W, b, log_s: lg.log_marginal(x, W, b, log_s.exp()), (W, b, log_s))


# --------------------------------------------------------------------------------------------
# Sampling reproducibility
# --------------------------------------------------------------------------------------------


def test_sample_is_reproducible_with_a_seed(generator):
    W, b, sigma2 = make_model(generator)
    x1, z1 = lg.sample(50, W, b, sigma2, generator=torch.Generator().manual_seed(3))
    x2, z2 = lg.sample(50, W, b, sigma2, generator=torch.Generator().manual_seed(3))
    x3, _ = lg.sample(50, W, b, sigma2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(x1, x2) and torch.equal(z1, z2)
    assert not torch.equal(x1, x3)


def test_results_live_on_the_parameters_device(device, generator):
    """Runs on the CPU and, where present, CUDA (the ``device`` fixture)."""
    W, b, sigma2 = (t.to(device) for t in make_model(generator))
    x = torch.zeros(4, 3, dtype=f64, device=device)
    assert lg.log_marginal(x, W, b, sigma2).device.type == device.type
    mean, cov = lg.posterior(x, W, b, sigma2)
    assert mean.device.type == cov.device.type == device.type
    assert lg.elbo(x, mean, cov, W, b, sigma2).device.type == device.type
    xs, zs = lg.sample(3, W, b, sigma2, generator=torch.Generator(device=device).manual_seed(0))
    assert xs.device.type == zs.device.type == device.type


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------

W0 = torch.ones(3, 2, dtype=f64)
B0 = torch.zeros(3, dtype=f64)
X0 = torch.zeros(3, dtype=f64)
Z0 = torch.zeros(2, dtype=f64)
I2 = torch.eye(2, dtype=f64)

BAD_INPUTS = [
    ("marg W 1-D", lg.marginal, (B0, B0, 1.0), {}, ValueError, r"W must have shape \(D, K\)"),
    ("marg b shape", lg.marginal, (W0, Z0, 1.0), {}, ValueError, r"b must have shape \(3,\)"),
    ("marg sigma2 zero", lg.marginal, (W0, B0, 0.0), {}, ValueError, "sigma2 must be a positive"),
    ("marg sigma2 negative", lg.marginal, (W0, B0, -1.0), {}, ValueError, "sigma2 must be a positive"),
    ("marg sigma2 nan", lg.marginal, (W0, B0, float("nan")), {}, ValueError, "sigma2 must be finite"),
    ("marg sigma2 vector", lg.marginal, (W0, B0, torch.ones(3, dtype=f64)), {}, ValueError, "sigma2 must be a scalar"),
    ("marg W int", lg.marginal, (torch.ones(3, 2, dtype=torch.int64), B0, 1.0), {}, TypeError, "W must be a floating-point"),
    ("marg device", lg.marginal, (W0, torch.zeros(3, device="meta", dtype=f64), 1.0), {}, ValueError, "b on meta"),
    ("logm x D", lg.log_marginal, (Z0, W0, B0, 1.0), {}, ValueError, "x must have shape"),
    ("logm x int", lg.log_marginal, (torch.zeros(3, dtype=torch.int64), W0, B0, 1.0), {}, TypeError, "x must be a floating-point"),
    ("logm device", lg.log_marginal, (torch.zeros(3, device="meta", dtype=f64), W0, B0, 1.0), {}, ValueError, "x on meta"),
    ("joint z K", lg.log_joint, (X0, X0, W0, B0, 1.0), {}, ValueError, "z must have shape"),
    ("joint batch", lg.log_joint, (torch.zeros(4, 3, dtype=f64), torch.zeros(5, 2, dtype=f64), W0, B0, 1.0), {}, ValueError, "batch shapes do not broadcast"),
    ("joint sigma2", lg.log_joint, (X0, Z0, W0, B0, 0.0), {}, ValueError, "sigma2 must be a positive"),
    ("post x D", lg.posterior, (torch.zeros(2, 4, dtype=f64), W0, B0, 1.0), {}, ValueError, "x must have shape"),
    ("post sigma2", lg.posterior, (X0, W0, B0, -2.0), {}, ValueError, "sigma2 must be a positive"),
    ("elbo q_mean K", lg.elbo, (X0, X0, I2, W0, B0, 1.0), {}, ValueError, "q_mean must have shape"),
    ("elbo q_cov K", lg.elbo, (X0, Z0, torch.eye(3, dtype=f64), W0, B0, 1.0), {}, ValueError, "q_cov must have shape"),
    ("elbo q_cov asym", lg.elbo, (X0, Z0, torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=f64), W0, B0, 1.0), {}, ValueError, "q_cov must be symmetric"),
    ("elbo q_cov not PD", lg.elbo, (X0, Z0, torch.diag(torch.tensor([1.0, -1.0], dtype=f64)), W0, B0, 1.0), {}, ValueError, "q_cov must be symmetric positive definite"),
    ("elbo batch", lg.elbo, (torch.zeros(4, 3, dtype=f64), torch.zeros(5, 2, dtype=f64), I2, W0, B0, 1.0), {}, ValueError, "batch shapes do not broadcast"),
    ("elbo cov batch", lg.elbo, (torch.zeros(4, 3, dtype=f64), torch.zeros(4, 2, dtype=f64), I2.expand(5, 2, 2), W0, B0, 1.0), {}, ValueError, "batch shapes do not broadcast"),
    ("elbo device", lg.elbo, (X0, Z0, torch.eye(2, device="meta", dtype=f64), W0, B0, 1.0), {}, ValueError, "q_cov on meta"),
    ("sample zero", lg.sample, (0, W0, B0, 1.0), {}, ValueError, "num_samples must be a positive integer"),
    ("sample negative", lg.sample, (-3, W0, B0, 1.0), {}, ValueError, "num_samples must be a positive integer"),
    ("sample float", lg.sample, (2.0, W0, B0, 1.0), {}, TypeError, r"num_samples must be a positive integer; got 2.0 \(float\)"),
    ("sample sigma2", lg.sample, (5, W0, B0, 0.0), {}, ValueError, "sigma2 must be a positive"),
]


@pytest.mark.parametrize("fn, args, kwargs, error, match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_raise_clear_errors(fn, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_the_bad_input_table_covers_every_public_function():
    assert {c[1].__name__ for c in BAD_INPUTS} == set(lg.__all__)


# --------------------------------------------------------------------------------------------
# CPU / CUDA parity
# --------------------------------------------------------------------------------------------


@pytest.mark.cuda
@requires_cuda
def test_cpu_cuda_parity(generator):
    W, b, sigma2 = make_model(generator)
    x = torch.randn(5, 3, generator=generator, dtype=f64)
    q_mean, q_cov = random_q(generator, 2, 5)
    cpu = [lg.log_marginal(x, W, b, sigma2), *lg.posterior(x, W, b, sigma2), lg.elbo(x, q_mean, q_cov, W, b, sigma2)]
    c = lambda t: t.cuda()  # noqa: E731
    gpu = [
        lg.log_marginal(c(x), c(W), c(b), c(sigma2)),
        *lg.posterior(c(x), c(W), c(b), c(sigma2)),
        lg.elbo(c(x), c(q_mean), c(q_cov), c(W), c(b), c(sigma2)),
    ]
    for g, h in zip(gpu, cpu):
        assert g.device.type == "cuda"
        torch.testing.assert_close(g.cpu(), h, rtol=1e-9, atol=1e-9)
    xs, zs = lg.sample(10, c(W), c(b), c(sigma2), generator=torch.Generator(device="cuda").manual_seed(0))
    assert xs.device.type == "cuda" and xs.shape == (10, 3) and zs.shape == (10, 2)
