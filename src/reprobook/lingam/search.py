"""The DirectLiNGAM causal-order search, with an array-module backend (NumPy or CuPy).

Both measures of the `lingam` package (pairwise likelihood ratios and the
kernel measure) and its prior knowledge in both modes. This module does not
import the `lingam` package (the estimator classes in :mod:`.direct` do), so
the GPU check can run on a machine that lacks it.
"""

from __future__ import annotations

import contextlib

import numpy as np
from sklearn.preprocessing import scale

from ..common import progress, to_numpy
from .ordering import check_backend, entropy, make_pool, pairwise_scores, residualize

#: Independence measures of the causal-order search, as the package names them.
MEASURES = ("pwling", "kernel")


def check_measure(measure) -> None:
    """A ValueError for a measure we do not implement, with a hint for the package's GPU one."""
    if measure not in MEASURES:
        hint = (
            " ('pwling_fast' is the package's CUDA build of 'pwling': use measure='pwling', device='cuda')"
            if measure == "pwling_fast"
            else ""
        )
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}{hint}")


def partial_orders_from_prior_knowledge(pk: np.ndarray) -> np.ndarray:
    """Pairs ``[before, after]`` implied by a prior-knowledge matrix.

    ``pk[i, j] == 1``: x_j has a directed path to x_i, so j comes before i.
    ``pk[i, j] == 0``: x_j has no path to x_i, so i may come before j -- unless
    ``pk[j, i] == 0`` as well, which orders nothing. Contradictory path
    statements are an error.
    """
    d = pk.shape[0]
    off = ~np.eye(d, dtype=bool)
    path = (pk == 1) & off
    clash = path & path.T
    if clash.any():
        pairs = np.argwhere(np.triu(clash)).tolist()
        raise ValueError(f"prior_knowledge says both i->j and j->i for the pairs {pairs}")
    no_path = (pk == 0) & off
    no_path_one_way = no_path & ~no_path.T
    before = set(map(tuple, np.argwhere(path)[:, ::-1].tolist()))  # (j, i) for pk[i, j] == 1
    before |= set(map(tuple, np.argwhere(no_path_one_way).tolist()))  # (i, j) for pk[i, j] == 0
    return np.array(sorted(before), dtype=int).reshape(-1, 2)


