"""GPU check and GPU study of chapter 07.

The check, run with every other chapter's by ``make gpu-check`` (results/pcclip/gpu.json, which
chapter 07 shows), or alone:

    python -m reprobook.gpucheck --only pcclip           # about 60 s on an H200
    python -m reprobook.gpucheck --only pcclip --smoke   # the tiny CLIP on the CPU

1. correctness: PC-CLIP's loss on the device equals the CPU's (float64, 1e-10), and the tiny
   CLIP's text embeddings too (float32, relative 1e-4);
2. the speed ratios of `pcclip_speed.py` at ViT-L-14 / 224 with random weights, batch 64 (goals:
   cached embeddings >= 5x faster than recomputing the frozen tower, >= 15x than two towers).

The study, saved to results/pcclip/gpu_study.json:

1. correctness on the GPU: PC-CLIP's loss on CUDA equals the CPU's on the same inputs
   (float64, 1e-10);
2. the speed ratios of `pcclip_speed.py` at ViT-L-14 / 224 with random weights, batch 64 (goals:
   cached embeddings >= 5x faster than recomputing the frozen tower, >= 15x than two towers);
3. the chapter's study (every arm, five replicates) at the `long` preset's image size on CUDA.

    python benchmarks/pcclip_gpu.py                   # needs a CUDA GPU; a few minutes on an H200
    python benchmarks/pcclip_gpu.py --device cpu --models tiny --batch 8 --pretrain-steps 20 --finetune-steps 4 \
        --seeds 2 --output /tmp/pcclip_gpu_smoke.json     # a smoke test on the CPU
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device, save_results, seed_everything
from reprobook.gpucheck import relative_difference
from reprobook.pcclip import experiments as ex
from reprobook.pcclip import pcclip_loss


def loss_matches(device: str) -> float:
    """|loss on device - loss on CPU| for random float64 inputs."""
    g = torch.Generator().manual_seed(0)
    t, u1, u2 = (torch.randn(64, 768, generator=g, dtype=torch.float64) for _ in range(3))
    return abs(float(pcclip_loss(t.to(device), u1.to(device), u2.to(device))) - float(pcclip_loss(t, u1, u2)))


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    import pcclip_speed  # the CPU benchmark's timing code, same directory

    tiny = pcclip_speed.build("tiny", "cpu")
    with torch.no_grad():
        text_cpu = tiny.encode_texts(pcclip_speed.TEXTS)
        text_device = copy.deepcopy(tiny).to(device).encode_texts(pcclip_speed.TEXTS)
    differences = {"loss_float64": loss_matches(device),
                   "tiny_text_embeddings": relative_difference(text_device, text_cpu)}
    print(differences, flush=True)
    speed = []
    for name in (["tiny"] if smoke else ["ViT-L-14"]):
        clip = pcclip_speed.build(name, device)
        batch = 8 if smoke else 64
        times = {m: pcclip_speed.step_time(clip, m, batch, 3, device) for m in ("cached", "recompute", "two-tower")}
        speed.append({"model": name, "batch": batch, **{f"{m} s": v for m, v in times.items()},
                      "recompute / cached": times["recompute"] / times["cached"],
                      "two-tower / cached": times["two-tower"] / times["cached"]})
        print(speed[-1], flush=True)
    passed = differences["loss_float64"] <= 1e-10 and differences["tiny_text_embeddings"] <= 1e-4
    s = speed[-1]
    figure = (f"loss == CPU within {differences['loss_float64']:.1e}; {s['model']} batch {s['batch']}: cached "
              f"{s['recompute / cached']:.1f}x faster than recomputing, {s['two-tower / cached']:.1f}x than two towers")
    return {"passed": passed, "key_figure": figure, "differences": differences, "speed": speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--models", nargs="+", default=["tiny", "ViT-L-14"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "pcclip" / "gpu_study.json"))
    args = parser.parse_args()
    device = resolve_device(args.device, "torch")  # asking for cuda without a GPU is an error
    seed_everything(args.seed)
    start = time.perf_counter()
    record = {"loss_abs_diff_vs_cpu": loss_matches(device)}
    assert record["loss_abs_diff_vs_cpu"] < 1e-10, record
    print(f"loss on {device} == CPU: |diff| = {record['loss_abs_diff_vs_cpu']:.2e}", flush=True)

    import pcclip_speed  # the CPU benchmark's timing code, same directory

    speed = []
    for name in args.models:
        clip = pcclip_speed.build(name, device)
        times = {m: pcclip_speed.step_time(clip, m, args.batch, 5, device) for m in ("cached", "recompute", "two-tower")}
        speed.append({"model": name, "batch": args.batch, **{f"{m} s": v for m, v in times.items()},
                      "recompute / cached": times["recompute"] / times["cached"],
                      "two-tower / cached": times["two-tower"] / times["cached"]})
        print(speed[-1], flush=True)
        del clip
        if device == "cuda":
            torch.cuda.empty_cache()
    record["speed"] = speed

    cfg = get_chapter("pcclip").config("long", {"pretrain_steps": args.pretrain_steps, "seeds": args.seeds,
                                                "finetune_steps": args.finetune_steps, "long_study": False})
    base = ex.build_base(cfg, args.seed, device)
    sets = ex.make_eval_sets(base.clip, cfg, args.seed)
    lrs = ex.lr_sweep(base, cfg, args.seed, sets)[1]
    results, _ = ex.run_arms(base, cfg, args.seed, sets, lrs)
    mean, se = ex.mean_se(results, ["diff mean", "zero-shot mean", "edit size", "edit count"])
    record["study"] = {"mean": mean.reset_index().to_dict(orient="records"),
                       "se": se.reset_index().to_dict(orient="records"), "lrs": lrs}
    print(mean.round(3).to_string(), flush=True)
    record["gpu"] = torch.cuda.get_device_name() if device == "cuda" else "none"
    record["seconds"] = time.perf_counter() - start
    path = save_results(args.output, record, preset="long", params=cfg)
    print(f"{record['seconds']:.0f} s, saved {path}")


if __name__ == "__main__":
    main()
