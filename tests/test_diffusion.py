"""Tests of dgm.diffusion, by kind (see STYLE.md, "Tests by kind").

Every expected value comes from an independent route, which each test names: NumPy float64
recomputations of the schedule, running the one-step chain q(x_t | x_{t-1}) T times, a brute-force
Bayes posterior on a 1-D grid, least-squares regression on samples, scipy's normal CDF, explicit
Python loops, or a Monte Carlo estimate compared within K_SE standard errors (conftest.py). No
formula of dgm.diffusion is imported into a test's expected value except where a test checks two
library routes against each other, which it says.

Indexing (dgm.diffusion's convention): t is the book's timestep 1..T everywhere; schedule arrays
hold timestep t at entry t - 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from conftest import K_SE, TOL, requires_cuda
from dgm.distributions import gaussian_log_prob
from dgm.divergences import gaussian_kl
from dgm.diffusion import (
    GaussianDiffusion,
    bare_sampling_loop,
    cosine_beta_schedule,
    discretized_gaussian_log_prob,
    linear_beta_schedule,
)

f64 = torch.float64


def scaled_linear(T: int) -> torch.Tensor:
    """Ho et al.'s linear schedule rescaled to T >= 50 steps (β ends scaled by 1000 / T), so ᾱ_T ≈ 4e-5."""
    return linear_beta_schedule(T, 1e-4 * 1000 / T, 0.02 * 1000 / T)


def short_linear(T: int) -> torch.Tensor:
    """A linear schedule for the short chains (T < 50) of fast tests: β from 0.01 to 0.5 (ᾱ_20 ≈ 3e-3)."""
    return linear_beta_schedule(T, 0.01, 0.5)


def np_schedule(diffusion: GaussianDiffusion) -> dict:
    """Independent route: the schedule recomputed in NumPy float64 from β alone, indexed by t (entry 0 unused)."""
    beta = np.concatenate([[np.nan], diffusion.betas.numpy()])
    alpha = 1.0 - beta
    abar = np.concatenate([[1.0], np.cumprod(alpha[1:])])  # abar[0] = ᾱ_0 = 1
    return {"beta": beta, "alpha": alpha, "abar": abar}


class LinearTimeEps(torch.nn.Module):
    """A tiny ε-model: ε̂ = x W + b + c · t / T (x of shape (B, D))."""

    def __init__(self, D: int, T: int, generator: torch.Generator, dtype=torch.float32):
        super().__init__()
        self.T = T
        self.W = torch.nn.Parameter(0.3 * torch.randn(D, D, generator=generator, dtype=dtype))
        self.b = torch.nn.Parameter(0.1 * torch.randn(D, generator=generator, dtype=dtype))
        self.c = torch.nn.Parameter(0.1 * torch.randn(D, generator=generator, dtype=dtype))

    def forward(self, x, t):
        return x @ self.W + self.b + self.c * (t.to(x.dtype) / self.T)[:, None]


class FixedEps:
    """A "model" that ignores its input and returns a fixed ε̂ (to test the KL identity at any ε̂)."""

    def __init__(self, eps_hat: torch.Tensor):
        self.eps_hat = eps_hat

    def __call__(self, x, t):
        return self.eps_hat


class OptimalEps:
    """The exact optimum for a finite training set, as a model (x_t, t) -> ε*."""

    def __init__(self, diffusion: GaussianDiffusion, data: torch.Tensor):
        self.diffusion, self.data = diffusion, data

    def __call__(self, x, t):
        return self.diffusion.optimal_eps(x, t, self.data)


def grid_points(*levels: int, dtype=f64) -> torch.Tensor:
    """Points of the 256-level grid in [-1, 1]: -1 + 2k/255 for the given k."""
    return torch.tensor([-1 + 2 * k / 255 for k in levels], dtype=dtype)


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def test_linear_schedule_and_its_cumulative_product_match_numpy():
    T = 1000
    d = GaussianDiffusion(linear_beta_schedule(T))
    beta = np.linspace(1e-4, 0.02, T)  # independent route: NumPy float64
    abar = np.cumprod(1.0 - beta)
    assert d.betas.dtype == f64 and d.betas.shape == (T,)
    np.testing.assert_allclose(d.betas.numpy(), beta, rtol=1e-12, atol=0)
    np.testing.assert_allclose(d.alphas_cumprod.numpy(), abar, rtol=1e-10, atol=0)
    np.testing.assert_allclose(d.one_minus_alphas_cumprod.numpy(), 1.0 - abar, rtol=1e-9, atol=0)
    np.testing.assert_allclose(d.alphas_cumprod_prev.numpy(), np.concatenate([[1.0], abar[:-1]]), rtol=1e-10)
    # Ho et al.'s schedule ends near pure noise: ᾱ_T ≈ exp(-Σβ) = exp(-10.05) ≈ 4.0e-5 (to first order).
    assert 3.5e-5 < float(d.alphas_cumprod[-1]) < 4.5e-5


def test_linear_defaults_are_for_T_1000_and_must_be_rescaled_for_short_chains():
    # Documents the pitfall stated in linear_beta_schedule's docstring: Σβ ≈ 1 for T = 100.
    short = GaussianDiffusion(linear_beta_schedule(100))
    assert float(short.alphas_cumprod[-1]) > 0.3
    assert float(GaussianDiffusion(scaled_linear(100)).alphas_cumprod[-1]) < 1e-4


def test_cosine_schedule_matches_its_definition_and_ends_at_noise():
    T, s = 1000, 0.008
    d = GaussianDiffusion(cosine_beta_schedule(T, s=s))
    steps = np.arange(T + 1)
    f = np.cos((steps / T + s) / (1 + s) * np.pi / 2) ** 2
    abar = f[1:] / f[0]  # independent route: ᾱ_t = f(t)/f(0), NumPy
    unclipped = d.betas.numpy() < 0.999
    assert unclipped[:-1].all()  # only the last step is clipped
    np.testing.assert_allclose(d.alphas_cumprod.numpy()[:-1], abar[:-1], rtol=1e-9, atol=0)
    assert float(d.alphas_cumprod[-1]) < 1e-8  # ᾱ_T ≈ 0: x_T is noise
    assert float(d.betas[-1]) == pytest.approx(0.999)


@pytest.mark.parametrize("betas", [scaled_linear(50), cosine_beta_schedule(50), linear_beta_schedule(1)], ids=["linear", "cosine", "T=1"])
def test_schedule_invariants(betas):
    d = GaussianDiffusion(betas)
    for name in GaussianDiffusion._SCHEDULE_NAMES:
        value = getattr(d, name)
        assert value.dtype == f64 and value.shape == (d.T,), name
        assert bool(torch.isfinite(value).all()), name
    assert bool(((d.betas > 0) & (d.betas < 1)).all())
    assert bool((d.betas[1:] >= d.betas[:-1]).all())  # non-decreasing
    assert bool((d.alphas_cumprod[1:] < d.alphas_cumprod[:-1]).all())  # ᾱ strictly decreasing
    assert float(d.alphas_cumprod_prev[0]) == 1.0
    assert float(d.posterior_variance[0]) == 0.0  # β̃_1 = 0: x_0 is known given x_0
    assert bool((d.posterior_variance <= d.betas).all())  # β̃_t ≤ β_t
    torch.testing.assert_close(d.sqrt_alphas_cumprod**2 + d.sqrt_one_minus_alphas_cumprod**2, torch.ones_like(d.betas), **TOL[f64])