def soft_candidates(pk: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidates ``U_c`` for the next variable and the set ``V_j`` under soft
    prior knowledge, as the package's ``DirectLiNGAM._search_candidate`` finds them.

    ``U_c``: the remaining variables known to have no remaining ancestor (all
    ``pk[j, k] == 0``); if there is none, every remaining variable except those
    with a known remaining ancestor (some ``pk[j, k] == 1``) and the known sinks
    (all ``pk[k, j] == 0``). ``V_j``: the other remaining variables that no
    candidate has a path to. An unknown (-1) entry makes an "all" false, as the
    package's sums over NaN do. ``U_c`` may come out empty.
    """
    sub = pk[np.ix_(U, U)]
    itself = np.eye(len(U), dtype=bool)
    no_path = (sub == 0) | itself
    candidates = U[no_path.all(axis=1)]
    if len(candidates) == 0:
        has_ancestor = ((sub == 1) & ~itself).any(axis=1)
        is_sink = no_path.all(axis=0)
        candidates = U[~(has_ancestor | is_sink)]
    others = U[~np.isin(U, candidates)]
    unreachable = others[(pk[np.ix_(others, candidates)] == 0).all(axis=1)]
    return candidates, unreachable


def soft_pwling_scores(XU, D, candidate_pos: np.ndarray, unreachable_pos: np.ndarray, xp=np):
    """The scores ``M`` of one pwling step with soft prior knowledge, the package's way.

    For a candidate i and a variable j in ``V_j`` the package replaces the
    residual r_j|i by s_j itself, so the term H(r_j|i / std) of D_ij becomes
    H(s_j / std). ``D`` is the step's matrix from :func:`pairwise_scores` on the
    rows ``XU``; only the residual entropies H(r_j|i) it does not return are
    computed here, and ``D`` is patched in place.
    """
    S = (XU - XU.mean(axis=1, keepdims=True)) / XU.std(axis=1, keepdims=True)
    cols = xp.asarray(unreachable_pos)
    S_v = S[cols]
    S_v_centred = S_v - S_v.mean(axis=1, keepdims=True)
    H_v = entropy(S_v / S_v.std(axis=1, keepdims=True), xp)
    for i in candidate_pos.tolist():
        s_i_centred = S[i] - S[i].mean()
        coef = (S_v_centred @ s_i_centred) / (s_i_centred @ s_i_centred)  # cov / var
        R = S_v - coef[:, None] * S[i][None, :]
        D[i, cols] += entropy(R / R.std(axis=1, keepdims=True), xp) - H_v
    return -(xp.minimum(D, 0.0) ** 2).sum(axis=1) + 0.0


def _gram(x, sigma: float, xp):
    """Gaussian Gram matrix of the samples ``x``, expanded as the package writes it."""
    sq = x * x
    return xp.exp(-1 / (2 * sigma**2) * (sq[None, :] + sq[:, None] - 2 * x[None, :] * x[:, None]))


def _log_singular_sum(A, xp) -> float:
    """``sum log sigma_k(A)``: the log-determinant the package takes from an SVD."""
    return float(xp.log(xp.linalg.svd(A, compute_uv=False)).sum())


def kernel_scores(XT, U: np.ndarray, candidates: np.ndarray, xp=np) -> np.ndarray:
    """The package's kernel measure: ``T_j = sum_{i != j} MI(x_j, r_i|j)`` for each
    candidate j (lower: more likely exogenous).

    ``MI`` is the kernel generalized variance of Bach & Jordan (2002) with the
    package's regularization (kappa, sigma by n) and its SVD-based
    log-determinants; ``XT`` holds the current data as rows (scaled once, then
    residualized step by step) and r_i|j is the raw residual. O(n^3) per pair
    (one SVD of a (2n, 2n) matrix); the Gram of x_j is computed once per candidate.
    """
    n = XT.shape[1]
    kappa, sigma = (2e-3, 0.5) if n > 1000 else (2e-2, 1.0)
    ridge = xp.eye(n) * (n * kappa / 2)
    K_kappa = xp.empty((2 * n, 2 * n))
    rows = xp.asarray(U)
    T = np.zeros(len(candidates))
    for c, j in enumerate(candidates.tolist()):
        pos = int(np.flatnonzero(U == j)[0])
        others = [p for p in range(len(U)) if p != pos]
        R = XT[rows]  # a copy: rows i become r_i|j
        residualize(R, pos, xp.asarray(others))
        K_j = _gram(R[pos], sigma, xp)
        reg_j = K_j + ridge
        K_kappa[:n, :n] = reg_j @ reg_j
        logdet_j = _log_singular_sum(K_kappa[:n, :n], xp)
        for p in others:
            K_i = _gram(R[p], sigma, xp)
            reg_i = K_i + ridge
            K_kappa[n:, n:] = reg_i @ reg_i
            K_kappa[:n, n:] = K_j @ K_i
            K_kappa[n:, :n] = K_i @ K_j
            logdet_i = _log_singular_sum(K_kappa[n:, n:], xp)
            T[c] += -0.5 * (_log_singular_sum(K_kappa, xp) - (logdet_j + logdet_i))
    return T


def causal_order(
    X: np.ndarray,
    xp=np,
    *,
    measure: str = "pwling",
    prior_knowledge: np.ndarray | None = None,
    apply_prior_knowledge_softly: bool = False,
    backend: str = "fused",
    n_jobs: int | None = None,
    chunk_elements: int | None = None,
    record_scores: bool = False,
    show_progress: bool = False,
):
    """The DirectLiNGAM causal order of the columns of ``X`` (validated, float64).

    ``prior_knowledge`` (validated, entries 0, 1, -1) restricts each step's
    candidates to those the partial orders it implies allow, or, when applied
    softly, as :func:`soft_candidates` and :func:`soft_pwling_scores` describe.
    Returns ``(order, scores)``; with ``record_scores``, ``scores[t]`` is
    ``(columns, values)`` of step ``t``: every remaining column and its ``M``
    for pwling (the highest goes next), the candidates and their ``T`` for the
    kernel measure (the lowest goes next).
    """
    check_measure(measure)
    check_backend(backend)
    n, d = X.shape
    soft = prior_knowledge is not None and apply_prior_knowledge_softly
    partial_orders = None
    if prior_knowledge is not None and not soft:
        partial_orders = partial_orders_from_prior_knowledge(prior_knowledge)
    if measure == "kernel":
        X = scale(X)  # the package standardizes once before its kernel search
    # Rows are variables. Always a copy: the steps residualize it in place, and
    # X.T of a Fortran-ordered X would otherwise be the caller's own memory.
    XT = xp.asarray(np.array(X.T, dtype=np.float64, order="C", copy=True))
    U = np.arange(d)
    order: list[int] = []
    scores: list[tuple[np.ndarray, np.ndarray]] = []
    with contextlib.ExitStack() as stack:
        pool = None
        if measure == "pwling":
            if xp is np:
                # Idle OpenBLAS threads spin and steal the cores the kernel's threads
                # or the workers need.
                from threadpoolctl import threadpool_limits

                stack.enter_context(threadpool_limits(1, user_api="blas"))
            # The fused kernel runs threads inside each step; the block kernel, worker processes.
            pool = make_pool(n_jobs, d, n, xp) if backend == "vectorized" else None
            if pool is not None:
                stack.enter_context(pool)
        bar = stack.enter_context(progress(total=d, desc="causal order", disable=not show_progress))
        while len(U) > 1:
            unreachable = U[:0]
            if soft:
                candidates, unreachable = soft_candidates(prior_knowledge, U)
            elif partial_orders is not None and len(partial_orders):
                candidates = U[~np.isin(U, partial_orders[:, 1])]
            else:
                candidates = U
            if len(candidates) == 0:
                if soft:
                    raise ValueError(
                        f"prior_knowledge, applied softly, leaves no candidate for the next variable "
                        f"among {U.tolist()}: each has a known ancestor among them or is a known sink "
                        "(the lingam package fails here as well)"
                    )
                raise ValueError("prior_knowledge leaves no variable that may come next (a cycle)")
            if len(candidates) == 1:
                m = int(candidates[0])
            elif measure == "kernel":
                # The package also computes a V_j here, but its substitution condition
                # for this measure can never hold, so only the candidates matter.
                T = kernel_scores(XT, U, candidates, xp)
                m = int(candidates[int(np.argmin(T))])
                if record_scores:
                    scores.append((candidates.copy(), T))
            else:
                XU = XT[xp.asarray(U)]
                allowed = np.isin(U, candidates)
                patch = len(unreachable) > 0
                result = pairwise_scores(
                    XU, xp, backend=backend, n_jobs=n_jobs, pool=pool, chunk_elements=chunk_elements,
                    return_D=patch,
                )
                if patch:
                    unreachable_pos = np.flatnonzero(np.isin(U, unreachable))
                    result = soft_pwling_scores(XU, result[1], np.flatnonzero(allowed), unreachable_pos, xp)
                M = to_numpy(result)
                # argmax over the allowed candidates; ties go to the first index.
                m = int(U[np.flatnonzero(allowed)[int(np.argmax(M[allowed]))]])
                if record_scores:
                    scores.append((U.copy(), M))
            rest = U[U != m]
            residualize(XT, m, xp.asarray(rest))
            order.append(m)
            U = rest
            if partial_orders is not None and len(partial_orders):
                partial_orders = partial_orders[partial_orders[:, 0] != m]
            bar.update(1)
        order.append(int(U[0]))
        bar.update(1)
    return order, scores
