"""The causal-ordering step of DirectLiNGAM, vectorized over all pairs.

One step scores every remaining variable ``i`` by

    M_i = - sum_{j != i} min(0, D_ij)^2,
    D_ij = [H(x_j) + H(r_i|j / std r_i|j)] - [H(x_i) + H(r_j|i / std r_j|i)],

with ``H`` the maximum-entropy approximation of Hyvarinen & Smith (2013).
Instead of the peer's Python double loop (four entropies per ordered pair),
we

* compute the marginal entropies ``H(x_i)`` once per step,
* compute each residual entropy ``E_ij = H(r_i|j / std)`` exactly once (the
  antisymmetry ``D_ji = -D_ij`` means the k(k-1) residual entropies are all a
  step needs),
* evaluate them as array operations on blocks of rows of the pair matrix,
  sized so that a block stays in cache on a CPU and fills the device on a GPU,
  with the blocks of a large step spread over worker processes on the CPU.
  (Threads over the same blocks scaled poorly in our measurements on 2
  cores and we did not pin down why; worker processes did scale. The caller
  also pins BLAS to one thread during a fit, since idle OpenBLAS threads spin
  and take the cores the workers need.)

The same function runs on NumPy and on CuPy: ``xp`` is the array module.
Everything is float64.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

#: Constants of the maximum-entropy approximation (Hyvarinen 1998, Hyvarinen & Smith 2013).
K1 = 79.047
K2 = 7.4129
GAMMA = 0.37457
H_GAUSS = (1.0 + math.log(2.0 * math.pi)) / 2.0
LOG2 = math.log(2.0)


def entropy(u, xp=np):
    """Maximum-entropy approximation of the differential entropy of each row of ``u``.

    ``u`` is standardized along its last axis. ``log cosh`` is evaluated as
    ``|u| + log1p(exp(-2|u|)) - log 2``, which cannot overflow.
    """
    u = xp.asarray(u, dtype=xp.float64)
    a = xp.abs(u)
    logcosh = a + xp.log1p(xp.exp(-2.0 * a)) - LOG2
    g = u * xp.exp(-0.5 * u * u)
    return H_GAUSS - K1 * (logcosh.mean(axis=-1) - GAMMA) ** 2 - K2 * g.mean(axis=-1) ** 2


def _rowdot(a, b, xp):
    """Row-wise dot products; ``vecdot`` where the array module has it (a fused gufunc)."""
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)
    return xp.einsum("pn,pn->p", a, b)


class _Workspace:
    """Scratch buffers reused across blocks (fresh multi-megabyte arrays per
    block would cost page faults on every block)."""

    def __init__(self, size: int, n: int, xp):
        self.R = xp.empty(size * n, dtype=xp.float64)
        self.T = xp.empty(size * n, dtype=xp.float64)


def residual_entropies(S, coef, rows: slice, cols: slice, ws: _Workspace, xp):
    """``E[i, j] = H(r_i|j / std r_i|j)`` for ``i`` in ``rows``, ``j`` in ``cols``.

    ``r_i|j = s_i - coef[i, j] s_j``. (The caller sets ``coef[i, i] = 0``, so a
    diagonal entry is the harmless ``H(s_i)``; it is ignored.) In-place passes
    over one (pairs x n) buffer, each product-then-sum fused into one row-wise
    dot product.
    """
    n = S.shape[1]
    p, q = rows.stop - rows.start, cols.stop - cols.start
    R3 = ws.R[: p * q * n].reshape(p, q, n)
    xp.multiply(coef[rows, cols, None], S[None, cols, :], out=R3)
    xp.subtract(S[rows, None, :], R3, out=R3)
    R = R3.reshape(p * q, n)
    T = ws.T[: p * q * n].reshape(p * q, n)
    # std(r) computed from r itself (ddof = 0); r is not re-centred afterwards.
    mean = R.sum(axis=-1) / n
    var = _rowdot(R, R, xp) / n - mean * mean
    bad = var <= 1e-24
    if bool(bad.any()):
        flat = int(xp.argmax(bad))
        raise _CollinearError(rows.start + flat // q, cols.start + flat % q)
    xp.multiply(R, (1.0 / xp.sqrt(var))[:, None], out=R)  # R is now u = r / std(r)
    xp.multiply(R, R, out=T)
    xp.multiply(T, -0.5, out=T)
    xp.exp(T, out=T)
    g_mean = _rowdot(R, T, xp) / n  # E[u exp(-u^2 / 2)]
    xp.abs(R, out=R)
    abs_mean = R.sum(axis=-1) / n
    xp.multiply(R, -2.0, out=R)
    xp.exp(R, out=R)
    xp.log1p(R, out=R)
    logcosh_mean = abs_mean + R.sum(axis=-1) / n - LOG2  # E[log cosh u]
    H = H_GAUSS - K1 * (logcosh_mean - GAMMA) ** 2 - K2 * g_mean**2
    return H.reshape(p, q)


def _tiles(k: int, n: int, chunk_elements: int, rows: slice | None = None):
    """Row and column slices covering the pair matrix, about chunk_elements x n per tile."""
    rows = rows or slice(0, k)
    pairs = max(1, chunk_elements // n)
    q = min(k, pairs)
    p = max(1, pairs // q)
    for a in range(rows.start, rows.stop, p):
        for c in range(0, k, q):
            yield slice(a, min(a + p, rows.stop)), slice(c, min(c + q, k))


def entropy_matrix(S, coef, chunk_elements: int, xp, rows: slice | None = None, ws=None):
    """All residual entropies of the rows ``rows`` (default: all) of the pair matrix."""
    k, n = S.shape
    rows = rows or slice(0, k)
    ws = ws or _Workspace(min(max(1, chunk_elements // n), k * k), n, xp)
    E = xp.empty((rows.stop - rows.start, k), dtype=xp.float64)
    for r, c in _tiles(k, n, chunk_elements, rows):
        E[r.start - rows.start : r.stop - rows.start, c] = residual_entropies(S, coef, r, c, ws, xp)
    return E


class _CollinearError(ValueError):
    def __init__(self, i: int, j: int):
        super().__init__(i, j)
        self.i, self.j = i, j


def default_n_jobs() -> int:
    """Worker processes for the CPU path: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: Below this many float64 elements (pairs x samples) a step runs in-process:
