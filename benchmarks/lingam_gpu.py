"""GPU check of chapter 01: the fused CUDA kernel against the CuPy vectorized
path and the CPU kernel, then GPU timings.

Needs an NVIDIA GPU and CuPy (``pip install cupy-cuda12x``). Run with every
other chapter's check by ``make gpu-check``, or alone:

    python -m reprobook.gpucheck --only lingam           # about 40 s on an H200
    python -m reprobook.gpucheck --only lingam --smoke   # toy size on the CPU

1. order equality: random LiNGAMs at d in {10, 50, 100}, n = 1000, three
   seeds, and one at d = 200: the causal order of the fused kernel on the
   device, of the vectorized CuPy path (the reference) and of the fused CPU
   kernel; the largest score difference of the first step;
2. the headline timing: the whole ordering at d = 1000, n = 10000 on the
   device, with the ratio to our CPU kernel on all the host's cores (the CPU
   time is extrapolated from one timed step of d = 1000: a step costs k^2 n,
   so the ordering costs the first step times sum_k k^2 / d^2);
3. fused timings at d in {100, 250, 500, 1000}, n in {1000, 10000}, and the
   vectorized path's beside them, as many as the check's budget allows (the
   first call of each kernel is a warm-up, not timed);

saved to results/lingam/gpu.json, which chapter 01 shows.
"""

from __future__ import annotations

import time

import numpy as np

from reprobook.common import array_module, to_numpy
from reprobook.lingam.ordering import pairwise_scores
from reprobook.lingam.search import causal_order
from reprobook.lingam.simulate import random_sem
from reprobook.lingam.validation import check_data


def synchronize(xp) -> None:
    if xp is not np:
        xp.cuda.Device().synchronize()


def timed_order(X, xp, backend: str = "fused"):
    synchronize(xp)
    start = time.perf_counter()
    order, _ = causal_order(X, xp, backend=backend)
    synchronize(xp)
    return time.perf_counter() - start, order


def timed_first_step(X, xp) -> float:
    XT = xp.asarray(np.ascontiguousarray(X.T))
    synchronize(xp)
    start = time.perf_counter()
    pairwise_scores(XT, xp, backend="fused")
    synchronize(xp)
    return time.perf_counter() - start


def data(d: int, n: int, *seed):
    rng = np.random.default_rng(list(seed))
    return check_data(random_sem(d, rng, noise="laplace", max_parent_weight=2.0).sample(n, rng))


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    cases, n_check = ([(4, 0), (8, 0), (8, 1)], 300) if smoke else (
        [(d, s) for d in (10, 50, 100) for s in range(3)] + [(200, 0)], 1000)
    headline = (12, 300) if smoke else (1000, 10000)
    time_dims, time_ns = ([8, 12], [300]) if smoke else ([100, 250, 500, 1000], [1000, 10000])
    xp = array_module(device)
    warm = data(20, 500, 0)
    for backend in ("fused", "vectorized"):  # CuPy compiles its kernels on first use
        causal_order(warm, xp, backend=backend)
    causal_order(warm, np)  # numba compiles (or loads) the CPU kernel

    checks = []
    for d, s in cases:
        X = data(d, n_check, 11, d, s)
        t_cpu, order_cpu = timed_order(X, np)
        t_fused, order_fused = timed_order(X, xp)
        t_vec, order_vec = timed_order(X, xp, "vectorized")
        XT = np.ascontiguousarray(X.T)
        M_cpu = pairwise_scores(XT, np)
        M_fused = to_numpy(pairwise_scores(xp.asarray(XT), xp))
        M_vec = to_numpy(pairwise_scores(xp.asarray(XT), xp, backend="vectorized"))
        checks.append({
            "d": d, "n": n_check, "seed": s,
            "same_order": order_fused == order_vec == order_cpu,
            "fused_vs_vectorized_max_abs": float(np.abs(M_fused - M_vec).max()),
            "fused_vs_cpu_max_abs": float(np.abs(M_fused - M_cpu).max()),
            "cpu_s": t_cpu, "fused_s": t_fused, "vectorized_s": t_vec,
        })
        print(checks[-1], flush=True)

    d, n = headline
    X = data(d, n, 13, d, n)
    gpu_s, _ = timed_order(X, xp)
    cpu_step_s = timed_first_step(X, np)
    step_weights = sum(k * k for k in range(2, d + 1)) / d**2
    head = {"d": d, "n": n, "gpu_order_s": gpu_s, "cpu_first_step_s": cpu_step_s,
            "cpu_order_extrapolated_s": cpu_step_s * step_weights}
    head["ratio_to_cpu"] = head["cpu_order_extrapolated_s"] / gpu_s
    print(head, flush=True)

    timings, cut = [], []
    for n in time_ns:
        for d in time_dims:
            if not deadline.allows():
                cut.append({"d": d, "n": n})
                continue
            X = data(d, n, 13, d, n)
            row = {"d": d, "n": n}
            row["fused_order_s"], _ = timed_order(X, xp)
            if deadline.allows(0.4):
                row["vectorized_order_s"], _ = timed_order(X, xp, "vectorized")
            timings.append(row)
            print(row, flush=True)
    passed = all(c["same_order"] and c["fused_vs_vectorized_max_abs"] < 1e-10 for c in checks)
    figure = (f"{sum(c['same_order'] for c in checks)}/{len(checks)} orders equal (fused GPU, vectorized GPU, CPU); "
              f"d={head['d']}, n={head['n']} in {gpu_s:.2f} s, {head['ratio_to_cpu']:.0f}x the CPU kernel")
    return {"passed": passed, "key_figure": figure, "order_checks": checks, "headline": head,
            "timings": timings, "cut": cut}
