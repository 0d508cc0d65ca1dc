"""GPU check for chapter 06, saved to results/mohawk/gpu.json:

1. one SSD layer at long T (SmolLM2's head shape, 9 x 64): the chunked scan
   against the materialized matrix, time, peak memory and their difference;
2. the three arms of the SmolLM2 distillation at a larger budget than the
   CPU `long` run (393,216 tokens per arm, 256-token rows, matrix fits on
   every 5th layer).

    python benchmarks/mohawk_gpu.py                  # needs a CUDA GPU; a few minutes on an H200
    python benchmarks/mohawk_gpu.py --tokens 8192 --lengths 256 512 --device cpu   # a smoke test

The same study on several GPUs: `torchrun --nproc_per_node=N -m reprobook.mohawk.run --preset long
-p total_tokens 393216`.
"""

from __future__ import annotations

import argparse
import time

import torch

from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device, save_results, seed_everything
from reprobook.mohawk import experiments as ex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=393_216, help="tokens per arm")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384, 32768])
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = resolve_device(args.device, "torch")  # asking for cuda without a GPU is an error
    seed_everything(args.seed)
    start = time.perf_counter()
    bench = ex.scan_benchmark(args.lengths, n_heads=9, head_dim=64, state_size=64, chunk=64, repeats=5,
                              device=device, seed=args.seed)
    for row in bench:
        print(row)
    context = 256 if args.tokens >= 65_536 else 128
    cfg = get_chapter("mohawk").config("long", {
        "context": context, "total_tokens": args.tokens, "tokens_per_update_12": 8 * context,
        "tokens_per_update_3": 32 * context, "micro_batch": 8, "eval_rows": 64, "fit_layers": [0, 5, 10, 15, 20, 25, 29],
        "fit_rows": 32, "fit_steps": 300, "fit_batch": 8, "bench_lengths": [256]})
    study = ex.run_study(cfg, seed=args.seed, device=device)
    study["long_sequence_benchmark"] = bench
    study["gpu"] = torch.cuda.get_device_name() if device == "cuda" else "none"
    path = save_results(REPO_ROOT / "results" / "mohawk" / "gpu.json", study, preset="long", params=cfg)
    print({a["arm"]: round(a["kl"], 4) for a in study["arms"]}, f"{time.perf_counter() - start:.0f} s, saved {path}")


if __name__ == "__main__":
    main()
