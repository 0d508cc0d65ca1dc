"""Linear NOTEARS: causal discovery by continuous optimisation (Zheng et al., 2018).

Zheng, Aragam, Ravikumar and Xing, "DAGs with NO TEARS: Continuous
Optimization for Structure Learning", NeurIPS 2018. The search over DAGs is
replaced by one smooth, equality-constrained problem over weighted adjacency
matrices ``W`` (``W[i, j]`` is the edge i -> j, data ``X ~ X W + noise``)::

    min_W  1/(2n) ||X - X W||_F^2 + lambda1 ||W||_1
    s.t.   h(W) = tr(exp(W o W)) - d = 0,

where ``o`` is the elementwise product: ``h(W) = 0`` exactly when ``W`` has
no directed cycle (``tr (W o W)^k`` sums the weights of the closed walks of
length k). The constraint is handled by the augmented Lagrangian
``F(W) + alpha h + rho/2 h^2``: each inner problem is solved by L-BFGS-B on
``W = W+ - W-`` with ``W+, W- >= 0`` (so the l1 term is linear and smooth)
and zero diagonals, and ``rho`` grows tenfold until ``h`` falls by a factor
4, as in the authors' reference code. Small weights are then cut at
``w_threshold`` (0.3 in the paper).

This implementation follows the reference code's algorithm; one change, for
speed only: the least-squares loss is written with the Gram matrix
``S = X'X / n`` of the centred data, ``1/2 tr((I - W)' S (I - W))``, so each
evaluation costs O(d^3) instead of O(n d^2).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.optimize as sopt
from threadpoolctl import threadpool_limits


def acyclicity(W: np.ndarray) -> tuple[float, np.ndarray]:
    """``h(W) = tr(exp(W o W)) - d`` and its gradient ``exp(W o W)' o 2W``.

    ``h >= 0``, with equality exactly when ``W``'s graph is a DAG.
    """
    W = np.asarray(W, dtype=np.float64)
    E = sla.expm(W * W)
    return float(np.trace(E) - W.shape[0]), E.T * W * 2.0


def _split(w: np.ndarray, d: int) -> np.ndarray:
    return (w[: d * d] - w[d * d :]).reshape(d, d)


def augmented_objective(w: np.ndarray, S: np.ndarray, lambda1: float, rho: float, alpha: float):
    """The inner problem on ``w = [vec W+, vec W-]``: value and gradient of
    ``1/2 tr((I-W)' S (I-W)) + lambda1 sum(w) + alpha h(W) + rho/2 h(W)^2``."""
    d = S.shape[0]
    W = _split(w, d)
    A = np.eye(d) - W
    SA = S @ A
    loss = 0.5 * float(np.sum(A * SA))
    h, G_h = acyclicity(W)
    obj = loss + 0.5 * rho * h * h + alpha * h + lambda1 * float(w.sum())
    G = -SA + (rho * h + alpha) * G_h
    return obj, np.concatenate([(G + lambda1).ravel(), (-G + lambda1).ravel()])


def _check_input(X, lambda1: float, w_threshold: float) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (samples x variables), got shape {X.shape}")
    n, d = X.shape
    if n < 2 or d < 2:
        raise ValueError(f"X needs at least 2 samples and 2 variables, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    if not np.isfinite(lambda1) or lambda1 < 0:
        raise ValueError(f"lambda1 must be a finite number >= 0, got {lambda1}")
    if not np.isfinite(w_threshold) or w_threshold < 0:
        raise ValueError(f"w_threshold must be a finite number >= 0, got {w_threshold}")
    return X


def notears_linear(
    X,
    lambda1: float = 0.1,
    *,
    w_threshold: float = 0.3,
    max_iter: int = 100,
    h_tol: float = 1e-8,
    rho_max: float = 1e16,
) -> np.ndarray:
    """Linear NOTEARS with the least-squares loss; returns ``W`` with ``W[i, j]`` the edge i -> j.

    ``X`` is centred first. Weights with ``|W| < w_threshold`` are set to zero.
    """
    X = _check_input(X, lambda1, w_threshold)
    n = X.shape[0]
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / n
    # Thousands of small (d x d) products: BLAS threads only add overhead, and on a
    # busy machine their spin-waiting made a fit 40x slower.
    with threadpool_limits(1, user_api="blas"):
        W = _augmented_lagrangian(S, lambda1, max_iter, h_tol, rho_max)
    W[np.abs(W) < w_threshold] = 0.0
    return W


def _augmented_lagrangian(S, lambda1, max_iter, h_tol, rho_max) -> np.ndarray:
    d = S.shape[0]
    w = np.zeros(2 * d * d)
    rho, alpha, h = 1.0, 0.0, np.inf
    off = ~np.eye(d, dtype=bool).ravel()
    bounds = [(0.0, None) if o else (0.0, 0.0) for o in np.concatenate([off, off])]
    for _ in range(max_iter):
        while rho < rho_max:
            sol = sopt.minimize(
                augmented_objective, w, args=(S, lambda1, rho, alpha),
                method="L-BFGS-B", jac=True, bounds=bounds,
            )
            h_new, _ = acyclicity(_split(sol.x, d))
            if h_new > 0.25 * h:
                rho *= 10
            else:
                break
        w, h = sol.x, h_new
        alpha += rho * h
        if h <= h_tol or rho >= rho_max:
            break
    return _split(w, d)


def is_dag(A: np.ndarray) -> bool:
    """True when the graph with edges ``A[i, j] != 0`` has no directed cycle."""
    A = np.asarray(A) != 0
    indeg = A.sum(axis=0)
    queue = list(np.flatnonzero(indeg == 0))
    seen = 0
    while queue:
        i = queue.pop()
        seen += 1
        for j in np.flatnonzero(A[i]):
            indeg[j] -= 1
            if indeg[j] == 0:
                queue.append(j)
    return seen == A.shape[0]


class NOTEARS:
    """Linear NOTEARS as an estimator with the `lingam` conventions.

    ``adjacency_matrix_[i, j]`` is the effect of x_j on x_i (the transpose of
    NOTEARS's ``W``), in the units of the data passed to :meth:`fit`.

    ``standardize``: fit on z-scored columns and map the weights back,
    ``B[i, j] = B_z[i, j] sd_i / sd_j``. NOTEARS is not scale-invariant: on
    raw simulated data it can read the causal order off the growing
    variances (Reisach et al., 2021), which real units do not promise.
    ``refit``: re-estimate the kept edges by least squares on their parents
    (as DirectLiNGAM's adjacency step does), removing the l1 shrinkage.
    If thresholding leaves a cycle (rare), the weakest remaining edges are
    dropped until the graph is a DAG (``cut_edges_`` counts them).
    """

    def __init__(self, lambda1: float = 0.1, w_threshold: float = 0.3, *,
                 standardize: bool = True, refit: bool = True, max_iter: int = 100):
        self.lambda1 = lambda1
        self.w_threshold = w_threshold
        self.standardize = standardize
        self.refit = refit
        self.max_iter = max_iter

    def fit(self, X) -> NOTEARS:
        X = _check_input(X, self.lambda1, self.w_threshold)
        sd = X.std(axis=0)
        if np.any(sd == 0):
            raise ValueError(f"X has constant columns: {np.flatnonzero(sd == 0).tolist()}")
        Z = (X - X.mean(axis=0)) / sd if self.standardize else X
        B = notears_linear(Z, self.lambda1, w_threshold=self.w_threshold, max_iter=self.max_iter).T
        self.cut_edges_ = 0
        while not is_dag(B):
            nz = np.flatnonzero(B)
            B.flat[nz[np.argmin(np.abs(B.flat[nz]))]] = 0.0
            self.cut_edges_ += 1
        if self.standardize:
            B = B * sd[:, None] / sd[None, :]
        if self.refit:
            Xc = X - X.mean(axis=0)
            for i in range(X.shape[1]):
                pa = np.flatnonzero(B[i])
                if len(pa):
                    B[i, pa] = np.linalg.lstsq(Xc[:, pa], Xc[:, i], rcond=None)[0]
        self.adjacency_matrix_ = B
        return self
