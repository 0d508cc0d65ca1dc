"""Chapter 06's study from the command line, on one GPU or many (``torchrun``).

    python -m reprobook.mohawk.run --preset full --teacher PATH/TO/phi-1_5
    torchrun --nproc_per_node=8 -m reprobook.mohawk.run --preset full --teacher PATH/TO/phi-1_5

Under torchrun every process loads the teacher, draws its own micro-batches
and all-reduces the gradients (``distill.train_stage``); updates keep their
size in tokens (the accumulation steps shrink with the number of processes).
Checkpoints go to ``--checkpoint-dir`` every ``checkpoint_every`` updates and
a rerun resumes from them. Process 0 saves ``results/mohawk/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from ..chapters import get_chapter
from ..common import REPO_ROOT, resolve_device, save_results, seed_everything
from .experiments import run_study


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="full")
    parser.add_argument("--teacher", help="checkpoint folder, cached hub id, or 'smollm2' (default: the preset's)")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="override a parameter (VALUE is JSON when it parses)")
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=REPO_ROOT / "runs" / "mohawk-checkpoints")
    parser.add_argument("--name", default=None, help="saved as results/mohawk/NAME.json (default: the preset)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    overrides = {}
    for key, value in args.param:
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    if args.teacher:
        overrides["teacher"] = args.teacher
    cfg = get_chapter("mohawk").config(args.preset, overrides)  # a clear error before any work
    device = resolve_device(args.device, "torch")
    if device == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        torch.set_num_threads(len(os.sched_getaffinity(0)))  # every core (torch's default may take one)
    rank = 0
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if device == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        rank = torch.distributed.get_rank()
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    seed_everything(args.seed)
    args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    study = run_study(cfg, seed=args.seed, device=device, checkpoint_dir=args.checkpoint_dir)
    if rank == 0:
        path = save_results(REPO_ROOT / "results" / "mohawk" / f"{args.name or args.preset}.json", study,
                            preset=args.preset, params=cfg)
        print(f"saved {path}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
