"""Our DirectLiNGAM / VARLiNGAM as drop-in replacements for the `lingam` package.

Every test runs ours and the package on the same data and compares: causal
orders, edges, adjacency matrices, total effects, p-values, bootstrap results
(to 1e-10 where deterministic), the kernel measure's scores (rtol 1e-8),
warnings and errors.
"""

from __future__ import annotations

from contextlib import nullcontext

import lingam
import numpy as np
import pandas as pd
import pytest
from lingam.base import _BaseLiNGAM
from lingam.bootstrap import BootstrapResult
from lingam.utils import calculate_total_effect
from lingam.var_lingam import VARBootstrapResult

from reprobook.lingam import direct
from reprobook.lingam.direct import DirectLiNGAM, VARLiNGAM, dag_total_effects, var_total_effects
from reprobook.lingam.simulate import random_sem

ATOL = 1e-10


# --------------------------------------------------------------------------- data


def sem_data(d: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    sem = random_sem(d, rng, noise="laplace")
    return sem, sem.sample(n, rng)


def var_data(d: int, n: int, seed: int, lags: int = 2) -> np.ndarray:
    """A stable VAR(lags) whose instantaneous effects are a random LiNGAM."""
    rng = np.random.default_rng(seed)
    sem = random_sem(d, rng, noise="laplace")
    A = np.linalg.inv(np.eye(d) - sem.B)
    M = rng.uniform(-1, 1, (lags, d, d))
    companion = np.eye(d * lags, k=-d)
    while True:  # shrink M until the companion matrix has spectral radius < 0.8
        companion[:d] = np.concatenate(list(A @ M), axis=1)
        if np.abs(np.linalg.eigvals(companion)).max() < 0.8:
            break
        M *= 0.8
    E = sem.sample_noise(n + 100, rng)
    X = np.zeros((n + 100, d))
    for t in range(lags, n + 100):
        X[t] = A @ (sum(M[tau] @ X[t - 1 - tau] for tau in range(lags)) + E[t])
    return X[100:]


# --------------------------------------------------------------------------- comparisons


def assert_same_fit(ours, peer):
    assert ours.causal_order_ == [int(v) for v in peer.causal_order_]
    np.testing.assert_allclose(ours.adjacency_matrix_, peer.adjacency_matrix_, rtol=0, atol=ATOL)


def assert_same_var_fit(ours, peer):
    assert ours.causal_order_ == [int(v) for v in peer.causal_order_]
    assert ours.adjacency_matrices_.shape == peer.adjacency_matrices_.shape
    np.testing.assert_allclose(ours.adjacency_matrices_, peer.adjacency_matrices_, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours.residuals_, peer.residuals_, rtol=0, atol=ATOL)


def assert_same_effect_dict(a: dict, b: dict, float_keys=("effect",)):
    """Result dicts of BootstrapResult: the same entries, floats to ATOL."""
    assert a.keys() == b.keys()
    for key in a:
        if key in float_keys:
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=ATOL)
        else:
            assert a[key] == b[key], key


def assert_same_bootstrap(ours, peer, paths):
    np.testing.assert_allclose(ours.adjacency_matrices_, peer.adjacency_matrices_, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours.total_effects_, peer.total_effects_, rtol=0, atol=ATOL)
    # Zeros are where the package leaves them (the counts below depend on it).
    np.testing.assert_array_equal(ours.total_effects_ == 0, peer.total_effects_ == 0)
    for threshold in (None, 0.05):
        np.testing.assert_array_equal(ours.get_probabilities(threshold), peer.get_probabilities(threshold))
        for split in (False, True):
            kw = dict(min_causal_effect=threshold, split_by_causal_effect_sign=split)
            assert ours.get_causal_direction_counts(**kw) == peer.get_causal_direction_counts(**kw)
            assert ours.get_directed_acyclic_graph_counts(**kw) == peer.get_directed_acyclic_graph_counts(**kw)
        assert_same_effect_dict(
            ours.get_total_causal_effects(threshold), peer.get_total_causal_effects(threshold)
        )
    for args in paths:
        assert_same_effect_dict(ours.get_paths(*args), peer.get_paths(*args))


# --------------------------------------------------------------------------- classes


