r"""A discriminative and a generative classifier: logistic regression and Gaussian naive Bayes (Chapter 1).

* Logistic regression models only p(y | x) = Ber(y; σ(wᵀx + b)). It is fitted by maximum
  likelihood, i.e. by minimising the mean negative log-likelihood (the binary cross-entropy).
* Gaussian naive Bayes models the joint p(x, y) = p(y) Π_d N(x_d; μ_{y,d}, σ²_{y,d}): a mixture of
  diagonal Gaussians whose component index y is observed. Its posterior p(y | x) comes from
  Bayes' rule, and because it models p(x | y) it can also *sample* x.

Shapes: features ``X`` are ``(N, D)``, binary labels ``y`` are ``(N,)`` in {0, 1}, class labels
are ``(N,)`` integers in {0, ..., C-1}.
"""

from __future__ import annotations

import warnings

import torch

from dgm import mixtures
from dgm._validate import as_float_tensor, check_int, check_last_dim, check_number, check_same_device
from dgm.distributions import bernoulli_log_prob

__all__ = [
    "logistic_nll",
    "fit_logistic_regression",
    "fit_gaussian_naive_bayes",
    "naive_bayes_log_posterior",
]


def _features(X, name="X", like=None):
    X = as_float_tensor(X, name, like=like)
    if X.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D); got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one row; got shape {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinity")
    return X


def _binary_labels(y, X):
    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) (one label per row of X); got shape {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y must contain only the labels 0 and 1")
    return y.to(device=X.device, dtype=X.dtype)


def logistic_nll(w, b, X, y) -> torch.Tensor:
    r"""Mean negative log-likelihood of logistic regression, -(1/N) Σ_i log Ber(y_i; σ(wᵀx_i + b)).

    This is the binary cross-entropy between the labels and the predicted probabilities.

    Args:
        w: ``(D,)`` weights; b: scalar bias.
        X: ``(N, D)`` features; y: ``(N,)`` labels in {0, 1}.

    Returns:
        ``()`` the mean NLL in nats.
    """
    w = as_float_tensor(w, "w")
    if w.dim() != 1:
        raise ValueError(f"w must have shape (D,); got shape {tuple(w.shape)}")
    X = _features(X, like=w)
    check_last_dim(X, "X", w.shape[0], f"(N, {w.shape[0]})")
    b = as_float_tensor(b, "b", like=w)
    if b.dim() != 0:
        raise ValueError(f"b must be a scalar; got shape {tuple(b.shape)}")
    check_same_device(w=w, b=b, X=X)
    y = _binary_labels(y, X)
    return -bernoulli_log_prob(y, X @ w + b).mean()


def fit_logistic_regression(X, y, *, l2: float = 0.0, max_iter: int = 100, tol: float = 1e-10):
    r"""Maximum-likelihood logistic regression by Newton's method, in float64.

    Minimises  L(w, b) = logistic_nll(w, b, X, y) + (l2 / 2) ‖w‖²  (the bias is not penalised).
    scikit-learn's ``LogisticRegression(C=C)`` minimises N times this objective with
    ``l2 = 1 / (C N)``.

    Each step solves H Δ = -g with the gradient g = X̃ᵀ(μ - y)/N + l2 (w, 0) and the Hessian
    H = X̃ᵀ diag(μ(1-μ)) X̃ / N + l2 diag(1, ..., 1, 0), where X̃ = [X, 1] and μ = σ(X̃ (w, b)).
    The solve is a least-squares one, so a singular Hessian (e.g. a constant feature, which the
    bias duplicates) gives the minimum-norm step; a backtracking line search makes every step
    lower the objective. Without ``l2``, linearly separable data has no minimiser (the loss keeps
    decreasing as ‖w‖ → ∞): the fit then returns its last iterate with a ``RuntimeWarning``.

    Args:
        X: ``(N, D)`` features; y: ``(N,)`` labels in {0, 1}.
        l2: non-negative ridge strength on ``w``.
        max_iter: maximum number of Newton steps.
        tol: stop when the largest entry of |g| is below ``tol``.

    Returns:
        ``(w, b)``: ``(D,)`` float64 weights and a float64 scalar bias, on X's device.
    """
    X = _features(X).to(torch.float64)
    y = _binary_labels(y, X)
    l2 = check_number(l2, "l2", low=0)
    max_iter = check_int(max_iter, "max_iter", low=1)
    tol = check_number(tol, "tol", low=0, closed_low=False)
    N, D = X.shape
    Xt = torch.cat([X, torch.ones(N, 1, dtype=X.dtype, device=X.device)], dim=1)
    ridge = torch.full((D + 1,), float(l2), dtype=X.dtype, device=X.device)
    ridge[-1] = 0.0

    def objective(theta):
        return logistic_nll(theta[:-1], theta[-1], X, y) + 0.5 * (ridge * theta.pow(2)).sum()

    theta = torch.zeros(D + 1, dtype=X.dtype, device=X.device)
    value = objective(theta)
    for _ in range(max_iter):
        mu = torch.sigmoid(Xt @ theta)
        grad = Xt.T @ (mu - y) / N + ridge * theta
        if float(grad.abs().max()) < tol:
            break
        hess = (Xt.T * (mu * (1 - mu))) @ Xt / N + torch.diag(ridge)
        step = -torch.linalg.lstsq(hess, grad.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
        t = 1.0
        while t > 1e-10:
            candidate = theta + t * step
            new_value = objective(candidate)
            if bool(new_value <= value):
                break
            t *= 0.5
        else:
            break  # no descent along the Newton direction: numerically at the optimum
        theta, value = candidate, new_value
    logits = Xt @ theta
    if l2 == 0 and bool(((2 * y - 1) * logits > 0).all()):
        # every example on the right side of the boundary: scaling (w, b) up lowers the loss forever
        warnings.warn(
            "fit_logistic_regression: the classes are linearly separable, so the unpenalised likelihood has "
            "no finite maximiser (‖w‖ grows without bound); set l2 > 0.",
            RuntimeWarning,
            stacklevel=2,
        )
        return theta[:-1].clone(), theta[-1].clone()
    grad = Xt.T @ (torch.sigmoid(logits) - y) / N + ridge * theta
    if float(grad.abs().max()) >= max(tol, 1e-8):
        warnings.warn(
            f"fit_logistic_regression did not converge in {max_iter} Newton steps (largest gradient entry "
            f"{float(grad.abs().max()):.2e}); raise max_iter or set l2 > 0.",
            RuntimeWarning,
            stacklevel=2,
        )
    return theta[:-1].clone(), theta[-1].clone()


def _class_labels(y, X):
    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y)
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"y must be an integer tensor of class labels 0..C-1; got dtype {y.dtype}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) (one label per row of X); got shape {tuple(y.shape)}")
    if bool((y < 0).any()):
        raise ValueError(f"y must contain class labels 0..C-1; its smallest entry is {int(y.min())}")
    return y.to(device=X.device, dtype=torch.int64)


