"""Bad input to the chapter 01 estimators gets a clear error that names the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reprobook.common import cuda_available, resolve_device
from reprobook.lingam.direct import DirectLiNGAM, VARLiNGAM


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    return rng.laplace(size=(200, 4))


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize("Model", [DirectLiNGAM, VARLiNGAM])
def test_nan(X, Model):
    X[17, 2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite.*NaN at row 17, column 2"):
        Model().fit(X)


@pytest.mark.parametrize("Model", [DirectLiNGAM, VARLiNGAM])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_inf(X, Model, value):
    X[3, 1] = value
    X[5, 0] = value
    with pytest.raises(ValueError, match=r"2 non-finite value\(s\).*infinite at row 3, column 1"):
        Model().fit(X)


@pytest.mark.parametrize("Model", [DirectLiNGAM, VARLiNGAM])
def test_constant_column(X, Model):
    X[:, 3] = 2.5
    with pytest.raises(ValueError, match=r"constant column\(s\) \[3\]"):
        Model().fit(X)


def test_too_few_samples():
    with pytest.raises(ValueError, match=r"1 sample\(s\); at least 2"):
        DirectLiNGAM().fit(np.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        DirectLiNGAM().fit(np.empty((0, 3)))


def test_var_too_few_samples_for_lags():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match=r"4 sample\(s\); at least 5"):
        VARLiNGAM(lags=3).fit(rng.laplace(size=(4, 2)))


@pytest.mark.parametrize("Model", [DirectLiNGAM, VARLiNGAM])
def test_too_few_features(Model):
    with pytest.raises(ValueError, match=r"1 feature\(s\); at least 2"):
        Model().fit(np.random.default_rng(2).laplace(size=(50, 1)))


@pytest.mark.parametrize("shape", [(50,), (10, 3, 2)])
def test_wrong_ndim(shape):
    data = np.random.default_rng(3).laplace(size=shape)
    with pytest.raises(ValueError, match=rf"must be 2-D.*got {len(shape)}-D"):
        DirectLiNGAM().fit(data)
    with pytest.raises(ValueError, match=rf"must be 2-D.*got {len(shape)}-D"):
        VARLiNGAM().fit(data)


@pytest.mark.parametrize(
    "data",
    [
        np.array([["a", "b"], ["c", "d"], ["e", "f"]]),
        [["1.0", "2.0"], ["3.0", "4.5"], ["5", "6"]],
        np.array([[1.0, "x"], [2.0, 3.0]], dtype=object),
        np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], dtype=object),
    ],
    ids=["str-array", "str-list", "object-mixed", "object-floats"],
)
def test_non_numeric(data):
    # ValueError, as the lingam package raises: code catching its errors keeps working.
    with pytest.raises(ValueError, match="must be numeric"):
        DirectLiNGAM().fit(data)
    with pytest.raises(ValueError, match="must be numeric"):
        DirectLiNGAM().bootstrap(data, 2)
    with pytest.raises(ValueError, match="must be numeric"):
        VARLiNGAM().fit(data)


def test_non_numeric_dataframe(X):
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["b"] = ["x"] * len(frame)
    with pytest.raises(ValueError, match="must be numeric"):
        DirectLiNGAM().fit(frame)


def test_complex(X):
    with pytest.raises(ValueError, match="real-valued.*complex"):
        DirectLiNGAM().fit(X + 1j)
    with pytest.raises(ValueError, match="real-valued.*complex"):
        VARLiNGAM().fit(X.astype(np.complex128))


def test_duplicated_column_is_collinear(X):
    dup = np.column_stack([X, X[:, 1]])
    with pytest.raises(ValueError, match="collinear"):
        DirectLiNGAM().fit(dup)


def test_affine_copy_is_collinear(X):
    dup = np.column_stack([X, -3.0 * X[:, 0] + 7.0])
    with pytest.raises(ValueError, match="perfectly collinear"):
        DirectLiNGAM().fit(dup)


def test_linear_combination_becomes_collinear(X):
    # x4 = x0 + x2: no pair is collinear at first, but after one of the three
    # is regressed out the other two residuals coincide.
    dup = np.column_stack([X, X[:, 0] + X[:, 2]])
    with pytest.raises(ValueError, match="collinear"):
        DirectLiNGAM().fit(dup)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("measure", ["PWLING", "hsic", None])
def test_unknown_measure(measure):
    with pytest.raises(ValueError, match=r"measure must be one of \('pwling', 'kernel'\), got"):
        DirectLiNGAM(measure=measure)


def test_pwling_fast_points_to_the_gpu():
    with pytest.raises(ValueError, match=r"'pwling_fast'.*measure='pwling', device='cuda'"):
        DirectLiNGAM(measure="pwling_fast")


@pytest.mark.parametrize("measure", ["pwling", "kernel"])
def test_soft_prior_knowledge_without_candidates(X, measure):
    pk = -np.ones((4, 4))
    pk[0, 1] = pk[1, 0] = 1  # 0 and 1 each have a known ancestor ...
    pk[:, 2] = pk[:, 3] = 0  # ... and 2, 3 are known sinks: no candidate is left
    model = DirectLiNGAM(prior_knowledge=pk, apply_prior_knowledge_softly=True, measure=measure)
    with pytest.raises(ValueError, match=r"applied softly, leaves no candidate for the next variable among \[0, 1, 2, 3\]"):
        model.fit(X[:60])


@pytest.mark.parametrize("Model", [DirectLiNGAM, VARLiNGAM])
@pytest.mark.parametrize("n_sampling", [0, -3, 2.0, "5", None, True])
def test_bad_n_sampling(X, Model, n_sampling):
    with pytest.raises(ValueError, match=r"n_sampling \(the number of bootstrap resamples\) must be a positive integer"):
        Model().bootstrap(X, n_sampling)


@pytest.mark.parametrize("lingam_model", ["direct", DirectLiNGAM, 3])
def test_var_lingam_model_must_be_a_model_object(X, lingam_model):
    with pytest.raises(ValueError, match="lingam_model must be a subclass of _BaseLiNGAM: a model object"):
        VARLiNGAM(lingam_model=lingam_model).fit(X)


@pytest.mark.parametrize("shape", [(3, 3), (4, 5), (4,), (5, 5)])
def test_prior_knowledge_wrong_shape(X, shape):
    pk = -np.ones(shape)
    with pytest.raises(ValueError, match=r"prior_knowledge must have shape .*\(4, 4\), got"):
        DirectLiNGAM(prior_knowledge=pk).fit(X)


def test_prior_knowledge_bad_entries(X):
    pk = -np.ones((4, 4))
    pk[0, 1] = 2
    with pytest.raises(ValueError, match="prior_knowledge entries must be 0"):
        DirectLiNGAM(prior_knowledge=pk).fit(X)


def test_prior_knowledge_cycle(X):
    pk = -np.ones((4, 4))
    pk[0, 1] = pk[1, 2] = pk[2, 0] = 1  # 1 before 0, 2 before 1, 0 before 2
    with pytest.raises(ValueError, match="cycle"):
        DirectLiNGAM(prior_knowledge=pk).fit(X)


@pytest.mark.parametrize("n_jobs", [0, -1, 1.5, "2"])
def test_bad_n_jobs(n_jobs):
    with pytest.raises(ValueError, match="n_jobs must be a positive integer or None"):
        DirectLiNGAM(n_jobs=n_jobs)


def test_make_pool_bad_n_jobs():
    from reprobook.lingam.ordering import make_pool

    with pytest.raises(ValueError, match="n_jobs must be a positive integer or None, got 0"):
        make_pool(0, 5, 100)


@pytest.mark.parametrize("lags", [0, -2, 1.5])
def test_var_bad_lags(lags):
    with pytest.raises(ValueError, match="lags must be a positive integer"):
        VARLiNGAM(lags=lags)


@pytest.mark.parametrize("criterion", ["BIC", "aicc", ""])
def test_var_bad_criterion(criterion):
    with pytest.raises(ValueError, match="criterion must be one of 'aic', 'fpe', 'hqic', 'bic' or None"):
        VARLiNGAM(criterion=criterion)


@pytest.mark.parametrize("shape", [(2, 3, 3), (4, 4), (2, 4, 3)])
def test_var_ar_coefs_wrong_shape(X, shape):
    with pytest.raises(ValueError, match=r"ar_coefs must have shape \(lags, n_features, n_features\)"):
        VARLiNGAM(ar_coefs=np.zeros(shape)).fit(X)


# --------------------------------------------------------------------------- devices


@pytest.mark.skipif(cuda_available("cupy"), reason="a CUDA GPU is usable through CuPy here")
def test_cuda_without_gpu(X):
    with pytest.raises(RuntimeError, match=r"device='cuda'.*no CUDA GPU is usable"):
        DirectLiNGAM(device="cuda").fit(X)
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        VARLiNGAM(device="cuda").fit(X)


def test_unknown_device():
    with pytest.raises(ValueError, match=r"device must be one of \('auto', 'cpu', 'cuda'\), got 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device must be one of"):
        DirectLiNGAM(device="tpu").fit(np.random.default_rng(4).laplace(size=(20, 2)))


def test_only_one_worker_pool_at_a_time():
    import multiprocessing

    import pytest as _pytest

    from reprobook.lingam.ordering import WorkerPool

    if "fork" not in multiprocessing.get_all_start_methods():
        _pytest.skip("no fork on this platform")
    with WorkerPool(2, 10, 100):
        with _pytest.raises(RuntimeError, match="another WorkerPool is open"):
            WorkerPool(2, 10, 100)
    with WorkerPool(2, 10, 100):  # closed pools free the slot
        pass
