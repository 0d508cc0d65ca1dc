"""GPU check and GPU study of chapter 03.

The check, run with every other chapter's by ``make gpu-check`` (results/hallucination/gpu.json,
which chapter 03 shows), or alone:

    python -m reprobook.gpucheck --only hallucination           # about 55 s on an H200
    python -m reprobook.gpucheck --only hallucination --smoke   # toy size on the CPU

1. correctness: the toy denoiser (width 128) and the shapes U-Net (64 px, widths 64/128/256)
   give on the device what they give on the CPU (float32, TF32 off; relative 1e-4);
2. the 25-mode grid at the full preset's width and batch (10,000) for 3,000 steps, then
   20,000 samples along the chain from the cpu preset's start: time per step, the samples finite, and the
   out-of-support rate.

The study: the 2D experiments (grid and diamond) at the ``full`` preset, a few minutes on
a recent GPU:

    python benchmarks/hallucination_gpu.py

For the 25-mode grid and the diamond it trains the reference-size toy denoiser
(width 128, batch 10,000, constant rate, all 1000 steps of the chain), draws
the full preset's samples and measures what chapter 03 measures at the ``cpu``
preset: out-of-support rate, median distance to a mode, the fraction of
out-of-support samples pointing toward a nearest neighbour (and its chance
level), AUROC of Hal and the removed/kept operating point. Saved to
results/hallucination/gpu_2d.json.

``--device cpu -p steps_2d 200 -p n_samples_2d 500`` runs the same code at toy
size on a CPU (a smoke test of the script, not a result).
"""

from __future__ import annotations

import argparse
import ast
import time

import numpy as np
import torch

from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device, save_results, seed_everything
from reprobook.diffusion.models import ToyDenoiser, UNetDenoiser
from reprobook.gpucheck import forward_difference
from reprobook.hallucination import experiments as ex
from reprobook.hallucination.metrics import (BETWEEN, IN_SUPPORT, auroc, chance_toward_a_neighbour, distance_in_sigmas,
                                             operating_point, toward_a_neighbour, trajectory_variance)


TOLERANCE = 1e-4  # relative, float32 with TF32 off


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    # Both start the chain where the cpu preset does (start_tol 1e-4): a tenth of the full run's steps
    # (or 100 in the smoke run) does not learn the first, pure-noise steps, and the sampler stops on NaN.
    preset, overrides = (("cpu", {"steps_2d": 100, "n_samples_2d": 300, "n_train_2d": 3_000, "batch": 256}) if smoke
                         else ("full", {"steps_2d": 3_000, "n_samples_2d": 20_000, "start_tol": 1e-4}))
    cfg = get_chapter("hallucination").config(preset, overrides)
    gen = torch.Generator().manual_seed(0)
    toy = ToyDenoiser(2, cfg.width, cfg.n_blocks, cfg.share_blocks)
    size = 16 if smoke else cfg.shape_height
    unet = UNetDenoiser(size, 3, (8, 16) if smoke else cfg.unet_widths)
    points, steps = torch.randn(512, 2, generator=gen), torch.randint(0, 1000, (512,), generator=gen)
    images = torch.randn(4, 3, size, size, generator=gen)
    differences = {"toy_denoiser": forward_difference(toy, (points, steps), device),
                   "unet": forward_difference(unet, (images, torch.tensor([10, 200, 500, 900])), device)}
    print(differences, flush=True)
    seed_everything(0)
    row = run_2d(cfg, 0, device, datasets=("grid",))[0]
    finite = bool(row.pop("finite"))
    passed = max(differences.values()) <= TOLERANCE and finite
    figure = (f"denoisers equal the CPU's within {max(differences.values()):.1e}; grid: "
              f"{1e3 * row['train_seconds'] / cfg.steps_2d:.1f} ms/step at batch {cfg.batch}, samples "
              f"{'finite' if finite else 'NOT finite'}, between modes {row['between_modes']:.4f}")
    return {"passed": passed, "key_figure": figure, "tolerance": TOLERANCE, "relative_difference": differences,
            "samples_finite": finite, "grid": row, "preset": preset, "overrides": overrides}


def run_2d(cfg, seed: int, device: str, datasets=("grid", "diamond")) -> list[dict]:
    rows = []
    for name, rotate in [("grid", False), ("diamond", True)]:
        if name not in datasets:
            continue
        mix = ex.grid_2d(cfg.sigma, rotate)
        start = time.perf_counter()
        model = ex.train_toy(ex.training_data(mix, cfg.n_train_2d, seed), cfg, seed, device, desc=f"2D {name}")
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        samples = ex.sample_toy(model, cfg, cfg.n_samples_2d, 2, seed + 1, device, desc=f"2D {name} samples")
        sample_s = time.perf_counter() - start
        distance = distance_in_sigmas(samples.x, mix)
        labels = ex.labels(samples.x, mix, cfg)
        between = labels == BETWEEN
        scored = between | (labels == IN_SUPPORT)
        hal = trajectory_variance(samples.x0_trajectory, cfg.hal_window)
        op = (operating_point(hal[scored], between[scored], cfg.keep_in_support) if scored.any() and not
              between[scored].all() else {})
        rows.append({
            "dataset": name, "finite": bool(torch.isfinite(samples.x).all()), "samples": len(samples),
            "train_seconds": train_s, "sample_seconds": sample_s,
            "between_modes": float(between.mean()), "median_distance_sigmas": float(np.median(distance)),
            "toward_nearest_neighbour": float(toward_a_neighbour(samples.x[between], mix).mean())
            if between.any() else float("nan"),
            "chance": chance_toward_a_neighbour(samples.x[between], mix, seed=seed),
            "auroc": auroc(hal[scored], between[scored]), **op,
        })
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="full")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter of the preset (Python literal)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "hallucination" / "gpu_2d.json"))
    args = parser.parse_args()

    overrides = {name: ast.literal_eval(value) for name, value in args.param}
    cfg = get_chapter("hallucination").config(args.preset, overrides)
    device = resolve_device(args.device, "torch")  # device="cuda" without a GPU: a clear error
    seed_everything(args.seed)
    rows = run_2d(cfg, args.seed, device)
    path = save_results(args.output, {"device": device, "rows": rows}, preset=args.preset,
                        params={**overrides, "seed": args.seed})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
