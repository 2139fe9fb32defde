"""Tests of dgm.gan, by kind (see STYLE.md, "Tests by kind").

Expected values come from routes that share no code with dgm.gan: torch.nn.functional's
binary cross-entropy on probabilities, scipy.optimize (pointwise maximisation of V, Fenchel
suprema), scipy.integrate.quad (JSD and f-divergences from their textbook integrals),
scipy.stats.wasserstein_distance, scipy.spatial.distance.jensenshannon, torch.autograd.functional
(gradients of critics), and plain NumPy sums for discrete mutual information. Monte Carlo
estimates are compared within K_SE standard errors (conftest.py states the seed policy).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.spatial.distance
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from conftest import K_SE, TOL, requires_cuda
from dgm.divergences import gaussian_kl
from dgm.gan import (
    F_DIVERGENCES,
    clip_weights_,
    density_from_discriminator,
    discriminator_loss,
    fgan_lower_bound,
    generator_loss_minimax,
    generator_loss_nonsaturating,
    gradient_penalty,
    jensen_shannon_categorical,
    jsd_from_discriminator,
    jsd_monte_carlo,
    mutual_information_lower_bound,
    optimal_discriminator,
    optimal_discriminator_logits,
    mode_coverage,
    point_masses_divergences,
    ring_centres,
    train_discriminator,
    train_gan,
    wasserstein1_1d,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from dgm.nets import mlp

f64 = torch.float64
DTYPES = [torch.float32, torch.float64]
LOG2 = math.log(2.0)

# The running example: p_data = N(0, 1) (label 1), p_G = N(1.5, 0.8²) (label 0).
MU_DATA, SD_DATA, MU_G, SD_G = 0.0, 1.0, 1.5, 0.8
P_DATA = scipy.stats.norm(MU_DATA, SD_DATA)
P_G = scipy.stats.norm(MU_G, SD_G)


def log_p_data(x):
    return Normal(MU_DATA, SD_DATA).log_prob(x.reshape(x.shape[0], -1)[:, 0])


def log_p_g(x):
    return Normal(MU_G, SD_G).log_prob(x.reshape(x.shape[0], -1)[:, 0])


def jsd_quadrature(a, b):
    """JSD(a ‖ b) = ½∫ a log(2a/(a+b)) + ½∫ b log(2b/(a+b)) by scipy.integrate.quad (independent route)."""

    def half(u, v):
        integrand = lambda x: u.pdf(x) * (LOG2 + u.logpdf(x) - np.logaddexp(u.logpdf(x), v.logpdf(x)))
        return scipy.integrate.quad(integrand, -30, 30, points=[MU_DATA, MU_G], limit=200)[0]

    return 0.5 * (half(a, b) + half(b, a))


JSD_TRUE = jsd_quadrature(P_DATA, P_G)


# --------------------------------------------------------------------------------------------
# Losses: against binary cross-entropy on probabilities, and stable for huge logits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_match_binary_cross_entropy_on_probabilities(generator, dtype):
    real = (3 * torch.randn(7, 1, generator=generator)).to(dtype)  # (B, 1), as a network outputs
    fake = (3 * torch.randn(5, generator=generator)).to(dtype)  # (B',): a different batch size
    d_real, d_fake = torch.sigmoid(real).squeeze(1), torch.sigmoid(fake)
    bce = F.binary_cross_entropy
    expected_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    torch.testing.assert_close(discriminator_loss(real, fake), expected_d, **TOL[dtype])
    # E[log(1 - D(G(z)))] = -BCE(D, 0);  -E[log D(G(z))] = BCE(D, 1)
    torch.testing.assert_close(generator_loss_minimax(fake), -bce(d_fake, torch.zeros_like(d_fake)), **TOL[dtype])
    torch.testing.assert_close(generator_loss_nonsaturating(fake), bce(d_fake, torch.ones_like(d_fake)), **TOL[dtype])


def test_losses_are_finite_and_exact_for_logits_of_100():
    # A discriminator that is confidently wrong: D(x_real) = σ(-100), D(x_fake) = σ(100).
    # -log σ(-100) = 100 + log(1 + e^-100) = 100 to float precision; log(sigmoid) in float32 gives inf.
    real = torch.tensor([-100.0], requires_grad=True)
    fake = torch.tensor([100.0], requires_grad=True)
    assert not bool(torch.isfinite(-torch.log(1 - torch.sigmoid(fake))))  # the naive route fails
    loss = discriminator_loss(real, fake)
    torch.testing.assert_close(loss, torch.tensor(200.0))
    loss.backward()
    torch.testing.assert_close(real.grad, torch.tensor([-1.0]))
    torch.testing.assert_close(fake.grad, torch.tensor([1.0]))
    big = torch.tensor([-100.0, 100.0])
    for value in (generator_loss_minimax(big), generator_loss_nonsaturating(big), discriminator_loss(big, big)):
        assert bool(torch.isfinite(value))
    torch.testing.assert_close(generator_loss_minimax(big), torch.tensor(-50.0))
    torch.testing.assert_close(generator_loss_nonsaturating(big), torch.tensor(50.0))


def test_minimax_generator_loss_saturates_where_nonsaturating_does_not():
    # Early in training D(G(z)) ≈ 0 (logit -10): d/da log(1 - σ(a)) = -σ(a) ≈ -4.5e-5,
    # d/da [-log σ(a)] = -(1 - σ(a)) ≈ -1.
    a = torch.tensor([-10.0], dtype=f64, requires_grad=True)
    (g_minimax,) = torch.autograd.grad(generator_loss_minimax(a), a)
    (g_nonsat,) = torch.autograd.grad(generator_loss_nonsaturating(a), a)
    torch.testing.assert_close(g_minimax, -torch.sigmoid(a.detach()), **TOL[f64])
    torch.testing.assert_close(g_nonsat, -(1 - torch.sigmoid(a.detach())), **TOL[f64])
    assert abs(float(g_minimax)) < 1e-4 < 0.99 < abs(float(g_nonsat))


# --------------------------------------------------------------------------------------------
# The optimal discriminator and C(G) = -log 4 + 2·JSD
# --------------------------------------------------------------------------------------------


def test_optimal_discriminator_maximises_the_pointwise_value():
    # Independent route: maximise a log y + b log(1 - y) over y ∈ (0, 1) numerically, a = p_data(x), b = p_G(x).
    xs = np.array([-2.5, -1.0, 0.0, 0.7, 1.5, 3.0, 4.5])
    d_star = optimal_discriminator(torch.as_tensor(P_DATA.logpdf(xs)), torch.as_tensor(P_G.logpdf(xs)))
    for x, d in zip(xs, d_star.tolist()):
        a, b = P_DATA.pdf(x), P_G.pdf(x)
        res = scipy.optimize.minimize_scalar(
            lambda y: -(a * np.log(y) + b * np.log1p(-y)), bounds=(1e-12, 1 - 1e-12), method="bounded",
            options={"xatol": 1e-12},
        )
        assert d == pytest.approx(res.x, abs=1e-6)
    # Densities are not probabilities: the maximiser is a/(a + b) for every a, b > 0, also above 1
    # (003 §9 states it for a, b in (0, 1) only). N(0, 0.1²) peaks at 3.99.
    for a, b in [(3.99, 2.5), (3.99, 0.2), (0.05, 7.0)]:
        res = scipy.optimize.minimize_scalar(
            lambda y: -(a * np.log(y) + b * np.log1p(-y)), bounds=(1e-12, 1 - 1e-12), method="bounded",
            options={"xatol": 1e-12},
        )
        d = float(optimal_discriminator(torch.tensor(math.log(a)), torch.tensor(math.log(b))))
        assert d == pytest.approx(res.x, abs=1e-6)


def test_optimal_discriminator_is_stable_in_the_tails_and_half_when_equal():
    # At x = 40 both densities underflow in float64 (p/(p+q) would be 0/0); the logit route is exact.
    x = torch.tensor([40.0, -40.0], dtype=f64)
    lp, lq = Normal(0.0, 1.0).log_prob(x), Normal(1.0, 1.0).log_prob(x)
    assert float(lp.exp().sum()) == 0.0
    d = optimal_discriminator(lp, lq)  # D*(40) = σ(-40.5) ≈ 2.6e-18, D*(-40) = σ(40.5) = 1 to float64
    torch.testing.assert_close(torch.log(d[0]), -F.softplus(lq - lp)[0], **TOL[f64])
    assert float(d[1]) == 1.0
    assert bool(torch.isfinite(optimal_discriminator_logits(lp, lq)).all())
    torch.testing.assert_close(optimal_discriminator(lp, lp), torch.full_like(lp, 0.5), **TOL[f64])
    # a zero density gives D* = 0 or 1, not NaN
    d_edge = optimal_discriminator(torch.tensor([-math.inf, 0.0]), torch.tensor([0.0, -math.inf]))
    torch.testing.assert_close(d_edge, torch.tensor([0.0, 1.0]))


def test_value_at_optimal_discriminator_is_minus_log4_plus_twice_jsd():
    # C(G) = ∫ p_data log D* + p_G log(1 - D*), by quadrature, with D* from the library;
    # JSD by quadrature of its definition (independent of dgm).
    def d_star(x):
        return float(optimal_discriminator(torch.tensor(P_DATA.logpdf(x)), torch.tensor(P_G.logpdf(x))))

    integrand = lambda x: P_DATA.pdf(x) * np.log(d_star(x)) + P_G.pdf(x) * np.log1p(-d_star(x))
    # on [-6, 8] neither D* nor 1 - D* rounds to 0; the mass outside changes C(G) by < 1e-9
    c_of_g = scipy.integrate.quad(integrand, -6, 8, points=[MU_DATA, MU_G], limit=200)[0]
    assert c_of_g == pytest.approx(-math.log(4) + 2 * JSD_TRUE, abs=1e-8)
    assert 0 < JSD_TRUE < LOG2


def test_jsd_monte_carlo_matches_quadrature(generator):
    S = 100_000
    xp = MU_DATA + SD_DATA * torch.randn(S, 1, generator=generator, dtype=f64)
    xq = MU_G + SD_G * torch.randn(S, 1, generator=generator, dtype=f64)
    est, se = jsd_monte_carlo(log_p_data, log_p_g, xp, xq)
    assert abs(float(est) - JSD_TRUE) < K_SE * float(se)
    assert 0 < float(se) < 0.01


def test_jsd_is_zero_for_identical_distributions_and_never_above_log2(generator):
    x = torch.randn(50, 1, generator=generator, dtype=f64)
    est, se = jsd_monte_carlo(log_p_data, log_p_data, x, x.flip(0))
    assert float(est) == pytest.approx(0.0, abs=1e-15) and float(se) == pytest.approx(0.0, abs=1e-15)
    p = torch.softmax(torch.randn(200, 6, generator=generator, dtype=f64), -1)
    q = torch.softmax(3 * torch.randn(200, 6, generator=generator, dtype=f64), -1)
    jsd = jensen_shannon_categorical(p, q)
    assert bool((jsd >= 0).all()) and bool((jsd <= LOG2).all())
    torch.testing.assert_close(jensen_shannon_categorical(p, p), torch.zeros(200, dtype=f64), **TOL[f64])
    torch.testing.assert_close(jsd, jensen_shannon_categorical(q, p), **TOL[f64])  # symmetric
    # scipy's jensenshannon returns the square root of the JSD (natural log by default)
    expected = scipy.spatial.distance.jensenshannon(p.numpy(), q.numpy(), axis=-1) ** 2
    np.testing.assert_allclose(jsd.numpy(), expected, rtol=1e-9, atol=1e-12)
    # disjoint supports: exactly log 2
    disjoint = jensen_shannon_categorical(torch.tensor([0.5, 0.5, 0, 0], dtype=f64), torch.tensor([0, 0, 0.3, 0.7], dtype=f64))
    assert float(disjoint) == pytest.approx(LOG2, abs=1e-12)


def test_jsd_from_discriminator_is_log2_minus_half_the_discriminator_loss(generator):
    # The identity behind the estimator: V(G, D) = -discriminator_loss, JSD ≈ log 2 + V/2.
    real, fake = torch.randn(9, generator=generator, dtype=f64), torch.randn(4, 1, generator=generator, dtype=f64)
    est, _ = jsd_from_discriminator(real, fake)
    torch.testing.assert_close(est, LOG2 - 0.5 * discriminator_loss(real, fake), **TOL[f64])
    # the standard error of independent batches, by hand
    a = torch.log(torch.sigmoid(real))  # log D, moderate logits: the naive route is fine here
    b = torch.log(1 - torch.sigmoid(fake.squeeze(1)))  # log(1 - D)
    se = 0.5 * math.sqrt(float(a.var() / 9 + b.var() / 4))
    assert float(jsd_from_discriminator(real, fake)[1]) == pytest.approx(se, rel=1e-10)


def test_density_from_optimal_discriminator_is_exact():
    # 004 Q3.2: D* = f1/(f0 + f1) gives f0·D*/(1 - D*) = f1.
    # Route: probabilities D*, then the odds D*/(1 - D*) by hand, on points where D* is not saturated.
    x = np.linspace(-4, 6, 41)
    log_f1, log_f0 = torch.as_tensor(P_DATA.logpdf(x)), torch.as_tensor(P_G.logpdf(x))
    d = optimal_discriminator(log_f1, log_f0)
    d_logits = torch.log(d) - torch.log1p(-d)
    torch.testing.assert_close(density_from_discriminator(log_f0, d_logits), log_f1, rtol=1e-9, atol=1e-9)
    f1_hat = torch.as_tensor(P_G.pdf(x)) * d / (1 - d)  # 004 Q3.2 as written
    torch.testing.assert_close(f1_hat, torch.as_tensor(P_DATA.pdf(x)), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# A trained discriminator approaches D*, its JSD estimate the exact JSD, and the recovered density
# the true one, more closely with more samples
# --------------------------------------------------------------------------------------------


def _train_on(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    real = (MU_DATA + SD_DATA * torch.randn(n, 1, generator=gen, dtype=f64)).float()
    fake = (MU_G + SD_G * torch.randn(n, 1, generator=gen, dtype=f64)).float()
    disc = mlp(1, 32, 1, depth=2, activation="tanh", generator=gen)
    history = train_discriminator(disc, real, fake, steps=400, lr=1e-2)
    return disc, history


def _errors(disc, gen):
    def on(lo, hi):
        grid = torch.linspace(lo, hi, 201, dtype=f64)
        lp_data, lp_g = torch.as_tensor(P_DATA.logpdf(grid.numpy())), torch.as_tensor(P_G.logpdf(grid.numpy()))
        return lp_data, lp_g, disc(grid.float().unsqueeze(-1)).squeeze(-1).double()

    with torch.no_grad():
        # D on the bulk of the two densities together
        lp_data, lp_g, logits = on(-1.5, 2.5)
        d_err = float((torch.sigmoid(logits) - optimal_discriminator(lp_data, lp_g)).abs().mean())
        # f1 = f0·D/(1 - D) multiplies D's error by f0/(1 - D)²: compare only where both densities
        # exceed 0.1 (x in [0.07, 1.66]), i.e. where both sample sets are dense
        lp_data, lp_g, logits = on(0.0, 1.6)
        recovered = density_from_discriminator(lp_g, logits).exp()
        dens_err = float((recovered - lp_data.exp()).abs().mean())
        M = 100_000  # fresh samples: D was not trained on them
        xr = (MU_DATA + SD_DATA * torch.randn(M, 1, generator=gen, dtype=f64)).float()
        xf = (MU_G + SD_G * torch.randn(M, 1, generator=gen, dtype=f64)).float()
        est, se = jsd_from_discriminator(disc(xr).double(), disc(xf).double())
    return d_err, dens_err, float(est), float(se)


@pytest.fixture
def one_thread():
    """Tiny 1-D networks gain nothing from intra-op threads and lose much when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_trained_discriminator_approaches_the_optimal_one(one_thread):
    small, history_small = _train_on(200, seed=1)
    large, history_large = _train_on(2000, seed=2)
    assert isinstance(history_large, list) and len(history_large) == 400
    assert history_large[-1] < history_large[0]
    d_small, dens_small, _, _ = _errors(small, torch.Generator().manual_seed(3))
    d_large, dens_large, jsd_est, jsd_se = _errors(large, torch.Generator().manual_seed(4))
    print(f"\n|D - D*| mean on [-1.5, 2.5]: n=200 {d_small:.4f}, n=2000 {d_large:.4f}")
    print(f"|p_hat - p_data| mean on [0, 1.6]: n=200 {dens_small:.4f}, n=2000 {dens_large:.4f}")
    print(f"JSD estimate {jsd_est:.4f} ± {jsd_se:.4f}, quadrature {JSD_TRUE:.4f}")
    assert d_large < 0.05
    assert dens_large < 0.04  # p_data is 0.11 to 0.4 there
    # V(G, D) ≤ C(G): on fresh samples the estimate is at most the JSD (up to noise) and close to it
    assert jsd_est < JSD_TRUE + K_SE * jsd_se
    assert jsd_est > JSD_TRUE - 0.01
    # more data, smaller error
    assert d_large < d_small
    assert dens_large < dens_small


