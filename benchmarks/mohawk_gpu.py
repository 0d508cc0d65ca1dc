"""GPU check and GPU study of chapter 06.

The check, run with every other chapter's by ``make gpu-check`` (results/mohawk/gpu.json, which
chapter 06 shows), or alone:

    python -m reprobook.gpucheck --only mohawk           # about 50 s on an H200
    python -m reprobook.gpucheck --only mohawk --smoke   # toy size on the CPU

1. correctness: one SSD layer (SmolLM2's head shape, 9 x 64, state 64) at T = 2048 in float64:
   the chunked scan on the device against the materialized matrix (1e-10), and in float32
   against the CPU's scan (relative 1e-4);
2. the scan against the materialized matrix at T in {1024, 4096, 16384}: time and peak
   memory (as many lengths as the budget allows).

The study, saved to results/mohawk/gpu_study.json:

1. one SSD layer at long T (SmolLM2's head shape, 9 x 64): the chunked scan
   against the materialized matrix, time, peak memory and their difference;
2. the arms of the SmolLM2 distillation at a larger budget than the
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
from reprobook.gpucheck import relative_difference
from reprobook.mohawk import experiments as ex
from reprobook.mohawk.ssd import ssd_materialized, ssd_scan
from ssd_scan_speed import ssd_inputs  # the scan benchmark's inputs, same directory

TOLERANCE_FLOAT64 = 1e-10  # absolute, scan vs matrix
TOLERANCE_FLOAT32 = 1e-4  # relative, device vs CPU


@torch.no_grad()
def gpu_check(device: str, smoke: bool, deadline) -> dict:
    heads, head_dim, state = (3, 8, 8) if smoke else (9, 64, 64)
    T = 200 if smoke else 2048
    inputs = [t.to(device) for t in ssd_inputs(T, heads, head_dim, state, torch.float64)]
    scan_vs_matrix = float((ssd_scan(*inputs) - ssd_materialized(*inputs)).abs().max())
    inputs32 = ssd_inputs(T, heads, head_dim, state, torch.float32)
    device_vs_cpu = relative_difference(ssd_scan(*(t.to(device) for t in inputs32)), ssd_scan(*inputs32))
    print({"scan_vs_matrix_float64": scan_vs_matrix, "device_vs_cpu_float32": device_vs_cpu}, flush=True)
    bench, cut = [], []
    for length in ([64, 256] if smoke else [1024, 4096, 16384]):  # 32768: the matrix alone is 39 GB
        if not deadline.allows(0.3):
            cut.append(length)
            continue
        bench += ex.scan_benchmark([length], n_heads=heads, head_dim=head_dim, state_size=state, chunk=64, repeats=3,
                                   device=device)
        print(bench[-1], flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    passed = scan_vs_matrix <= TOLERANCE_FLOAT64 and device_vs_cpu <= TOLERANCE_FLOAT32
    longest = bench[-1] if bench else None
    figure = f"scan == matrix within {scan_vs_matrix:.1e} (float64), device == CPU within {device_vs_cpu:.1e}"
    if longest:
        figure += (f"; T={longest['T']}: scan {1e3 * longest['scan_s']:.1f} ms, {longest['scan_mb']:.0f} MB vs matrix "
                   f"{1e3 * longest['materialized_s']:.1f} ms, {longest['materialized_mb']:.0f} MB")
    return {"passed": passed, "key_figure": figure, "tolerance_float64": TOLERANCE_FLOAT64,
            "tolerance_float32": TOLERANCE_FLOAT32, "scan_vs_matrix_float64": scan_vs_matrix,
            "device_vs_cpu_float32": device_vs_cpu, "head_shape": [heads, head_dim, state], "benchmark": bench,
            "cut_lengths": cut}


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
    path = save_results(REPO_ROOT / "results" / "mohawk" / "gpu_study.json", study, preset="long", params=cfg)
    print({a["arm"]: round(a["kl"], 4) for a in study["arms"]}, f"{time.perf_counter() - start:.0f} s, saved {path}")


if __name__ == "__main__":
    main()
