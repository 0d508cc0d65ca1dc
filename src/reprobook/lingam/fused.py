"""The residual entropies of an ordering step as one fused kernel per device.

The vectorized path (:func:`reprobook.lingam.ordering.entropy_matrix`) makes
about ten passes over a (pairs x n) buffer: one per array operation. Here
every ordered pair ``(i, j)`` is one task that reads its two rows twice and
writes one number, with no temporaries of size n x pairs:

* pass 1: the mean and variance of ``r = s_i - coef[i, j] s_j`` (float64 sums);
* pass 2: with ``u = r / std(r)`` the three means of the maximum-entropy
  approximation, E|u|, E log1p(exp(-2|u|)) and E u exp(-u^2 / 2).

CPU: a numba kernel, ``prange`` over pairs (threads, no processes). NumPy's
own exp and log1p are calls into a vector math library that LLVM cannot see
into, so a compiled loop calling them stays scalar, slower than NumPy itself.
We therefore evaluate exp and log1p with polynomials LLVM can vectorize:

* ``exp(x)``, x <= 0: x = k ln 2 + r with |r| <= ln 2 / 2 (Cody-Waite, two
  constants), exp(r) by a degree-10 polynomial, 2^k put in the exponent field;
* ``log1p(y)``, 0 <= y <= 1: 2 atanh(s) with s = y / (2 + y) in [0, 1/3],
  atanh(s) / s by a degree-10 polynomial in s^2.

The coefficients interpolate the two functions at the 11 Chebyshev nodes of
their intervals, computed in 50-digit arithmetic with mpmath
(:func:`chebyshev_monomials`; the test suite re-derives them). Measured
error: 3 ulp for exp, 5e-16 relative for log1p, against NumPy. The loop runs
with the ``reassoc`` and ``contract`` fast-math flags only (reordered sums,
fused multiply-adds): no flag that changes what a NaN, an infinity or a
function evaluates to. Scores stay within 1e-13 of the vectorized path.

GPU: a CuPy RawKernel, one block per pair, its threads striding over the
samples, the same two passes with float64 accumulation and CUDA's
double-precision exp and log1p (the reference CUDA code accumulates float32
entropies with atomics: a known defect). The vectorized CuPy path stays as
the reference it is checked against (``make gpu-check``).
"""

from __future__ import annotations

import math

import numpy as np

from .ordering import GAMMA, H_GAUSS, K1, K2, LOG2

#: Monomial coefficients (c0, c1, ...) of the Chebyshev interpolants, see
#: :func:`chebyshev_monomials`: exp on [-ln2/2, ln2/2] and atanh(sqrt z)/sqrt z on [0, 1/9].
EXP_COEFFS = (
    1.0, 1.0000000000000067, 0.5000000000000006, 0.16666666666554406, 0.04166666666657314,
    0.008333333385667782, 0.0013888888932488599, 0.00019841170270440067, 2.4801504346997686e-05,
    2.764018079620985e-06, 2.7626357241447223e-07,
)
ATANH_COEFFS = (
    1.0, 0.33333333333333076, 0.20000000000092874, 0.14285714272727057, 0.11111112040373837,
    0.09090870416252403, 0.07693307021152004, 0.06650187016337313, 0.06055084364034609,
    0.0416225325593041, 0.08522081781390699,
)
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * LN2_HI is exact for |k| < 2^20
LN2_LO = 1.90821492927058770002e-10
#: exp(x) below this is a subnormal; the kernel returns exp(EXP_FLOOR) (about
#: 3e-308) instead, an absolute error far below anything a mean can see.
EXP_FLOOR = -708.0
#: A residual with variance at or below this has no noise left (collinear pair).
MIN_VARIANCE = 1e-24


def chebyshev_monomials(f, a: float, b: float, degree: int, digits: int = 50) -> list[float]:
    """Monomial coefficients of the polynomial interpolating ``f`` at the
    Chebyshev nodes of [a, b] (near-minimax), solved in ``digits``-digit
    arithmetic. ``f`` takes and returns mpmath numbers."""
    import mpmath as mp

    with mp.workdps(digits):
        a, b = mp.mpf(a), mp.mpf(b)
        N = degree + 1
        nodes = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * (k + mp.mpf(1) / 2) / N) for k in range(N)]
        V = mp.matrix([[x**j for j in range(N)] for x in nodes])
        c = mp.lu_solve(V, mp.matrix([f(x) for x in nodes]))
        return [float(c[j]) for j in range(N)]


