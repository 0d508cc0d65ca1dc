"""GPU check of chapter 01: CuPy ordering == NumPy ordering, and GPU timings.

Needs an NVIDIA GPU and CuPy (``pip install cupy-cuda12x``). One command,
a few minutes on a recent GPU:

    python benchmarks/lingam_gpu.py

1. order equality: random LiNGAMs at d in {10, 50, 100, 250}, n = 1000, a
   few seeds: ``DirectLiNGAM(device="cuda")`` against the NumPy path;
2. timings of the causal ordering on the GPU at d in {100, 250, 500, 1000},
   n in {1000, 10000} (the first call is a warm-up, not timed);

saved to results/lingam/gpu.json, which chapter 01 shows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from reprobook.common import REPO_ROOT, array_module, save_results
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-dims", type=int, nargs="+", default=[10, 50, 100, 250])
    parser.add_argument("--check-seeds", type=int, default=3)
    parser.add_argument("--time-dims", type=int, nargs="+", default=[100, 250, 500, 1000])
    parser.add_argument("--time-ns", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "lingam" / "gpu.json"))
    args = parser.parse_args()

    cp = array_module("cuda")  # a clear error when there is no GPU
    # Warm-up: CuPy compiles its kernels on first use.
    rng = np.random.default_rng(0)
    causal_order(check_data(random_sem(20, rng).sample(500, rng)), cp)

    checks = []
    for d in args.check_dims:
        for s in range(args.check_seeds):
            rng = np.random.default_rng([11, d, s])
            X = check_data(random_sem(d, rng, noise="laplace", max_parent_weight=2.0).sample(1000, rng))
            t_cpu, order_cpu = timed_order(X, np)
            t_gpu, order_gpu = timed_order(X, cp)
            checks.append({"d": d, "n": 1000, "seed": s, "same_order": order_cpu == order_gpu,
                           "cpu_s": t_cpu, "gpu_s": t_gpu})
            print(checks[-1], flush=True)

    timings = []
    for n in args.time_ns:
        for d in args.time_dims:
            rng = np.random.default_rng([13, d, n])
            X = check_data(random_sem(d, rng, noise="laplace", max_parent_weight=2.0).sample(n, rng))
            t_gpu, _ = timed_order(X, cp)
            timings.append({"d": d, "n": n, "gpu_order_s": t_gpu})
            print(timings[-1], flush=True)

    path = save_results(args.output, {"order_checks": checks, "timings": timings}, preset="gpu-check",
                        params=vars(args))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