def test_posterior_coefficients_match_the_precision_form():
    """Independent route: Bayes' rule in precision form, 1/β̃ = α_t/β_t + 1/(1-ᾱ_{t-1}), μ̃ = β̃ (√α_t x_t/β_t + √ᾱ_{t-1} x_0/(1-ᾱ_{t-1}))."""
    d = GaussianDiffusion(cosine_beta_schedule(40))
    s = np_schedule(d)
    t = np.arange(2, d.T + 1)  # t = 1 has 1 - ᾱ_0 = 0 (infinite prior precision)
    precision = s["alpha"][t] / s["beta"][t] + 1.0 / (1.0 - s["abar"][t - 1])
    var = 1.0 / precision
    np.testing.assert_allclose(d.posterior_variance.numpy()[t - 1], var, rtol=1e-10)
    np.testing.assert_allclose(d.posterior_mean_coef2.numpy()[t - 1], var * np.sqrt(s["alpha"][t]) / s["beta"][t], rtol=1e-10)
    np.testing.assert_allclose(
        d.posterior_mean_coef1.numpy()[t - 1], var * np.sqrt(s["abar"][t - 1]) / (1.0 - s["abar"][t - 1]), rtol=1e-10
    )
    # t = 1: μ̃_1 = x_0 (coef1 = 1, coef2 = 0); the clipped log-variance borrows β̃_2.
    assert float(d.posterior_mean_coef1[0]) == pytest.approx(1.0, rel=1e-12)
    assert float(d.posterior_mean_coef2[0]) == 0.0
    assert float(d.posterior_log_variance_clipped[0]) == pytest.approx(math.log(var[0]), rel=1e-12)


# --------------------------------------------------------------------------------------------
# The forward process q(x_t | x_0)
# --------------------------------------------------------------------------------------------


def test_q_closed_form_matches_running_the_one_step_chain(generator):
    """Independent route: x_t = √α_t x_{t-1} + √β_t z run step by step; moments vs q(x_t | x_0) within K_SE SE."""
    T, S = 50, 20000
    d = GaussianDiffusion(scaled_linear(T))
    s = np_schedule(d)
    x0 = torch.tensor([1.5, -0.5, 0.0], dtype=f64)
    x = x0.expand(S, 3).clone()
    for t in range(1, T + 1):
        x = math.sqrt(s["alpha"][t]) * x + math.sqrt(s["beta"][t]) * torch.randn(S, 3, generator=generator, dtype=f64)
        if t in (1, 5, 20, T):
            mean, var, log_var = d.q_mean_variance(x0.expand(S, 3), torch.full((S,), t))
            mean, var = mean[0], var[0]
            torch.testing.assert_close(log_var[0], torch.log(var), **TOL[f64])
            se_mean = torch.sqrt(var / S)
            assert bool(((x.mean(0) - mean).abs() < K_SE * se_mean).all()), t
            se_var = var * math.sqrt(2 / (S - 1))  # SE of a Gaussian sample variance
            assert bool(((x.var(0) - var).abs() < K_SE * se_var).all()), t


