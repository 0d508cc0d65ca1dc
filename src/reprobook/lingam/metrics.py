"""Structure-recovery metrics for estimated adjacency matrices."""

from __future__ import annotations

import numpy as np


def support(B: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Boolean edges ``A[i, j] = |B[i, j]| > threshold`` (j -> i), diagonal excluded."""
    A = np.abs(np.asarray(B)) > threshold
    np.fill_diagonal(A, False)
    return A


def shd(B_true: np.ndarray, B_est: np.ndarray, threshold: float = 0.0) -> int:
    """Structural Hamming distance: edge additions + deletions + reversals,
    a reversal counting once. Counted per unordered pair {i, j}: the pair
    contributes 1 when its state (none, i->j, j->i, both) differs."""
    T, E = support(B_true, threshold), support(B_est, threshold)
    iu = np.triu_indices(T.shape[0], k=1)
    state_true = T[iu] * 1 + T.T[iu] * 2
    state_est = E[iu] * 1 + E.T[iu] * 2
    return int((state_true != state_est).sum())


def edge_scores(B_true: np.ndarray, B_est: np.ndarray, threshold: float = 0.0) -> dict[str, float]:
    """Precision, recall and F1 of directed edges (a reversed edge is wrong both ways)."""
    T, E = support(B_true, threshold), support(B_est, threshold)
    tp = int((T & E).sum())
    precision = tp / E.sum() if E.sum() else 1.0
    recall = tp / T.sum() if T.sum() else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def order_consistency(B_true: np.ndarray, order) -> float:
    """Fraction of true edges j -> i whose cause j comes before i in ``order``."""
    position = np.empty(len(order), dtype=int)
    position[np.asarray(order)] = np.arange(len(order))
    i, j = np.nonzero(support(B_true))
    if len(i) == 0:
        return 1.0
    return float((position[j] < position[i]).mean())
