"""DirectLiNGAM and VARLiNGAM with an array-module backend (NumPy on CPU, CuPy on GPU).

Drop-in replacements for ``lingam.DirectLiNGAM`` and ``lingam.VARLiNGAM``,
written as subclasses of the package's own classes (``lingam.base._BaseLiNGAM``
and ``lingam.VARLiNGAM``) so that the package's ``isinstance`` checks pass and
its ``estimate_total_effect`` and ``get_error_independence_p_values`` are
inherited. The same constructor arguments (both measures, prior knowledge in
both modes), ``fit``, ``bootstrap`` (returning the package's result classes)
and fitted attributes, with the same results as the package.
"""

from __future__ import annotations

import lingam
import numpy as np
from lingam.base import _BaseLiNGAM
from lingam.bootstrap import BootstrapResult
from lingam.var_lingam import VARBootstrapResult
from sklearn.utils import check_random_state, resample

from ..common import array_module, progress
from .adjacency import adaptive_lasso, estimate_adjacency, standardize
from .ordering import check_backend

# The search is re-exported: code written against earlier versions imports it from here.
from .search import (
    MEASURES,
    causal_order,
    check_measure,
    kernel_scores,
    partial_orders_from_prior_knowledge,
    soft_candidates,
    soft_pwling_scores,
)
from .validation import check_data, check_n_sampling, check_prior_knowledge


def _positions(causal_order) -> np.ndarray:
    """``pos[v]``: the place of variable ``v`` in ``causal_order``."""
    order = np.asarray(causal_order, dtype=int)
    pos = np.empty(len(order), dtype=int)
    pos[order] = np.arange(len(order))
    return pos


def dag_total_effects(B: np.ndarray, causal_order) -> np.ndarray:
    """``A = inv(I - B)``: ``A[i, j]`` is the total effect of x_j on x_i, the sum
    over the directed paths j -> i of the products of their edge weights.

    Forward substitution along ``causal_order`` (``A_i = e_i + B_i A``), O(d^3),
    where the package enumerates every path (exponential in d on dense graphs).
    Pairs without a path come out exactly 0, as in the package; ``B`` must have
    no edge against the order.
    """
    B = np.asarray(B, dtype=np.float64)
    pos = _positions(causal_order)
    if np.any((B != 0) & (pos[None, :] >= pos[:, None])):
        raise ValueError("B has an edge from a later to an earlier variable of the causal order")
    A = np.zeros_like(B)
    for i in causal_order:
        A[i] = B[i] @ A
        A[i, i] = 1.0
    return A


def ordered_pairs(causal_order) -> np.ndarray:
    """``mask[to, from]``: ``from`` precedes ``to`` in ``causal_order``, the pairs
    whose total effects the package's bootstrap fills."""
    pos = _positions(causal_order)
    return pos[:, None] > pos[None, :]


def var_total_effects(B_taus: np.ndarray, causal_order) -> np.ndarray:
    """The package's VAR bootstrap total effects, shape (d, d * (1 + lags)).

    Lag 0: ``inv(I - B_0)`` for the ordered pairs; lag tau: ``inv(I - B_0) B_tau``,
    the effect of x_{t-tau} on x_t through the instantaneous graph, as the
    package's ``estimate_total_effect2`` defines it (paths through the
    intermediate times are not counted).
    """
    A0 = dag_total_effects(B_taus[0], causal_order)
    blocks = [np.where(ordered_pairs(causal_order), A0, 0.0)] + [A0 @ B for B in B_taus[1:]]
    return np.concatenate(blocks, axis=1)


def _resampling_state(random_state):
    """What ``sklearn.utils.resample`` draws from: NumPy's global RNG (None), as
    the package always does, or a ``RandomState`` seeded with ``random_state``."""
    return None if random_state is None else check_random_state(random_state)


