"""DirectLiNGAM and VARLiNGAM with an array-module backend (NumPy on CPU, CuPy on GPU).

Drop-in compatible with ``lingam.DirectLiNGAM`` / ``lingam.VARLiNGAM``: the
same constructor arguments (for the measure and prior-knowledge modes we
support), ``fit``, ``causal_order_``, ``adjacency_matrix_`` and, for VAR,
``adjacency_matrices_``, ``residuals_``.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..common import array_module, progress, to_numpy
from .adjacency import adaptive_lasso, estimate_adjacency, standardize
from .ordering import make_pool, pairwise_scores, residualize
from .validation import check_data, check_prior_knowledge


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


def causal_order(
    X: np.ndarray,
    xp=np,
    *,
    partial_orders: np.ndarray | None = None,
    n_jobs: int | None = None,
    chunk_elements: int | None = None,
    record_scores: bool = False,
    show_progress: bool = False,
):
    """The DirectLiNGAM causal order of the columns of ``X`` (validated, float64).

    Returns ``(order, scores)``; ``scores[t]`` is ``(U, M)`` at step ``t`` (the
    remaining columns and their scores) when ``record_scores``, else empty.
    """
    n, d = X.shape
    # Rows are variables. Always a copy: the steps residualize it in place, and
    # X.T of a Fortran-ordered X would otherwise be the caller's own memory.
    XT = xp.asarray(np.array(X.T, dtype=np.float64, order="C", copy=True))
    U = np.arange(d)
    order: list[int] = []
    scores: list[tuple[np.ndarray, np.ndarray]] = []
    po = None if partial_orders is None else np.array(partial_orders, dtype=int).reshape(-1, 2)
    with contextlib.ExitStack() as stack:
        if xp is np:
            # Idle OpenBLAS threads spin and steal the cores the workers need.
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(1, user_api="blas"))
        pool = make_pool(n_jobs, d, n, xp)
        if pool is not None:
            stack.enter_context(pool)
        bar = stack.enter_context(progress(total=d, desc="causal order", disable=not show_progress))
        while len(U) > 1:
            candidates = U if po is None or len(po) == 0 else U[~np.isin(U, po[:, 1])]
            if len(candidates) == 0:
                raise ValueError("prior_knowledge leaves no variable that may come next (a cycle)")
            if len(candidates) == 1:
                m = int(candidates[0])
            else:
                M = to_numpy(pairwise_scores(XT[xp.asarray(U)], xp, pool=pool, chunk_elements=chunk_elements))
                allowed = np.isin(U, candidates)
                # argmax over the allowed candidates; ties go to the first index.
                m = int(U[np.flatnonzero(allowed)[int(np.argmax(M[allowed]))]])
                if record_scores:
                    scores.append((U.copy(), M))
            rest = U[U != m]
            residualize(XT, m, xp.asarray(rest))
            order.append(m)
            U = rest
            if po is not None and len(po):
                po = po[po[:, 0] != m]
            bar.update(1)
        order.append(int(U[0]))
        bar.update(1)
    return order, scores


class DirectLiNGAM:
    """DirectLiNGAM (Shimizu et al. 2011) with the pairwise likelihood-ratio
    measure of Hyvarinen & Smith (2013), vectorized over all pairs of a step.

    Parameters
    ----------
    random_state : int, optional
        Accepted for compatibility with ``lingam.DirectLiNGAM`` (the method is deterministic).
    prior_knowledge : array (d, d), optional
        0: no path x_j -> x_i; 1: path; -1: unknown (the ``lingam`` convention),
        applied strictly to the order and to the adjacency.
    apply_prior_knowledge_softly : bool
        Only ``False`` is supported.
    measure : str
        Only ``"pwling"`` (the ``lingam`` default) is supported.
    device : {"cpu", "cuda", "auto"}
        Where the ordering runs; ``cuda`` uses CuPy, float64 throughout.
    n_jobs : int, optional
        Worker processes for large steps on the CPU (default: all cores).
    chunk_elements : int, optional
        Pair-block size in float64 elements (see :func:`pairwise_scores`).
    """

    def __init__(
        self,
        random_state=None,
        prior_knowledge=None,
        apply_prior_knowledge_softly: bool = False,
        measure: str = "pwling",
        *,
        device: str = "cpu",
        n_jobs: int | None = None,
        chunk_elements: int | None = None,
        record_scores: bool = False,
        show_progress: bool = False,
    ):
        if measure != "pwling":
            raise ValueError(f"measure must be 'pwling' (the only one implemented here), got {measure!r}")
        if apply_prior_knowledge_softly:
            raise ValueError(
                "apply_prior_knowledge_softly=True is not implemented; use the strict mode (False)"
            )
        if n_jobs is not None and (not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1):
            raise ValueError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
        self._random_state = random_state
        self._Aknw = prior_knowledge
        self.device = device
        self.n_jobs = n_jobs
        self.chunk_elements = chunk_elements
        self.record_scores = record_scores
        self.show_progress = show_progress
        self._causal_order = None
        self._adjacency_matrix = None
        self.scores_ = []

    def fit(self, X):
        """Estimate the causal order and the adjacency matrix of ``X`` (n_samples, n_features)."""
        X = check_data(X)
        pk = check_prior_knowledge(self._Aknw, X.shape[1])
        xp = array_module(self.device)
        order, self.scores_ = causal_order(
            X,
            xp,
            partial_orders=None if pk is None else partial_orders_from_prior_knowledge(pk),
            n_jobs=self.n_jobs,
            chunk_elements=self.chunk_elements,
            record_scores=self.record_scores,
            show_progress=self.show_progress,
        )
        self._causal_order = order
        self._adjacency_matrix = estimate_adjacency(X, order, pk)
        return self

    @property
    def causal_order_(self) -> list[int]:
        """The estimated causal order (a list of column indices, causes first)."""
        return self._causal_order

    @property
    def adjacency_matrix_(self) -> np.ndarray:
        """``B[i, j]``: the direct effect of x_j on x_i."""
        return self._adjacency_matrix


class VARLiNGAM:
    """VAR-LiNGAM (Hyvarinen et al. 2010): a VAR for the lags, DirectLiNGAM for
    the instantaneous effects among its residuals.

    ``x_t = sum_{tau=0..L} B_tau x_{t-tau} + e_t``, with ``B_0`` from
    DirectLiNGAM on the VAR residuals and ``B_tau = (I - B_0) M_tau``.
    """

    def __init__(
        self,
        lags: int = 1,
        criterion: str | None = "bic",
        prune: bool = True,
        ar_coefs=None,
        lingam_model=None,
        random_state=None,
        *,
        device: str = "cpu",
    ):
        if not isinstance(lags, (int, np.integer)) or lags < 1:
            raise ValueError(f"lags must be a positive integer, got {lags!r}")
        if criterion not in ("aic", "fpe", "hqic", "bic", None):
            raise ValueError(f"criterion must be one of 'aic', 'fpe', 'hqic', 'bic' or None, got {criterion!r}")
        self._lags = lags
        self._criterion = criterion
        self._prune = prune
        self._ar_coefs = None if ar_coefs is None else np.asarray(ar_coefs, dtype=np.float64)
        self._lingam_model = lingam_model
        self._random_state = random_state
        self.device = device
        self._causal_order = None
        self._adjacency_matrices = None
        self._residuals = None

    def fit(self, X):
        """Fit the VAR, then DirectLiNGAM on its residuals; ``X`` is (n_samples, n_features)."""
        X = check_data(X, min_samples=self._lags + 2)
        model = self._lingam_model or DirectLiNGAM(device=self.device)
        if self._ar_coefs is None:
            M_taus, lags, residuals = self._estimate_var_coefs(X)
        else:
            M_taus = self._ar_coefs
            if M_taus.ndim != 3 or M_taus.shape[1:] != (X.shape[1], X.shape[1]):
                raise ValueError(
                    f"ar_coefs must have shape (lags, n_features, n_features), got {M_taus.shape}"
                )
            lags = M_taus.shape[0]
            residuals = self._calc_residuals(X, M_taus, lags)
        self._ar_coefs, self._lags, self._residuals = M_taus, lags, residuals
        model.fit(residuals)
        B0 = model.adjacency_matrix_
        I_minus_B0 = np.eye(X.shape[1]) - B0
        B_taus = np.stack([B0] + [I_minus_B0 @ M for M in M_taus])
        if self._prune:
            B_taus = self._pruning(X, B_taus, model.causal_order_)
        self._causal_order = model.causal_order_
        self._adjacency_matrices = B_taus
        return self

    def _estimate_var_coefs(self, X):
        """VAR without intercept (statsmodels); the lag order by the criterion over 1..lags."""
        from statsmodels.tsa.vector_ar.var_model import VAR

        if self._criterion is None:
            result = VAR(X).fit(maxlags=self._lags, trend="n")
        else:
            result, best = None, np.inf
            for lag in range(1, self._lags + 1):
                fitted = VAR(X).fit(maxlags=lag, ic=None, trend="n")
                value = getattr(fitted, self._criterion)
                if value < best:
                    best, result = value, fitted
        return result.coefs, result.k_ar, result.resid

    @staticmethod
    def _calc_residuals(X, M_taus, lags):
        """``e_t = x_t - sum_tau M_tau x_{t-tau}`` for t >= lags."""
        n = X.shape[0]
        pred = sum(X[lags - tau : n - tau] @ M_taus[tau - 1].T for tau in range(1, lags + 1))
        return X[lags:] - pred

    def _pruning(self, X, B_taus, causal_order):
        """Adaptive lasso of each x_t,i on its instantaneous ancestors and all lagged values.

        The design matrix is built once, in O(T) (the peer fills it with a
        slice assignment inside its row loop, O(T^2)); rows run backwards in
        time, as the peer's do, so the two agree to the last bit.
        """
        n, d = X.shape
        L = self._lags
        t = np.arange(n - 1, L - 1, -1)  # time index of each row, newest first
        lagged = np.concatenate([X[t - tau] for tau in range(1, L + 1)], axis=1)
        for i in range(d):
            pos = causal_order.index(i)
            ancestors = list(causal_order[:pos])
            design = np.concatenate([X[t][:, ancestors], lagged, X[t, i][:, None]], axis=1)
            predictors = list(range(design.shape[1] - 1))
            coef = adaptive_lasso(standardize(design), design, predictors, design.shape[1] - 1)
            B_taus[0][i, ancestors] = coef[:pos]
            for tau in range(L):
                B_taus[tau + 1][i, :] = coef[pos + d * tau : pos + d * (tau + 1)]
        return B_taus

    @property
    def causal_order_(self) -> list[int]:
        return self._causal_order

    @property
    def adjacency_matrices_(self) -> np.ndarray:
        """``B_tau`` for tau = 0..lags, shape (lags + 1, d, d)."""
        return self._adjacency_matrices

    @property
    def residuals_(self) -> np.ndarray:
        return self._residuals