def test_our_models_are_the_package_classes():
    assert isinstance(DirectLiNGAM(), _BaseLiNGAM)
    assert isinstance(VARLiNGAM(), lingam.VARLiNGAM)


def test_package_var_lingam_accepts_our_direct_lingam():
    X = var_data(3, 300, seed=1)
    with_ours = lingam.VARLiNGAM(lags=2, lingam_model=DirectLiNGAM()).fit(X)
    assert_same_var_fit(with_ours, lingam.VARLiNGAM(lags=2).fit(X))


@pytest.mark.parametrize(
    "make_model",
    [DirectLiNGAM, lingam.DirectLiNGAM, lambda: lingam.ICALiNGAM(random_state=0)],
    ids=["ours", "lingam-direct", "lingam-ica"],
)
def test_var_lingam_takes_model_objects(make_model):
    X = var_data(3, 300, seed=2)
    ours = VARLiNGAM(lags=2, lingam_model=make_model()).fit(X)
    assert_same_var_fit(ours, lingam.VARLiNGAM(lags=2, lingam_model=make_model()).fit(X))


@pytest.mark.parametrize("bad", ["direct", DirectLiNGAM, lingam.DirectLiNGAM, object()], ids=repr)
def test_var_lingam_rejects_what_is_not_a_model_object(bad):
    X = var_data(3, 100, seed=3)
    with pytest.raises(ValueError, match="lingam_model must be a subclass of _BaseLiNGAM"):
        VARLiNGAM(lingam_model=bad).fit(X)
    with pytest.raises(ValueError, match="lingam_model must be a subclass of _BaseLiNGAM"):
        lingam.VARLiNGAM(lingam_model=bad).fit(X)


# --------------------------------------------------------------------------- DirectLiNGAM methods


def test_direct_estimate_total_effect_and_its_warning():
    _, X = sem_data(5, 400, seed=4)
    ours, peer = DirectLiNGAM().fit(X), lingam.DirectLiNGAM().fit(X)
    assert_same_fit(ours, peer)
    order = ours.causal_order_
    for a in range(5):
        for b in range(a + 1, 5):
            src, dst = order[a], order[b]
            want = peer.estimate_total_effect(X, src, dst)
            assert ours.estimate_total_effect(X, src, dst) == pytest.approx(want, abs=ATOL)
            # Against the fitted order: the package's warning, the package's number.
            with pytest.warns(UserWarning, match=rf"to_index={src}\) is earlier"):
                got = ours.estimate_total_effect(X, dst, src)
            with pytest.warns(UserWarning, match=rf"to_index={src}\) is earlier"):
                assert got == pytest.approx(peer.estimate_total_effect(X, dst, src), abs=ATOL)


def test_direct_error_independence_p_values():
    _, X = sem_data(4, 300, seed=5)
    ours, peer = DirectLiNGAM().fit(X), lingam.DirectLiNGAM().fit(X)
    np.testing.assert_allclose(
        ours.get_error_independence_p_values(X), peer.get_error_independence_p_values(X), rtol=0, atol=ATOL
    )


# --------------------------------------------------------------------------- VARLiNGAM options and methods


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lags=3, criterion="aic"),
        dict(lags=3, criterion="fpe"),
        dict(lags=3, criterion="hqic"),
        dict(lags=3, criterion="bic", prune=False),
        dict(lags=2, criterion=None),
        dict(lags=1, criterion=None, prune=False),
        dict(lags=2, random_state=3),
    ],
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()),
)
def test_var_options_equal_package(kwargs):
    X = var_data(3, 400, seed=6)
    ours, peer = VARLiNGAM(**kwargs).fit(X), lingam.VARLiNGAM(**kwargs).fit(X)
    assert_same_var_fit(ours, peer)
    np.testing.assert_allclose(
        ours.get_error_independence_p_values(), peer.get_error_independence_p_values(), rtol=0, atol=ATOL
    )
    order = ours.causal_order_
    first, last = order[0], order[-1]
    for lag in range(ours.adjacency_matrices_.shape[0]):
        for src, dst in [(first, last), (last, first)]:
            against_order = lag == 0 and src == last
            for method, args in [("estimate_total_effect", (X,)), ("estimate_total_effect2", (3,))]:
                values = []
                for model in (ours, peer):
                    with pytest.warns(UserWarning, match="may be incorrect") if against_order else nullcontext():
                        values.append(getattr(model, method)(*args, src, dst, lag))
                assert values[0] == pytest.approx(values[1], abs=ATOL)


