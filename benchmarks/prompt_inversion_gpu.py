"""GPU check and GPU study of chapter 08.

The check, run with every other chapter's by ``make gpu-check`` (results/prompt_inversion/gpu.json,
which chapter 08 shows), or alone:

    python -m reprobook.gpucheck --only prompt_inversion           # about 75 s on an H200
    python -m reprobook.gpucheck --only prompt_inversion --smoke   # the tiny CLIP, batch 8, on the CPU

1. correctness on ViT-B-32 with random weights: the CLIP objective's ids path equals its
   embeddings path on the device, its one-hot gradient equals the CPU's (1e-4);
2. candidates per second of the objective against a plain text forward at batches 256 and 512
   on ViT-H-14 (SD 2.1's text encoder) when the budget allows building it, else on ViT-B-32.

The study, saved to results/prompt_inversion/gpu_study.json:

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
import copy
import json
import time

import numpy as np
import torch

from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device, save_results, seed_everything
from reprobook.discrete import ClipImageObjective
from reprobook.gpucheck import device_time, relative_difference
from reprobook.models.clip import load_open_clip
from reprobook.prompt_inversion import experiments as ex


def objective_correctness(name: str, device: str) -> tuple[dict, ClipImageObjective]:
    """The CLIP objective's ids path against its embeddings path on the device, and its one-hot
    gradient against the CPU's, for an open_clip architecture with random weights."""
    from pcclip_speed import build  # chapter 07's benchmark: the tiny CLIP or open_clip with random weights

    clip_cpu = build(name, "cpu")
    clip_dev = copy.deepcopy(clip_cpu).to(device)
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
           "gradient_vs_cpu": relative_difference(grad_dev, grad_cpu)}
    print(out, flush=True)
    return out, obj_dev


def objective_rates(obj: ClipImageObjective, batches: list[int], device: str) -> list[dict]:
    """Candidates per second of the objective against a plain ``encode_text`` of the same rows."""
    rates = []
    for b in batches:
        cand = obj.allowed_ids[torch.randint(len(obj.allowed_ids), (b, 16), device=device)]
        rows = obj.ids(cand)

        def plain():
            with torch.no_grad():
                obj.clip.model.encode_text(rows)

        times = {"plain": device_time(plain, device), "objective": device_time(lambda: obj.evaluate(cand, batch_size=b),
                                                                                device)}
        rates.append({"batch": b, "forward_per_s": b / times["plain"], "candidates_per_s": b / times["objective"],
                      "ratio": times["plain"] / times["objective"]})
        print(rates[-1], flush=True)
    return rates


def objective_checks(name: str, device: str, batches: list[int]) -> dict:
    out, obj = objective_correctness(name, device)
    return {**out, "rates": objective_rates(obj, batches, device)}


TOLERANCE = 1e-4  # ids vs embeddings (absolute, a cosine similarity) and gradient vs CPU (relative)


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    rates_model = "tiny" if smoke else "ViT-B-32"
    correctness, obj = objective_correctness(rates_model, device)
    if not smoke and deadline.allows(0.6):  # the reference's text encoder, if the budget allows building it
        del obj
        target = np.random.default_rng(0).random((1, 3, 64, 64)).astype(np.float32)
        obj = ClipImageObjective(load_open_clip("ViT-H-14", None, device=device, random_weights=True), target)
        rates_model = "ViT-H-14"
    rates = objective_rates(obj, [8] if smoke else [256, 512], device)
    passed = correctness["ids_vs_embeds"] <= TOLERANCE and correctness["gradient_vs_cpu"] <= TOLERANCE
    r = rates[-1]
    figure = (f"ids == embeddings within {correctness['ids_vs_embeds']:.1e}, gradient == CPU within "
              f"{correctness['gradient_vs_cpu']:.1e}; {rates_model} batch {r['batch']}: {r['candidates_per_s']:,.0f} "
              f"candidates/s, {r['ratio']:.2f} of a plain text forward")
    return {"passed": passed, "key_figure": figure, "tolerance": TOLERANCE, "correctness": correctness,
            "rates_model": rates_model, "rates": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--open-clip", default="ViT-H-14")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--overrides", default="{}", help="JSON overrides of the cpu preset for the study")
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "prompt_inversion" / "gpu_study.json"))
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
