"""GPU check for chapter 05: the SmolLM2 category study at the reference GCG
budget (top-k 250, batch 100, 200 steps growing 1.2x per failed length, cap
5|y|) on five strings per category (twenty in plain mode, plus the famous
quotes twice in chat mode), saved to results/acr/gpu.json, which the chapter
shows when it exists.

    python benchmarks/acr_gpu.py                    # needs a CUDA GPU; about 10 minutes on an H200
    python benchmarks/acr_gpu.py --per-category 2 --steps 20 --device cpu   # a smoke test
"""

from __future__ import annotations

import argparse

import torch

from reprobook.acr.experiments import run_study
from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-category", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="gpu", help="saved as results/acr/NAME.json")
    args = parser.parse_args()
    device = resolve_device(args.device, "torch")  # asking for cuda without a GPU is an error
    torch.set_num_threads(2)
    cfg = get_chapter("acr").config("full", {"real_model": "smollm2", "study_per_category": args.per_category,
                                             "study_steps": args.steps})
    path = run_study(cfg, args.name, args.seed, device, results_dir=REPO_ROOT / "results" / "acr")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
