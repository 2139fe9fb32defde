"""Tests for dgm.classifiers: scikit-learn as the independent route, the large-n limit, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

from dgm.classifiers import (
    fit_gaussian_naive_bayes,
    fit_logistic_regression,
    logistic_nll,
    naive_bayes_log_posterior,
)
from dgm.device import manual_seed


def _binary_problem(n=400, d=3, seed=0):
    g = manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_true = torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64)[:d]
    p = torch.sigmoid(X @ w_true - 0.3)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < p).long()
    return X, y


def test_logistic_nll_matches_hand_formula_and_torch():
    X, y = _binary_problem()
    w = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64)
    b = torch.tensor(0.1, dtype=torch.float64)
    # independent route: torch's own binary cross-entropy with logits
    expected = torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, y.double())
    torch.testing.assert_close(logistic_nll(w, b, X, y), expected)
    # at w = 0, b = 0 every prediction is 1/2, so the NLL is log 2 whatever the labels
    torch.testing.assert_close(logistic_nll(torch.zeros(3, dtype=torch.float64), 0.0, X, y), torch.tensor(math.log(2), dtype=torch.float64))


def test_logistic_regression_matches_sklearn_unpenalised():
    X, y = _binary_problem()
    w, b = fit_logistic_regression(X, y)
    sk = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), sk.coef_[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.item(), sk.intercept_[0], rtol=1e-5, atol=1e-6)
    proba = torch.sigmoid(X @ w + b).numpy()
    np.testing.assert_allclose(proba, sk.predict_proba(X.numpy())[:, 1], atol=1e-6)


def test_logistic_regression_matches_sklearn_with_l2():
    X, y = _binary_problem(n=200, seed=1)
    C = 0.5
    w, b = fit_logistic_regression(X, y, l2=1.0 / (C * len(y)))
    sk = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(w.numpy(), sk.coef_[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.item(), sk.intercept_[0], rtol=1e-5, atol=1e-6)


def test_gradient_is_zero_at_the_fit():
    X, y = _binary_problem(seed=2)
    w, b = fit_logistic_regression(X, y)
    w = w.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    gw, gb = torch.autograd.grad(logistic_nll(w, b, X, y), (w, b))
    assert float(gw.abs().max()) < 1e-9 and abs(float(gb)) < 1e-9


@pytest.mark.parametrize("p", [0.1, 0.3, 0.77])
def test_all_ones_feature_recovers_label_frequency(p):
    """The exercise of Chapter 1: with x = (1) for every example, σ(w + b) equals the label frequency."""
    n = 1000
    n_pos = round(p * n)
    X = torch.ones(n, 1, dtype=torch.float64)
    y = torch.cat([torch.ones(n_pos), torch.zeros(n - n_pos)]).long()
    w, b = fit_logistic_regression(X, y)
    assert abs(float(torch.sigmoid(w[0] + b)) - n_pos / n) < 1e-10
    # only w + b is identified; the minimum-norm Newton step splits it evenly
    assert abs(float(w[0] - b)) < 1e-10


def test_all_ones_feature_converges_as_n_grows():
    p = 0.3
    g = manual_seed(3)
    errors = []
    for n in (100, 10_000, 1_000_000):
        y = (torch.rand(n, generator=g, dtype=torch.float64) < p).long()
        w, b = fit_logistic_regression(torch.ones(n, 1, dtype=torch.float64), y)
        errors.append(abs(float(torch.sigmoid(w[0] + b)) - p))
        assert errors[-1] < 5 * math.sqrt(p * (1 - p) / n)
    assert errors[-1] < errors[0]


def test_separable_data_warns_without_l2_and_converges_with_it():
    X = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    with pytest.warns(RuntimeWarning, match="linearly separable"):
        w, _ = fit_logistic_regression(X, y, max_iter=30)
    assert float(w[0]) > 5  # the weights run away: no finite minimiser
    w, b = fit_logistic_regression(X, y, l2=0.1)
    assert torch.isfinite(w).all()


def _digits():
    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0), torch.tensor(y)


@pytest.mark.parametrize("var_smoothing", [1e-9, 1e-2])
def test_naive_bayes_matches_sklearn(var_smoothing):
    X, y = _digits()
    log_priors, means, logvars = fit_gaussian_naive_bayes(X, y, var_smoothing=var_smoothing)
    sk = GaussianNB(var_smoothing=var_smoothing).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(np.exp(log_priors.numpy()), sk.class_prior_, rtol=1e-12)
    np.testing.assert_allclose(means.numpy(), sk.theta_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.exp(logvars.numpy()), sk.var_, rtol=1e-8)
    log_post = naive_bayes_log_posterior(X[:300], log_priors, means, logvars)
    expected = sk.predict_log_proba(X[:300].numpy())
    # compare where the probabilities are not astronomically small (log-probs like -1e5 only need rtol)
    np.testing.assert_allclose(log_post.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert (log_post.argmax(1).numpy() == sk.predict(X[:300].numpy())).all()


def test_naive_bayes_posterior_normalised_and_shapes():
    X, y = _digits()
    lp, m, lv = fit_gaussian_naive_bayes(X, y, var_smoothing=1e-2)
    assert lp.shape == (10,) and m.shape == (10, 64) and lv.shape == (10, 64)
    post = naive_bayes_log_posterior(X[:5], lp, m, lv)
    assert post.shape == (5, 10)
    torch.testing.assert_close(post.exp().sum(1), torch.ones(5, dtype=torch.float64))


BAD_LOGISTIC = [
    (dict(y=[0, 2, 1]), ValueError, "y must contain only the labels 0 and 1"),
    (dict(y=[0, 1]), ValueError, r"y must have shape \(3,\)"),
    (dict(X=[1.0, 2.0, 3.0]), ValueError, r"X must have shape \(N, D\)"),
    (dict(X=[[1.0], [float("nan")], [0.0]]), ValueError, "X must be finite"),
    (dict(X=torch.ones(3, 1, dtype=torch.int64)), TypeError, "X must be a floating-point tensor"),
    (dict(l2=-1.0), ValueError, "l2 must be a finite non-negative number; got -1.0"),
    (dict(max_iter=0), ValueError, "max_iter must be a positive integer"),
    (dict(tol=0.0), ValueError, "tol must be a finite positive number; got 0.0"),
]


@pytest.mark.parametrize("override, error, match", BAD_LOGISTIC)
def test_fit_logistic_bad_inputs(override, error, match):
    args = dict(X=[[1.0], [2.0], [3.0]], y=[0, 1, 1])
    kwargs = {k: override.pop(k) for k in list(override) if k in ("l2", "max_iter", "tol")}
    args.update(override)
    with pytest.raises(error, match=match):
        fit_logistic_regression(args["X"], torch.as_tensor(args["y"]), **kwargs)


def test_logistic_nll_bad_shapes():
    X = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 3\)"):
        logistic_nll(torch.zeros(3, dtype=torch.float64), 0.0, X, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="b must be a scalar"):
        logistic_nll(torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), X, torch.tensor([0, 1, 0]))


BAD_NB = [
    (dict(y=torch.tensor([0.0, 1.0, 1.0])), TypeError, "y must be an integer tensor"),
    (dict(y=torch.tensor([0, 2, 2])), ValueError, r"classes \[1\] have none"),
    (dict(y=torch.tensor([0, -1, 1])), ValueError, "smallest entry is -1"),
    (dict(var_smoothing=-1.0), ValueError, "var_smoothing must be a finite non-negative number; got -1.0"),
    (dict(X=torch.tensor([[1.0], [1.0], [1.0]]), var_smoothing=0.0), ValueError, "zero variance"),
]


@pytest.mark.parametrize("override, error, match", BAD_NB)
def test_fit_naive_bayes_bad_inputs(override, error, match):
    args = dict(X=torch.tensor([[0.0], [1.0], [3.0]]), y=torch.tensor([0, 1, 1]), var_smoothing=1e-9)
    args.update(override)
    with pytest.raises(error, match=match):
        fit_gaussian_naive_bayes(args["X"], args["y"], var_smoothing=args["var_smoothing"])


def test_naive_bayes_log_posterior_bad_inputs():
    X = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"log_priors must have shape \(C,\)"):
        naive_bayes_log_posterior(X, torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        naive_bayes_log_posterior(X, torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64)), torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64))