class DirectLiNGAM(_BaseLiNGAM):
    """DirectLiNGAM (Shimizu et al. 2011), vectorized over all pairs of a step
    for the pairwise likelihood-ratio measure of Hyvarinen & Smith (2013).

    Parameters
    ----------
    random_state : int or RandomState, optional
        Seeds the resamples of :meth:`bootstrap` (the fit is deterministic). The
        package ignores it there and always draws from NumPy's global RNG, as we
        do when it is None.
    prior_knowledge : array or DataFrame (d, d), optional
        0: no path x_j -> x_i; 1: path; -1: unknown (the ``lingam`` convention).
    apply_prior_knowledge_softly : bool
        False: the order obeys the knowledge strictly. True: the package's soft
        mode (:func:`soft_candidates`). "No path" entries are never edges in
        either mode.
    measure : {"pwling", "kernel"}
        Pairwise likelihood ratios (the package's default) or the kernel mutual
        information of the original DirectLiNGAM (O(n^3) per pair).
    device : {"cpu", "cuda", "auto"}
        Where the ordering runs; ``cuda`` uses CuPy, float64 throughout.
    backend : {"fused", "vectorized"}
        How a pwling step's residual entropies are computed: one compiled
        kernel per step (numba on the CPU, a CUDA RawKernel on the GPU), or
        array operations on blocks of pairs (the reference; see
        :func:`pairwise_scores`). Same numbers to 1e-13.
    n_jobs : int, optional
        Cores on the CPU (default: all): threads of the fused kernel, worker
        processes of the vectorized path and of the adjacency step.
    chunk_elements : int, optional
        Pair-block size in float64 elements of the vectorized path (see :func:`pairwise_scores`).
    record_scores : bool
        Keep each step's scores in ``scores_`` (see :func:`causal_order`).
    show_progress : bool
        Progress bars over the steps of the order (and, by default, over the
        resamples of :meth:`bootstrap`).
    """

    def __init__(
        self,
        random_state=None,
        prior_knowledge=None,
        apply_prior_knowledge_softly: bool = False,
        measure: str = "pwling",
        *,
        device: str = "cpu",
        backend: str = "fused",
        n_jobs: int | None = None,
        chunk_elements: int | None = None,
        record_scores: bool = False,
        show_progress: bool = False,
    ):
        check_measure(measure)
        check_backend(backend)
        if n_jobs is not None and (not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1):
            raise ValueError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
        super().__init__(random_state)
        self._Aknw = prior_knowledge
        self._apply_prior_knowledge_softly = bool(apply_prior_knowledge_softly)
        self._measure = measure
        self.device = device
        self.backend = backend
        self.n_jobs = n_jobs
        self.chunk_elements = chunk_elements
        self.record_scores = record_scores
        self.show_progress = show_progress
        self.scores_ = []

    def fit(self, X):
        """Estimate the causal order and the adjacency matrix of ``X`` (n_samples, n_features)."""
        X = check_data(X)
        pk = check_prior_knowledge(self._Aknw, X.shape[1])
        order, self.scores_ = causal_order(
            X,
            array_module(self.device),
            measure=self._measure,
            prior_knowledge=pk,
            apply_prior_knowledge_softly=self._apply_prior_knowledge_softly,
            backend=self.backend,
            n_jobs=self.n_jobs,
            chunk_elements=self.chunk_elements,
            record_scores=self.record_scores,
            show_progress=self.show_progress,
        )
        self._causal_order = order
        self._adjacency_matrix = estimate_adjacency(X, order, pk, n_jobs=self.n_jobs)
        return self

    def bootstrap(self, X, n_sampling, *, show_progress: bool | None = None) -> BootstrapResult:
        """Refit on ``n_sampling`` bootstrap resamples of the rows of ``X``.

        Returns the package's ``BootstrapResult``. Resamples as the package does
        (``sklearn.utils.resample``), so after ``np.random.seed(s)`` both draw the
        same resamples; with a ``random_state`` they come from
        ``np.random.RandomState(random_state)`` instead (the package ignores
        ``random_state`` here). Total effects are filled
        for the pairs ordered from -> to in each fit, in closed form
        (:func:`dag_total_effects`). As in the package, the model is left fitted
        to the last resample. ``show_progress``: a bar over the resamples
        (default: the constructor's setting).
        """
        X = check_data(X)
        n_sampling = check_n_sampling(n_sampling)
        n, d = X.shape
        random_state = _resampling_state(self._random_state)
        adjacency_matrices = np.zeros((n_sampling, d, d))
        total_effects = np.zeros((n_sampling, d, d))
        resampled_indices = []
        show = self.show_progress if show_progress is None else show_progress
        for s in progress(range(n_sampling), desc="bootstrap", disable=not show):
            resampled_X, index = resample(X, np.arange(n), random_state=random_state)
            self.fit(resampled_X)
            adjacency_matrices[s] = self._adjacency_matrix
            A = dag_total_effects(self._adjacency_matrix, self._causal_order)
            total_effects[s] = np.where(ordered_pairs(self._causal_order), A, 0.0)
            resampled_indices.append(index)
        return BootstrapResult(adjacency_matrices, total_effects, resampled_indices=resampled_indices)


def estimate_var_coefs(X: np.ndarray, max_lags: int, criterion: str | None):
    """A VAR without intercept (statsmodels), the lag order 1..max_lags that
    minimizes ``criterion`` (``max_lags`` when None), as the package fits it.
    Returns ``(coefs, lags, residuals)``."""
    from statsmodels.tsa.vector_ar.var_model import VAR

    if criterion is None:
        result = VAR(X).fit(maxlags=max_lags, trend="n")
    else:
        result, best = None, np.inf
        for lag in range(1, max_lags + 1):
            fitted = VAR(X).fit(maxlags=lag, ic=None, trend="n")
            value = getattr(fitted, criterion)
            if value < best:
                best, result = value, fitted
    return result.coefs, result.k_ar, result.resid