def test_train_discriminator_is_deterministic_and_minibatches_from_the_generator():
    real = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    fake = torch.randn(48, 2, generator=torch.Generator().manual_seed(1)) + 1
    runs = []
    for _ in range(2):
        disc = mlp(2, 8, 1, depth=1, generator=torch.Generator().manual_seed(5))
        runs.append(train_discriminator(disc, real, fake, steps=20, lr=1e-2, batch_size=16, generator=torch.Generator().manual_seed(9)))
    assert runs[0] == runs[1]
    assert all(isinstance(v, float) for v in runs[0])


# --------------------------------------------------------------------------------------------
# f-GAN: conjugates, the bound, and equality at the optimal critic
# --------------------------------------------------------------------------------------------

CONJUGATE_POINTS = {
    "kl": [-2.0, 0.0, 1.0, 2.0],
    "reverse_kl": [-3.0, -1.0, -0.2],
    "pearson_chi2": [-3.0, -2.0, -1.0, 0.0, 2.0],
    "squared_hellinger": [-2.0, 0.0, 0.5, 0.8],
    "jensen_shannon": [-2.0, -0.5, 0.0, 0.3],
    "total_variation": [-1.0, -0.5, -0.2, 0.0, 0.4, 0.5],
    "gan": [-3.0, -1.0, -0.2],
}


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
def test_conjugate_is_the_supremum_of_ut_minus_f(name):
    div = F_DIVERGENCES[name]
    f = lambda u: float(div.f(torch.tensor(u, dtype=f64)))
    for t in CONJUGATE_POINTS[name]:
        res = scipy.optimize.minimize_scalar(lambda u: -(u * t - f(u)), bounds=(0.0, 100.0), method="bounded", options={"xatol": 1e-10})
        sup = -res.fun
        assert float(div.conjugate(torch.tensor(t, dtype=f64))) == pytest.approx(sup, abs=1e-7), (name, t)
    lo, hi = div.domain
    if math.isfinite(hi):  # beyond the domain the supremum is infinite
        t = hi + 0.1
        assert float(div.conjugate(torch.tensor(t, dtype=f64))) == math.inf
        assert 1e4 * t - f(1e4) > 10  # and ut - f(u) indeed grows without bound


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
def test_f_prime_is_the_derivative_and_the_activation_lands_in_the_domain(name):
    div = F_DIVERGENCES[name]
    u = torch.tensor([0.3, 0.9, 1.7, 4.0], dtype=f64, requires_grad=True)
    (autograd_fp,) = torch.autograd.grad(div.f(u).sum(), u)
    torch.testing.assert_close(div.f_prime(u.detach()), autograd_fp, **TOL[f64])
    v = torch.linspace(-15, 15, 301, dtype=f64)
    t = div.activation(v)
    assert bool(torch.isfinite(div.conjugate(t)).all())
    assert float(t.max()) <= div.domain[1]
    f_at_1 = float(div.f(torch.tensor(1.0, dtype=f64)))
    assert f_at_1 == pytest.approx(-math.log(4) if name == "gan" else 0.0, abs=1e-12)