@pytest.mark.parametrize("lags", [1, 2])
def test_var_given_ar_coefs_equal_package(lags):
    X = var_data(3, 300, seed=7)
    ar = lingam.VARLiNGAM(lags=2, criterion=None).fit(X).adjacency_matrices_[1:] * 0.9
    ours, peer = VARLiNGAM(lags=lags, ar_coefs=ar).fit(X), lingam.VARLiNGAM(lags=lags, ar_coefs=ar).fit(X)
    assert_same_var_fit(ours, peer)


def test_var_refit_starts_from_the_settings():
    """The package refits from the previous fit's AR coefficients and lag
    order; ours refits like a fresh model."""
    X1, X2 = var_data(3, 300, seed=8), var_data(3, 300, seed=9, lags=1)
    ours = VARLiNGAM(lags=3)
    ours.fit(X1)
    assert_same_var_fit(ours.fit(X2), lingam.VARLiNGAM(lags=3).fit(X2))


# --------------------------------------------------------------------------- closed-form total effects


def test_closed_form_total_effects_equal_path_sums():
    rng = np.random.default_rng(10)
    for d in [2, 3, 5, 7]:
        for degree in [1.0, d - 1.0]:  # sparse and complete DAGs
            sem = random_sem(d, rng, expected_degree=degree)
            A = dag_total_effects(sem.B, sem.order)
            np.testing.assert_allclose(A, sem.total_effects(), rtol=0, atol=ATOL)
            for i in range(d):
                for j in range(d):
                    if i != j:
                        want = calculate_total_effect(sem.B, j, i)
                        assert A[i, j] == pytest.approx(want, abs=ATOL)
                        assert (A[i, j] == 0) == (want == 0)


def test_closed_form_rejects_edges_against_the_order():
    B = np.array([[0.0, 0.5], [0.0, 0.0]])  # x1 -> x0
    with pytest.raises(ValueError, match="edge from a later to an earlier"):
        dag_total_effects(B, [0, 1])
    np.testing.assert_array_equal(dag_total_effects(B, [1, 0]), [[1.0, 0.5], [0.0, 1.0]])


