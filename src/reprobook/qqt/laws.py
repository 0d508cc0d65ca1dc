"""Scaling laws for data filtering with repetition (the quality-quantity trade-off).

Notation: a pool of ``N`` unique samples is trained on for ``n`` samples
seen; epoch ``k`` (counted from 0) covers samples ``(kN, min((k+1)N, n)]``.
Error is ``y = 1 - accuracy`` as a fraction.

* Base law: ``y(n) = (a n / 1e5)^b + d`` with utility ``b < 0``
  (``dy/dn = b (y - d) / n``).
* Repetition decay: the utility on epoch ``k`` is ``b_k = b 2^(-k / tau)``;
  ``tau`` is the half-life in repetitions.
* "Utility" form: integrate ``dy/dn = b_k y / n`` epoch by epoch,
  ``y(n) = [(a min(n, N) / 1e5)^b_0 + d] prod_{k=1..K} (min((k+1)N, n) / (kN))^b_k``,
  ``K = floor(n / N)``. (As in the reference code, ``a`` sits inside the
  power with ``n`` in units of 1e5 samples, and ``d`` is multiplied by the
  later epoch ratios.)
* "Effective data" form: ``y = (a n_eff / 1e5)^b + d`` with
  ``n_eff = sum_k (samples in epoch k) 2^(-k / tau)``.
* Mixture of ``p`` pools of equal size ``N`` mixed uniformly: a combined pool
  of ``pN`` samples with one shared ``a``; at combined epoch ``k`` the utility
  is the mean of the pools' decayed utilities (utility form), or their
  decay-weighted mean (effective-data form). With ``tau_scaling="pool"``
  (the reference script) each pool's half-life is multiplied by ``p``: a pool
  seen once per combined epoch is repeated less often per sample seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

NORMALIZER = 1e5
FORMS = ("utility", "effective_data")
TAU_SCALINGS = ("pool", "none")
B_RANGE = (-1.0, 0.0)  # exclusive: a utility must be negative (more data helps)
TAU_MIN = 0.0  # exclusive


def _check_params(b: np.ndarray, tau: np.ndarray, a: float, d: float, pool_size: float) -> None:
    if b.ndim != 1 or len(b) == 0:
        raise ValueError("b must be a non-empty list of utilities, one per pool")
    if tau.shape != b.shape:
        raise ValueError(f"tau must have one half-life per pool: got {len(tau)} for {len(b)} pools")
    if not np.all(np.isfinite(b)) or np.any(b <= B_RANGE[0]) or np.any(b >= B_RANGE[1]):
        raise ValueError(f"each utility b must lie in ({B_RANGE[0]}, {B_RANGE[1]}) (negative: more data helps), got {b.tolist()}")
    if not np.all(np.isfinite(tau)) or np.any(tau <= TAU_MIN):
        raise ValueError(f"each half-life tau must be positive and finite, got {tau.tolist()}")
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"a must be positive, got {a}")
    if not (np.isfinite(d) and 0 <= d < 1):
        raise ValueError(f"d (the irreducible error) must lie in [0, 1), got {d}")
    if not (np.isfinite(pool_size) and pool_size > 0):
        raise ValueError(f"pool_size must be positive, got {pool_size}")


def _common_pool_size(pool_size, n_pools: int) -> float:
    """One size for all pools: a number, or one number per pool that are all equal."""
    sizes = np.atleast_1d(np.asarray(pool_size, dtype=np.float64))
    if sizes.ndim != 1 or len(sizes) not in (1, n_pools):
        raise ValueError(f"pool_size must be one number or one per pool ({n_pools}), got {np.asarray(pool_size).tolist()}")
    if len(sizes) > 1 and not np.allclose(sizes, sizes[0], rtol=1e-12, atol=0):
        raise ValueError(
            f"the mixture law assumes pools of equal size (uniform mixing of equal pools); got sizes {sizes.tolist()}"
        )
    return float(sizes[0])


def epoch_samples(n: float, size: float) -> np.ndarray:
    """Samples seen in each epoch 0..K over a pool of ``size`` unique samples (last one partial)."""
    K = int(n // size)
    k = np.arange(K + 1)
    return np.minimum((k + 1) * size, n) - k * size


def decayed_utilities(b, tau, K: int) -> np.ndarray:
    """``b_i 2^(-k / tau_i)`` for pools i and epochs k = 0..K, shape (pools, K + 1)."""
    k = np.arange(K + 1)
    return np.asarray(b)[:, None] * 0.5 ** (k[None, :] / np.asarray(tau)[:, None])


def predicted_error(
    n: float,
    a: float,
    b: Sequence[float],
    tau: Sequence[float],
    d: float,
    pool_size: float,
    form: str = "utility",
    tau_scaling: str = "pool",
) -> float:
    """Predicted error ``y`` after ``n`` samples seen on the uniform mixture of
    ``len(b)`` pools, each of ``pool_size`` unique samples (one pool: ``b=[b]``).
    ``pool_size`` may also be one size per pool; they must be equal.

    ``form`` is ``"utility"`` or ``"effective_data"``; ``tau_scaling`` is
    ``"pool"`` (half-lives times the number of pools, the reference choice) or
    ``"none"``.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if tau_scaling not in TAU_SCALINGS:
        raise ValueError(f"tau_scaling must be one of {TAU_SCALINGS}, got {tau_scaling!r}")
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    pool_size = _common_pool_size(pool_size, len(b))
    _check_params(b, tau, float(a), float(d), pool_size)
    if not (np.isfinite(n) and n > 0):
        raise ValueError(f"samples seen n must be positive, got {n}")
    p = len(b)
    if tau_scaling == "pool":
        tau = tau * p
    size = pool_size * p
    per_epoch = epoch_samples(n, size)
    K = len(per_epoch) - 1
    decay = 0.5 ** (np.arange(K + 1)[None, :] / tau[:, None])  # (pools, epochs)
    seen = np.cumsum(per_epoch)  # samples seen at the end of each epoch
    if form == "utility":
        b_k = (b[:, None] * decay).mean(axis=0)
        y = (a * seen[0] / NORMALIZER) ** b_k[0] + d
        for k in range(1, K + 1):
            y *= (seen[k] / seen[k - 1]) ** b_k[k]
        return float(y)
    # Effective data: every pool contributes per_epoch / p samples per epoch,
    # each worth its decay factor; the utility of an epoch is the
    # decay-weighted mean of the pools' utilities.
    b_k = (b[:, None] * decay).sum(axis=0) / decay.sum(axis=0)
    effective = np.cumsum(per_epoch * decay.mean(axis=0))
    log_y = b_k[0] * np.log(a * effective[0] / NORMALIZER)
    for k in range(1, K + 1):
        log_y += b_k[k] * np.log(effective[k] / effective[k - 1])
    return float(np.exp(log_y) + d)