# P = N(0, 1), Q = N(0.5, 1.2²) for the bound checks (χ² and its optimal critic have finite variance).
P_F = scipy.stats.norm(0.0, 1.0)
Q_F = scipy.stats.norm(0.5, 1.2)


def _quad(fn):
    return scipy.integrate.quad(fn, -25, 25, points=[0.0, 0.5], limit=400)[0]


def true_f_divergence(name):
    """D_f(P ‖ Q) from each divergence's textbook formula (closed form or quadrature), not from f."""
    p, q = P_F.pdf, Q_F.pdf
    kl_pq = float(gaussian_kl(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.5]), torch.tensor([2 * math.log(1.2)])))
    kl_qp = float(gaussian_kl(torch.tensor([0.5]), torch.tensor([2 * math.log(1.2)]), torch.tensor([0.0]), torch.tensor([0.0])))
    jsd = jsd_quadrature(P_F, Q_F)
    return {
        "kl": kl_pq,
        "reverse_kl": kl_qp,
        "pearson_chi2": _quad(lambda x: (p(x) - q(x)) ** 2 / q(x)),
        "squared_hellinger": _quad(lambda x: (np.sqrt(p(x)) - np.sqrt(q(x))) ** 2),
        "jensen_shannon": jsd,
        "total_variation": 0.5 * _quad(lambda x: abs(p(x) - q(x))),
        "gan": 2 * jsd - math.log(4),
    }[name]