def simulate_var(ar_coefs: np.ndarray, innovations: np.ndarray, start: int) -> np.ndarray:
    """``x_t = sum_tau M_tau x_{t-tau} + e_t`` from ``t = start`` on, ``x_t = e_t``
    before; values before time 0 count as zero. The series the package's VAR
    bootstrap rebuilds, with ``start`` its ``lags`` setting."""
    X = np.zeros_like(innovations)
    X[:start] = innovations[:start]
    for t in range(start, len(X)):
        x = np.zeros(X.shape[1])
        for tau, M in enumerate(ar_coefs[:t], start=1):
            x += M @ X[t - tau]
        X[t] = x + innovations[t]
    return X


class VARLiNGAM(lingam.VARLiNGAM):
    """VAR-LiNGAM (Hyvarinen et al. 2010): a VAR for the lags, DirectLiNGAM for
    the instantaneous effects among its residuals.

    ``x_t = sum_{tau=0..L} B_tau x_{t-tau} + e_t``, with ``B_0`` from
    DirectLiNGAM on the VAR residuals and ``B_tau = (I - B_0) M_tau``.

    The arguments are the package's. ``lingam_model`` is a model object (our
    :class:`DirectLiNGAM` or any ``lingam`` ``_BaseLiNGAM``; default: our
    DirectLiNGAM on ``device``). ``random_state`` seeds the resamples of
    :meth:`bootstrap` (the package ignores it). Unlike the package, which
    starts a refit from the AR coefficients and lag order of the previous fit,
    every fit starts from the constructor's ``lags`` and ``ar_coefs``.
    ``show_progress``: progress bars (the default model's order, the bootstrap).
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
        show_progress: bool = False,
    ):
        if not isinstance(lags, (int, np.integer)) or lags < 1:
            raise ValueError(f"lags must be a positive integer, got {lags!r}")
        if criterion not in ("aic", "fpe", "hqic", "bic", None):
            raise ValueError(f"criterion must be one of 'aic', 'fpe', 'hqic', 'bic' or None, got {criterion!r}")
        super().__init__(lags, criterion, prune, ar_coefs, lingam_model, random_state)
        # The package overwrites _lags and _ar_coefs with what a fit finds; these keep the settings.
        self._max_lags = lags
        self._given_ar_coefs = self._ar_coefs
        self.device = device
        self.show_progress = show_progress
        self._causal_order = None
        self._adjacency_matrices = None
        self._residuals = None

    def fit(self, X):
        """Fit the VAR, then the LiNGAM model on its residuals; ``X`` is (n_samples, n_features)."""
        return self._fit(X, self._criterion)

    def _fit(self, X, criterion):
        """:meth:`fit` with the lag-order ``criterion`` given (the bootstrap uses none)."""
        X = check_data(X, min_samples=self._max_lags + 2)
        model = self._lingam_model
        if model is None:
            model = DirectLiNGAM(device=self.device, show_progress=self.show_progress)
        elif not isinstance(model, _BaseLiNGAM):
            raise ValueError(
                "lingam_model must be a subclass of _BaseLiNGAM: a model object such as "
                f"DirectLiNGAM() or lingam.DirectLiNGAM(), got {model!r}"
            )
        if self._given_ar_coefs is None:
            M_taus, lags, residuals = estimate_var_coefs(X, self._max_lags, criterion)
        else:
            M_taus = self._given_ar_coefs
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

    def bootstrap(self, X, n_sampling, *, show_progress: bool | None = None) -> VARBootstrapResult:
        """Refit on ``n_sampling`` series rebuilt from resampled VAR residuals.

        Returns the package's ``VARBootstrapResult``, computed as the package
        does: fit ``X`` with all ``lags`` (no criterion), resample its residuals
        to ``n_samples`` rows (``sklearn.utils.resample``: NumPy's global RNG, or
        ``np.random.RandomState(random_state)`` when given, which the package
        ignores), rebuild a series with the fitted VAR coefficients
        (:func:`simulate_var`), refit it. Total effects, shape
        (n_sampling, d, d * (1 + lags)), in closed form (:func:`var_total_effects`).
        As in the package, the model is left fitted to the last resample.
        ``show_progress``: a bar over the resamples (default: the constructor's).
        """
        X = check_data(X, min_samples=self._max_lags + 2)
        n_sampling = check_n_sampling(n_sampling)
        n, d = X.shape
        self._fit(X, criterion=None)
        ar_coefs, residuals = self._ar_coefs, self._residuals
        random_state = _resampling_state(self._random_state)
        adjacency_matrices = []
        total_effects = np.zeros((n_sampling, d, d * (1 + self._lags)))
        show = self.show_progress if show_progress is None else show_progress
        for s in progress(range(n_sampling), desc="bootstrap", disable=not show):
            innovations = resample(residuals, n_samples=n, random_state=random_state)
            self._fit(simulate_var(ar_coefs, innovations, self._max_lags), criterion=None)
            adjacency_matrices.append(np.concatenate(list(self._adjacency_matrices), axis=1))
            total_effects[s] = var_total_effects(self._adjacency_matrices, self._causal_order)
        return VARBootstrapResult(adjacency_matrices, total_effects)

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
