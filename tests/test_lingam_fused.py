"""The fused kernel of a DirectLiNGAM step (reprobook.lingam.fused) against
independent references: NumPy's exp and log1p, the coefficients re-derived
in high precision, and the vectorized path's residual entropies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reprobook.lingam import fused
from reprobook.lingam.ordering import entropy_matrix, pairwise_scores
from reprobook.lingam.simulate import random_sem


def test_coefficients_rederive_from_chebyshev_interpolation():
    import mpmath as mp

    exp_c = fused.chebyshev_monomials(mp.exp, -math.log(2) / 2, math.log(2) / 2, 10)
    atanh_c = fused.chebyshev_monomials(
        lambda z: mp.atanh(mp.sqrt(z)) / mp.sqrt(z) if z > 0 else mp.mpf(1), 0.0, 1.0 / 9, 10
    )
    np.testing.assert_allclose(fused.EXP_COEFFS, exp_c, rtol=1e-14, atol=0)
    np.testing.assert_allclose(fused.ATANH_COEFFS, atanh_c, rtol=1e-14, atol=0)


def test_exp_within_4_ulp_of_numpy():
    rng = np.random.default_rng(0)
    x = -np.concatenate([np.linspace(0.0, 708.0, 100_001), rng.exponential(3.0, 100_000), [0.0, 1e-300, 5e-324]])
    ours = fused.exp_nonpositive(x)
    ref = np.exp(x)
    assert np.max(np.abs(ours - ref) / np.spacing(ref)) <= 4
    # Below the floor the kernel returns exp(-708), not a subnormal: absolute error < 4e-308.
    below = fused.exp_nonpositive(np.array([-708.5, -1e4, -np.inf]))
    assert np.all(below == fused.exp_nonpositive(np.array([fused.EXP_FLOOR]))[0])


def test_log1p_within_1e15_relative_of_numpy():
    rng = np.random.default_rng(1)
    y = np.concatenate([np.linspace(0.0, 1.0, 100_001), np.exp(-rng.exponential(20.0, 100_000)), [1e-300]])
    ours = fused.log1p_unit(y)
    ref = np.log1p(y)
    assert ours[0] == 0.0
    nz = ref > 0
    assert np.max(np.abs(ours[nz] - ref[nz]) / ref[nz]) < 1e-15


def standardized_coefs(XT):
    n = XT.shape[1]
    S = (XT - XT.mean(1, keepdims=True)) / XT.std(1, keepdims=True)
    Sc = S - S.mean(1, keepdims=True)
    C = Sc @ Sc.T / n
    coef = C / np.diag(C)[None, :]
    np.fill_diagonal(coef, 0.0)
    return S, coef


@pytest.mark.parametrize("noise", ["laplace", "uniform", "student_t", "exponential"])
@pytest.mark.parametrize("d,n", [(2, 3), (7, 61), (15, 1000)])
def test_fused_entropies_equal_vectorized(noise, d, n):
    rng = np.random.default_rng([3, d, n])
    X = random_sem(d, rng, noise=noise).sample(n, rng)
    if n > 10:
        X[0, 0] = 40.0 * X[:, 0].std()  # an outlier: |u| large, exp far below its floor
    S, coef = standardized_coefs(np.ascontiguousarray(X.T))
    E, var = fused.residual_entropies_cpu(S, coef)
    E_ref = entropy_matrix(S, coef, 2**15, np)
    off = ~np.eye(d, dtype=bool)
    np.testing.assert_allclose(E, E_ref, rtol=0, atol=1e-13)  # the diagonal is H(s_i) in both
    R = S[:, None, :] - coef[:, :, None] * S[None, :, :]
    np.testing.assert_allclose(var[off], R.var(axis=-1)[off], rtol=1e-12, atol=0)


def test_fused_scores_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(4)
    XT = np.ascontiguousarray(random_sem(20, rng, noise="laplace").sample(500, rng).T)
    M1, D1 = pairwise_scores(XT, backend="fused", n_jobs=1, return_D=True)
    M2, D2 = pairwise_scores(XT, backend="fused", n_jobs=2, return_D=True)
    assert np.array_equal(M1, M2) and np.array_equal(D1, D2)


def test_fused_reports_a_collinear_pair():
    rng = np.random.default_rng(5)
    XT = np.ascontiguousarray(rng.laplace(size=(4, 200)))
    XT[2] = 3.0 * XT[0] - 1.0
    with pytest.raises(ValueError, match=r"variables 0 and 2 .* perfectly collinear"):
        pairwise_scores(XT, backend="fused")


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match=r"backend must be one of 'fused', 'vectorized', got 'numba'"):
        pairwise_scores(np.ones((2, 5)), backend="numba")


def test_cuda_source_is_double_precision_throughout():
    # The reference CUDA code's float32 entropies are a known defect: no float
    # type or single-precision math function may appear in ours.
    import re

    assert not re.search(r"\bfloat\b|\b(expf|logf|log1pf|sqrtf|fabsf|__expf|__logf)\b", fused.CUDA_SOURCE)


def test_gpu_check_imports_do_not_need_the_lingam_package():
    # The lent GPU machine has no `lingam`: the search and the kernels must not import it.
    import subprocess
    import sys

    code = (
        "import sys; import reprobook.lingam.search, reprobook.lingam.fused, reprobook.lingam.simulate; "
        "from reprobook.lingam import causal_order, pairwise_scores; "
        "assert 'lingam' not in sys.modules, 'lingam was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
