"""Cost of the chapter 02 training study: many small students at once with
``torch.func.vmap`` against the same students trained one by one with plain
autograd (same initialization, data streams and updates; the two give the
same test errors, which the tests check).

Saves results/qqt/vmap_benchmark.json, which chapter 02 shows.

    python benchmarks/qqt_vmap.py        # about 30 seconds on 2 cores
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reprobook.common import REPO_ROOT, save_results
from reprobook.qqt.study import make_web_pool, train_students


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, nargs="+", default=[4, 16, 32, 64])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "qqt" / "vmap_benchmark.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    web = make_web_pool(20_000, 4, np.random.default_rng(0))
    ck = np.array([args.steps * args.batch])
    # Warm-up: the first vmap call traces and allocates; it is not what we measure.
    train_students(web, web.buckets[:2], np.array([10 * args.batch]), 1, np.random.default_rng(0), batch=args.batch)
    rows = []
    for S in args.students:
        pools = [web.buckets[i % 4] for i in range(S)]
        times = {}
        for vectorized in (True, False):
            start = time.perf_counter()
            train_students(web, pools, ck, 1, np.random.default_rng(1), batch=args.batch, hidden=args.hidden,
                           vectorized=vectorized)
            times[vectorized] = time.perf_counter() - start
        row = {"students": S, "steps": args.steps, "vmap_s": times[True], "one_by_one_s": times[False],
               "ratio": times[False] / times[True]}
        rows.append(row)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    path = save_results(args.output, {"rows": rows}, preset="benchmark", params=vars(args))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