# --------------------------------------------------------------------------- CPU (numba)

_CPU_KERNEL = None


def _build_cpu_kernel():
    """Compile the numba kernel on first use (numba is imported only here)."""
    import numba
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def bits_as_float64(typingctx, bits):
        """Reinterpret an int64 as a float64 (an LLVM bitcast, which vectorizes)."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(types.int64), codegen

    ce, ca = EXP_COEFFS, ATANH_COEFFS

    @numba.njit(inline="always")
    def exp_kernel(x):
        x = max(x, EXP_FLOOR)
        k = math.floor(x * LOG2E + 0.5)
        r = (x - k * LN2_HI) - k * LN2_LO
        p = ce[10]
        for m in range(9, -1, -1):
            p = p * r + ce[m]
        return p * bits_as_float64((np.int64(k) + 1023) << 52)

    @numba.njit(inline="always")
    def log1p_kernel(y):
        s = y / (2.0 + y)
        z = s * s
        p = ca[10]
        for m in range(9, -1, -1):
            p = p * z + ca[m]
        return 2.0 * s * p

    @numba.njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
    def residual_entropies(S, coef, E, var_out):
        k, n = S.shape
        for pair in numba.prange(k * k):
            i = pair // k
            j = pair - i * k
            c = coef[i, j]  # 0 on the diagonal: E[i, i] is H(s_i / std s_i)
            si = S[i]
            sj = S[j]
            total = 0.0
            squares = 0.0
            for t in range(n):
                r = si[t] - c * sj[t]
                total += r
                squares += r * r
            mean = total / n
            var = squares / n - mean * mean
            var_out[i, j] = var
            if var <= MIN_VARIANCE:
                E[i, j] = np.nan
                continue
            inv_std = 1.0 / math.sqrt(var)
            abs_sum = 0.0
            log1p_sum = 0.0
            g_sum = 0.0
            for t in range(n):
                u = (si[t] - c * sj[t]) * inv_std
                a = abs(u)
                abs_sum += a
                log1p_sum += log1p_kernel(exp_kernel(-2.0 * a))
                g_sum += u * exp_kernel(-0.5 * u * u)
            logcosh_mean = abs_sum / n + log1p_sum / n - LOG2
            g_mean = g_sum / n
            E[i, j] = H_GAUSS - K1 * (logcosh_mean - GAMMA) ** 2 - K2 * g_mean * g_mean

    @numba.njit
    def elementwise(x, out, which):
        for t in range(x.shape[0]):
            out[t] = exp_kernel(x[t]) if which == 0 else log1p_kernel(x[t])

    return residual_entropies, elementwise


def _cpu_kernels():
    global _CPU_KERNEL
    if _CPU_KERNEL is None:
        _CPU_KERNEL = _build_cpu_kernel()
    return _CPU_KERNEL


def exp_nonpositive(x: np.ndarray) -> np.ndarray:
    """The kernel's exp, elementwise on a 1-D float64 array of values <= 0 (for tests)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _cpu_kernels()[1](x, out, 0)
    return out


def log1p_unit(y: np.ndarray) -> np.ndarray:
    """The kernel's log1p, elementwise on a 1-D float64 array of values in [0, 1] (for tests)."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    out = np.empty_like(y)
    _cpu_kernels()[1](y, out, 1)
    return out


def cpu_threads(n_jobs: int | None) -> int:
    """Threads the CPU kernel may use: ``n_jobs`` capped at numba's pool (all cores by default)."""
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    return limit if n_jobs is None else max(1, min(int(n_jobs), limit))


def residual_entropies_cpu(S: np.ndarray, coef: np.ndarray, n_jobs: int | None = None):
    """``(E, var)``: ``E[i, j] = H(r_i|j / std)`` and ``var[i, j] = var(r_i|j)`` for all pairs.

    A pair whose residual variance is at most :data:`MIN_VARIANCE` gets NaN
    (the caller reports it as collinear). With ``coef[i, i] = 0`` the diagonal
    is the marginal entropy ``H(s_i / std s_i)``, which the step needs too.
    """
    import numba

    kernel = _cpu_kernels()[0]
    S = np.ascontiguousarray(S, dtype=np.float64)
    coef = np.ascontiguousarray(coef, dtype=np.float64)
    k = S.shape[0]
    E = np.empty((k, k))
    var = np.empty((k, k))
    previous = numba.get_num_threads()
    numba.set_num_threads(cpu_threads(n_jobs))
    try:
        kernel(S, coef, E, var)
    finally:
        numba.set_num_threads(previous)
    return E, var


