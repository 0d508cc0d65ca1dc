"""Linear NOTEARS (reprobook.lingam.notears) against closed forms, finite
differences, the data form of its loss, and a graph it must recover."""

import numpy as np
import pytest
from scipy.optimize import approx_fprime, check_grad

from reprobook.lingam.notears import (
    NOTEARS,
    acyclicity,
    augmented_objective,
    is_dag,
    notears_linear,
)


def _random_dag(d, rng, p=0.5):
    W = np.triu(rng.uniform(0.5, 1.5, (d, d)) * rng.choice([-1, 1], (d, d)), k=1)
    W *= rng.random((d, d)) < p
    perm = rng.permutation(d)
    return W[np.ix_(perm, perm)]


def test_acyclicity_is_zero_on_dags_and_positive_on_cycles():
    rng = np.random.default_rng(0)
    for _ in range(5):
        W = _random_dag(8, rng)
        assert is_dag(W)
        assert abs(acyclicity(W)[0]) < 1e-12
    W = _random_dag(8, rng, p=1.0)
    i, j = np.argwhere(W != 0)[0]
    W[j, i] = 0.7  # close a 2-cycle
    assert not is_dag(W)
    assert acyclicity(W)[0] > 0.1


@pytest.mark.parametrize("a, b", [(0.5, 0.8), (-1.2, 0.3), (2.0, -1.5)])
def test_two_cycle_closed_form(a, b):
    # exp([[0, a^2], [b^2, 0]]) has trace 2 cosh(|ab|)
    h, _ = acyclicity(np.array([[0.0, a], [b, 0.0]]))
    assert h == pytest.approx(2 * np.cosh(abs(a * b)) - 2, rel=1e-12)


def test_acyclicity_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.4, (6, 6))
    _, G = acyclicity(W)
    num = approx_fprime(W.ravel(), lambda w: acyclicity(w.reshape(6, 6))[0], 1e-7)
    np.testing.assert_allclose(G.ravel(), num, rtol=1e-5, atol=1e-6)


def test_augmented_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    d = 5
    X = rng.normal(size=(300, d))
    S = X.T @ X / len(X)
    w = rng.uniform(0.05, 0.5, 2 * d * d)  # interior of the bounds
    for rho, alpha, lam in [(1.0, 0.0, 0.1), (100.0, 3.0, 0.0), (1e4, 10.0, 0.5)]:
        args = (S, lam, rho, alpha)

        def f(v, args=args):
            return augmented_objective(v, *args)[0]

        def g(v, args=args):
            return augmented_objective(v, *args)[1]

        err = check_grad(f, g, w, epsilon=1e-7)
        assert err < 1e-4 * max(1.0, np.linalg.norm(g(w)))


def test_gram_form_of_the_loss_equals_the_data_form():
    rng = np.random.default_rng(3)
    n, d = 400, 6
    X = rng.exponential(size=(n, d))
    Xc = X - X.mean(0)
    W = rng.normal(0, 0.5, (d, d))
    w = np.concatenate([np.maximum(W, 0).ravel(), np.maximum(-W, 0).ravel()])
    obj, _ = augmented_objective(w, Xc.T @ Xc / n, 0.0, 0.0, 0.0)
    assert obj == pytest.approx(0.5 / n * np.sum((Xc - Xc @ W) ** 2), rel=1e-12)


def test_recovers_a_known_dag_with_equal_variance_gaussian_noise():
    # NOTEARS's favourable case: least squares is the likelihood, equal variances identify
    rng = np.random.default_rng(4)
    W_true = np.zeros((5, 5))  # 0 -> 1 -> 2, 0 -> 3, 2 -> 4, 3 -> 4
    W_true[0, 1], W_true[1, 2], W_true[0, 3], W_true[2, 4], W_true[3, 4] = 1.2, -0.9, 0.8, 1.0, -1.1
    E = rng.normal(size=(3000, 5))
    X = np.linalg.solve(np.eye(5) - W_true.T, E.T).T
    W = notears_linear(X, 0.1)
    np.testing.assert_array_equal(W != 0, W_true != 0)
    np.testing.assert_allclose(W, W_true, atol=0.25)  # shrunk by the l1 term
    B = NOTEARS(standardize=False).fit(X).adjacency_matrix_  # refit removes the shrinkage
    np.testing.assert_allclose(B, W_true.T, atol=0.06)


def test_standardized_fit_is_scale_equivariant():
    rng = np.random.default_rng(5)
    W_true = _random_dag(6, rng)
    X = np.linalg.solve(np.eye(6) - W_true.T, rng.exponential(size=(1000, 6)).T - 1).T
    c = np.array([1.0, 100.0, 0.01, 3.0, 1.0, 0.5])
    B1 = NOTEARS(standardize=True).fit(X).adjacency_matrix_
    B2 = NOTEARS(standardize=True).fit(X * c).adjacency_matrix_
    np.testing.assert_allclose(B2, c[:, None] * B1 / c[None, :], rtol=1e-6, atol=1e-9)


def test_result_is_a_dag():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))  # dense, no DAG structure
    model = NOTEARS(w_threshold=0.0).fit(X)
    assert is_dag(model.adjacency_matrix_)


@pytest.mark.parametrize(
    "X, kwargs, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 1.0]]), {}, "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 1.0]]), {}, "NaN or infinite"),
        (np.arange(10.0), {}, "2-D"),
        (np.ones((1, 3)), {}, "at least 2 samples"),
        (np.ones((5, 1)), {}, "2 variables"),
        (np.random.default_rng(0).normal(size=(20, 3)), {"lambda1": -0.1}, "lambda1"),
        (np.random.default_rng(0).normal(size=(20, 3)), {"lambda1": np.nan}, "lambda1"),
        (np.random.default_rng(0).normal(size=(20, 3)), {"w_threshold": -1}, "w_threshold"),
    ],
)
def test_bad_input_raises_clear_value_errors(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        notears_linear(X, **kwargs)
    with pytest.raises(ValueError, match=match):
        NOTEARS(**kwargs).fit(X)


def test_constant_column_is_rejected():
    X = np.random.default_rng(0).normal(size=(50, 3))
    X[:, 1] = 2.0
    with pytest.raises(ValueError, match="constant columns: \\[1\\]"):
        NOTEARS().fit(X)
