"""Fitting the QQT laws to measured (samples seen, error) points.

Each pool has its own utility ``b`` and half-life ``tau``; ``a`` and ``d`` are
shared across pools (the mixture law needs one ``a``). The authors searched a
grid (``b`` in [-0.5, -0.005], ``tau`` in [1, 10]) rather than trust a gradient
optimizer on this non-convex, piecewise objective. We search the same grid:
for each (``a``, ``d``) on an outer grid, every pool's (``b``, ``tau``) is the
best point of the inner grid, found for all pools at once with array
operations. What we add is a local refinement of the best grid point with
Nelder-Mead (scipy), which moves the parameters off the grid.

Both forms of the law can be fitted: ``"utility"`` (decay the utility per
epoch; ``d`` is multiplied by the later epochs' ratios, so predictions can fall
below it) and ``"effective_data"`` (discount repeated samples; ``d`` is a true
additive floor). ``a`` and ``d`` can be held fixed (``fixed_a``, ``fixed_d``),
e.g. to fit a held-out pool on the buckets' scale so that its ``b`` is
comparable, or to impose a floor measured elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .laws import FORMS, NORMALIZER, PoolLaw, epoch_samples

B_GRID = (-0.5, -0.005)
TAU_GRID = (1.0, 10.0)


@dataclass(frozen=True)
class FitPoints:
    """Measured points of one pool: samples seen ``n`` and error ``y`` (fractions)."""

    name: str
    n: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        n = np.asarray(self.n, dtype=np.float64)
        y = np.asarray(self.y, dtype=np.float64)
        if n.ndim != 1 or n.shape != y.shape:
            raise ValueError(f"pool {self.name!r}: n and y must be 1-D of equal length, got {n.shape} and {y.shape}")
        if len(n) < 2:
            raise ValueError(f"pool {self.name!r}: at least 2 fit points are needed, got {len(n)}")
        if not (np.all(np.isfinite(n)) and np.all(n > 0)):
            raise ValueError(f"pool {self.name!r}: samples seen must be positive and finite")
        if np.any(np.diff(n) <= 0):
            raise ValueError(f"pool {self.name!r}: samples seen must be strictly increasing, got {n.tolist()}")
        if not (np.all(np.isfinite(y)) and np.all((y > 0) & (y < 1))):
            raise ValueError(
                f"pool {self.name!r}: errors must be fractions in (0, 1) (1 - accuracy, not accuracy in %), got {y.tolist()}"
            )
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "y", y)


def _log_epoch_terms(n_points: np.ndarray, pool_size: float, a: float):
    """For each point: log(a n0 / 1e5) of the first epoch and the log ratios
    log(seen_k / seen_{k-1}) of the later epochs, padded to a common length."""
    first = np.empty(len(n_points))
    ratios = []
    for i, n in enumerate(n_points):
        per_epoch = epoch_samples(n, pool_size)
        seen = np.cumsum(per_epoch)
        first[i] = np.log(a * seen[0] / NORMALIZER)
        ratios.append(np.log(seen[1:] / seen[:-1]))
    K = max(len(r) for r in ratios)
    R = np.zeros((len(n_points), K))
    for i, r in enumerate(ratios):
        R[i, : len(r)] = r
    return first, R


def _effective_samples(n_points: np.ndarray, pool_size: float, tau: np.ndarray) -> np.ndarray:
    """Discounted sample counts ``sum_k (samples in epoch k) 2^(-k / tau)``: shape (len(tau), points)."""
    per_epoch = [epoch_samples(n, pool_size) for n in n_points]
    K = max(len(e) for e in per_epoch)
    E = np.zeros((len(n_points), K))
    for i, e in enumerate(per_epoch):
        E[i, : len(e)] = e
    decay = 0.5 ** (np.arange(K)[None, :] / tau[:, None])  # (grid, K)
    return decay @ E.T


def predict_grid(points: FitPoints, pool_size: float, a: float, d: float, b: np.ndarray, tau: np.ndarray,
                 form: str = "utility"):
    """Predictions at the pool's points for every (b, tau) pair: shape (len(b), points)."""
    if form == "effective_data":
        n_eff = _effective_samples(points.n, pool_size, tau)
        return np.exp(b[:, None] * np.log(a * n_eff / NORMALIZER)) + d
    if form != "utility":
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    first, R = _log_epoch_terms(points.n, pool_size, a)
    K = R.shape[1]
    k = np.arange(1, K + 1)
    decay = 0.5 ** (k[None, :] / tau[:, None])  # (grid, K)
    log_ratio_term = (b[:, None] * decay) @ R.T  # (grid, points)
    return (np.exp(b[:, None] * first[None, :]) + d) * np.exp(log_ratio_term)


