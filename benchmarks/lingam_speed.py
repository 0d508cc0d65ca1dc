"""Speed of our DirectLiNGAM against the `lingam` package, on one thread and on all cores.

Both sides run on the same data in the same process, one after the other,
with the same number of repeats (best of ``repeats`` up to d = 100, where
the package takes a minute per fit; beyond it only ours runs, once). The package runs with BLAS
pinned to one thread (it is a Python loop; one BLAS thread is also its
faster setting on these small regressions). Its ordering and adjacency
times come from one timed fit. Ours is timed

* with ``n_jobs=1`` (one thread: the fused numba kernel, the adjacency
  in-process) and with all cores (``n_jobs=None``);
* with the fused kernel (the default) and, up to d = 100, the vectorized
  NumPy path it replaced, for reference.

Numba compiles the kernel once per process (or loads it from its cache):
a small fit before the timings takes that out. Also a bootstrap of the two
estimators on the same resamples. Results go to
results/lingam/cpu_benchmark.json, which chapter 01 shows.

    python benchmarks/lingam_speed.py            # about 6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time

import lingam
import numpy as np
from threadpoolctl import threadpool_limits

from reprobook.common import REPO_ROOT, save_results
from reprobook.lingam import DirectLiNGAM, causal_order
from reprobook.lingam.ordering import default_n_jobs
from reprobook.lingam.simulate import random_sem
from reprobook.lingam.validation import check_data


class TimedPeer(lingam.DirectLiNGAM):
    """The package's own fit, with its adjacency step timed separately."""

    def _estimate_adjacency_matrix(self, X, prior_knowledge=None):
        start = time.perf_counter()
        result = super()._estimate_adjacency_matrix(X, prior_knowledge)
        self.adjacency_s = time.perf_counter() - start
        return result


def best_of(fn, repeats: int):
    """(best wall time in seconds, the last result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def time_peer(X, repeats: int) -> dict:
    best = None
    for _ in range(repeats):
        with threadpool_limits(1, user_api="blas"):
            start = time.perf_counter()
            peer = TimedPeer().fit(X)
            fit_s = time.perf_counter() - start
        if best is None or fit_s < best["peer_fit_s"]:
            best = {"peer_fit_s": fit_s, "peer_order_s": fit_s - peer.adjacency_s, "peer": peer}
    return best


def time_bootstrap(d: int, n: int, n_sampling: int) -> dict:
    rng = np.random.default_rng([17, d])
    X = random_sem(d, rng, noise="laplace", expected_degree=2.0, max_parent_weight=2.0).sample(n, rng)
    np.random.seed(0)
    with threadpool_limits(1, user_api="blas"):
        peer_s, peer = best_of(lambda: lingam.DirectLiNGAM().bootstrap(X, n_sampling), 1)
    np.random.seed(0)
    ours_s, ours = best_of(lambda: DirectLiNGAM().bootstrap(X, n_sampling), 1)
    np.random.seed(0)
    ours_1t_s, _ = best_of(lambda: DirectLiNGAM(n_jobs=1).bootstrap(X, n_sampling), 1)
    same = bool(
        np.allclose(ours.get_probabilities(), peer.get_probabilities(), rtol=0, atol=1e-12)
        and np.allclose(ours.total_effects_, peer.total_effects_, rtol=0, atol=1e-10)
    )
    row = {"d": d, "n": n, "n_sampling": n_sampling, "peer_s": peer_s, "ours_1t_s": ours_1t_s,
           "ours_s": ours_s, "ratio_1t": peer_s / ours_1t_s, "ratio": peer_s / ours_s, "same_result": same}
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 25, 50, 100, 200, 300])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--peer-max-d", type=int, default=100, help="largest d the package is timed at")
    parser.add_argument("--vectorized-max-d", type=int, default=100, help="largest d the vectorized path is timed at")
    parser.add_argument("--repeats", type=int, default=3, help="repeats up to --peer-max-d (1 beyond)")
    parser.add_argument("--bootstrap", type=int, nargs=3, default=[30, 1000, 20], metavar=("D", "N", "SAMPLES"))
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json"))
    args = parser.parse_args()

    cores = default_n_jobs()
    rng = np.random.default_rng(0)
    DirectLiNGAM(n_jobs=1).fit(random_sem(5, rng).sample(200, rng))  # compile (or load) the kernel
    rows = []
    for d in args.dims:
        rng = np.random.default_rng([7, d])
        X = random_sem(d, rng, noise="laplace", expected_degree=2.0, max_parent_weight=2.0).sample(args.n, rng)
        Xc = check_data(X)
        repeats = args.repeats if d <= args.peer_max_d else 1
        row = {"d": d, "n": args.n, "repeats": repeats, "cores": cores}
        row["order_1t_s"], (order, _) = best_of(lambda: causal_order(Xc, n_jobs=1), repeats)
        row["order_s"], _ = best_of(lambda: causal_order(Xc), repeats)
        row["fit_1t_s"], _ = best_of(lambda: DirectLiNGAM(n_jobs=1).fit(X), repeats)
        row["fit_s"], _ = best_of(lambda: DirectLiNGAM().fit(X), repeats)
        if d <= args.vectorized_max_d:
            row["vectorized_order_1t_s"], _ = best_of(
                lambda: causal_order(Xc, backend="vectorized", n_jobs=1), repeats)
            row["vectorized_order_s"], _ = best_of(lambda: causal_order(Xc, backend="vectorized"), repeats)
        if d <= args.peer_max_d:
            peer = time_peer(X, repeats)
            row["peer_order_s"], row["peer_fit_s"] = peer["peer_order_s"], peer["peer_fit_s"]
            row["same_order"] = order == [int(v) for v in peer["peer"].causal_order_]
            row["order_ratio_1t"] = row["peer_order_s"] / row["order_1t_s"]
            row["order_ratio"] = row["peer_order_s"] / row["order_s"]
            row["fit_ratio_1t"] = row["peer_fit_s"] / row["fit_1t_s"]
            row["fit_ratio"] = row["peer_fit_s"] / row["fit_s"]
        rows.append(row)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    bootstrap = time_bootstrap(*args.bootstrap)
    path = save_results(args.output, {"rows": rows, "bootstrap": bootstrap}, preset="benchmark", params=vars(args))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