def test_var_closed_form_equals_estimate_total_effect2():
    X = var_data(4, 300, seed=11)
    peer = lingam.VARLiNGAM(lags=2, criterion=None).fit(X)
    ours = var_total_effects(peer.adjacency_matrices_, peer.causal_order_)
    order = [int(v) for v in peer.causal_order_]
    assert ours.shape == (4, 12)
    for to in range(4):
        for src in range(4):
            for lag in range(3):
                if lag == 0 and order.index(src) >= order.index(to):
                    assert ours[to, src] == 0.0  # the package leaves these pairs empty
                    continue
                assert ours[to, src + 4 * lag] == pytest.approx(
                    peer.estimate_total_effect2(4, src, to, lag), abs=ATOL
                )


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("as_frame", [False, True], ids=["array", "DataFrame"])
def test_direct_bootstrap_equals_package(as_frame):
    _, X = sem_data(4, 300, seed=12)
    data = pd.DataFrame(X, columns=list("abcd")) if as_frame else X
    np.random.seed(0)
    ours = DirectLiNGAM().bootstrap(data, 4)
    after_ours = np.random.random()
    np.random.seed(0)
    peer = lingam.DirectLiNGAM().bootstrap(data, 4)
    assert np.random.random() == after_ours  # the same draws from the global RNG
    assert type(ours) is BootstrapResult
    assert ours.adjacency_matrices_.shape == ours.total_effects_.shape == (4, 4, 4)
    for a, b in zip(ours.resampled_indices_, peer.resampled_indices_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same_bootstrap(ours, peer, paths=[(i, j) for i in range(4) for j in range(4) if i != j])


def test_direct_bootstrap_with_prior_knowledge_equals_package():
    _, X = sem_data(4, 300, seed=13)
    pk = -np.ones((4, 4))
    pk[0, 1] = pk[2, 3] = 0
    np.random.seed(1)
    ours = DirectLiNGAM(prior_knowledge=pk).bootstrap(X, 3)
    np.random.seed(1)
    peer = lingam.DirectLiNGAM(prior_knowledge=pk).bootstrap(X, 3)
    assert_same_bootstrap(ours, peer, paths=[(1, 0), (3, 2)])
    assert np.all(ours.adjacency_matrices_[:, [0, 2], [1, 3]] == 0)


def test_direct_bootstrap_random_state():
    """With a random_state ours draws from RandomState(random_state), which after
    np.random.seed(random_state) is what the package draws from the global RNG."""
    _, X = sem_data(3, 200, seed=14)
    state = np.random.get_state()
    ours = DirectLiNGAM(random_state=5).bootstrap(X, 3)
    again = DirectLiNGAM(random_state=5).bootstrap(X, 3)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), state))  # global RNG untouched
    np.random.seed(5)
    peer = lingam.DirectLiNGAM(random_state=5).bootstrap(X, 3)
    for other in (again, peer):
        for a, b in zip(ours.resampled_indices_, other.resampled_indices_, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(ours.total_effects_, other.total_effects_, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "kwargs",
    [dict(lags=2), dict(lags=1, criterion="aic", prune=False), "ar_coefs"],
    ids=["lags2", "lags1-aic-noprune", "ar_coefs-2-lags-setting-1"],
)
def test_var_bootstrap_equals_package(kwargs):
    X = var_data(3, 200, seed=15)
    if kwargs == "ar_coefs":  # the series is rebuilt from time 1 with 2 lags of coefficients
        kwargs = dict(ar_coefs=lingam.VARLiNGAM(lags=2, criterion=None).fit(X).adjacency_matrices_[1:])
    np.random.seed(2)
    ours = VARLiNGAM(**kwargs).bootstrap(X, 3)
    np.random.seed(2)
    peer = lingam.VARLiNGAM(**kwargs).bootstrap(X, 3)
    assert type(ours) is VARBootstrapResult
    lags = np.shape(peer.adjacency_matrices_)[2] // 3 - 1
    assert ours.total_effects_.shape == (3, 3, 3 * (1 + lags))
    paths = [(0, 1, 0, 0), (2, 0, 1, 0), (1, 1, lags, 0)]
    assert_same_bootstrap(ours, peer, paths=paths)


def test_var_bootstrap_random_state_and_dataframe():
    X = var_data(3, 200, seed=16)
    frame = pd.DataFrame(X, columns=["u", "v", "w"])
    state = np.random.get_state()
    ours = VARLiNGAM(lags=2, random_state=9).bootstrap(frame, 2)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), state))
    np.random.seed(9)
    peer = lingam.VARLiNGAM(lags=2).bootstrap(frame, 2)
    assert_same_bootstrap(ours, peer, paths=[(0, 2, 1, 0)])


@pytest.mark.parametrize("model", [DirectLiNGAM(), VARLiNGAM()], ids=["direct", "var"])
def test_bootstrap_progress_bar(model, monkeypatch, capsys):
    monkeypatch.setenv("REPROBOOK_PROGRESS", "1")
    X = var_data(2, 60, seed=17, lags=1)
    model.bootstrap(X, 1)
    assert "bootstrap" not in capsys.readouterr().err
    model.bootstrap(X, 2, show_progress=True)
    assert "bootstrap" in capsys.readouterr().err


# --------------------------------------------------------------------------- soft prior knowledge


def peer_soft_scores(X, pk, order, measure="pwling"):
    """The package's scores of each step with more than one candidate, along
    ``order``: {candidate: M} (pwling) or {candidate: T} (kernel).

    This replays the package's own ``_search_candidate``, ``_residual``,
    ``_diff_mutual_info`` and ``_mutual_information`` with the loops of its
    ``_search_causal_order`` and ``_search_causal_order_kernel``.
    """
    peer = lingam.DirectLiNGAM(prior_knowledge=pk, apply_prior_knowledge_softly=True)
    X_ = np.array(X, dtype=np.float64)
    if measure == "kernel":
        from sklearn.preprocessing import scale

        X_ = scale(X_)
    param = [2e-3, 0.5] if X.shape[0] > 1000 else [2e-2, 1.0]
    std = lambda x: (x - np.mean(x)) / np.std(x)
    U = np.arange(X.shape[1])
    steps = []
    for m in order[:-1]:
        Uc, Vj = peer._search_candidate(U)
        if len(Uc) > 1:
            scores = {}
            for a in Uc:
                total = 0.0
                for b in U:
                    if a == b:
                        continue
                    if measure == "kernel":  # a plays j, b plays i in the package's loop
                        r = X_[:, b] if a in Vj and b in Uc else peer._residual(X_[:, b], X_[:, a])
                        total += peer._mutual_information(X_[:, a], r, param)
                    else:
                        xi, xj = std(X_[:, a]), std(X_[:, b])
                        ri_j = xi if a in Vj and b in Uc else peer._residual(xi, xj)
                        rj_i = xj if b in Vj and a in Uc else peer._residual(xj, xi)
                        total -= min(0.0, peer._diff_mutual_info(xi, xj, ri_j, rj_i)) ** 2
                scores[int(a)] = total
            steps.append(scores)
        for i in U:
            if i != m:
                X_[:, i] = peer._residual(X_[:, i], X_[:, m])
        U = U[U != m]
    return steps