def test_q_sample_is_the_reparameterised_closed_form(generator):
    d = GaussianDiffusion(short_linear(30))
    x0 = torch.randn(6, 2, 3, generator=generator, dtype=f64)  # any event shape
    t = torch.tensor([1, 2, 5, 10, 29, 30])
    noise = torch.randn(6, 2, 3, generator=generator, dtype=f64)
    mean, var, _ = d.q_mean_variance(x0, t)
    torch.testing.assert_close(d.q_sample(x0, t, noise=noise), mean + var.sqrt() * noise, **TOL[f64])
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    torch.testing.assert_close(d.q_sample(x0, t, generator=g1), d.q_sample(x0, t, generator=g2), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_predict_x0_and_eps_invert_q_sample(generator, dtype):
    d = GaussianDiffusion(cosine_beta_schedule(100))
    x0 = torch.randn(50, 4, generator=generator, dtype=dtype)
    eps = torch.randn(50, 4, generator=generator, dtype=dtype)
    t = torch.randint(1, 101, (50,), generator=generator)
    xt = d.q_sample(x0, t, noise=eps)
    assert xt.dtype == dtype
    # 1/√ᾱ_t reaches ~1e3 for this schedule near T, amplifying float32 rounding of x_t accordingly.
    tol = TOL[f64] if dtype == f64 else {"rtol": 1e-5, "atol": 1e-5 * float(d.sqrt_recip_alphas_cumprod.max())}
    torch.testing.assert_close(d.predict_x0_from_eps(xt, t, eps), x0, **tol)
    # 1/√(1−ᾱ_t) reaches ~1e2 at t = 1, amplifying float32 rounding of x_t the same way.
    tol = TOL[f64] if dtype == f64 else {"rtol": 1e-5, "atol": 1e-5 / float(d.sqrt_one_minus_alphas_cumprod.min())}
    torch.testing.assert_close(d.predict_eps_from_x0(xt, t, x0), eps, **tol)


# --------------------------------------------------------------------------------------------
# The posterior q(x_{t-1} | x_t, x_0)
# --------------------------------------------------------------------------------------------


def grid_posterior(s: dict, t: int, x0: float, xt: float) -> tuple[float, float]:
    """Independent route: q(x_{t-1}|x_0) q(x_t|x_{t-1}) on a fine 1-D grid, normalised numerically.

    The grid covers ±12 likelihood widths around x_t/√α_t, where the posterior mass lies; Riemann
    sums of smooth, rapidly decaying densities on a uniform grid converge faster than any power
    of the spacing, so 20 001 points give ~1e-12.
    """
    centre, width = xt / math.sqrt(s["alpha"][t]), math.sqrt(s["beta"][t] / s["alpha"][t])
    grid = np.linspace(centre - 12 * width, centre + 12 * width, 20001)
    log_prior = scipy.stats.norm.logpdf(grid, math.sqrt(s["abar"][t - 1]) * x0, math.sqrt(1 - s["abar"][t - 1]))
    log_lik = scipy.stats.norm.logpdf(xt, math.sqrt(s["alpha"][t]) * grid, math.sqrt(s["beta"][t]))
    w = np.exp(log_prior + log_lik - np.max(log_prior + log_lik))
    w /= w.sum()
    mean = float((w * grid).sum())
    return mean, float((w * (grid - mean) ** 2).sum())


@pytest.mark.parametrize("t", [2, 3, 10, 25, 50])
def test_posterior_matches_brute_force_bayes_on_a_grid(t):
    d = GaussianDiffusion(scaled_linear(50))
    s = np_schedule(d)
    x0, xt = 0.7, -0.4
    grid_mean, grid_var = grid_posterior(s, t, x0, xt)
    mean, var, _ = d.q_posterior_mean_variance(torch.tensor([[x0]], dtype=f64), torch.tensor([[xt]], dtype=f64), t)
    err_mean, err_var = abs(float(mean) - grid_mean), abs(float(var) - grid_var)
    print(f"t={t}: grid posterior |Δmean| = {err_mean:.2e}, |Δvar| = {err_var:.2e} (var {grid_var:.3e})")
    assert err_mean < 1e-8 and err_var < 1e-8 * grid_var


def test_the_notes_square_root_slip_in_the_posterior_variance_does_not_match():
    """Seed note 002 §5 writes β̃_t = (1 − √ᾱ_{t−1}) / (1 − √ᾱ_t) β_t; the grid posterior refutes it."""
    d = GaussianDiffusion(scaled_linear(50))
    s = np_schedule(d)
    for t in (2, 10, 40):
        _, grid_var = grid_posterior(s, t, 0.7, -0.4)
        wrong = (1 - math.sqrt(s["abar"][t - 1])) / (1 - math.sqrt(s["abar"][t])) * s["beta"][t]
        right = (1 - s["abar"][t - 1]) / (1 - s["abar"][t]) * s["beta"][t]
        assert abs(right - grid_var) < 1e-8 * grid_var
        assert abs(wrong - grid_var) > 1e-3 * grid_var, t  # off by far more than the grid's error


def test_posterior_matches_regression_on_samples(generator):
    """Independent route: draw x_0, x_{t-1} ~ q(·|x_0), x_t ~ q(·|x_{t-1}); least squares of x_{t-1} on (x_0, x_t).

    The regression coefficients estimate posterior_mean_coef1/coef2 and the residual variance
    estimates β̃_t; each within K_SE of its OLS standard error.
    """
    d = GaussianDiffusion(short_linear(20))
    s = np_schedule(d)
    S, t = 200_000, 8
    x0 = torch.randn(S, generator=generator, dtype=f64).numpy()
    prev = math.sqrt(s["abar"][t - 1]) * x0 + math.sqrt(1 - s["abar"][t - 1]) * torch.randn(S, generator=generator, dtype=f64).numpy()
    xt = math.sqrt(s["alpha"][t]) * prev + math.sqrt(s["beta"][t]) * torch.randn(S, generator=generator, dtype=f64).numpy()
    X = np.stack([x0, xt], 1)
    coef, *_ = np.linalg.lstsq(X, prev, rcond=None)
    resid = prev - X @ coef
    sigma2 = resid @ resid / (S - 2)
    se_coef = np.sqrt(sigma2 * np.diag(np.linalg.inv(X.T @ X)))
    expected = np.array([float(d.posterior_mean_coef1[t - 1]), float(d.posterior_mean_coef2[t - 1])])
    assert (np.abs(coef - expected) < K_SE * se_coef).all(), (coef, expected, se_coef)
    beta_tilde = float(d.posterior_variance[t - 1])
    assert abs(sigma2 - beta_tilde) < K_SE * beta_tilde * math.sqrt(2 / S)


def test_posterior_mean_in_eps_form_equals_the_x0_form(generator):
    """μ̃_t(x_t, x_0) = (x_t − β_t/√(1−ᾱ_t) ε) / √α_t with ε = (x_t − √ᾱ_t x_0)/√(1−ᾱ_t); coefficients typed here from NumPy."""
    d = GaussianDiffusion(cosine_beta_schedule(100))
    s = np_schedule(d)
    x0 = torch.randn(64, 3, generator=generator, dtype=f64)
    t = torch.randint(1, 101, (64,), generator=generator)
    eps = torch.randn(64, 3, generator=generator, dtype=f64)
    xt = d.q_sample(x0, t, noise=eps)
    beta, alpha, abar = (torch.from_numpy(s[k])[t][:, None] for k in ("beta", "alpha", "abar"))
    eps_form = (xt - beta / torch.sqrt(1 - abar) * eps) / torch.sqrt(alpha)
    mean, _, _ = d.q_posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(mean, eps_form, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------------
# The reverse model and the VLB weight λ_t
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_kl_between_posterior_and_model_is_a_weighted_eps_mse(generator, variance):
    """KL(q(x_{t-1}|x_t,x_0) ‖ p_θ(x_{t-1}|x_t)) = λ_t ‖ε − ε̂‖² + C_t, checked with gaussian_kl itself.

    λ_t = β_t² / (2 σ_t² α_t (1−ᾱ_t)) and C_t = D/2 (log(σ_t²/β̃_t) + β̃_t/σ_t² − 1) (0 for σ_t² = β̃_t),
    both typed here from the NumPy schedule.
    """
    T, B, D = 100, 32, 5
    d = GaussianDiffusion(scaled_linear(T))
    s = np_schedule(d)
    x0 = torch.randn(B, D, generator=generator, dtype=f64)
    t = torch.randint(2, T + 1, (B,), generator=generator)
    eps = torch.randn(B, D, generator=generator, dtype=f64)
    eps_hat = torch.randn(B, D, generator=generator, dtype=f64)
    xt = d.q_sample(x0, t, noise=eps)
    mean_q, var_q, _ = d.q_posterior_mean_variance(x0, xt, t)
    mean_p, var_p, log_var_p = d.p_mean_variance(FixedEps(eps_hat), xt, t, variance=variance)
    kl = gaussian_kl(mean_q, torch.log(var_q), mean_p, log_var_p)

    beta, alpha, abar, abar_prev = (torch.from_numpy(s[k])[t] for k in ("beta", "alpha", "abar", "abar"))
    abar_prev = torch.from_numpy(s["abar"])[t - 1]
    beta_tilde = (1 - abar_prev) / (1 - abar) * beta
    sigma2 = beta if variance == "beta" else beta_tilde
    lam = beta**2 / (2 * sigma2 * alpha * (1 - abar))
    C = D / 2 * (torch.log(sigma2 / beta_tilde) + beta_tilde / sigma2 - 1)
    identity = lam * (eps - eps_hat).pow(2).sum(1) + C
    err = float((kl - identity).abs().max() / kl.abs().max())
    print(f"λ_t identity ({variance}): max relative |KL − (λ‖ε−ε̂‖² + C)| = {err:.2e}")
    assert err < 1e-10
    torch.testing.assert_close(d.vlb_weights(variance)[t - 1], lam, **TOL[f64])
    torch.testing.assert_close(var_p, sigma2[:, None].expand(B, D), **TOL[f64])
    # the weighted loss is the batch mean of λ_t ‖ε − ε̂‖²
    loss = d.loss_vlb_weighted(FixedEps(eps_hat), x0, t=t, noise=eps, variance=variance)
    torch.testing.assert_close(loss, (lam * (eps - eps_hat).pow(2).sum(1)).mean(), **TOL[f64])


def test_p_mean_is_the_eps_form_and_clip_acts_on_x0(generator):
    d = GaussianDiffusion(short_linear(40))
    s = np_schedule(d)
    model = LinearTimeEps(3, d.T, generator, dtype=f64)
    xt = 2 * torch.randn(16, 3, generator=generator, dtype=f64)
    t = torch.randint(1, 41, (16,), generator=generator)
    with torch.no_grad():
        eps_hat = model(xt, t)
        mean, _, _ = d.p_mean_variance(model, xt, t)
        beta, alpha, abar = (torch.from_numpy(s[k])[t][:, None] for k in ("beta", "alpha", "abar"))
        torch.testing.assert_close(mean, (xt - beta / torch.sqrt(1 - abar) * eps_hat) / torch.sqrt(alpha), rtol=1e-9, atol=1e-9)
        clipped, _, _ = d.p_mean_variance(model, xt, t, clip_x0=True)
        x0_hat = d.predict_x0_from_eps(xt, t, eps_hat).clamp(-1, 1)
        torch.testing.assert_close(clipped, d.q_posterior_mean_variance(x0_hat, xt, t)[0], **TOL[f64])


def test_p_sample_adds_sigma_z_except_at_t_1(generator):
    d = GaussianDiffusion(short_linear(10))
    model = FixedEps(torch.zeros(4, 2, dtype=f64))
    xt = torch.randn(4, 2, generator=generator, dtype=f64)
    z = torch.randn(4, 2, generator=generator, dtype=f64)
    t = torch.tensor([1, 2, 5, 10])
    for variance, sigma2 in (("beta", d.betas), ("beta_tilde", d.posterior_variance)):
        mean, _, _ = d.p_mean_variance(model, xt, t, variance=variance)
        out = d.p_sample(model, xt, t, noise=z, variance=variance)
        expected = mean + torch.sqrt(sigma2[t - 1])[:, None] * z
        expected[0] = mean[0]  # t = 1: the mean, no noise
        torch.testing.assert_close(out, expected, **TOL[f64])


# --------------------------------------------------------------------------------------------
# The discretised decoder and the VLB
# --------------------------------------------------------------------------------------------


def test_discretized_log_prob_matches_scipy_and_sums_to_one(generator):
    levels = torch.arange(256)
    x = grid_points(*levels.tolist())
    for mu, log_var in ((0.13, math.log(0.05**2)), (-0.9, math.log(0.3**2)), (0.999, math.log(1e-3**2))):
        mean, lv = torch.full((256, 1), mu, dtype=f64), torch.full((256, 1), log_var, dtype=f64)
        logp = discretized_gaussian_log_prob(x[:, None], mean, lv)
        # independent route: scipy CDF differences, outer bins to ±∞
        sd, h = math.exp(0.5 * log_var), 1 / 255
        hi = np.where(levels.numpy() == 255, np.inf, x.numpy() + h)
        lo = np.where(levels.numpy() == 0, -np.inf, x.numpy() - h)
        # CDF differences left of the mean, survival-function differences right of it: no cancellation
        p_left = scipy.stats.norm.cdf(hi, mu, sd) - scipy.stats.norm.cdf(lo, mu, sd)
        p_right = scipy.stats.norm.sf(lo, mu, sd) - scipy.stats.norm.sf(hi, mu, sd)
        p = np.where(lo > mu, p_right, p_left)
        ok = p > 1e-300  # below that scipy underflows; ours stays finite
        assert ok.sum() >= 6
        np.testing.assert_allclose(logp.numpy()[ok], np.log(p[ok]), rtol=1e-9, atol=1e-12)
        assert float(torch.logsumexp(logp, 0)) == pytest.approx(0.0, abs=1e-12)  # a distribution over 256 levels
        assert bool(torch.isfinite(logp).all())  # far tails stay finite (log_ndtr, no 0 - 0)


def test_vlb_terms_for_a_single_point_dataset(generator):
    """With one training point the optimal ε is the true noise, so μ_θ = μ̃_t exactly: L_{t−1} = C_t (0 for β̃)."""
    T, B = 20, 6
    d = GaussianDiffusion(short_linear(T))
    point = grid_points(40, 255, 128)[None]  # (1, 3)
    x0 = point.expand(B, 3)
    model = OptimalEps(d, point)
    s = np_schedule(d)
    # L_T closed form, typed here: ½ Σ_d [ᾱ_T (x_d² − 1) − log(1 − ᾱ_T)]
    abar_T = s["abar"][T]
    L_T = 0.5 * float((abar_T * (point**2 - 1) - math.log(1 - abar_T)).sum())
    terms = d.vlb_terms(model, x0, generator=generator, variance="beta_tilde")
    assert terms.shape == (B, T + 1) and bool(torch.isfinite(terms).all())
    assert float(terms[:, 1:T].abs().max()) < 1e-9
    torch.testing.assert_close(terms[:, T], torch.full((B,), L_T, dtype=f64), **TOL[f64])
    assert bool((terms[:, 0] > 0).all())  # −log of a probability
    terms_beta = d.vlb_terms(model, x0, generator=generator, variance="beta")
    t = np.arange(2, T + 1)
    beta_tilde = (1 - s["abar"][t - 1]) / (1 - s["abar"][t]) * s["beta"][t]
    C = 3 / 2 * (np.log(s["beta"][t] / beta_tilde) + beta_tilde / s["beta"][t] - 1)
    torch.testing.assert_close(terms_beta[:, 1:T], torch.from_numpy(C).expand(B, T - 1), rtol=1e-8, atol=1e-10)


def direct_negative_elbo(d: GaussianDiffusion, model, x0: torch.Tensor, generator, variance: str) -> torch.Tensor:
    """Independent route: −ELBO = log q(x_{1:T}|x_0) − log p(x_{0:T}) along whole forward trajectories.

    Each trajectory runs the one-step chain; every density is a plain Gaussian log-density
    (dgm.distributions.gaussian_log_prob) with means built from NumPy coefficients; the decoder is
    scipy's CDF difference. No posterior, no KL. Returns one estimate per row of x0, ``(S,)``.
    """
    s = np_schedule(d)
    T = d.T
    sigma2 = s["beta"].copy()
    if variance == "beta_tilde":
        sigma2[2:] = (1 - s["abar"][1:-1]) / (1 - s["abar"][2:]) * s["beta"][2:]
        sigma2[1] = sigma2[2]
    xs = [x0]
    log_q = torch.zeros(x0.shape[0], dtype=f64)
    for t in range(1, T + 1):
        mean = math.sqrt(s["alpha"][t]) * xs[-1]
        xs.append(mean + math.sqrt(s["beta"][t]) * torch.randn(x0.shape, generator=generator, dtype=f64))
        log_q += gaussian_log_prob(xs[t], mean, torch.full_like(x0, math.log(s["beta"][t])))
    log_p = gaussian_log_prob(xs[T], torch.zeros_like(x0), torch.zeros_like(x0))
    for t in range(T, 0, -1):
        eps_hat = model(xs[t], torch.full((x0.shape[0],), t))
        mean = (xs[t] - s["beta"][t] / math.sqrt(1 - s["abar"][t]) * eps_hat) / math.sqrt(s["alpha"][t])
        if t > 1:
            log_p += gaussian_log_prob(xs[t - 1], mean, torch.full_like(x0, math.log(sigma2[t])))
        else:
            sd, x, m = math.sqrt(sigma2[1]), x0.numpy(), mean.numpy()
            hi = np.where(x > 1 - 1 / 255, np.inf, x + 1 / 255)
            lo = np.where(x < -1 + 1 / 255, -np.inf, x - 1 / 255)
            p = scipy.stats.norm.cdf(hi, m, sd) - scipy.stats.norm.cdf(lo, m, sd)
            log_p += torch.from_numpy(np.log(p).sum(1))
    return log_q - log_p


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_vlb_terms_sum_to_a_direct_monte_carlo_negative_elbo(variance):
    T, S = 20, 4000
    d = GaussianDiffusion(short_linear(T))
    data = torch.stack([grid_points(40, 200), grid_points(128, 128), grid_points(230, 10)])  # (3, 2)
    model = OptimalEps(d, data)
    x0 = data[0].expand(S, 2)
    vlb = d.vlb_terms(model, x0, generator=torch.Generator().manual_seed(1), variance=variance).sum(1)
    direct = direct_negative_elbo(d, model, x0, torch.Generator().manual_seed(2), variance)
    se = math.sqrt(vlb.var() / S + direct.var() / S)
    gap = float(vlb.mean() - direct.mean())
    print(f"−ELBO ({variance}): Σ vlb_terms = {float(vlb.mean()):.4f}, direct MC = {float(direct.mean()):.4f}, "
          f"gap = {gap:.4f}, SE = {se:.4f}")
    assert abs(gap) < K_SE * se
    assert se < 0.01 * abs(float(direct.mean()))  # tight enough that e.g. a dropped ½ in the KLs moves it by many SE


def test_bits_per_dim_is_the_vlb_sum_over_D_log_2(generator):
    d = GaussianDiffusion(short_linear(10))
    x0 = torch.stack([grid_points(0, 17, 255, 99), grid_points(3, 128, 77, 250)])
    model = LinearTimeEps(4, d.T, generator, dtype=f64)
    with torch.no_grad():
        terms = d.vlb_terms(model, x0, generator=torch.Generator().manual_seed(5))
        bpd = d.bits_per_dim(model, x0, generator=torch.Generator().manual_seed(5))
        noise = torch.randn(10, 2, 4, generator=generator, dtype=f64)
        torch.testing.assert_close(d.vlb_terms(model, x0, noise=noise), d.vlb_terms(model, x0, noise=noise), rtol=0, atol=0)
    assert bpd.shape == (2,)
    torch.testing.assert_close(bpd, terms.sum(1) / (4 * math.log(2)), **TOL[f64])
    assert bool((terms >= 0).all())  # KLs and −log of a probability


# --------------------------------------------------------------------------------------------
# The exact optimum for a finite training set
# --------------------------------------------------------------------------------------------


def brute_force_optimal_eps(abar: float, xt: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Independent route: explicit loops, Bayes' rule with full Gaussian log-densities and scipy's logsumexp."""
    out = np.empty_like(xt)
    for b in range(xt.shape[0]):
        log_lik = np.array(
            [scipy.stats.norm.logpdf(xt[b], math.sqrt(abar) * data[i], math.sqrt(1 - abar)).sum() for i in range(len(data))]
        )
        w = np.exp(log_lik - scipy.special.logsumexp(log_lik))
        x0_mean = sum(w[i] * data[i] for i in range(len(data)))
        out[b] = (xt[b] - math.sqrt(abar) * x0_mean) / math.sqrt(1 - abar)
    return out


def test_optimal_eps_matches_a_brute_force_loop(generator):
    d = GaussianDiffusion(cosine_beta_schedule(50))
    data = torch.randn(7, 3, generator=generator, dtype=f64)
    xt = torch.randn(9, 3, generator=generator, dtype=f64)
    for t in (1, 5, 25, 50):
        expected = brute_force_optimal_eps(float(d.alphas_cumprod[t - 1]), xt.numpy(), data.numpy())
        np.testing.assert_allclose(d.optimal_eps(xt, t, data).numpy(), expected, rtol=1e-9, atol=1e-9)
    # float32 inputs computed in float64 internally come back as float32
    out32 = d.optimal_eps(xt.float(), 5, data.float(), dtype=f64)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), d.optimal_eps(xt, 5, data), rtol=1e-6, atol=1e-6)


def test_optimal_eps_is_stable_when_the_posterior_is_one_hot(generator):
    d = GaussianDiffusion(scaled_linear(1000))
    data = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    xt = torch.tensor([[30.0, -30.0]])  # logits ~ 1e5 apart at t = 1
    x0 = d.optimal_x0(xt, 1, data)
    assert bool(torch.isfinite(x0).all())
    torch.testing.assert_close(x0, data[:1])


def test_two_point_dataset_closed_form_and_large_t_limit(generator):
    """For data {[1,0],[0,1]}: q(x_0=[1,0] | x_t) = σ(√ᾱ (x_1 − x_2)/(1 − ᾱ)) (logistic, both points have norm 1).

    Large t: E[x_0|x_t] → m̄ = [½, ½] and ε* = (x_t − √ᾱ E[x_0|x_t])/√(1−ᾱ) = x_t − √ᾱ m̄ + O(ᾱ),
    so ε* → x_t at rate √ᾱ.
    """
    d = GaussianDiffusion(cosine_beta_schedule(1000))
    data = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=f64)
    xt = torch.randn(200, 2, generator=generator, dtype=f64)
    for t in (1, 100, 500, 900):
        abar = float(d.alphas_cumprod[t - 1])
        w = torch.sigmoid(math.sqrt(abar) * (xt[:, 0] - xt[:, 1]) / (1 - abar))
        torch.testing.assert_close(d.data_posterior(xt, t, data), torch.stack([w, 1 - w], 1), **TOL[f64])
        torch.testing.assert_close(d.optimal_x0(xt, t, data), torch.stack([w, 1 - w], 1), **TOL[f64])
    m_bar = torch.tensor([0.5, 0.5], dtype=f64)
    prev_ratio = math.inf
    for t in (900, 950, 990, 999, 1000):
        abar = float(d.alphas_cumprod[t - 1])
        eps = d.optimal_eps(xt, t, data)
        first_order = (eps - xt).norm(dim=1).max() / math.sqrt(abar)
        second_order = (eps - (xt - math.sqrt(abar) * m_bar)).abs().max() / abar
        assert float(first_order) < 1.5  # |ε* − x_t| ≈ √ᾱ ‖m̄‖ = 0.71 √ᾱ (+ higher order)
        assert float(second_order) < 2 * (1 + float(xt.abs().max()))  # the remainder is O(ᾱ)
        ratio = float((eps - xt).abs().max())
        assert ratio < prev_ratio  # monotone approach to x_t
        prev_ratio = ratio
    assert prev_ratio < 1e-4  # ᾱ_T ≈ 2e-9


def test_optimal_eps_minimises_the_simple_loss(generator):
    """For any predictor ε* + δ(x_t, t): E‖ε − ε* − δ‖² − E‖ε − ε*‖² = E‖δ‖² (the cross term has mean 0).

    Checked per sample within K_SE SE with common random numbers, for a constant and an
    x_t-dependent δ, and loss_simple ranks ε* first.
    """
    d = GaussianDiffusion(scaled_linear(50))
    data = torch.randn(5, 2, generator=generator, dtype=f64)
    S = 20000
    x0 = data[torch.randint(0, 5, (S,), generator=generator)]
    t = torch.randint(1, 51, (S,), generator=generator)
    eps = torch.randn(S, 2, generator=generator, dtype=f64)
    xt = d.q_sample(x0, t, noise=eps)
    best = d.optimal_eps(xt, t, data)
    base = (eps - best).pow(2).sum(1)
    for delta in (torch.full_like(xt, 0.05), 0.1 * torch.tanh(xt)):
        extra = (eps - best - delta).pow(2).sum(1) - base
        expected = delta.pow(2).sum(1)
        diff = extra - expected  # = −2 δ·(ε − ε*), mean 0
        assert abs(float(diff.mean())) < K_SE * float(diff.std()) / math.sqrt(S)
        loss_opt = d.loss_simple(OptimalEps(d, data), x0, t=t, noise=eps)
        loss_pert = d.loss_simple(lambda x, tt: d.optimal_eps(x, tt, data) + delta, x0, t=t, noise=eps)
        assert float(loss_opt) < float(loss_pert)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_a_perfectly_trained_sampler_reproduces_the_training_points(variance):
    """Ancestral sampling with ε* lands on training points: at t = 1 the mean is μ̃_1 = x̂_0 = E[x_0|x_1], one-hot by then."""
    d = GaussianDiffusion(scaled_linear(100))
    data = torch.tensor([[-0.8, 0.2], [0.5, 0.9], [0.1, -0.6], [0.9, -0.9], [-0.3, -0.1]], dtype=f64)
    samples = d.p_sample_loop(OptimalEps(d, data), (300, 2), torch.Generator().manual_seed(3), dtype=f64, variance=variance)
    nearest = torch.cdist(samples, data).min(1)
    print(f"memorisation ({variance}): max nearest-training-point distance = {float(nearest.values.max()):.2e}")
    assert float(nearest.values.max()) < 1e-3
    counts = torch.bincount(nearest.indices, minlength=5)
    assert bool((counts > 20).all())  # every point is reproduced (uniform mixture: ~60 each)


# --------------------------------------------------------------------------------------------
# Sampling loops
# --------------------------------------------------------------------------------------------


def test_p_sample_loop_shape_dtype_reproducibility_and_trajectory(generator):
    d = GaussianDiffusion(short_linear(15))
    model = LinearTimeEps(2, d.T, generator)
    out = d.p_sample_loop(model, (8, 2), torch.Generator().manual_seed(0))
    assert out.shape == (8, 2) and out.dtype == torch.float32 and not out.requires_grad
    again = d.p_sample_loop(model, (8, 2), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    other = d.p_sample_loop(model, (8, 2), torch.Generator().manual_seed(1))
    assert not torch.equal(out, other)
    traj = d.p_sample_trajectory(model, (8, 2), torch.Generator().manual_seed(0))
    assert traj.shape == (d.T + 1, 8, 2)
    torch.testing.assert_close(traj[0], out, rtol=0, atol=0)  # entry t is x_t: entry 0 is the sample
    torch.testing.assert_close(traj[d.T], torch.randn(8, 2, generator=torch.Generator().manual_seed(0)), rtol=0, atol=0)
    assert d.p_sample_loop(FixedEps(torch.zeros(3, 2, dtype=f64)), (3, 2), dtype=f64).dtype == f64


def test_progress_bar_is_off_by_default(capsys, generator):
    d = GaussianDiffusion(short_linear(5))
    model = FixedEps(torch.zeros(2, 2))
    d.p_sample_loop(model, (2, 2), generator)
    assert capsys.readouterr().err == ""
    d.p_sample_loop(model, (2, 2), generator, progress=True)
    assert "p_sample_loop" in capsys.readouterr().err


def closed_form_coefficients(d: GaussianDiffusion, variance: str = "beta") -> tuple[list[float], ...]:
    """Independent route: one ancestral step's coefficients from the NumPy schedule, indexed by t (entry 0 NaN):
    1/√α_t, β_t/(√(1 − ᾱ_t) √α_t) and σ_t = √β_t or √β̃_t = √((1 − ᾱ_{t−1})/(1 − ᾱ_t) β_t)."""
    s = np_schedule(d)
    abar_prev = np.concatenate([[np.nan], s["abar"][:-1]])
    sigma2 = s["beta"] if variance == "beta" else (1 - abar_prev) / (1 - s["abar"]) * s["beta"]
    coefs = (1 / np.sqrt(s["alpha"]), s["beta"] / np.sqrt(1 - s["abar"]) / np.sqrt(s["alpha"]), np.sqrt(sigma2))
    return tuple([float(v) for v in c] for c in coefs)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_sampling_coefficients_match_the_closed_form(variance):
    d = GaussianDiffusion(short_linear(20))
    got, want = d.sampling_coefficients(variance), closed_form_coefficients(d, variance)
    for name, g, w in zip(("c_x", "c_eps", "sigma"), got, want):
        assert len(g) == d.T + 1 and math.isnan(g[0]) and all(type(v) is float for v in g), name
        np.testing.assert_allclose(g[1:], w[1:], rtol=1e-12, atol=0, err_msg=name)


def test_bare_sampling_loop_by_hand():
    """Independent route: two steps written out, drawing x_2 and z from the same generator in the same order."""
    coefs = ([math.nan, 2.0, 3.0], [math.nan, 0.5, 0.25], [math.nan, 7.0, 0.1])
    model = LinearTimeEps(2, 2, torch.Generator().manual_seed(3), dtype=f64)
    gen = torch.Generator().manual_seed(8)
    x2 = torch.randn(4, 2, generator=gen, dtype=f64)
    x1 = 3.0 * x2 - 0.25 * model(x2, torch.full((4,), 2)) + 0.1 * torch.randn(4, 2, generator=gen, dtype=f64)
    x0 = 2.0 * x1 - 0.5 * model(x1, torch.full((4,), 1))  # no noise at t = 1 (sigma[1] = 7 is never used)
    got = bare_sampling_loop(model, coefs, (4, 2), torch.Generator().manual_seed(8), dtype=f64)
    assert got.dtype == f64 and not got.requires_grad
    torch.testing.assert_close(got, x0.detach(), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_sampling_loop_draws_what_a_bare_loop_draws(variance):
    """p_sample_loop vs the bare loop, with the coefficients computed here from β alone, calling the
    same (trivial) network: the same draws from the same generator state, so the two can be timed
    against each other. The timing itself (budget: p_sample_loop under 2× the bare loop) is
    ``make bench``'s (benchmarks/sampler.py), not a test's: a loaded machine must not fail the suite.
    """
    torch.manual_seed(0)  # only initialises the network's weights; sampling uses explicit generators
    T, shape = 200, (64, 2)
    d = GaussianDiffusion(scaled_linear(T))
    model = FixedEpsNet(torch.nn.Linear(2, 2))
    coefs = closed_form_coefficients(d, variance)
    for seed in (4, 5):
        same = bare_sampling_loop(model, coefs, shape, torch.Generator().manual_seed(seed))
        got = d.p_sample_loop(model, shape, torch.Generator().manual_seed(seed), variance=variance)
        torch.testing.assert_close(got, same, rtol=1e-4, atol=1e-4)


class FixedEpsNet:
    """Wraps an nn.Module of x only as an (x_t, t) -> ε̂ model."""

    def __init__(self, net):
        self.net = net

    def __call__(self, x, t):
        return self.net(x)


# --------------------------------------------------------------------------------------------
# gradcheck (float64)
# --------------------------------------------------------------------------------------------


def test_gradcheck_loss_simple_wrt_model_parameters_and_data(generator):
    d = GaussianDiffusion(short_linear(10))
    x0 = torch.randn(4, 3, generator=generator, dtype=f64).requires_grad_()
    t = torch.tensor([1, 3, 7, 10])
    noise = torch.randn(4, 3, generator=generator, dtype=f64)
    W = (0.3 * torch.randn(3, 3, generator=generator, dtype=f64)).requires_grad_()
    c = (0.1 * torch.randn(3, generator=generator, dtype=f64)).requires_grad_()

    def loss(W, c, x0):
        return d.loss_simple(lambda x, tt: torch.tanh(x @ W) + c * tt[:, None].to(x.dtype) / 10, x0, t=t, noise=noise)

    assert torch.autograd.gradcheck(loss, (W, c, x0))
    assert torch.autograd.gradcheck(
        lambda W, c: d.loss_vlb_weighted(lambda x, tt: torch.tanh(x @ W) + c, x0.detach(), t=t, noise=noise), (W, c)
    )


def test_gradcheck_discretized_log_prob_and_vlb(generator):
    x = grid_points(0, 1, 128, 254, 255)[None].expand(2, 5)
    mean = (0.5 * torch.randn(2, 5, generator=generator, dtype=f64)).requires_grad_()
    log_var = (torch.randn(2, 5, generator=generator, dtype=f64) - 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda m, v: discretized_gaussian_log_prob(x, m, v), (mean, log_var))
    d = GaussianDiffusion(short_linear(5))
    W = (0.3 * torch.randn(5, 5, generator=generator, dtype=f64)).requires_grad_()
    noise = torch.randn(5, 2, 5, generator=generator, dtype=f64)
    assert torch.autograd.gradcheck(lambda W: d.vlb_terms(lambda z, tt: z @ W, x, noise=noise).sum(1), (W,))


# --------------------------------------------------------------------------------------------
# Bad inputs: each raises the named error with a message naming the argument
# --------------------------------------------------------------------------------------------

D5 = GaussianDiffusion(short_linear(5))
X = torch.zeros(3, 2, dtype=f64)
T3 = torch.tensor([1, 2, 5])
META_X = torch.zeros(3, 2, device="meta", dtype=f64)
ZERO_MODEL = FixedEps(torch.zeros(3, 2, dtype=f64))
WRONG_MODEL = FixedEps(torch.zeros(3, 3, dtype=f64))

BAD_INPUTS = [
    # schedules and the constructor
    ("T zero", linear_beta_schedule, (0,), ValueError, "T must be a positive integer.*got 0"),
    ("T float", cosine_beta_schedule, (10.0,), TypeError, r"T must be a positive integer; got 10.0 \(float\)"),
    ("beta_start 0", linear_beta_schedule, (10, 0.0, 0.02), ValueError, r"beta_start must be a number in \(0, 1\); got 0.0"),
    ("beta_end 1", linear_beta_schedule, (10, 1e-4, 1.0), ValueError, r"beta_end must be a number in \(0, 1\); got 1.0"),
    ("beta_end < start", linear_beta_schedule, (10, 0.1, 0.01), ValueError, "beta_end must be >= beta_start"),
    ("cosine s<0", cosine_beta_schedule, (10, -0.1), ValueError, "s must be a finite non-negative number; got -0.1"),
    ("cosine max_beta", cosine_beta_schedule, (10, 0.008, 1.0), ValueError, r"max_beta must be a number in \(0, 1\); got 1.0"),
    ("betas empty", GaussianDiffusion, (torch.zeros(0, dtype=f64),), ValueError, "T must be >= 1; got T = 0"),
    ("betas 2-D", GaussianDiffusion, (torch.full((2, 2), 0.1, dtype=f64),), ValueError, r"betas must have shape \(T,\)"),
    ("betas zero", GaussianDiffusion, (torch.tensor([0.0, 0.1], dtype=f64),), ValueError, "betas must lie strictly between 0 and 1.*from 0 to 0.1"),
    ("betas one", GaussianDiffusion, (torch.tensor([0.1, 1.0], dtype=f64),), ValueError, "betas must lie strictly between 0 and 1"),
    ("betas nan", GaussianDiffusion, (torch.tensor([0.1, float("nan")], dtype=f64),), ValueError, "betas must be finite"),
    ("betas decreasing", GaussianDiffusion, (short_linear(5).flip(0),), ValueError, "betas must be non-decreasing.*β_2.*reversed"),
    ("betas int", GaussianDiffusion, (torch.tensor([1, 2]),), TypeError, "betas must be a floating-point tensor"),
    ("betas meta", GaussianDiffusion, (torch.full((3,), 0.1, device="meta"),), ValueError, "betas must hold values"),
    # timesteps
    ("t zero", D5.q_sample, (X, torch.tensor([0, 1, 2])), ValueError, r"t must lie in 1..T = 1..5.*from 0 to 2"),
    ("t above T", D5.q_sample, (X, torch.tensor([1, 2, 6])), ValueError, r"t must lie in 1..T = 1..5.*from 1 to 6"),
    ("t int above T", D5.q_mean_variance, (X, 6), ValueError, r"t must be an int64 tensor of shape \(B,\) or an int, holding timesteps in 1..T = 1..5 .*; got 6"),
    ("t float dtype", D5.q_sample, (X, torch.tensor([1.0, 2.0, 3.0])), TypeError, "t must be an integer tensor.*torch.float32"),
    ("t bool", D5.q_sample, (X, torch.tensor([True, True, True])), TypeError, "t must be an integer tensor.*torch.bool"),
    ("t float scalar", D5.q_sample, (X, 2.0), TypeError, r"t must be an int64 tensor of shape \(B,\) or an int.*; got 2.0 \(float\)"),
    ("t shape", D5.q_sample, (X, torch.tensor([1, 2])), ValueError, r"t must have shape \(B,\) = \(3,\).*got shape \(2,\)"),
    ("t device", D5.q_sample, (X, torch.tensor([1, 2, 3], device="meta")), ValueError, "same device.*t on meta"),
    # shapes, dtypes and devices of tensors
    ("x0 int", D5.q_sample, (torch.zeros(3, 2, dtype=torch.int64), T3), TypeError, "x0 must be a floating-point tensor"),
    ("x0 scalar", D5.q_sample, (torch.tensor(1.0), 1), ValueError, r"x0 must have shape \(B, ...\)"),
    ("noise shape", D5.q_sample, (X, T3, torch.zeros(3, 3, dtype=f64)), ValueError, r"noise must have the shape of x0, \(3, 2\); got \(3, 3\)"),
    ("noise device", D5.q_sample, (X, T3, META_X), ValueError, "same device.*noise on meta"),
    ("xt shape", D5.q_posterior_mean_variance, (X, torch.zeros(2, 2, dtype=f64), T3), ValueError, "xt must have the shape of x0"),
    ("xt device", D5.q_posterior_mean_variance, (X, META_X, T3), ValueError, "same device.*xt on meta"),
    ("eps shape", D5.predict_x0_from_eps, (X, T3, torch.zeros(3, dtype=f64)), ValueError, "eps must have the shape of xt"),
    ("x0 for eps shape", D5.predict_eps_from_x0, (X, T3, torch.zeros(3, 1, dtype=f64)), ValueError, "x0 must have the shape of xt"),
    # models, variances, loops and losses
    ("variance name", D5.p_mean_variance, (ZERO_MODEL, X, T3, False, "learned"), ValueError, r"variance must be one of \('beta', 'beta_tilde'\)"),
    ("model shape", D5.p_mean_variance, (WRONG_MODEL, X, T3), ValueError, r"model\(x_t, t\) must return ε̂ with the shape of x_t"),
    ("p_sample noise", D5.p_sample, (ZERO_MODEL, X, T3, None, torch.zeros(2, 2, dtype=f64)), ValueError, "noise must have the shape of xt"),
    ("loop shape", D5.p_sample_loop, (ZERO_MODEL, (3, 0)), ValueError, r"shape\[1\] must be a positive integer; got 0"),
    ("trajectory shape", D5.p_sample_trajectory, (ZERO_MODEL, "3"), TypeError, r"shape must be a tuple of positive ints \(B, ...\), e.g. \(16, 2\), or an int B; got '3' \(str\)"),
    ("loss t range", D5.loss_simple, (ZERO_MODEL, X, torch.tensor([1, 2, 9])), ValueError, "t must lie in 1..T"),
    ("loss noise", D5.loss_vlb_weighted, (ZERO_MODEL, X, T3, torch.zeros(3, dtype=f64)), ValueError, "noise must have the shape of x0"),
    ("vlb range", D5.vlb_terms, (ZERO_MODEL, X + 2), ValueError, r"x0 must lie in \[-1, 1\]"),
    ("vlb noise", D5.vlb_terms, (ZERO_MODEL, X, None, torch.zeros(3, 2, dtype=f64)), ValueError, r"noise must have shape \(T, \*x0.shape\) = \(5, 3, 2\)"),
    ("bpd variance", D5.bits_per_dim, (ZERO_MODEL, X, None, None, "sigma"), ValueError, "variance must be one of"),
    ("weights variance", D5.vlb_weights, ("beta_hat",), ValueError, "variance must be one of"),
    ("data shape", D5.optimal_eps, (X, T3, torch.zeros(4, 3, dtype=f64)), ValueError, r"data must have shape \(N, ...\) with the event shape of xt, \(2,\)"),
    ("data device", D5.optimal_x0, (X, T3, torch.zeros(4, 2, device="meta", dtype=f64)), ValueError, "same device.*data on meta"),
    ("posterior t", D5.data_posterior, (X, torch.tensor([1, 2, 3.5]), X), TypeError, "t must be an integer tensor"),
    ("discretized range", discretized_gaussian_log_prob, (X + 1.5, X, X), ValueError, r"x must lie in \[-1, 1\]"),
    ("discretized device", discretized_gaussian_log_prob, (X, META_X, X), ValueError, "same device.*mean on meta"),
    ("discretized broadcast", discretized_gaussian_log_prob, (X, torch.zeros(3, 3, dtype=f64), X), ValueError, "do not broadcast"),
    ("discretized bins", discretized_gaussian_log_prob, (X, X, X, 1), ValueError, "bins must be an integer >= 2"),
    ("classes count", D5.class_log_posterior, (ZERO_MODEL, X, 0), ValueError, "num_classes must be a positive int"),
    ("coefficients variance", D5.sampling_coefficients, ("learned",), ValueError, "variance must be one of"),
    ("bare coefs", bare_sampling_loop, (ZERO_MODEL, ([1.0, 1.0], [1.0, 1.0]), (3, 2)), ValueError, "coefs must be three sequences .*; got tuple"),
    ("bare coefs lengths", bare_sampling_loop, (ZERO_MODEL, ([1.0] * 3, [1.0] * 3, [1.0] * 2), (3, 2)), ValueError, r"coefs must be .*; got lengths \[2, 3\]"),
    ("bare shape", bare_sampling_loop, (ZERO_MODEL, D5.sampling_coefficients(), (3, 2.0)), TypeError, r"shape\[1\] must be a positive integer; got 2.0 \(float\)"),
]


@pytest.mark.parametrize("fn, args, error, match", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_raise_clear_errors(fn, args, error, match):
    with pytest.raises(error, match=match):
        fn(*args)


def test_the_bad_input_table_covers_every_public_function():
    import dgm.diffusion

    covered = {getattr(case[1], "__name__", None) for case in BAD_INPUTS}
    public_methods = {name for name in dir(GaussianDiffusion) if not name.startswith("_")}
    expected = (set(dgm.diffusion.__all__) | public_methods) - {"T"}
    assert expected <= covered, expected - covered


def test_timesteps_accept_int_scalar_and_int32(generator):
    x0 = torch.randn(3, 2, generator=generator, dtype=f64)
    noise = torch.randn(3, 2, generator=generator, dtype=f64)
    ref = D5.q_sample(x0, torch.tensor([4, 4, 4]), noise=noise)
    for t in (4, torch.tensor(4), torch.tensor([4, 4, 4], dtype=torch.int32)):
        torch.testing.assert_close(D5.q_sample(x0, t, noise=noise), ref, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# CPU / CUDA parity
# --------------------------------------------------------------------------------------------


@pytest.mark.cuda
@requires_cuda
def test_cpu_cuda_parity(generator):
    d = GaussianDiffusion(cosine_beta_schedule(30))
    x0 = 0.9 * torch.tanh(torch.randn(6, 3, generator=generator, dtype=f64))
    x0 = torch.round((x0 + 1) * 127.5) / 127.5 - 1  # on the 256-level grid
    t = torch.randint(1, 31, (6,), generator=generator)
    noise = torch.randn(6, 3, generator=generator, dtype=f64)
    vlb_noise = torch.randn(30, 6, 3, generator=generator, dtype=f64)
    data = torch.randn(5, 3, generator=generator, dtype=f64)
    model_cpu = LinearTimeEps(3, 30, generator, dtype=f64)
    model_gpu = LinearTimeEps(3, 30, torch.Generator().manual_seed(0), dtype=f64).cuda()
    model_gpu.load_state_dict(model_cpu.state_dict())

    def run(model, x0, t, noise, vlb_noise, data):
        xt = d.q_sample(x0, t, noise=noise)
        with torch.no_grad():
            return [
                xt,
                d.q_posterior_mean_variance(x0, xt, t)[0],
                d.p_sample(model, xt, t, noise=noise, variance="beta_tilde"),
                d.loss_simple(model, x0, t=t, noise=noise),
                d.vlb_terms(model, x0, noise=vlb_noise),
                d.optimal_eps(xt, t, data),
            ]

    cpu = run(model_cpu, x0, t, noise, vlb_noise, data)
    gpu = run(model_gpu, x0.cuda(), t.cuda(), noise.cuda(), vlb_noise.cuda(), data.cuda())
    for a, b in zip(cpu, gpu):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-9, atol=1e-9)
    samples = d.p_sample_loop(model_gpu, (4, 3), torch.Generator(device="cuda").manual_seed(0), dtype=f64)
    assert samples.device.type == "cuda" and samples.shape == (4, 3)


# --------------------------------------------------------------------------------------------
# Diffusion models as classifiers
# --------------------------------------------------------------------------------------------


def test_class_log_posterior_is_bayes_with_the_weighted_eps_error():
    """Independent route: a loop over classes and timesteps computing Σ_t λ_t ‖ε − ε̂‖² by hand,
    with λ_t from numpy; uniform and non-uniform priors; unweighted score = mean over t."""
    T, B, D, C = 6, 4, 3, 3
    d = GaussianDiffusion(short_linear(T))
    s = np_schedule(d)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(B, D, generator=gen, dtype=f64)
    noise = torch.randn(T, B, D, generator=gen, dtype=f64)
    W = torch.randn(C, D, D, generator=gen, dtype=f64)

    def model(x, t, y):
        return torch.tanh(torch.einsum("nij,nj->ni", W[y], x)) * t[:, None].to(x.dtype) / T

    lam = s["beta"][1:] ** 2 / (2 * s["beta"][1:] * s["alpha"][1:] * (1 - s["abar"][1:]))
    log_prior = torch.log(torch.tensor([0.2, 0.3, 0.5], dtype=f64))
    for weighted in (True, False):
        score = torch.zeros(B, C, dtype=f64)
        for c in range(C):
            for t in range(1, T + 1):
                xt = math.sqrt(s["abar"][t]) * x0 + math.sqrt(1 - s["abar"][t]) * noise[t - 1]
                err = ((noise[t - 1] - model(xt, torch.full((B,), t), torch.full((B,), c))) ** 2).sum(1)
                score[:, c] -= (lam[t - 1] if weighted else 1 / T) * err
        for prior in (None, log_prior):
            want = torch.log_softmax(score + (0 if prior is None else prior), 1)
            got = d.class_log_posterior(model, x0, C, noise=noise, weighted=weighted, log_prior=prior)
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="noise must have shape"):
        d.class_log_posterior(model, x0, C, noise=noise[1:])
    with pytest.raises(ValueError, match="num_classes"):
        d.class_log_posterior(model, x0, 0)
