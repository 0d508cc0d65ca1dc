"""GPU check and GPU study of chapter 04.

The check, run with every other chapter's by ``make gpu-check`` (results/ect/gpu.json, which
chapter 04 shows), or alone:

    python -m reprobook.gpucheck --only ect           # about 55 s on an H200
    python -m reprobook.gpucheck --only ect --smoke   # toy size on the CPU

1. correctness: the digits EDM denoiser (16 px U-Net, widths 64/128/128) and the toy one give
   on the device what they give on the CPU (float32, TF32 off; relative 1e-4);
2. 500 pretraining and 500 ECT iterations (stages of 250, batch 128) on the device: time
   per iteration, and the 1- and 2-step samples finite.

The study: the digits experiment at a larger budget, a few minutes on a recent GPU:

    python benchmarks/ect_gpu.py

Runs chapter 04's digits experiment (``reprobook.ect.experiments.run_digits``)
with the ``cpu`` preset's settings scaled up: 16x16 digits, a wider U-Net
(64/128/128), 10,000 pretraining and 4,000 tuning iterations (stages of 500),
2,000 samples per row. It scores what the chapter scores: the Fréchet distance in
the features of the chapter's digit classifier (not FID) and the near-copy rate,
for the diffusion model (1, 2 and Heun-18 steps), ECT, consistency training from
scratch and ECT with a fresh dropout mask (1 and 2 steps), plus the wall-clock
seconds of each run. Saved to results/ect/gpu_digits.json.

``--device cpu -p digits_pretrain_steps 20 -p digits_tune_steps 8 -p digits_stage_len 2``
runs the same code at toy size on a CPU (a smoke test of the script, not a result).
"""

from __future__ import annotations

import argparse
import ast
import time

import torch

from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device, save_results, seed_everything
from reprobook.ect import experiments as ex
from reprobook.ect.evaluation import load_digits_images, train_digit_classifier
from reprobook.gpucheck import forward_difference, synchronize

TOLERANCE = 1e-4  # relative, float32 with TF32 off


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    overrides = ({"digits_size": 8, "unet_widths": (8, 16), "dropout": 0.0} if smoke else
                 {k: GPU_BUDGET[k] for k in ("digits_size", "unet_widths")})
    cfg = get_chapter("ect").config("cpu", overrides)
    steps, stage_len, batch = (5, 3, 16) if smoke else (500, 250, 128)
    gen = torch.Generator().manual_seed(0)
    size = cfg.digits_size
    sigma = torch.tensor([0.002, 0.5, 10.0, 80.0])
    images = torch.randn(4, 1, size, size, generator=gen) * sigma[:, None, None, None]
    points = torch.randn(4, 2, generator=gen) * sigma[:, None]
    differences = {"digits_denoiser": forward_difference(ex.digits_denoiser(cfg, 0), (images, sigma), device),
                   "toy_denoiser": forward_difference(ex.toy_denoiser(cfg, 0), (points, sigma), device)}
    print(differences, flush=True)
    digits, _ = load_digits_images(size)
    data = digits.to(device)
    denoiser = ex.digits_denoiser(cfg, 0, device)
    seconds = {}
    for stage, run in (("pretrain", lambda: ex.pretrain(denoiser, data, cfg, steps=steps, batch=batch,
                                                         lr=cfg.digits_pretrain_lr, seed=0, desc="pretraining")),
                       ("tune", lambda: ex.tune(denoiser, data, cfg, steps=steps, stage_len=stage_len, batch=batch,
                                                lr=cfg.digits_tune_lr, seed=0, desc="ECT"))):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        seconds[stage] = time.perf_counter() - start
    finite = {f"{k}_step": bool(torch.isfinite(ex.few_step(denoiser, cfg, 256, (1, size, size), k, 0, device)).all())
              for k in (1, 2)}
    worst, all_finite = max(differences.values()), all(finite.values())
    passed = worst <= TOLERANCE and all_finite
    figure = (f"denoisers equal the CPU's within {worst:.1e}; ECT {1e3 * seconds['tune'] / steps:.1f} ms/iteration "
              f"at batch {batch}; 1- and 2-step samples {'finite' if all_finite else 'NOT finite'}")
    return {"passed": passed, "key_figure": figure, "tolerance": TOLERANCE, "relative_difference": differences,
            "iterations": steps, "batch": batch, "seconds": seconds, "samples_finite": finite, "overrides": overrides}


GPU_BUDGET = {"digits_size": 16, "unet_widths": (64, 128, 128), "digits_pretrain_steps": 10_000,
              "digits_tune_steps": 4_000, "digits_stage_len": 500, "digits_batch": 128, "n_digit_samples": 2_000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter (Python literal) on top of the script's budget")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "ect" / "gpu_digits.json"))
    args = parser.parse_args()

    overrides = {**GPU_BUDGET, **{name: ast.literal_eval(value) for name, value in args.param}}
    cfg = get_chapter("ect").config("cpu", overrides)
    device = resolve_device(args.device, "torch")  # device="cuda" without a GPU: a clear error
    seed_everything(args.seed)
    digits, labels = load_digits_images(cfg.digits_size)
    classifier, accuracy = train_digit_classifier(digits, labels, epochs=cfg.classifier_epochs, batch_size=64,
                                                  lr=1e-3, seed=args.seed, desc="digit classifier")
    rows, seconds = ex.run_digits(cfg, digits, classifier, args.seed, device)
    rows = [{k: v for k, v in row.items() if k != "samples"} for row in rows]
    for row in rows:
        print(row, flush=True)
    results = {"device": device, "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
               "classifier_accuracy": accuracy, "rows": rows, "seconds": seconds}
    path = save_results(args.output, results, preset="cpu", params={**overrides, "seed": args.seed})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
