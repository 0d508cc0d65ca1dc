"""The numerical core of chapter 01 (DirectLiNGAM / VARLiNGAM) against independent references.

Every check compares with something computed another way: the `lingam`
package's own private functions and estimators, naive formulas written here,
brute-force loops, or closed forms. None compares with saved outputs of our
own code.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing

import lingam
import numpy as np
import pytest

from reprobook.lingam import ordering
from reprobook.lingam.direct import (
    DirectLiNGAM,
    VARLiNGAM,
    partial_orders_from_prior_knowledge,
)
from reprobook.lingam.experiments import peer_scores
from reprobook.lingam.metrics import edge_scores, order_consistency, shd
from reprobook.lingam.ordering import entropy, make_pool, pairwise_scores, residualize
from reprobook.lingam.simulate import random_sem, sample_noise

NOISES = ("uniform", "laplace", "student_t", "exponential")
PEER = lingam.DirectLiNGAM()  # only its private, stateless helpers are used


# --------------------------------------------------------------------------- helpers


def naive_entropy(u):
    """The maximum-entropy approximation exactly as written in the papers (log cosh directly)."""
    u = np.asarray(u, dtype=np.float64)
    k1, k2, gamma = 79.047, 7.4129, 0.37457
    return (
        (1 + np.log(2 * np.pi)) / 2
        - k1 * (np.mean(np.log(np.cosh(u)), axis=-1) - gamma) ** 2
        - k2 * np.mean(u * np.exp(-(u**2) / 2), axis=-1) ** 2
    )


def standardized(x):
    return (x - x.mean()) / x.std()


def brute_force_D_M(X):
    """D_ij and M_i of one DirectLiNGAM step by a double loop over the peer's helpers."""
    d = X.shape[1]
    D = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            if i == j:
                continue
            xi, xj = standardized(X[:, i]), standardized(X[:, j])
            ri_j = PEER._residual(xi, xj)
            rj_i = PEER._residual(xj, xi)
            D[i, j] = PEER._diff_mutual_info(xi, xj, ri_j, rj_i)
    M = np.array([-sum(min(0.0, D[i, j]) ** 2 for j in range(d) if j != i) for i in range(d)])
    return D, M


def sem_data(d, n, noise, seed):
    rng = np.random.default_rng([seed, d, n, NOISES.index(noise)])
    sem = random_sem(d, rng, noise=noise, expected_degree=min(2.0, d - 1))
    return sem, sem.sample(n, rng)


def has_fork():
    return "fork" in multiprocessing.get_all_start_methods()


# --------------------------------------------------------------------------- entropy


def test_entropy_matches_naive_formula_and_peer():
    rng = np.random.default_rng(0)
    for n in (10, 257, 2000):
        for draw in (rng.normal, rng.laplace, rng.uniform, rng.standard_exponential):
            u = standardized(draw(size=n))
            ours = float(entropy(u))
            assert ours == pytest.approx(float(naive_entropy(u)), abs=1e-12)
            assert ours == pytest.approx(float(PEER._entropy(u)), abs=1e-12)


def test_entropy_is_rowwise_on_2d_input():
    rng = np.random.default_rng(1)
    U = np.stack([standardized(rng.laplace(size=300)) for _ in range(7)])
    ours = entropy(U)
    assert ours.shape == (7,)
    np.testing.assert_allclose(ours, [PEER._entropy(u) for u in U], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours, naive_entropy(U), rtol=0, atol=1e-12)


def test_entropy_does_not_overflow_for_large_arguments():
    rng = np.random.default_rng(2)
    u = rng.normal(size=100)
    u[:5] = [1000.0, -1000.0, 750.0, -999.5, 1200.0]
    with np.errstate(over="ignore"):
        naive = naive_entropy(u)
    assert not np.isfinite(naive)  # log(cosh(u)) overflows to inf for |u| > ~710
    ours = float(entropy(u))
    assert np.isfinite(ours)
    # Independent overflow-free reference: log cosh u = logaddexp(u, -u) - log 2.
    logcosh = np.logaddexp(u, -u) - math.log(2)
    ref = (1 + math.log(2 * math.pi)) / 2 - 79.047 * (logcosh.mean() - 0.37457) ** 2 - 7.4129 * np.mean(
        u * np.exp(-(u**2) / 2)
    ) ** 2
    assert ours == pytest.approx(ref, rel=1e-12)


