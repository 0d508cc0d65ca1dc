"""Input checks shared by the LiNGAM estimators: every problem gets an error that names it."""

from __future__ import annotations

import numbers

import numpy as np


def check_data(X, *, name: str = "X", min_samples: int = 2, min_features: int = 2) -> np.ndarray:
    """Return ``X`` as a C-contiguous float64 array of shape (n_samples, n_features).

    Raises ``ValueError`` naming the problem (so code that catches the
    package's errors keeps working): non-numeric or complex data, wrong number
    of dimensions, too few rows or columns, NaN or infinite entries, constant
    columns.
    """
    if hasattr(X, "get") and type(X).__module__.startswith("cupy"):
        X = X.get()
    arr = np.asarray(X)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(
            f"{name} must be numeric (an int or float array of shape (n_samples, n_features)), "
            f"got dtype {arr.dtype}"
        )
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n_samples, n_features), got {arr.ndim}-D shape {arr.shape}"
        )
    n, d = arr.shape
    if n < min_samples:
        raise ValueError(f"{name} has {n} sample(s); at least {min_samples} are needed")
    if d < min_features:
        raise ValueError(f"{name} has {d} feature(s); at least {min_features} are needed")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        kind = "NaN" if np.isnan(arr[rows[0], cols[0]]) else "infinite"
        raise ValueError(
            f"{name} contains {len(rows)} non-finite value(s) (first: {kind} at row {rows[0]}, "
            f"column {cols[0]}); remove or impute them first"
        )
    constant = np.nonzero(np.ptp(arr, axis=0) == 0)[0]
    if len(constant):
        raise ValueError(
            f"{name} has constant column(s) {constant.tolist()}: a constant has no noise to "
            "identify a causal direction from; drop it"
        )
    return arr


def check_prior_knowledge(prior_knowledge, n_features: int) -> np.ndarray | None:
    """Validate a prior-knowledge matrix (entries 0, 1 or -1) of shape (d, d)."""
    if prior_knowledge is None:
        return None
    pk = np.asarray(prior_knowledge, dtype=np.float64)
    if pk.shape != (n_features, n_features):
        raise ValueError(
            f"prior_knowledge must have shape (n_features, n_features) = "
            f"({n_features}, {n_features}), got {pk.shape}"
        )
    if not np.isin(pk, (-1.0, 0.0, 1.0)).all():
        raise ValueError("prior_knowledge entries must be 0 (no path), 1 (path) or -1 (unknown)")
    return pk


def check_n_sampling(n_sampling) -> int:
    """The number of bootstrap resamples: a positive integer."""
    if isinstance(n_sampling, bool) or not isinstance(n_sampling, numbers.Integral) or n_sampling < 1:
        raise ValueError(
            f"n_sampling (the number of bootstrap resamples) must be a positive integer, got {n_sampling!r}"
        )
    return int(n_sampling)