def fit_gaussian_naive_bayes(X, y, *, var_smoothing: float = 1e-9):
    r"""Maximum-likelihood Gaussian naive Bayes: class frequencies, per-class means and variances.

    log π_c = log(N_c / N); μ_{c,d} = mean of x_d over class c; σ²_{c,d} = the (biased, 1/N_c)
    variance over class c plus ε, with ε = var_smoothing · max_d Var(x_d) over all the data, as
    scikit-learn's ``GaussianNB`` does (it keeps constant pixels from having zero variance).

    Args:
        X: ``(N, D)`` features; y: ``(N,)`` integer labels, every class 0..C-1 present.
        var_smoothing: non-negative fraction of the largest feature variance added to every variance.

    Returns:
        ``(log_priors (C,), means (C, D), logvars (C, D))`` in X's dtype.
    """
    X = _features(X)
    y = _class_labels(y, X)
    var_smoothing = check_number(var_smoothing, "var_smoothing", low=0)
    C = int(y.max()) + 1
    counts = torch.bincount(y, minlength=C)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"every class 0..{C - 1} needs at least one example; classes {missing} have none")
    n_c = counts.to(X.dtype)
    means = torch.stack([X[y == c].mean(0) for c in range(C)])  # (C, D)
    # two passes (mean first, then squared deviations): more accurate than E[x²] - E[x]²
    variances = torch.stack([(X[y == c] - means[c]).pow(2).mean(0) for c in range(C)])
    epsilon = var_smoothing * float(X.var(0, correction=0).max())
    variances = variances + epsilon
    if not bool((variances > 0).all()):
        raise ValueError(
            "some class has a feature with zero variance and var_smoothing is 0; set var_smoothing > 0"
        )
    log_priors = torch.log(n_c / X.shape[0])
    return log_priors, means, torch.log(variances)


def naive_bayes_log_posterior(X, log_priors, means, logvars) -> torch.Tensor:
    r"""log p(y=c | x) for Gaussian naive Bayes, by Bayes' rule: log π_c + log N(x; μ_c, σ²_c) - log p(x).

    The class-conditional model is a mixture of diagonal Gaussians whose component is the class,
    so this is :func:`dgm.mixtures.log_posterior` with weights e^{log_priors}.

    Args:
        X: ``(N, D)`` features.
        log_priors: ``(C,)`` log class probabilities; means, logvars: ``(C, D)``.

    Returns:
        ``(N, C)`` log posterior class probabilities.
    """
    X = _features(X)
    log_priors = as_float_tensor(log_priors, "log_priors", like=X)
    if log_priors.dim() != 1:
        raise ValueError(f"log_priors must have shape (C,); got shape {tuple(log_priors.shape)}")
    return mixtures.log_posterior(X, torch.exp(log_priors), means, logvars)
