"""GPU check of chapter 04: the digits experiment at a larger budget.

Needs an NVIDIA GPU (PyTorch with CUDA). One command, a few minutes on a recent GPU:

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

import torch

from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device, save_results, seed_everything
from reprobook.ect import experiments as ex
from reprobook.ect.evaluation import load_digits_images, train_digit_classifier

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
