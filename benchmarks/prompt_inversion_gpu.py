"""GPU check for chapter 08, saved to results/prompt_inversion/gpu.json:

1. correctness on the GPU: the CLIP objective's ids path equals its embeddings path, and its
   one-hot gradient equals the CPU's, for an open_clip architecture with random weights;
2. candidates per second of the objective against a plain text forward at the reference batch
   sizes (GCG's 512, AutoDAN's 256) on that architecture (goal: ratio >= 0.8);
3. the chapter's cpu study on CUDA (every model trained, every method on every target), timed.

    python benchmarks/prompt_inversion_gpu.py              # needs a CUDA GPU; a few minutes on an H200
    python benchmarks/prompt_inversion_gpu.py --device cpu --open-clip ViT-B-32 --batches 8 \\
        --overrides '{"clip_steps": 2, "generator_steps": 2, "generator_images": 64, "captioner_steps": 2,
        "n_targets": 2, "gcg_steps": 1, "random_steps": 1, "pez_steps": 1, "autodan_batch": 4,
        "captioner_sweep": [10]}' --output /tmp/pi_gpu_smoke.json          # a smoke test on the CPU
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device, save_results, seed_everything
from reprobook.discrete import ClipImageObjective
from reprobook.models.clip import load_open_clip
from reprobook.prompt_inversion import experiments as ex


def objective_checks(name: str, device: str, batches: list[int]) -> dict:
    clip_cpu = load_open_clip(name, None, random_weights=True)
    clip_dev = load_open_clip(name, None, device=device, random_weights=True)
    clip_dev.model.load_state_dict(clip_cpu.model.state_dict())
    target = np.random.default_rng(0).random((1, 3, 64, 64)).astype(np.float32)
    obj_cpu, obj_dev = ClipImageObjective(clip_cpu, target), ClipImageObjective(clip_dev, target)
    free = obj_cpu.allowed_ids[torch.randint(len(obj_cpu.allowed_ids), (4, 16), generator=torch.Generator()
                                             .manual_seed(0))]
    by_ids = obj_dev.evaluate(free)[0].cpu()
    with torch.no_grad():
        by_embeds = obj_dev.loss_from_embeds(obj_dev.embedding_weight[free.to(device)]).cpu()
    grad_dev, _ = obj_dev.one_hot_gradient(free[0].to(device))
    grad_cpu, _ = obj_cpu.one_hot_gradient(free[0])
    out = {"model": name, "ids_vs_embeds": float((by_ids - by_embeds).abs().max()),
           "gradient_vs_cpu": float((grad_dev.cpu() - grad_cpu).abs().max() / grad_cpu.abs().max())}
    rates = []
    for b in batches:
        cand = obj_dev.allowed_ids[torch.randint(len(obj_dev.allowed_ids), (b, 16), device=device)]
        rows = obj_dev.ids(cand)

        def plain():
            with torch.no_grad():
                clip_dev.model.encode_text(rows).sum().item()

        def evaluate():
            obj_dev.evaluate(cand, batch_size=b)[0].sum().item()

        times = {}
        for label, fn in (("plain", plain), ("objective", evaluate)):
            fn()
            start = time.perf_counter()
            for _ in range(3):
                fn()
            times[label] = (time.perf_counter() - start) / 3
        rates.append({"batch": b, "forward_per_s": b / times["plain"], "candidates_per_s": b / times["objective"],
                      "ratio": times["plain"] / times["objective"]})
    out["rates"] = rates
    print(json.dumps(out, indent=1), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--open-clip", default="ViT-H-14")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--overrides", default="{}", help="JSON overrides of the cpu preset for the study")
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "prompt_inversion" / "gpu.json"))
    args = parser.parse_args()
    device = resolve_device(args.device, "torch")
    seed_everything(0)
    checks = objective_checks(args.open_clip, device, args.batches)
    overrides = json.loads(args.overrides)
    cfg = get_chapter("prompt_inversion").config("cpu", overrides)
    start = time.perf_counter()
    world = ex.build_world(cfg, 0, device)
    generator, _ = ex.build_generator(world)
    captioner = ex.train_captioner(world, cfg.captioner_images)
    targets = ex.make_targets(world, generator)
    inversions = ex.invert(world, targets, captioner, cfg.n_free[0])
    scores = ex.evaluate(world, generator, targets, inversions)
    table = ex.summary(scores)
    study = {"seconds": time.perf_counter() - start, "overrides": overrides,
             "summary": table.reset_index().to_dict(orient="records")}
    print(table.round(3).to_string(), flush=True)
    path = save_results(args.output, {"device": device, "objective": checks, "study": study}, preset="gpu-check",
                        params=vars(args))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