@dataclass(frozen=True)
class FitResult:
    law: PoolLaw
    rmse: float  # over all points, in error fraction
    per_pool_rmse: tuple[float, ...]
    form: str = "utility"


def fit_pools(
    pools: list[FitPoints],
    pool_size: float,
    *,
    form: str = "utility",
    fixed_a: float | None = None,
    fixed_d: float | None = None,
    a_grid=None,
    d_grid=None,
    b_steps: int = 100,
    tau_steps: int = 37,
    refine: bool = True,
) -> FitResult:
    """Fit ``b``, ``tau`` per pool with shared ``a``, ``d`` (either held at ``fixed_a``, ``fixed_d``).

    A fitted ``d`` is constrained to [0, smallest measured error): in the
    effective-data form it is the floor the error approaches."""
    if not pools:
        raise ValueError("no pools to fit: pass at least one FitPoints")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise ValueError(f"pool names must be unique, got {names}")
    if not (np.isfinite(pool_size) and pool_size > 0):
        raise ValueError(f"pool_size must be positive, got {pool_size}")
    y_min = min(float(p.y.min()) for p in pools)
    if fixed_a is not None:
        if not (np.isfinite(fixed_a) and fixed_a > 0):
            raise ValueError(f"fixed_a must be positive, got {fixed_a}")
        a_grid = [float(fixed_a)]
    if fixed_d is not None:
        if not (np.isfinite(fixed_d) and 0 <= fixed_d < 1):
            raise ValueError(f"fixed_d must lie in [0, 1), got {fixed_d}")
        d_grid = [float(fixed_d)]
    if a_grid is None:
        a_grid = np.logspace(-2, 5, 29)
    if d_grid is None:
        d_grid = np.linspace(0.0, 0.95 * y_min, 12)
    b_vals = np.linspace(*B_GRID, b_steps)
    tau_vals = np.linspace(*TAU_GRID, tau_steps)
    Bg, Tg = (g.ravel() for g in np.meshgrid(b_vals, tau_vals, indexing="ij"))

    best = (np.inf, None)
    for a in a_grid:
        for d in d_grid:
            total, params = 0.0, []
            for p in pools:
                pred = predict_grid(p, pool_size, a, d, Bg, Tg, form)
                sse = ((pred - p.y[None, :]) ** 2).sum(axis=1)
                j = int(np.argmin(sse))
                total += sse[j]
                params.append((Bg[j], Tg[j]))
            if total < best[0]:
                best = (total, (a, d, params))
    _, (a, d, params) = best
    shared = ([] if fixed_a is not None else [np.log(a)]) + ([] if fixed_d is not None else [d])
    n_shared = len(shared)
    theta0 = np.array(shared + [v for bt in params for v in bt])

    def unpack(theta):
        free = iter(theta[:n_shared])
        a_ = a if fixed_a is not None else np.exp(next(free))
        d_ = d if fixed_d is not None else next(free)
        return a_, d_, theta[n_shared::2], theta[n_shared + 1 :: 2]

    def loss(theta):
        a_, d_, b, tau = unpack(theta)
        if d_ < 0 or (fixed_d is None and d_ >= y_min) or np.any(b >= 0) or np.any(b <= -1) or np.any(tau <= 0.05):
            return 1e6
        return sum(
            float(((predict_grid(p, pool_size, a_, d_, np.array([bi]), np.array([ti]), form)[0] - p.y) ** 2).sum())
            for p, bi, ti in zip(pools, b, tau)
        )

    theta = theta0
    if refine:
        res = minimize(loss, theta0, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-12})
        if res.fun <= loss(theta0):
            theta = res.x
    a, d, b, tau = unpack(theta)
    law = PoolLaw(float(a), float(d), tuple(map(float, b)), tuple(map(float, tau)), tuple(names))
    per_pool = []
    for i, p in enumerate(pools):
        pred = predict_grid(p, pool_size, law.a, law.d, np.array([law.b[i]]), np.array([law.tau[i]]), form)[0]
        per_pool.append(float(np.sqrt(np.mean((pred - p.y) ** 2))))
    all_sq = sum(pp**2 * len(p.n) for pp, p in zip(per_pool, pools))
    rmse = float(np.sqrt(all_sq / sum(len(p.n) for p in pools)))
    return FitResult(law, rmse, tuple(per_pool), form)
