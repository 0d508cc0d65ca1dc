"""Speed of our DirectLiNGAM causal ordering against the `lingam` package.

Both run on the same data in the same process, one after the other; the
ratio is peer time / our time. The peer is timed only where it finishes
within --peer-budget seconds (extrapolated otherwise: never). Results go to
results/lingam/cpu_benchmark.json, which chapter 01 shows.

    python benchmarks/lingam_speed.py            # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time

import lingam
import numpy as np

from reprobook.common import REPO_ROOT, save_results
from reprobook.lingam import DirectLiNGAM, causal_order
from reprobook.lingam.simulate import random_sem
from reprobook.lingam.validation import check_data


class PeerOrderOnly(lingam.DirectLiNGAM):
    """The peer's own fit, without its adjacency step: its causal ordering alone."""

    def _estimate_adjacency_matrix(self, X, prior_knowledge=None):
        return self


def best_of(fn, repeats: int):
    """(best wall time in seconds, the last result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 25, 50, 100, 200, 300])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--peer-max-d", type=int, default=100, help="largest d the peer is timed at")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json"))
    args = parser.parse_args()

    rows = []
    for d in args.dims:
        rng = np.random.default_rng([7, d])
        X = random_sem(d, rng, noise="laplace", expected_degree=2.0, max_parent_weight=2.0).sample(args.n, rng)
        Xc = check_data(X)
        ours_order_s, (ours_order, _) = best_of(lambda: causal_order(Xc), args.repeats if d <= 100 else 1)
        ours_fit_s, _ = best_of(lambda: DirectLiNGAM().fit(X), 1)
        row = {"d": d, "n": args.n, "ours_order_s": ours_order_s, "ours_fit_s": ours_fit_s}
        if d <= args.peer_max_d:
            peer_repeats = args.repeats if d <= 25 else 1
            row["peer_order_s"], peer = best_of(lambda: PeerOrderOnly().fit(X), peer_repeats)
            row["same_order"] = ours_order == [int(v) for v in peer.causal_order_]
            row["ratio"] = row["peer_order_s"] / ours_order_s
        rows.append(row)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    path = save_results(args.output, {"rows": rows}, preset="benchmark", params=vars(args))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