def soft_cases(d=5):
    unknown = -np.ones((d, d))
    # 1 and 3 known exogenous (U_c = {1, 3}); no path from them to 0 and 2 (V_j = {0, 2}).
    two_exogenous = unknown.copy()
    two_exogenous[[1, 3], :] = 0
    two_exogenous[np.ix_([0, 2], [1, 3])] = 0
    # No variable known exogenous: 0 has a known ancestor (d - 1), 2 is a known sink.
    ancestor_and_sink = unknown.copy()
    ancestor_and_sink[0, d - 1] = 1
    ancestor_and_sink[:, 2] = 0
    # None known exogenous, 1 has a known ancestor, 0 is a known sink that the
    # other candidates have no path to (U_c = {2, ..., d - 1}, V_j = {0}).
    sink_unreachable = unknown.copy()
    sink_unreachable[1, 3] = 1
    sink_unreachable[:, 0] = 0
    sink_unreachable[0, 1] = -1
    return [
        pytest.param(two_exogenous, id="two_exogenous"),
        pytest.param(ancestor_and_sink, id="ancestor_and_sink"),
        pytest.param(sink_unreachable, id="sink_unreachable"),
    ]


@pytest.mark.parametrize("pk", soft_cases())
def test_soft_prior_knowledge_equals_package(pk):
    _, X = sem_data(5, 400, seed=18)
    ours = DirectLiNGAM(prior_knowledge=pk, apply_prior_knowledge_softly=True, record_scores=True).fit(X)
    peer = lingam.DirectLiNGAM(prior_knowledge=pk.copy(), apply_prior_knowledge_softly=True).fit(X)
    assert_same_fit(ours, peer)
    steps = peer_soft_scores(X, pk, ours.causal_order_)
    assert len(steps) == len(ours.scores_) >= 1
    for (U, M), theirs in zip(ours.scores_, steps):
        got = {int(u): M[k] for k, u in enumerate(U) if int(u) in theirs}
        assert got.keys() == theirs.keys()
        np.testing.assert_allclose(list(got.values()), list(theirs.values()), rtol=0, atol=ATOL)
    for i, j in zip(*np.nonzero(pk == 0)):
        assert ours.adjacency_matrix_[i, j] == 0.0  # "no path" is never an edge


def test_soft_prior_knowledge_changes_the_scores():
    """The V_j substitution is seen by the comparison above: the candidates'
    scores differ from the strict mode's (which only restricts the candidates
    here) by far more than its tolerance."""
    _, X = sem_data(5, 400, seed=18)
    pk = soft_cases()[0].values[0]
    soft = DirectLiNGAM(prior_knowledge=pk, apply_prior_knowledge_softly=True, record_scores=True).fit(X)
    strict = DirectLiNGAM(prior_knowledge=pk, record_scores=True).fit(X)
    (U, M_soft), (_, M_strict) = soft.scores_[0], strict.scores_[0]
    candidates = np.isin(U, [1, 3])
    assert np.abs(M_soft[candidates] - M_strict[candidates]).max() > 1e3 * ATOL


