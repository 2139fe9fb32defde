"""Tests for dgm.mixtures: independent routes (scikit-learn, scipy), invariants, gradients, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp as scipy_logsumexp
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from dgm import mixtures
from dgm.device import manual_seed
from dgm.divergences import categorical_kl


def _model(K=3, D=2, seed=0, dtype=torch.float64):
    g = manual_seed(seed)
    weights = torch.softmax(torch.randn(K, generator=g, dtype=dtype), 0)
    means = 2 * torch.randn(K, D, generator=g, dtype=dtype)
    logvars = 0.5 * torch.randn(K, D, generator=g, dtype=dtype)
    return weights, means, logvars


def _sklearn_gmm(weights, means, logvars):
    """A GaussianMixture whose parameters are set by hand (no fitting): an independent implementation."""
    gmm = GaussianMixture(n_components=len(weights), covariance_type="diag")
    gmm.weights_ = weights.numpy()
    gmm.means_ = means.numpy()
    gmm.covariances_ = np.exp(logvars.numpy())
    gmm.precisions_cholesky_ = 1.0 / np.sqrt(gmm.covariances_)
    return gmm


def test_log_marginal_and_posterior_match_sklearn():
    weights, means, logvars = _model(K=4, D=3)
    x = torch.randn(50, 3, generator=manual_seed(1), dtype=torch.float64) * 3
    gmm = _sklearn_gmm(weights, means, logvars)
    np.testing.assert_allclose(mixtures.log_marginal(x, weights, means, logvars).numpy(), gmm.score_samples(x.numpy()), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mixtures.posterior(x, weights, means, logvars).numpy(), gmm.predict_proba(x.numpy()), rtol=1e-8, atol=1e-12)


def test_log_joint_matches_scipy():
    weights, means, logvars = _model(K=3, D=2)
    x = torch.tensor([[0.3, -1.2], [4.0, 2.0]], dtype=torch.float64)
    expected = np.stack(
        [
            np.log(weights[k].item()) + multivariate_normal(means[k].numpy(), np.diag(np.exp(logvars[k].numpy()))).logpdf(x.numpy())
            for k in range(3)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(mixtures.log_joint(x, weights, means, logvars).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        mixtures.log_marginal(x, weights, means, logvars).numpy(), scipy_logsumexp(expected, axis=-1), rtol=1e-12
    )


def test_batch_shapes():
    weights, means, logvars = _model(K=3, D=2)
    x = torch.zeros(4, 5, 2, dtype=torch.float64)
    assert mixtures.log_joint(x, weights, means, logvars).shape == (4, 5, 3)
    assert mixtures.log_marginal(x, weights, means, logvars).shape == (4, 5)
    assert mixtures.posterior(x, weights, means, logvars).shape == (4, 5, 3)
    q = torch.full((3,), 1 / 3, dtype=torch.float64)
    assert mixtures.elbo(x, q, weights, means, logvars).shape == (4, 5)


def test_far_points_do_not_underflow():
    weights, means, logvars = _model(K=2, D=2)
    x = torch.tensor([[1e3, -1e3]], dtype=torch.float64)
    lm = mixtures.log_marginal(x, weights, means, logvars)
    assert torch.isfinite(lm).all()
    r = mixtures.posterior(x, weights, means, logvars)
    assert torch.allclose(r.sum(-1), torch.ones(1, dtype=torch.float64))


def test_elbo_at_posterior_is_log_marginal():
    weights, means, logvars = _model(K=4, D=3, seed=2)
    x = torch.randn(20, 3, generator=manual_seed(3), dtype=torch.float64)
    r = mixtures.posterior(x, weights, means, logvars)
    torch.testing.assert_close(mixtures.elbo(x, r, weights, means, logvars), mixtures.log_marginal(x, weights, means, logvars))


def test_elbo_decomposition_for_any_q():
    """ELBO(q) = log p(x) - KL(q || p(z|x)), with the KL from dgm.divergences (another module)."""
    weights, means, logvars = _model(K=5, D=2, seed=4)
    g = manual_seed(5)
    x = torch.randn(30, 2, generator=g, dtype=torch.float64)
    q = torch.softmax(2 * torch.randn(30, 5, generator=g, dtype=torch.float64), -1)
    r = mixtures.posterior(x, weights, means, logvars)
    lhs = mixtures.elbo(x, q, weights, means, logvars)
    rhs = mixtures.log_marginal(x, weights, means, logvars) - categorical_kl(q, r)
    torch.testing.assert_close(lhs, rhs)
    assert bool((lhs <= mixtures.log_marginal(x, weights, means, logvars) + 1e-12).all())


def test_elbo_zero_q_entries_and_zero_weights():
    """0·log 0 = 0: a q that ignores a zero-weight component gives a finite ELBO; one that uses it gives -inf."""
    weights = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    means = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    logvars = torch.zeros(3, 1, dtype=torch.float64)
    x = torch.tensor([0.4], dtype=torch.float64)
    q_ok = torch.tensor([0.3, 0.7, 0.0], dtype=torch.float64)
    assert torch.isfinite(mixtures.elbo(x, q_ok, weights, means, logvars))
    q_bad = torch.tensor([0.3, 0.6, 0.1], dtype=torch.float64)
    assert mixtures.elbo(x, q_bad, weights, means, logvars) == -math.inf
    # point mass q = one-hot: ELBO = log p(x, z=k)
    onehot = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(mixtures.elbo(x, onehot, weights, means, logvars), mixtures.log_joint(x, weights, means, logvars)[0])


def test_sample_frequencies_and_moments():
    weights, means, logvars = _model(K=3, D=2, seed=6)
    x, z = mixtures.sample(40_000, weights, means, logvars, generator=manual_seed(7))
    assert x.shape == (40_000, 2) and z.shape == (40_000,) and z.dtype == torch.int64
    freq = torch.bincount(z, minlength=3).double() / 40_000
    se = torch.sqrt(weights * (1 - weights) / 40_000)
    assert bool(((freq - weights).abs() < 5 * se).all())
    for k in range(3):
        xs = x[z == k]
        se_mean = torch.exp(0.5 * logvars[k]) / math.sqrt(len(xs))
        assert bool(((xs.mean(0) - means[k]).abs() < 5 * se_mean).all())


def test_sample_is_reproducible():
    weights, means, logvars = _model()
    a = mixtures.sample(10, weights, means, logvars, generator=manual_seed(0))
    b = mixtures.sample(10, weights, means, logvars, generator=manual_seed(0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_float32_agrees_with_float64():
    weights, means, logvars = _model()
    x = torch.randn(8, 2, generator=manual_seed(8), dtype=torch.float64)
    lm64 = mixtures.log_marginal(x, weights, means, logvars)
    lm32 = mixtures.log_marginal(x.float(), weights.float(), means.float(), logvars.float())
    assert lm32.dtype == torch.float32
    torch.testing.assert_close(lm32.double(), lm64, rtol=1e-5, atol=1e-5)


def test_gradcheck_log_marginal_and_elbo():
    weights, means, logvars = _model(K=3, D=2, seed=9)
    x = torch.randn(4, 2, generator=manual_seed(10), dtype=torch.float64)
    means = means.clone().requires_grad_(True)
    logvars = logvars.clone().requires_grad_(True)
    xg = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m, lv, xx: mixtures.log_marginal(xx, weights, m, lv), (means, logvars, xg))
    q = torch.tensor([0.2, 0.0, 0.8], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda m, lv: mixtures.elbo(x, q, weights, m, lv), (means, logvars))


def test_gradient_of_log_marginal_is_posterior_average():
    """The log-derivative identity of Chapter 1: ∇ log p(x) = Σ_k p(k|x) ∇ log p(x, k)."""
    weights, means, logvars = _model(K=3, D=2, seed=11)
    x = torch.tensor([0.5, -0.3], dtype=torch.float64)
    means = means.clone().requires_grad_(True)
    (g_marg,) = torch.autograd.grad(mixtures.log_marginal(x, weights, means, logvars), means)
    r = mixtures.posterior(x, weights, means, logvars).detach()
    (g_joint,) = torch.autograd.grad((r * mixtures.log_joint(x, weights, means, logvars)).sum(), means)
    torch.testing.assert_close(g_marg, g_joint)


BAD = [
    (dict(weights=[0.5, 0.6]), ValueError, "weights must sum to 1"),
    (dict(weights=[1.2, -0.2]), ValueError, "weights must be non-negative"),
    (dict(weights=[1.0]), ValueError, r"weights must have shape \(2,\)"),
    (dict(means=[0.0, 1.0]), ValueError, r"means must have shape \(K, D\)"),
    (dict(logvars=[[0.0], [0.0]]), ValueError, r"logvars must have shape \(2, 2\)"),
    (dict(logvars=[[0.0, float("nan")], [0.0, 0.0]]), ValueError, "logvars must be finite"),
    (dict(x=[[0.0, 0.0, 0.0]]), ValueError, "x must have shape"),
    (dict(x=torch.zeros(2, 2, dtype=torch.int64)), TypeError, "x must be a floating-point tensor"),
    (dict(x="a"), TypeError, "x must be a tensor"),
    (dict(q=[0.5, 0.4]), ValueError, "q must sum to 1"),
    (dict(q=[0.2, 0.3, 0.5]), ValueError, "q must have shape"),
]


@pytest.mark.parametrize("override, error, match", BAD)
def test_bad_inputs(override, error, match):
    args = dict(
        x=[[0.0, 1.0]], q=[0.5, 0.5], weights=[0.4, 0.6], means=[[0.0, 0.0], [1.0, 1.0]], logvars=[[0.0, 0.0], [0.0, 0.0]]
    )
    args.update(override)
    with pytest.raises(error, match=match):
        mixtures.elbo(args["x"], args["q"], args["weights"], args["means"], args["logvars"])


@pytest.mark.parametrize("n, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_sample_bad_num_samples(n, error):
    weights, means, logvars = _model()
    with pytest.raises(error, match=f"num_samples must be a positive integer; got {n}"):
        mixtures.sample(n, weights, means, logvars)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_cuda_matches_cpu():
    weights, means, logvars = _model()
    x = torch.randn(8, 2, generator=manual_seed(0), dtype=torch.float64)
    cpu = mixtures.log_marginal(x, weights, means, logvars)
    gpu = mixtures.log_marginal(x.cuda(), weights.cuda(), means.cuda(), logvars.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu)