def optimal_v(name, log_ratio):
    """V* with g_f(V*) = T* = f'(p/q): each activation inverted by hand."""
    t = F_DIVERGENCES[name].f_prime(log_ratio.exp())
    inverse = {
        "kl": lambda t: t,
        "reverse_kl": lambda t: -torch.log(-t),
        "pearson_chi2": lambda t: t,
        "squared_hellinger": lambda t: -torch.log(1 - t),
        "jensen_shannon": lambda t: -torch.log(2 * torch.exp(-2 * t) - 1),
        "total_variation": lambda t: 40.0 * torch.sign(t),  # ½ tanh(±40) = ±½ in float64
        "gan": lambda t: t - torch.log(-torch.expm1(t)),
    }[name]
    return inverse(t)


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
def test_fgan_bound_equals_the_divergence_at_the_optimal_critic(name):
    gen = torch.Generator().manual_seed(11)
    S = 200_000
    xp = torch.randn(S, generator=gen, dtype=f64)
    xq = 0.5 + 1.2 * torch.randn(S, generator=gen, dtype=f64)
    log_ratio = lambda x: Normal(0.0, 1.0).log_prob(x) - Normal(0.5, 1.2).log_prob(x)
    est, se = fgan_lower_bound(optimal_v(name, log_ratio(xp)), optimal_v(name, log_ratio(xq)), name)
    truth = true_f_divergence(name)
    assert abs(float(est) - truth) < K_SE * float(se), (name, float(est), truth, float(se))


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
def test_fgan_bound_is_below_the_divergence_for_arbitrary_critics(name, generator):
    # Exact expectations on a fine grid (trapezoid), for random quadratic critics V(x) = a + b x + c x².
    div = F_DIVERGENCES[name]
    x = torch.linspace(-25, 25, 200_001, dtype=f64)
    p = torch.as_tensor(P_F.pdf(x.numpy()))
    q = torch.as_tensor(Q_F.pdf(x.numpy()))
    truth = true_f_divergence(name)
    for _ in range(5):
        a, b, c = torch.randn(3, generator=generator, dtype=f64)
        v = a + b * x - 0.1 * c.abs() * x**2
        t = div.activation(v)
        bound = float(torch.trapezoid(p * t - q * div.conjugate(t), x))
        assert bound <= truth + 1e-9