# --------------------------------------------------------------------------- one ordering step


@pytest.mark.parametrize("kernel", ["fused", "vectorized"])
@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("d,n", [(2, 50), (5, 300), (8, 700)])
def test_pairwise_scores_match_peer_and_brute_force(noise, d, n, kernel):
    _, X = sem_data(d, n, noise, seed=11)
    M, D = pairwise_scores(np.ascontiguousarray(X.T), backend=kernel, return_D=True)
    # The peer's own pair loop (first step of the replay).
    peer_M = peer_scores(X, [0, 1])[0]
    np.testing.assert_allclose(M, peer_M, rtol=0, atol=1e-10)
    # A double loop written here over the peer's _residual / _diff_mutual_info.
    D_ref, M_ref = brute_force_D_M(X)
    np.testing.assert_allclose(D, D_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(M, M_ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(np.diag(D), 0.0)
    np.testing.assert_allclose(D, -D.T, rtol=0, atol=1e-12)


def test_pairwise_scores_invariant_to_location_and_scale():
    _, X = sem_data(6, 400, "laplace", seed=12)
    scaled = X * np.array([1e3, 1e-3, 1.0, 7.0, 0.2, 50.0]) + np.array([1e4, -3.0, 0.0, 5.0, 1e2, -7e3])
    M = pairwise_scores(np.ascontiguousarray(scaled.T))
    _, M_ref = brute_force_D_M(X)
    np.testing.assert_allclose(M, M_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [300, 1500])
def test_pairwise_scores_invariant_to_block_size(n):
    _, X = sem_data(9, n, "student_t", seed=13)
    XT = np.ascontiguousarray(X.T)
    results = [
        pairwise_scores(XT, backend="vectorized", chunk_elements=c, return_D=True) for c in (1000, 2**12, 2**15, 2**22)
    ]
    M0, D0 = results[0]
    for M, D in results[1:]:
        np.testing.assert_allclose(M, M0, rtol=0, atol=1e-13)
        np.testing.assert_allclose(D, D0, rtol=0, atol=1e-13)


@pytest.mark.skipif(not has_fork(), reason="worker pool needs the fork start method")
def test_worker_processes_equal_in_process(monkeypatch):
    monkeypatch.setattr(ordering, "PARALLEL_MIN_ELEMENTS", 0)
    _, X = sem_data(7, 400, "laplace", seed=14)
    XT = np.ascontiguousarray(X.T)
    k, n = XT.shape
    M_serial, D_serial = pairwise_scores(XT, backend="vectorized", pool=None, return_D=True)
    pool = make_pool(2, k, n)
    assert pool is not None
    with pool:
        M_pool, D_pool = pairwise_scores(XT, backend="vectorized", pool=pool, return_D=True)
        # A smaller later step through the same pool (as during a fit).
        M_pool_small = pairwise_scores(XT[:4], backend="vectorized", pool=pool, chunk_elements=1000)
    assert np.array_equal(M_pool, M_serial)
    assert np.array_equal(D_pool, D_serial)
    assert np.array_equal(M_pool_small, pairwise_scores(XT[:4], backend="vectorized", pool=None, chunk_elements=1000))


@pytest.mark.skipif(not has_fork(), reason="worker pool needs the fork start method")
def test_fit_with_workers_equals_serial_fit(monkeypatch):
    monkeypatch.setattr(ordering, "PARALLEL_MIN_ELEMENTS", 0)
    _, X = sem_data(6, 300, "uniform", seed=15)
    par = DirectLiNGAM(backend="vectorized", n_jobs=2, record_scores=True).fit(X)
    ser = DirectLiNGAM(backend="vectorized", n_jobs=1, record_scores=True).fit(X)
    assert par.causal_order_ == ser.causal_order_
    assert np.array_equal(par.adjacency_matrix_, ser.adjacency_matrix_)
    for (U_p, M_p), (U_s, M_s) in zip(par.scores_, ser.scores_):
        assert np.array_equal(U_p, U_s) and np.array_equal(M_p, M_s)


def test_residualize_zero_covariance_and_matches_peer():
    rng = np.random.default_rng(16)
    k, n = 6, 500
    mixing = rng.normal(size=(k, k))
    XT = np.ascontiguousarray(mixing @ rng.laplace(size=(k, n)) + rng.normal(size=(k, 1)) * 10)
    original = XT.copy()
    m = 2
    rows = np.array([i for i in range(k) if i != m])
    residualize(XT, m, rows)
    np.testing.assert_array_equal(XT[m], original[m])  # the regressor is untouched
    xm = original[m]
    for i in rows:
        cov = np.mean((XT[i] - XT[i].mean()) * (xm - xm.mean()))
        assert abs(cov) < 1e-10 * max(1.0, original[i].std() * xm.std())
        np.testing.assert_allclose(XT[i], PEER._residual(original[i], xm), rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- DirectLiNGAM vs lingam


@pytest.mark.parametrize("kernel", ["fused", "vectorized"])
@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("d,n", [(3, 200), (6, 500), (12, 1000)])
def test_direct_lingam_equals_peer(noise, d, n, kernel):
    _, X = sem_data(d, n, noise, seed=21)
    ours = DirectLiNGAM(backend=kernel, record_scores=True).fit(X)
    peer = lingam.DirectLiNGAM().fit(X)
    assert ours.causal_order_ == [int(v) for v in peer.causal_order_]
    np.testing.assert_allclose(ours.adjacency_matrix_, peer.adjacency_matrix_, rtol=0, atol=1e-10)
    # Scores of every step against the peer's pair loop replayed along the order.
    theirs = peer_scores(X, ours.causal_order_)
    assert len(ours.scores_) == len(theirs) == d - 1
    remaining = list(range(d))
    for (U, M), M_peer, m in zip(ours.scores_, theirs, ours.causal_order_):
        assert U.tolist() == remaining
        np.testing.assert_allclose(M, M_peer, rtol=0, atol=1e-10)
        remaining.remove(m)


def test_direct_lingam_recovers_order_of_a_clear_chain():
    rng = np.random.default_rng(22)
    e = rng.uniform(-1, 1, size=(3000, 3))
    x2 = e[:, 2]
    x0 = 1.5 * x2 + e[:, 0]
    x1 = -1.2 * x0 + e[:, 1]
    X = np.column_stack([x0, x1, x2])
    model = DirectLiNGAM().fit(X)
    assert model.causal_order_ == [2, 0, 1]
    assert model.adjacency_matrix_[0, 2] == pytest.approx(1.5, abs=0.1)
    assert model.adjacency_matrix_[1, 0] == pytest.approx(-1.2, abs=0.1)


def _chain_data(seed=23, n=1000):
    rng = np.random.default_rng(seed)
    e = rng.laplace(size=(n, 4))
    X = np.empty_like(e)
    X[:, 0] = e[:, 0]
    X[:, 1] = 0.9 * X[:, 0] + e[:, 1]
    X[:, 2] = -0.8 * X[:, 1] + e[:, 2]
    X[:, 3] = 0.7 * X[:, 2] + 0.5 * X[:, 0] + e[:, 3]
    return X


def _prior_knowledge_cases():
    d = 4
    # 1. x3 has a path to x0 (pk[0, 3] = 1): forces 3 before 0, against the truth.
    pk1 = -np.ones((d, d))
    np.fill_diagonal(pk1, 0)
    pk1[0, 3] = 1
    # 2. No path x0 -> x1 nor x0 -> x2 (pk[1, 0] = pk[2, 0] = 0), x2 -> x3 known.
    pk2 = -np.ones((d, d))
    np.fill_diagonal(pk2, 0)
    pk2[1, 0] = pk2[2, 0] = 0
    pk2[3, 2] = 1
    # 3. Full order 2, 1, 3, 0 as "no path" statements (upper triangle in that order).
    pk3 = -np.ones((d, d))
    np.fill_diagonal(pk3, 0)
    forced = [2, 1, 3, 0]
    for a, b in itertools.combinations(forced, 2):
        pk3[a, b] = 0  # b (later) has no path to a (earlier)
    return [
        pytest.param("path_against_truth", pk1, id="path_against_truth"),
        pytest.param("no_path", pk2, id="no_path"),
        pytest.param("full_order", pk3, id="full_order"),
    ]


@pytest.mark.parametrize("name,pk", _prior_knowledge_cases())
def test_prior_knowledge_equals_peer(name, pk):
    X = _chain_data()
    unconstrained = DirectLiNGAM().fit(X).causal_order_
    ours = DirectLiNGAM(prior_knowledge=pk).fit(X)
    peer = lingam.DirectLiNGAM(prior_knowledge=pk.copy()).fit(X)
    assert ours.causal_order_ == [int(v) for v in peer.causal_order_]
    np.testing.assert_allclose(ours.adjacency_matrix_, peer.adjacency_matrix_, rtol=0, atol=1e-10)
    # The knowledge is obeyed: "j has a path to i" puts j first; "no path" zeroes the edge.
    pos = {v: t for t, v in enumerate(ours.causal_order_)}
    for i, j in zip(*np.nonzero(pk == 1)):
        if i != j:
            assert pos[j] < pos[i]
    for i, j in zip(*np.nonzero(pk == 0)):
        if i != j:
            assert ours.adjacency_matrix_[i, j] == 0.0
    if name in ("path_against_truth", "full_order"):
        assert ours.causal_order_ != unconstrained
    if name == "full_order":
        assert ours.causal_order_ == [2, 1, 3, 0]


def test_partial_orders_match_peer_extraction_on_random_knowledge():
    rng = np.random.default_rng(24)
    for _ in range(200):
        d = int(rng.integers(2, 7))
        pk = rng.choice([-1.0, 0.0, 1.0], size=(d, d), p=[0.5, 0.3, 0.2])
        np.fill_diagonal(pk, -1)
        # Remove contradictory path pairs (both i->j and j->i): the peer rejects them too.
        both = (pk == 1) & (pk.T == 1)
        pk[np.triu(both)] = -1
        ours = {tuple(p) for p in partial_orders_from_prior_knowledge(pk).tolist()}
        peer_pk = np.where(pk < 0, np.nan, pk)
        theirs = {tuple(p) for p in np.asarray(PEER._extract_partial_orders(peer_pk)).reshape(-1, 2).tolist()}
        assert ours == theirs, pk


def test_partial_orders_reject_contradictory_paths():
    pk = -np.ones((3, 3))
    pk[0, 2] = pk[2, 0] = 1
    with pytest.raises(ValueError, match=r"both i->j and j->i.*\[0, 2\]"):
        partial_orders_from_prior_knowledge(pk)
    with pytest.raises(ValueError, match="both i->j and j->i"):
        DirectLiNGAM(prior_knowledge=pk).fit(_chain_data()[:, :3])


# --------------------------------------------------------------------------- VARLiNGAM vs lingam


def _var2_data(n=400, seed=31):
    rng = np.random.default_rng(seed)
    d = 3
    B0 = np.array([[0.0, 0.0, 0.8], [-0.6, 0.0, 0.0], [0.0, 0.0, 0.0]])  # 2 -> 0 -> 1
    M1 = np.array([[0.4, 0.0, 0.2], [0.0, 0.3, 0.0], [-0.2, 0.0, 0.3]])
    M2 = np.array([[0.1, 0.0, 0.0], [0.0, -0.2, 0.1], [0.0, 0.0, 0.15]])
    A = np.linalg.inv(np.eye(d) - B0)
    e = rng.laplace(size=(n + 50, d)) + rng.uniform(-1, 1, size=(n + 50, d))
    X = np.zeros((n + 50, d))
    for t in range(2, n + 50):
        X[t] = A @ (M1 @ X[t - 1] + M2 @ X[t - 2] + e[t])
    return X[50:], np.stack([M1, M2])


@pytest.mark.parametrize(
    "kwargs",
    [dict(lags=3, criterion="bic", prune=True), dict(lags=2, criterion=None, prune=False)],
    ids=["lags3-bic-prune", "lags2-none-noprune"],
)
def test_var_lingam_equals_peer(kwargs):
    X, _ = _var2_data()
    ours = VARLiNGAM(**kwargs).fit(X)
    peer = lingam.VARLiNGAM(**kwargs).fit(X)
    assert ours.causal_order_ == [int(v) for v in peer.causal_order_] == [2, 0, 1]  # the true order
    assert ours.adjacency_matrices_.shape == peer.adjacency_matrices_.shape == (3, 3, 3)  # lag 2 chosen
    np.testing.assert_allclose(ours.adjacency_matrices_, peer.adjacency_matrices_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.residuals_, peer.residuals_, rtol=0, atol=1e-10)


@pytest.mark.parametrize("prune", [True, False])
def test_var_lingam_with_given_ar_coefs_equals_peer(prune):
    X, M_true = _var2_data(seed=32)
    ar = M_true + 0.01  # any coefficients will do; both must use them as given
    ours = VARLiNGAM(ar_coefs=ar, prune=prune).fit(X)
    peer = lingam.VARLiNGAM(ar_coefs=ar.copy(), prune=prune).fit(X)
    assert ours.causal_order_ == [int(v) for v in peer.causal_order_]
    np.testing.assert_allclose(ours.residuals_, peer.residuals_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.adjacency_matrices_, peer.adjacency_matrices_, rtol=0, atol=1e-10)
    # Residuals by the definition e_t = x_t - sum_tau M_tau x_{t - tau}, with an explicit loop.
    ref = np.array([X[t] - ar[0] @ X[t - 1] - ar[1] @ X[t - 2] for t in range(2, len(X))])
    np.testing.assert_allclose(ours.residuals_, ref, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- simulate


@pytest.mark.parametrize("noise", NOISES)
def test_random_sem_covariance_matches_closed_form(noise):
    rng = np.random.default_rng([41, NOISES.index(noise)])
    sem = random_sem(5, rng, noise=noise)
    X = sem.sample(200_000, rng)
    T = np.linalg.inv(np.eye(5) - sem.B)
    cov_true = T @ np.diag(sem.noise_scale**2) @ T.T
    cov_hat = np.cov(X, rowvar=False)
    scale = np.sqrt(np.outer(np.diag(cov_true), np.diag(cov_true)))
    assert np.max(np.abs(cov_hat - cov_true) / scale) < 0.03
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=0.03 * np.sqrt(np.diag(cov_true)).max())
    np.testing.assert_allclose(sem.total_effects(), T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("noise", NOISES)
def test_sample_noise_zero_mean_unit_variance(noise):
    rng = np.random.default_rng([42, NOISES.index(noise)])
    e = sample_noise(noise, (400_000, 3), rng)
    assert e.shape == (400_000, 3)
    np.testing.assert_allclose(e.mean(axis=0), 0.0, atol=0.01)
    np.testing.assert_allclose(e.var(axis=0), 1.0, atol=0.03)
    # Non-Gaussian: excess kurtosis or skewness clearly away from 0.
    z = (e - e.mean(axis=0)) / e.std(axis=0)
    kurt = (z**4).mean(axis=0) - 3
    skew = (z**3).mean(axis=0)
    assert np.all((np.abs(kurt) > 0.5) | (np.abs(skew) > 0.5))


@pytest.mark.parametrize("d", [2, 3, 8, 20])
def test_random_sem_is_acyclic(d):
    for seed in range(5):
        rng = np.random.default_rng([43, d, seed])
        sem = random_sem(d, rng, expected_degree=min(3.0, d - 1))
        assert sorted(sem.order.tolist()) == list(range(d))
        P = sem.B[np.ix_(sem.order, sem.order)]
        np.testing.assert_array_equal(np.triu(P), 0.0)  # strictly lower triangular
        # Independently of `order`: a DAG's adjacency is nilpotent.
        A = (sem.B != 0).astype(float)
        assert not np.linalg.matrix_power(A, d).any()
        assert np.all(np.diag(sem.B) == 0)
        nz = np.abs(sem.B[sem.B != 0])
        assert np.all((nz >= 0.5) & (nz <= 1.5))
        assert np.all((sem.noise_scale >= 0.5) & (sem.noise_scale <= 1.5))


# --------------------------------------------------------------------------- metrics


def _graph(d, edges, w=1.0):
    """Adjacency with B[i, j] = w for each edge j -> i."""
    B = np.zeros((d, d))
    for j, i in edges:
        B[i, j] = w
    return B


TRUE = _graph(3, [(0, 1), (1, 2)])  # 0 -> 1 -> 2


@pytest.mark.parametrize(
    "est_edges,want_shd,want_prec,want_rec",
    [
        ([(0, 1), (1, 2)], 0, 1.0, 1.0),  # identical
        ([(0, 1)], 1, 1.0, 0.5),  # a missing edge
        ([(0, 1), (1, 2), (0, 2)], 1, 2 / 3, 1.0),  # an extra edge
        ([(1, 0), (1, 2)], 1, 0.5, 0.5),  # a reversed edge
        ([(0, 1), (1, 0), (1, 2)], 1, 2 / 3, 1.0),  # a bidirected pair
        ([(1, 0), (2, 1)], 2, 0.0, 0.0),  # both reversed
        ([], 2, 1.0, 0.0),  # empty estimate
    ],
)
def test_metrics_by_hand(est_edges, want_shd, want_prec, want_rec):
    est = _graph(3, est_edges, w=-0.37)  # weights and signs do not matter
    assert shd(TRUE, est) == want_shd
    assert shd(est, TRUE) == want_shd  # symmetric
    s = edge_scores(TRUE, est)
    assert s["precision"] == pytest.approx(want_prec)
    assert s["recall"] == pytest.approx(want_rec)
    f1 = 0.0 if want_prec + want_rec == 0 else 2 * want_prec * want_rec / (want_prec + want_rec)
    assert s["f1"] == pytest.approx(f1)


def test_metrics_threshold_and_diagonal():
    est = TRUE.copy()
    est[2, 0] = 0.01  # a weak extra edge
    est[1, 1] = 5.0  # diagonal: never an edge
    assert shd(TRUE, est) == 1
    assert shd(TRUE, est, threshold=0.05) == 0
    assert edge_scores(TRUE, est, threshold=0.05) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_order_consistency_by_hand():
    assert order_consistency(TRUE, [0, 1, 2]) == 1.0
    assert order_consistency(TRUE, [2, 1, 0]) == 0.0
    assert order_consistency(TRUE, [1, 0, 2]) == 0.5  # 0 -> 1 violated, 1 -> 2 kept
    assert order_consistency(np.zeros((3, 3)), [2, 0, 1]) == 1.0


def brute_force_shd(B_true, B_est, threshold=0.0):
    d = B_true.shape[0]
    count = 0
    for i in range(d):
        for j in range(i + 1, d):
            t = (abs(B_true[i, j]) > threshold, abs(B_true[j, i]) > threshold)
            e = (abs(B_est[i, j]) > threshold, abs(B_est[j, i]) > threshold)
            if t != e:
                count += 1
    return count


def brute_force_order_consistency(B_true, order):
    good = total = 0
    for i in range(B_true.shape[0]):
        for j in range(B_true.shape[0]):
            if i != j and B_true[i, j] != 0:
                total += 1
                good += order.index(j) < order.index(i)
    return 1.0 if total == 0 else good / total


def test_shd_and_order_consistency_against_brute_force():
    rng = np.random.default_rng(51)
    for _ in range(300):
        d = int(rng.integers(2, 9))
        B_true = rng.normal(size=(d, d)) * (rng.random((d, d)) < 0.3)
        B_est = rng.normal(size=(d, d)) * (rng.random((d, d)) < 0.3)
        thr = float(rng.choice([0.0, 0.5]))
        assert shd(B_true, B_est, threshold=thr) == brute_force_shd(B_true, B_est, thr)
        np.fill_diagonal(B_true, 0)
        order = rng.permutation(d).tolist()
        assert order_consistency(B_true, order) == pytest.approx(brute_force_order_consistency(B_true, order))


class _NotNumPy:
    """A stand-in array namespace for the GPU code path: forwards to NumPy but
    is not ``numpy`` itself and, like CuPy, has no ``vecdot``. It exercises the
    branches taken when ``xp is not np`` (large tiles, no worker processes,
    the einsum fallback, host transfers) without a GPU."""

    def __getattr__(self, name):
        if name == "vecdot":
            raise AttributeError(name)
        return getattr(np, name)


def test_gpu_code_path_logic_on_a_numpy_shim():
    from reprobook.lingam.direct import causal_order as order_fn

    shim = _NotNumPy()
    assert not hasattr(shim, "vecdot")
    rng = np.random.default_rng(21)
    X = random_sem(9, rng, noise="laplace").sample(400, rng)
    ours_np, scores_np = order_fn(X, np, backend="vectorized", record_scores=True)
    ours_shim, scores_shim = order_fn(X, shim, backend="vectorized", record_scores=True)
    assert ours_np == ours_shim
    for (_, m_np), (_, m_shim) in zip(scores_np, scores_shim):
        np.testing.assert_allclose(m_shim, m_np, rtol=0, atol=1e-12)
    assert make_pool(None, 9, 400, shim) is None  # no worker processes on the GPU path


@pytest.mark.parametrize("order", ["C", "F"])
def test_causal_order_leaves_its_input_alone(order):
    from reprobook.lingam.direct import causal_order as order_fn

    rng = np.random.default_rng(5)
    X = np.array(random_sem(6, rng).sample(300, rng), order=order)
    before = X.copy()
    order_fn(X, np)
    np.testing.assert_array_equal(X, before)
    DirectLiNGAM().fit(X)
    np.testing.assert_array_equal(X, before)