def predicted_accuracy(*args, **kwargs) -> float:
    """``1 - predicted_error(...)``."""
    return 1.0 - predicted_error(*args, **kwargs)


@dataclass(frozen=True)
class PoolLaw:
    """Fitted parameters of several pools sharing ``a`` and ``d``."""

    a: float
    d: float
    b: tuple[float, ...]
    tau: tuple[float, ...]
    names: tuple[str, ...] = ()

    def error(self, n, pools, pool_size, form="utility", tau_scaling="pool") -> float:
        idx = list(pools)
        return predicted_error(
            n, self.a, [self.b[i] for i in idx], [self.tau[i] for i in idx], self.d, pool_size, form, tau_scaling
        )


def best_top_k(law: PoolLaw, n: float, pool_size: float, form="utility", tau_scaling="pool"):
    """Accuracy of the top-k mixture for k = 1..P (pools sorted by utility,
    most useful first) after ``n`` samples, and the best k."""
    order = np.argsort(law.b)  # most negative b = most useful first
    accs = np.array(
        [1 - law.error(n, order[:k], pool_size, form, tau_scaling) for k in range(1, len(order) + 1)]
    )
    return accs, int(np.argmax(accs)) + 1


def frontier(law: PoolLaw, budgets, pool_size: float, form="utility", tau_scaling="pool") -> dict:
    """For each compute budget (samples seen), every top-k accuracy and the best k."""
    budgets = np.asarray(budgets, dtype=np.float64)
    acc = np.empty((len(budgets), len(law.b)))
    best = np.empty(len(budgets), dtype=int)
    for i, n in enumerate(budgets):
        acc[i], best[i] = best_top_k(law, n, pool_size, form, tau_scaling)
    return {"budgets": budgets, "accuracy": acc, "best_k": best}