def test_fgan_bound_reduces_to_gan_value_and_jsd_estimator(generator):
    real, fake = torch.randn(30, generator=generator, dtype=f64), torch.randn(20, generator=generator, dtype=f64)
    est_gan, _ = fgan_lower_bound(real, fake, "gan")
    torch.testing.assert_close(est_gan, -discriminator_loss(real, fake), **TOL[f64])  # = V(G, D), D = σ(V)
    est_js, se_js = fgan_lower_bound(real, fake, "jensen_shannon")
    est_d, se_d = jsd_from_discriminator(real, fake)
    torch.testing.assert_close(est_js, est_d, **TOL[f64])
    torch.testing.assert_close(se_js, se_d, **TOL[f64])


# --------------------------------------------------------------------------------------------
# Disjoint supports and the Wasserstein distance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_wasserstein1_1d_matches_scipy(generator, dtype):
    a = torch.randn(500, generator=generator, dtype=f64).to(dtype)
    b = (0.7 + 2 * torch.rand(500, generator=generator, dtype=f64)).to(dtype)
    expected = scipy.stats.wasserstein_distance(a.double().numpy(), b.double().numpy())
    assert float(wasserstein1_1d(a, b)) == pytest.approx(expected, rel=1e-5 if dtype == torch.float32 else 1e-12)
    assert float(wasserstein1_1d(a, a.flip(0))) == 0.0


@pytest.mark.parametrize("theta", [-2.0, 0.3, 5.0])
def test_point_masses_kl_infinite_jsd_log2_w1_distance(theta):
    t = torch.tensor(theta, dtype=f64, requires_grad=True)
    out = point_masses_divergences(t)
    assert float(out.kl) == math.inf and float(out.reverse_kl) == math.inf
    assert float(out.jsd) == pytest.approx(LOG2, abs=1e-12)
    w1 = float(out.w1.detach())
    assert w1 == pytest.approx(abs(theta), abs=1e-12)
    assert w1 == pytest.approx(scipy.stats.wasserstein_distance([0.0], [theta]), abs=1e-12)
    (grad,) = torch.autograd.grad(out.w1, t)
    assert float(grad) == math.copysign(1.0, theta)  # W1 says which way to move; JSD is flat


def test_point_masses_at_zero_distance_are_all_zero():
    out = point_masses_divergences(0.0)
    for value in out:
        assert float(value) == pytest.approx(0.0, abs=1e-15)


def test_wasserstein_losses_and_a_one_lipschitz_critic(generator):
    # For Q = P shifted by θ, the 1-Lipschitz critic f(x) = x attains W1 = θ exactly.
    x = torch.randn(4000, generator=generator, dtype=f64)
    theta = 0.8
    real, fake = x + theta, x  # same draws: the estimate has no noise
    torch.testing.assert_close(-wasserstein_critic_loss(real, fake), torch.tensor(theta, dtype=f64), **TOL[f64])
    torch.testing.assert_close(-wasserstein_critic_loss(real, fake), wasserstein1_1d(real, fake), **TOL[f64])
    torch.testing.assert_close(wasserstein_generator_loss(fake.unsqueeze(1)), -fake.mean(), **TOL[f64])


def test_clip_weights_clamps_every_parameter_in_place():
    net = mlp(3, 16, 1, depth=2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10)
    same = clip_weights_(net, 0.01)
    assert same is net
    for p in net.parameters():
        assert float(p.detach().abs().max()) == pytest.approx(0.01)


# --------------------------------------------------------------------------------------------
# Gradient penalty: a hand computation with autograd.functional, and gradcheck
# --------------------------------------------------------------------------------------------


def test_gradient_penalty_of_a_linear_critic_is_known_in_closed_form(generator):
    # f(x) = wᵀx + b has ∇f = w everywhere, so the penalty is (‖w‖ - 1)² whatever ε.
    D = 4
    w = torch.randn(D, generator=generator, dtype=f64)
    critic = lambda x: x @ w + 0.3
    real, fake = torch.randn(2, 16, D, generator=generator, dtype=f64)
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    assert float(gp) == pytest.approx((float(w.norm()) - 1) ** 2, rel=1e-12)
    # by hand: the Jacobian of f at one point is w
    jac = torch.autograd.functional.jacobian(lambda x: critic(x.unsqueeze(0)).squeeze(0), real[0])
    torch.testing.assert_close(jac, w, **TOL[f64])
    assert float(gradient_penalty(lambda x: x @ (w / w.norm()), real, fake, generator=generator)) == pytest.approx(0.0, abs=1e-20)


def test_gradient_penalty_of_a_network_matches_per_sample_jacobians(generator):
    D, B = 3, 10
    critic = mlp(D, 8, 1, depth=2, activation="tanh", generator=generator, dtype=f64)
    real, fake = torch.randn(2, B, D, generator=generator, dtype=f64)
    eps = torch.rand(B, generator=generator, dtype=f64)
    gp = gradient_penalty(critic, real, fake, epsilon=eps)
    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
    norms = torch.stack([torch.autograd.functional.jacobian(lambda x: critic(x).squeeze(), x_hat[i]).norm() for i in range(B)])
    torch.testing.assert_close(gp, ((norms - 1) ** 2).mean(), **TOL[f64])
    # ε from a seeded generator is reproducible and the same as passing it explicitly
    e = torch.rand(B, generator=torch.Generator().manual_seed(7), dtype=f64)
    torch.testing.assert_close(
        gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7)),
        gradient_penalty(critic, real, fake, epsilon=e),
        **TOL[f64],
    )


