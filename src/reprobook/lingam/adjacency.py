"""Adjacency after the causal order: adaptive lasso, as the `lingam` package does it.

For each variable, regress it on its predecessors in the causal order:
OLS weights ``w = |beta_OLS|``, ``LassoLarsIC(criterion="bic")`` on the
weighted standardized predictors, keep the non-zero coefficients and refit
them by OLS on the original scale. Everything is scikit-learn.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LassoLarsIC, LinearRegression


def adaptive_lasso(X_std: np.ndarray, X: np.ndarray, predictors, target: int, gamma: float = 1.0):
    """Coefficients of ``X[:, target]`` on ``X[:, predictors]`` after adaptive-lasso pruning.

    ``X_std`` is ``X`` standardized column-wise (computed once by the caller,
    not once per target).
    """
    predictors = np.asarray(predictors, dtype=int)
    ols = LinearRegression().fit(X_std[:, predictors], X_std[:, target])
    weight = np.abs(ols.coef_) ** gamma
    lasso = LassoLarsIC(criterion="bic").fit(X_std[:, predictors] * weight, X_std[:, target])
    keep = np.abs(lasso.coef_ * weight) > 0.0
    coef = np.zeros(len(predictors))
    if keep.any():
        refit = LinearRegression().fit(X[:, predictors[keep]], X[:, target])
        coef[keep] = refit.coef_
    return coef


def standardize(X: np.ndarray) -> np.ndarray:
    """Column-wise ``(x - mean) / std`` with ddof = 0 (what ``StandardScaler`` does)."""
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(X)


def estimate_adjacency(X: np.ndarray, causal_order, prior_knowledge=None) -> np.ndarray:
    """``B[target, predictors]`` for every variable after the first in ``causal_order``."""
    d = X.shape[1]
    pk = None
    if prior_knowledge is not None:
        pk = np.array(prior_knowledge, dtype=np.float64)
        np.fill_diagonal(pk, 0)
    X_std = standardize(X)
    B = np.zeros((d, d))
    for pos in range(1, len(causal_order)):
        target = causal_order[pos]
        predictors = list(causal_order[:pos])
        if pk is not None:  # no_path knowledge removes candidate parents
            predictors = [p for p in predictors if pk[target, p] != 0]
        if predictors:
            B[target, predictors] = adaptive_lasso(X_std, X, predictors, target)
    return B
