"""GPU check of chapter 01: CuPy ordering == NumPy ordering, and GPU timings.

Needs an NVIDIA GPU and CuPy (``pip install cupy-cuda12x``). Run with every
other chapter's check by ``make gpu-check``, or alone:

    python -m reprobook.gpucheck --only lingam           # about 45 s on an H200
    python -m reprobook.gpucheck --only lingam --smoke   # toy size on the CPU

1. order equality: random LiNGAMs at d in {10, 50, 100}, n = 1000, three
   seeds, and one at d = 200: the causal ordering on the device against the
   NumPy path;
2. timings of the causal ordering on the device at d in {100, 250, 500, 1000},
   n in {1000, 10000} (the first call is a warm-up, not timed), as many as
   the check's budget allows;

saved to results/lingam/gpu.json, which chapter 01 shows.
"""

from __future__ import annotations

import time

import numpy as np

from reprobook.common import array_module
from reprobook.lingam import causal_order
from reprobook.lingam.simulate import random_sem
from reprobook.lingam.validation import check_data


def timed_order(X, xp):
    if xp is not np:
        xp.cuda.Device().synchronize()
    start = time.perf_counter()
    order, _ = causal_order(X, xp)
    if xp is not np:
        xp.cuda.Device().synchronize()
    return time.perf_counter() - start, order


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    # The NumPy side dominates the check's time (d = 200: about 25 s on 2 cores).
    cases, n_check = ([(4, 0), (8, 0), (8, 1)], 300) if smoke else (
        [(d, s) for d in (10, 50, 100) for s in range(3)] + [(200, 0)], 1000)
    time_dims, time_ns = ([8, 12], [300]) if smoke else ([100, 250, 500, 1000], [1000, 10000])
    xp = array_module(device)
    rng = np.random.default_rng(0)
    causal_order(check_data(random_sem(20, rng).sample(500, rng)), xp)  # CuPy compiles its kernels on first use

    checks = []
    for d, s in cases:
        rng = np.random.default_rng([11, d, s])
        X = check_data(random_sem(d, rng, noise="laplace", max_parent_weight=2.0).sample(n_check, rng))
        t_cpu, order_cpu = timed_order(X, np)
        t_dev, order_dev = timed_order(X, xp)
        checks.append({"d": d, "n": n_check, "seed": s, "same_order": order_cpu == order_dev,
                       "cpu_s": t_cpu, "gpu_s": t_dev})
        print(checks[-1], flush=True)

    timings, cut = [], []
    for n in time_ns:
        for d in time_dims:
            if not deadline.allows():
                cut.append({"d": d, "n": n})
                continue
            rng = np.random.default_rng([13, d, n])
            X = check_data(random_sem(d, rng, noise="laplace", max_parent_weight=2.0).sample(n, rng))
            t_dev, _ = timed_order(X, xp)
            timings.append({"d": d, "n": n, "gpu_order_s": t_dev})
            print(timings[-1], flush=True)
    same = sum(c["same_order"] for c in checks)
    largest = max(timings, key=lambda r: (r["d"], r["n"]), default=None)
    figure = f"{same}/{len(checks)} orders equal to NumPy"
    if largest:
        figure += f"; order of d={largest['d']}, n={largest['n']} in {largest['gpu_order_s']:.2f} s"
    return {"passed": same == len(checks), "key_figure": figure, "order_checks": checks, "timings": timings,
            "cut": cut}