def test_gradient_penalty_is_differentiable_in_the_critic_parameters(generator):
    D, H, B = 3, 5, 6
    real, fake = torch.randn(2, B, D, generator=generator, dtype=f64)
    eps = torch.rand(B, generator=generator, dtype=f64)
    W1 = torch.randn(D, H, generator=generator, dtype=f64).requires_grad_()
    w2 = torch.randn(H, generator=generator, dtype=f64).requires_grad_()

    def penalty(W1, w2):
        return gradient_penalty(lambda x: torch.tanh(x @ W1) @ w2, real, fake, epsilon=eps)

    assert torch.autograd.gradcheck(penalty, (W1, w2))
    # and it works inside torch.no_grad(), as an evaluation loop might call it
    with torch.no_grad():
        assert bool(torch.isfinite(penalty(W1, w2)))


# --------------------------------------------------------------------------------------------
# InfoGAN: the variational bound on mutual information
# --------------------------------------------------------------------------------------------


def _discrete_joint(gen):
    prior = torch.tensor([0.5, 0.3, 0.2], dtype=f64)
    likelihood = torch.softmax(2 * torch.randn(3, 5, generator=gen, dtype=f64), -1)  # p(x | c)
    joint = prior[:, None] * likelihood
    posterior = joint / joint.sum(0, keepdim=True)  # p(c | x)
    pj, px, pc = joint.numpy(), joint.sum(0).numpy(), prior.numpy()
    mi = float(np.sum(pj * np.log(pj / (pc[:, None] * px[None, :]))))  # plain NumPy, independent
    return prior, likelihood, joint, posterior, mi


def test_infogan_bound_is_below_mi_and_tight_at_the_posterior(generator):
    prior, likelihood, joint, posterior, mi = _discrete_joint(generator)
    S = 50_000
    c = torch.multinomial(prior, S, replacement=True, generator=generator)
    x = torch.multinomial(likelihood[c], 1, generator=generator).squeeze(1)
    est, se = mutual_information_lower_bound(torch.log(posterior[c, x]), prior)
    assert abs(float(est) - mi) < K_SE * float(se)
    entropy_c = -float(np.sum(prior.numpy() * np.log(prior.numpy())))
    for _ in range(4):
        q = torch.softmax(torch.randn(3, 5, generator=generator, dtype=f64), 0)  # some Q(c | x)
        exact = entropy_c + float(np.sum(joint.numpy() * np.log(q.numpy())))
        assert exact <= mi + 1e-12
        est, se = mutual_information_lower_bound(torch.log(q[c, x]), prior)
        assert abs(float(est) - exact) < K_SE * float(se)


# --------------------------------------------------------------------------------------------
# Bad inputs: each raises the named error with a message naming the argument
# --------------------------------------------------------------------------------------------

Z4 = torch.zeros(4, dtype=f64)
META4 = torch.zeros(4, device="meta", dtype=f64)
X4 = torch.zeros(4, 2, dtype=f64)
LIN = lambda x: x.sum(-1)
NET = nn.Linear(2, 1)
HALF = torch.tensor([0.5, 0.5], dtype=f64)
MINUS_INF = lambda x: torch.full((x.shape[0],), -math.inf, dtype=f64)