#: handing it to workers would cost more than it saves.
PARALLEL_MIN_ELEMENTS = 4_000_000

# The shared block a worker pool reads S and coef from. It is an anonymous
# MAP_SHARED mapping created before the workers are forked, so the workers
# inherit it: no names, no pickling of the data, nothing to clean up on disk.
_SHARED: mmap.mmap | None = None
_WORKSPACE: dict = {}


def _shared_views(k: int, n: int):
    buf = np.frombuffer(_SHARED, dtype=np.float64)
    return buf[: k * n].reshape(k, n), buf[k * n : k * n + k * k].reshape(k, k)


def _worker_rows(k: int, n: int, start: int, stop: int, chunk_elements: int):
    """In a worker: E rows [start, stop) from the S and coef in the shared block."""
    S, coef = _shared_views(k, n)
    size = min(max(1, chunk_elements // n), k * k)
    if _WORKSPACE.get("size") != (size, n):
        _WORKSPACE.update(size=(size, n), ws=_Workspace(size, n, np))
    return entropy_matrix(S, coef, chunk_elements, np, slice(start, stop), _WORKSPACE["ws"])


class WorkerPool:
    """Forked worker processes sharing one memory block with the parent.

    Used as a context manager around a whole DirectLiNGAM fit, so the workers
    are started once per fit. Only on platforms with ``fork``; elsewhere
    :func:`make_pool` returns None and every step runs in-process (the same
    numbers, computed serially).
    """

    def __init__(self, n_workers: int, k_max: int, n: int):
        global _SHARED
        if _SHARED is not None:
            # Workers find the block through this one module global.
            raise RuntimeError("another WorkerPool is open in this process; close it first")
        self.n_workers = n_workers
        self._mm = mmap.mmap(-1, 8 * (k_max * n + k_max * k_max))
        _SHARED = self._mm
        self._executor = ProcessPoolExecutor(
            max_workers=n_workers, mp_context=multiprocessing.get_context("fork")
        )

    def entropy_matrix(self, S: np.ndarray, coef: np.ndarray, chunk_elements: int) -> np.ndarray:
        k, n = S.shape
        S_shared, coef_shared = _shared_views(k, n)
        S_shared[...] = S
        coef_shared[...] = coef
        # Contiguous row ranges, one per worker; rows near the top of the
        # pair matrix cost the same as rows near the bottom.
        edges = np.linspace(0, k, self.n_workers + 1).round().astype(int)
        futures = [
            self._executor.submit(_worker_rows, k, n, int(a), int(b), chunk_elements)
            for a, b in zip(edges[:-1], edges[1:])
            if b > a
        ]
        return np.concatenate([f.result() for f in futures], axis=0)

    def close(self):
        global _SHARED
        self._executor.shutdown(wait=True)
        if _SHARED is self._mm:
            _SHARED = None
        try:
            self._mm.close()
        except BufferError:  # a view is still alive; the mapping goes with it
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_pool(n_jobs: int | None, k: int, n: int, xp=np) -> WorkerPool | None:
    """A :class:`WorkerPool` when it pays off (CPU, fork available, a large first step)."""
    n_jobs = default_n_jobs() if n_jobs is None else n_jobs
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
    if (
        xp is not np
        or n_jobs == 1
        or k * k * n < PARALLEL_MIN_ELEMENTS
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return None
    return WorkerPool(min(n_jobs, k), k, n)


#: The two implementations of a step's residual entropies (see :mod:`reprobook.lingam.fused`).
BACKENDS = ("fused", "vectorized")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    return backend


def pairwise_scores(
    XT,
    xp=np,
    *,
    backend: str = "fused",
    n_jobs: int | None = None,
    pool: WorkerPool | None = None,
    chunk_elements: int | None = None,
    return_D: bool = False,
):
    """Scores ``M`` (and optionally the matrix ``D``) of one ordering step.

    Parameters
    ----------
    XT : array, shape (k, n)
        The remaining variables as rows (the current, residualized data,
        transposed so that per-variable reductions run along contiguous memory).
    xp : module
        ``numpy`` or ``cupy``.
    backend : {"fused", "vectorized"}
        ``fused``: one compiled kernel per step (numba on the CPU, a CUDA
        RawKernel on the GPU, :mod:`reprobook.lingam.fused`); ``vectorized``:
        array operations on blocks of pairs, the reference the fused kernels
        are tested against.
    n_jobs : int, optional
        Threads of the fused CPU kernel (default: all cores).
    pool : WorkerPool, optional
        Worker processes for large steps of the vectorized CPU path (see :func:`make_pool`).
    chunk_elements : int, optional
        Rows of the pair matrix are processed in blocks of about this many
        float64 elements (pairs x n). Default: 2**15 on CPU (cache sized),
        2**27 on GPU (1 GiB per buffer).
    """
    check_backend(backend)
    k, n = XT.shape
    if chunk_elements is None:
        chunk_elements = 2**15 if xp is np else 2**27
    # 1. Standardize each variable (population std, ddof = 0).
    S = (XT - XT.mean(axis=1, keepdims=True)) / XT.std(axis=1, keepdims=True)
    # 2. Biased covariance of the standardized variables and the regression
    #    coefficient of i on j: cov(s_i, s_j) / var(s_j).
    Sc = S - S.mean(axis=1, keepdims=True)
    C = (Sc @ Sc.T) / n
    coef = C / xp.diagonal(C)[None, :]
    xp.fill_diagonal(coef, 0.0)  # r_i|i := s_i: the fused kernel's H(x_i); ignored by the block kernel
    # 3. Residual entropies E[i, j] = H(r_i|j / std), every ordered pair once,
    # 4. and the marginal entropies H(s_i), once per step.
    if backend == "fused":
        from . import fused

        if xp is np:
            E, var = fused.residual_entropies_cpu(S, coef, n_jobs)
        else:
            E, var = fused.residual_entropies_cuda(S, coef)
        collinear = var <= fused.MIN_VARIANCE
        if bool(collinear.any()):
            flat = int(xp.argmax(collinear))
            raise _collinear_error(flat // k, flat % k)
        Hx = xp.diagonal(E).copy()  # coef[i, i] = 0: the residual of i on i is s_i
    else:
        E = _vectorized_entropies(S, coef, k, n, pool, chunk_elements, xp)
        Hx = entropy(S, xp)
    # 5. D_ij = H(x_j) + E_ij - H(x_i) - E_ji ;  M_i = -sum_j min(0, D_ij)^2.
    D = Hx[None, :] + E - Hx[:, None] - E.T
    xp.fill_diagonal(D, 0.0)
    M = -(xp.minimum(D, 0.0) ** 2).sum(axis=1) + 0.0  # + 0.0: no negative zeros
    return (M, D) if return_D else M


def _collinear_error(i: int, j: int) -> ValueError:
    return ValueError(
        f"remaining variables {i} and {j} (positions in the current step) "
        "are perfectly collinear: a residual has zero variance. DirectLiNGAM needs "
        "non-degenerate noise; remove duplicated or deterministic columns."
    )


def _vectorized_entropies(S, coef, k, n, pool, chunk_elements, xp):
    try:
        if pool is not None and k * k * n >= PARALLEL_MIN_ELEMENTS:
            E = pool.entropy_matrix(S, coef, chunk_elements)
        else:
            E = entropy_matrix(S, coef, chunk_elements, xp)
    except _CollinearError as err:
        raise _collinear_error(err.i, err.j) from None
    return E


def residualize(XT, m: int, rows):
    """Replace each row in ``rows`` by its residual on row ``m`` (biased cov / var), in place."""
    xm = XT[m]
    xm_c = xm - xm.mean()
    var_m = (xm_c * xm_c).mean()
    R = XT[rows]
    Rc = R - R.mean(axis=1, keepdims=True)
    cov = (Rc @ xm_c) / xm.shape[0]
    XT[rows] = R - (cov / var_m)[:, None] * xm[None, :]
