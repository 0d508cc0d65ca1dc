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


#: Below this many targets the adjacency is fitted in-process: starting
#: workers would cost more than it saves.
PARALLEL_MIN_TARGETS = 64

# The data the forked workers fit from: set before they are forked, so they
# inherit it (no pickling of X per task).
_WORKER_DATA: tuple[np.ndarray, np.ndarray] | None = None


def _fit_target(task):
    target, predictors = task
    X_std, X = _WORKER_DATA
    return adaptive_lasso(X_std, X, predictors, target)


def estimate_adjacency(
    X: np.ndarray, causal_order, prior_knowledge=None, n_jobs: int | None = None
) -> np.ndarray:
    """``B[target, predictors]`` for every variable after the first in ``causal_order``.

    The targets are independent regressions: with ``n_jobs`` > 1 (default:
    all cores) and at least :data:`PARALLEL_MIN_TARGETS` of them they are
    spread over forked worker processes (LassoLarsIC is mostly Python, so
    threads would queue on the GIL). BLAS runs single-threaded either way:
    on these small matrices its threads cost more than they give (0.9 s
    against 1.8 s at d = 100, n = 1000). Same numbers in every mode.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from threadpoolctl import threadpool_limits

    from .ordering import default_n_jobs

    global _WORKER_DATA
    d = X.shape[1]
    pk = None
    if prior_knowledge is not None:
        pk = np.array(prior_knowledge, dtype=np.float64)
        np.fill_diagonal(pk, 0)
    X_std = standardize(X)
    tasks = []
    for pos in range(1, len(causal_order)):
        target = causal_order[pos]
        predictors = list(causal_order[:pos])
        if pk is not None:  # no_path knowledge removes candidate parents
            predictors = [p for p in predictors if pk[target, p] != 0]
        if predictors:
            tasks.append((target, predictors))
    workers = min(default_n_jobs() if n_jobs is None else n_jobs, len(tasks))
    B = np.zeros((d, d))
    with threadpool_limits(1, user_api="blas"):
        if (
            workers > 1
            and len(tasks) >= PARALLEL_MIN_TARGETS
            and "fork" in multiprocessing.get_all_start_methods()
        ):
            # Largest regressions first, one task at a time: the workers stay balanced.
            tasks.sort(key=lambda task: -len(task[1]))
            _WORKER_DATA = (X_std, X)
            try:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                    coefs = list(pool.map(_fit_target, tasks))
            finally:
                _WORKER_DATA = None
        else:
            coefs = [adaptive_lasso(X_std, X, predictors, target) for target, predictors in tasks]
    for (target, predictors), coef in zip(tasks, coefs):
        B[target, predictors] = coef
    return B