BAD_INPUTS = [
    ("D loss int", discriminator_loss, (torch.zeros(4, dtype=torch.int64), Z4), TypeError, "real_logits must be a floating-point"),
    ("D loss shape", discriminator_loss, (torch.zeros(4, 2), Z4), ValueError, r"real_logits must have shape \(B,\) or \(B, 1\)"),
    ("D loss nan", discriminator_loss, (Z4, torch.tensor([0.0, math.nan], dtype=f64)), ValueError, "fake_logits must not contain NaN"),
    ("D loss device", discriminator_loss, (Z4, META4), ValueError, "same device.*fake_logits on meta"),
    ("G minimax scalar", generator_loss_minimax, (torch.tensor(0.0),), ValueError, "fake_logits must have shape"),
    ("G nonsat empty", generator_loss_nonsaturating, (torch.zeros(0),), ValueError, "fake_logits must hold at least 1"),
    ("D* nan", optimal_discriminator, (torch.tensor([math.nan]), torch.zeros(1)), ValueError, "log_p_data must not contain NaN"),
    ("D* +inf", optimal_discriminator, (torch.zeros(1), torch.tensor([math.inf])), ValueError, "log_p_model must be < \\+inf"),
    ("D* broadcast", optimal_discriminator, (torch.zeros(3), torch.zeros(4)), ValueError, "do not broadcast"),
    ("D* logits string", optimal_discriminator_logits, ("a", torch.zeros(1)), TypeError, "log_p_data must be a tensor"),
    ("jsd D one sample", jsd_from_discriminator, (torch.zeros(1), Z4), ValueError, "real_logits must hold at least 2"),
    ("jsd D device", jsd_from_discriminator, (Z4, META4), ValueError, "same device"),
    ("jsd MC not callable", jsd_monte_carlo, (Z4, LIN, X4, X4), TypeError, "log_p must be a callable"),
    ("jsd MC shape", jsd_monte_carlo, (lambda x: x, LIN, X4, X4), ValueError, r"log_p\(samples_p\) must have shape \(4,\)"),
    ("jsd MC not from p", jsd_monte_carlo, (MINUS_INF, LIN, X4, X4), ValueError, "cannot be draws from p"),
    ("jsd MC samples 1-D", jsd_monte_carlo, (LIN, LIN, Z4, X4), ValueError, r"samples_p must have shape \(B, \.\.\.\)"),
    ("jsd cat sum", jensen_shannon_categorical, (torch.tensor([0.5, 0.6], dtype=f64), HALF), ValueError, "p must sum to 1"),
    ("jsd cat negative", jensen_shannon_categorical, (HALF, torch.tensor([1.5, -0.5], dtype=f64)), ValueError, "q must be non-negative"),
    ("density nan", density_from_discriminator, (Z4, torch.tensor([math.nan] * 4, dtype=f64)), ValueError, "d_logits must not contain NaN"),
    ("density int", density_from_discriminator, (torch.zeros(4, dtype=torch.int32), Z4), TypeError, "log_p0 must be a floating-point"),
    ("train not module", train_discriminator, (LIN, X4, X4), TypeError, "disc must be a torch.nn.Module"),
    ("train shapes", train_discriminator, (NET, X4, torch.zeros(4, 3, dtype=f64)), ValueError, "real and fake must have the same shape"),
    ("fgan name", fgan_lower_bound, (Z4, Z4, "kullback"), ValueError, "name must be one of"),
    ("fgan shape", fgan_lower_bound, (torch.zeros(4, 3), Z4, "kl"), ValueError, "real_v must have shape"),
    ("W1 sizes", wasserstein1_1d, (Z4, torch.zeros(5, dtype=f64)), ValueError, "the same size N"),
    ("W1 2-D", wasserstein1_1d, (X4, X4), ValueError, r"samples_a must have shape \(N,\)"),
    ("W1 inf", wasserstein1_1d, (Z4, torch.tensor([0, 0, 0, math.inf], dtype=f64)), ValueError, "samples_b must be finite"),
    ("point masses vector", point_masses_divergences, (Z4,), ValueError, "theta must be a scalar"),
    ("point masses nan", point_masses_divergences, (math.nan,), ValueError, "theta must be finite"),
    ("WGAN critic nan", wasserstein_critic_loss, (torch.tensor([math.nan, 0.0]), Z4), ValueError, "real_scores must not contain NaN"),
    ("WGAN gen shape", wasserstein_generator_loss, (torch.zeros(3, 2),), ValueError, "fake_scores must have shape"),
    ("clip not module", clip_weights_, (LIN, 0.01), TypeError, "module must be a torch.nn.Module"),
    ("clip c", clip_weights_, (NET, -0.1), ValueError, "c must be a finite positive number"),
    ("GP not callable", gradient_penalty, (3, X4, X4), TypeError, "critic must be callable"),
    ("GP shapes", gradient_penalty, (LIN, X4, torch.zeros(3, 2, dtype=f64)), ValueError, "real and fake must have the same shape"),
    ("GP target", gradient_penalty, (LIN, X4, X4, None, 0.0), ValueError, "target_norm must be a finite positive number"),
    ("GP generator", gradient_penalty, (LIN, X4, X4, 3), TypeError, "generator must be a torch.Generator"),
    ("MI logits", mutual_information_lower_bound, (torch.tensor([0.5, -1.0]), HALF.float()), ValueError, "must be log-probabilities"),
    ("MI prior", mutual_information_lower_bound, (-HALF, torch.tensor([0.5, 0.6], dtype=f64)), ValueError, "prior_probs must sum to 1"),
    ("MI one sample", mutual_information_lower_bound, (torch.tensor([-0.5]), torch.tensor([1.0])), ValueError, r"log_q_c_given_x must have shape \(S,\)"),
    ("ring modes", ring_centres, (0,), ValueError, "num_modes must be a positive integer"),
    ("ring radius", ring_centres, (8, -1.0), ValueError, "radius must be a finite positive number"),
    ("coverage centres", mode_coverage, (X4, torch.zeros(3, 3, dtype=f64), 0.5), ValueError, r"centres must have shape \(M, 2\)"),
    ("coverage distance", mode_coverage, (X4, X4, -1.0), ValueError, "max_distance must be a finite positive number"),
    ("train_gan loss", train_gan, (LIN, LIN, X4), TypeError, "latent_dim"),
]