def test_soft_prior_knowledge_without_candidates():
    _, X = sem_data(3, 200, seed=19)
    pk = -np.ones((3, 3))
    pk[0, 1] = pk[1, 0] = 1  # each has a known ancestor
    pk[:, 2] = 0  # and 2 is a known sink: U_c is empty
    with pytest.raises(ValueError, match="applied softly, leaves no candidate"):
        DirectLiNGAM(prior_knowledge=pk, apply_prior_knowledge_softly=True).fit(X)
    with pytest.raises(ValueError):  # the package: argmax of an empty sequence
        lingam.DirectLiNGAM(prior_knowledge=pk, apply_prior_knowledge_softly=True).fit(X)


# --------------------------------------------------------------------------- kernel measure


def test_kernel_measure_equals_package():
    _, X = sem_data(4, 150, seed=20)
    ours = DirectLiNGAM(measure="kernel", record_scores=True).fit(X)
    peer = lingam.DirectLiNGAM(measure="kernel").fit(X)
    assert_same_fit(ours, peer)
    steps = peer_soft_scores(X, None, ours.causal_order_, measure="kernel")
    assert len(steps) == len(ours.scores_) == 3
    for (candidates, T), theirs in zip(ours.scores_, steps):
        assert [int(c) for c in candidates] == list(theirs)
        np.testing.assert_allclose(T, list(theirs.values()), rtol=1e-8, atol=0)


@pytest.mark.parametrize("soft", [False, True], ids=["strict", "soft"])
@pytest.mark.parametrize("pk", soft_cases(4)[::2])
def test_kernel_measure_with_prior_knowledge_equals_package(soft, pk):
    """In the soft mode V_j changes nothing: the package's substitution
    condition for this measure never holds (it asks for a candidate in V_j)."""
    _, X = sem_data(4, 120, seed=21)
    ours = DirectLiNGAM(prior_knowledge=pk, apply_prior_knowledge_softly=soft, measure="kernel", record_scores=True)
    ours.fit(X)
    peer = lingam.DirectLiNGAM(prior_knowledge=pk.copy(), apply_prior_knowledge_softly=soft, measure="kernel").fit(X)
    assert_same_fit(ours, peer)
    if soft:
        steps = peer_soft_scores(X, pk, ours.causal_order_, measure="kernel")
        for (_, T), theirs in zip(ours.scores_, steps, strict=True):
            np.testing.assert_allclose(T, list(theirs.values()), rtol=1e-8, atol=0)


class _NotNumPy:
    """NumPy under another name: runs the array-module code path the GPU takes."""

    def __getattr__(self, name):
        return getattr(np, name)


def test_kernel_measure_on_another_array_module():
    _, X = sem_data(3, 100, seed=22)
    order_np, scores_np = direct.causal_order(X, np, measure="kernel", record_scores=True)
    order_xp, scores_xp = direct.causal_order(X, _NotNumPy(), measure="kernel", record_scores=True)
    assert order_np == order_xp
    for (_, a), (_, b) in zip(scores_np, scores_xp, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# --------------------------------------------------------------------------- DataFrames


def test_dataframes_where_the_package_takes_them():
    _, X = sem_data(4, 300, seed=23)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    pk = -np.ones((4, 4))
    pk[1, 0] = 0
    pk_frame = pd.DataFrame(pk, index=frame.columns, columns=frame.columns)
    ours = DirectLiNGAM(prior_knowledge=pk_frame).fit(frame)
    peer = lingam.DirectLiNGAM(prior_knowledge=pk_frame).fit(frame)
    assert_same_fit(ours, peer)
    assert_same_fit(ours, DirectLiNGAM(prior_knowledge=pk).fit(X))
    src, dst = ours.causal_order_[0], ours.causal_order_[-1]
    assert ours.estimate_total_effect(frame, src, dst) == pytest.approx(
        peer.estimate_total_effect(frame, src, dst), abs=ATOL
    )
    np.testing.assert_allclose(
        ours.get_error_independence_p_values(frame), peer.get_error_independence_p_values(frame), rtol=0, atol=ATOL
    )
    series = pd.DataFrame(var_data(3, 200, seed=24), columns=["u", "v", "w"])
    ours_var, peer_var = VARLiNGAM(lags=2).fit(series), lingam.VARLiNGAM(lags=2).fit(series)
    assert_same_var_fit(ours_var, peer_var)
    assert ours_var.estimate_total_effect(series, 0, 2, 1) == pytest.approx(
        peer_var.estimate_total_effect(series, 0, 2, 1), abs=ATOL
    )
