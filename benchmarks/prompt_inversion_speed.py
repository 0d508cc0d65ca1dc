"""Speed of prompt inversion (chapter 08).

1. Candidates per second of the CLIP objective's batched evaluation
   (``ClipImageObjective.evaluate``: build the token rows, encode, cosine with the target)
   against a plain text-encoder forward (``CLIP.encode_text``) on the same rows. The goal,
   as for chapter 05's objective: at least 0.8 of the plain forward's throughput.
2. Seconds per inverted prompt of each optimizer at the cpu preset's budgets, against the
   captioner's seconds per caption.

Models are the chapter's tiny CLIP (trained a few steps: speed does not depend on the
weights) and, with ``--open-clip NAME``, an open_clip architecture with random weights.
Saves results/prompt_inversion/speed.json, which chapter 08 shows.

    python benchmarks/prompt_inversion_speed.py                  # about 2 minutes on 2 cores
    python benchmarks/prompt_inversion_speed.py --device cuda --open-clip ViT-H-14
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from reprobook.common import REPO_ROOT, best_time, resolve_device, save_results
from reprobook.discrete import ClipImageObjective, random_free_tokens
from reprobook.prompt_inversion import data as d
from reprobook.prompt_inversion import experiments as ex
from reprobook.prompt_inversion.captioner import Captioner
from reprobook.prompt_inversion.config import Config


def candidate_rate(name, clip, target, batch, n_free, repeats):
    objective = ClipImageObjective(clip, target)
    gen = torch.Generator().manual_seed(0)
    free = objective.allowed_ids.cpu()[torch.randint(len(objective.allowed_ids), (batch, n_free), generator=gen)]
    rows = objective.ids(free)

    def plain():
        with torch.no_grad():
            clip.model.encode_text(rows).sum().item()

    t_plain = best_time(plain, repeats)
    t_eval = best_time(lambda: objective.evaluate(free, batch_size=batch)[0].sum().item(), repeats)
    row = {"model": name, "batch": batch, "context": rows.shape[1], "forward_per_s": batch / t_plain,
           "candidates_per_s": batch / t_eval, "ratio": t_plain / t_eval}
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return row


def seconds_per_prompt(world, target, captioner):
    objective = ClipImageObjective(world.proxy, target)
    gen = torch.Generator().manual_seed(0)
    init = random_free_tokens(objective, 8, gen)
    runs = {**ex.optimizer_runs(world, objective, init, 8, gen),
            "captioner": lambda: captioner(target[None], np.random.default_rng(0))}
    out = {}
    for method, run in runs.items():
        start = time.perf_counter()
        run()
        out[method] = time.perf_counter() - start
    rows = [{"model": "tiny CLIP", "method": m, "seconds_per_prompt": s, "over_captioner": s / out["captioner"]}
            for m, s in out.items()]
    for r in rows:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--open-clip", default=None, help="also time this open_clip architecture (random weights)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "prompt_inversion" / "speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "torch")
    cfg = replace(Config(), clip_steps=2)
    world = ex.build_world(cfg, 0, device)
    scenes = d.training_scenes(cfg, 1, np.random.default_rng(0), [])
    target = d.images(cfg, scenes)[0]
    rows = [candidate_rate("tiny CLIP (chapter's proxy)", world.proxy, target, b, 8, args.repeats)
            for b in args.batches]
    if args.open_clip:
        from reprobook.models.clip import load_open_clip

        big = load_open_clip(args.open_clip, None, device=device, random_weights=True)
        rows += [candidate_rate(f"{args.open_clip} (random weights)", big, target, b, 16, args.repeats)
                 for b in args.batches]
    captioner = Captioner(cfg.image_size, ex.world_values(cfg))
    per_prompt = seconds_per_prompt(world, target, captioner)
    path = save_results(args.output, {"rows": rows, "per_prompt": per_prompt, "device": device}, preset="benchmark",
                        params=vars(args))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