@pytest.mark.parametrize("fn, args, error, match", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_raise_clear_errors(fn, args, error, match):
    with pytest.raises(error, match=match):
        fn(*args)


def test_the_bad_input_table_covers_every_public_function():
    import inspect

    import dgm.gan

    functions = {name for name in dgm.gan.__all__ if inspect.isfunction(getattr(dgm.gan, name))}
    covered = {case[1].__name__ for case in BAD_INPUTS}
    assert functions <= covered


@pytest.mark.parametrize(
    "epsilon, match",
    [(torch.full((4,), 1.5, dtype=f64), r"epsilon must lie in \[0, 1\]"), (torch.zeros(3, dtype=f64), r"epsilon must have shape \(4,\)")],
)
def test_gradient_penalty_rejects_bad_epsilon(epsilon, match):
    with pytest.raises(ValueError, match=match):
        gradient_penalty(LIN, X4, X4, epsilon=epsilon)


def test_gradient_penalty_rejects_a_critic_with_the_wrong_output():
    with pytest.raises(ValueError, match=r"critic\(x_hat\) must have shape"):
        gradient_penalty(lambda x: x, X4, X4, epsilon=Z4)


# --------------------------------------------------------------------------------------------
# CPU / CUDA parity
# --------------------------------------------------------------------------------------------


@pytest.mark.cuda
@requires_cuda
def test_cpu_cuda_parity(generator):
    real, fake = torch.randn(2, 64, generator=generator, dtype=f64)
    x_real, x_fake = torch.randn(2, 64, 3, generator=generator, dtype=f64)
    eps = torch.rand(64, generator=generator, dtype=f64)
    critic_cpu = mlp(3, 8, 1, depth=2, activation="tanh", generator=torch.Generator().manual_seed(0), dtype=f64)
    critic_gpu = mlp(3, 8, 1, depth=2, activation="tanh", generator=torch.Generator().manual_seed(0), dtype=f64, device="cuda")
    cases = [
        (discriminator_loss, (real, fake)),
        (jsd_from_discriminator, (real, fake)),
        (fgan_lower_bound, (real, fake, "jensen_shannon")),
        (optimal_discriminator, (real, fake)),
        (wasserstein1_1d, (real, fake)),
        (lambda r, f, e: gradient_penalty(critic_cpu if r.device.type == "cpu" else critic_gpu, r, f, epsilon=e), (x_real, x_fake, eps)),
    ]
    for fn, args in cases:
        cpu = fn(*args)
        gpu = fn(*(a.cuda() if isinstance(a, torch.Tensor) else a for a in args))
        cpu, gpu = (cpu, gpu) if isinstance(cpu, tuple) else ((cpu,), (gpu,))
        for c, g in zip(cpu, gpu):
            assert g.device.type == "cuda"
            torch.testing.assert_close(g.cpu(), c, rtol=1e-9, atol=1e-9)
    # a CPU generator draws the same ε for data on either device
    gp_cpu = gradient_penalty(critic_cpu, x_real, x_fake, generator=torch.Generator().manual_seed(3))
    gp_gpu = gradient_penalty(critic_gpu, x_real.cuda(), x_fake.cuda(), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(gp_gpu.cpu(), gp_cpu, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Mode collapse on a ring: ring_centres, mode_coverage, train_gan
# --------------------------------------------------------------------------------------------


def test_ring_centres_are_the_means_of_ring_of_gaussians():
    from dgm.data import ring_of_gaussians
    from dgm.gan import ring_centres

    centres = ring_centres(8, 2.0, dtype=f64)
    assert centres.shape == (8, 2)
    assert torch.allclose(centres.norm(dim=1), torch.full((8,), 2.0, dtype=f64))
    # with std 0 every sample of the data set is exactly one of the centres (independent route: the data module)
    pts = ring_of_gaussians(200, 8, 2.0, 0.0, generator=torch.Generator().manual_seed(0), dtype=f64)
    assert float(torch.cdist(pts, centres).min(dim=1).values.max()) < 1e-12
    with pytest.raises(ValueError, match="num_modes"):
        ring_centres(0)


def test_mode_coverage_counts_by_hand():
    from dgm.gan import mode_coverage

    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=f64)
    samples = torch.tensor([[0.1, 0.0], [-0.2, 0.1], [9.8, 0.3], [5.0, 5.0], [0.0, 10.5]], dtype=f64)
    counts, off = mode_coverage(samples, centres, 0.4)
    assert counts.tolist() == [2, 1, 0]  # (0, 10.5) is 0.5 away: off the data, like (5, 5)
    assert float(off) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="centres must have shape"):
        mode_coverage(samples, centres[:, :1], 0.4)
    with pytest.raises(ValueError, match="max_distance"):
        mode_coverage(samples, centres, 0.0)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax", "wgan-gp"])
def test_train_gan_is_reproducible_and_records_snapshots(loss):
    from dgm.data import ring_of_gaussians
    from dgm.gan import train_gan

    data = ring_of_gaussians(256, 4, 2.0, 0.1, generator=torch.Generator().manual_seed(0))

    def run():
        g = torch.Generator().manual_seed(1)
        return train_gan(mlp(2, 16, 2, generator=g), mlp(2, 16, 1, generator=g), data, latent_dim=2, steps=12,
                         loss=loss, batch_size=32, critic_steps=2, snapshot_every=5, num_snapshot_samples=50, generator=g)

    a, b = run(), run()
    assert a.steps == [0, 5, 10, 12]
    assert all(s.shape == (50, 2) for s in a.samples)
    assert len(a.d_loss) == len(a.g_loss) == 12 and all(math.isfinite(v) for v in a.d_loss + a.g_loss)
    assert all(torch.equal(x, y) for x, y in zip(a.samples, b.samples)) and a.d_loss == b.d_loss
    assert not torch.equal(a.samples[0], a.samples[-1])  # the generator moved
    if loss != "wgan-gp":
        assert all(v > 0 for v in a.d_loss)  # a cross-entropy


def test_train_gan_generator_step_matches_a_hand_written_step():
    """One step of train_gan equals one Adam step written out here (same minibatch and noise)."""
    from dgm.gan import train_gan

    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=f64)
    G0 = mlp(2, 8, 2, generator=torch.Generator().manual_seed(4), dtype=f64)
    D0 = mlp(2, 8, 1, generator=torch.Generator().manual_seed(5), dtype=f64)
    G1 = mlp(2, 8, 2, generator=torch.Generator().manual_seed(4), dtype=f64)
    D1 = mlp(2, 8, 1, generator=torch.Generator().manual_seed(5), dtype=f64)
    train_gan(G0, D0, data, latent_dim=2, steps=1, batch_size=16, lr=1e-2, num_snapshot_samples=4,
              generator=torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(6)
    torch.randn(4, 2, generator=g, dtype=f64)  # the snapshot noise is drawn first
    opt_g, opt_d = torch.optim.Adam(G1.parameters(), lr=1e-2, betas=(0.5, 0.999)), torch.optim.Adam(D1.parameters(), lr=1e-2, betas=(0.5, 0.999))
    real = data[torch.randint(64, (16,), generator=g)]
    fake = G1(torch.randn(16, 2, generator=g, dtype=f64)).detach()
    bce = F.binary_cross_entropy_with_logits
    d_loss = bce(D1(real), torch.ones(16, 1, dtype=f64)) + bce(D1(fake), torch.zeros(16, 1, dtype=f64))
    opt_d.zero_grad(), d_loss.backward(), opt_d.step()
    g_loss = bce(D1(G1(torch.randn(16, 2, generator=g, dtype=f64))), torch.ones(16, 1, dtype=f64))
    opt_g.zero_grad(), g_loss.backward(), opt_g.step()
    for p0, p1 in zip(list(G0.parameters()) + list(D0.parameters()), list(G1.parameters()) + list(D1.parameters())):
        assert torch.allclose(p0, p1, **TOL[f64])


def test_train_gan_rejects_bad_arguments():
    from dgm.gan import train_gan

    G, D = mlp(2, 4, 2), mlp(2, 4, 1)
    data = torch.randn(10, 2)
    with pytest.raises(ValueError, match="loss must be"):
        train_gan(G, D, data, latent_dim=2, steps=1, loss="hinge")
    with pytest.raises(TypeError, match="torch.nn.Modules"):
        train_gan(lambda z: z, D, data, latent_dim=2, steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_gan(G, D, data, latent_dim=2, steps=0)