# --------------------------------------------------------------------------- GPU (CuPy)

CUDA_SOURCE = r"""
extern "C" __global__ void residual_entropies(
    const double* __restrict__ S, const double* __restrict__ coef,
    double* __restrict__ E, double* __restrict__ var_out, const int k, const int n)
{
    // One block per ordered pair (i, j); its threads stride over the n samples.
    const long long pair = blockIdx.x;
    const int i = (int)(pair / k), j = (int)(pair % k);
    const double c = coef[pair];  // 0 on the diagonal: E[i, i] is H(s_i / std s_i)
    const double* si = S + (long long)i * n;
    const double* sj = S + (long long)j * n;
    extern __shared__ double shared[];  // 3 * blockDim.x doubles

    // Pass 1: sum and sum of squares of r = s_i - c s_j.
    double total = 0.0, squares = 0.0;
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const double r = si[t] - c * sj[t];
        total += r;
        squares += r * r;
    }
    shared[threadIdx.x] = total;
    shared[blockDim.x + threadIdx.x] = squares;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            shared[threadIdx.x] += shared[threadIdx.x + half];
            shared[blockDim.x + threadIdx.x] += shared[blockDim.x + threadIdx.x + half];
        }
        __syncthreads();
    }
    const double mean = shared[0] / n;
    const double var = shared[blockDim.x] / n - mean * mean;
    __syncthreads();
    if (var <= MIN_VARIANCE) {
        if (threadIdx.x == 0) { E[pair] = nan(""); var_out[pair] = var; }
        return;
    }
    const double inv_std = 1.0 / sqrt(var);

    // Pass 2: E|u|, E log1p(exp(-2|u|)) and E u exp(-u^2/2) with u = r / std(r).
    double abs_sum = 0.0, log1p_sum = 0.0, g_sum = 0.0;
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const double u = (si[t] - c * sj[t]) * inv_std;
        const double a = fabs(u);
        abs_sum += a;
        log1p_sum += log1p(exp(-2.0 * a));
        g_sum += u * exp(-0.5 * u * u);
    }
    shared[threadIdx.x] = abs_sum;
    shared[blockDim.x + threadIdx.x] = log1p_sum;
    shared[2 * blockDim.x + threadIdx.x] = g_sum;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            shared[threadIdx.x] += shared[threadIdx.x + half];
            shared[blockDim.x + threadIdx.x] += shared[blockDim.x + threadIdx.x + half];
            shared[2 * blockDim.x + threadIdx.x] += shared[2 * blockDim.x + threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        const double logcosh_mean = shared[0] / n + shared[blockDim.x] / n - LOG2;
        const double g_mean = shared[2 * blockDim.x] / n;
        const double d = logcosh_mean - GAMMA;
        E[pair] = H_GAUSS - K1 * d * d - K2 * g_mean * g_mean;
        var_out[pair] = var;
    }
}
"""

#: Threads per block: a power of two (the tree reduction needs it).
CUDA_THREADS = 256
_CUDA_KERNEL = None


def _cuda_kernel():
    global _CUDA_KERNEL
    if _CUDA_KERNEL is None:
        import cupy as cp

        defines = "".join(
            f"#define {name} {value!r}\n"
            for name, value in (("MIN_VARIANCE", MIN_VARIANCE), ("LOG2", LOG2), ("GAMMA", GAMMA),
                                ("H_GAUSS", H_GAUSS), ("K1", K1), ("K2", K2))
        )
        _CUDA_KERNEL = cp.RawKernel(defines + CUDA_SOURCE, "residual_entropies")
    return _CUDA_KERNEL


def residual_entropies_cuda(S, coef):
    """``(E, var)`` as :func:`residual_entropies_cpu`, computed on the GPU (CuPy arrays)."""
    import cupy as cp

    S = cp.ascontiguousarray(S, dtype=cp.float64)
    coef = cp.ascontiguousarray(coef, dtype=cp.float64)
    k, n = S.shape
    E = cp.empty((k, k), dtype=cp.float64)
    var = cp.empty((k, k), dtype=cp.float64)
    threads = min(CUDA_THREADS, 1 << max(5, (n - 1).bit_length()))
    _cuda_kernel()(
        (k * k,), (threads,), (S, coef, E, var, np.int32(k), np.int32(n)),
        shared_mem=3 * threads * 8,
    )
    return E, var
