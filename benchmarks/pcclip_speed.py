"""What PC-CLIP's design saves: one finetuning step of the text tower with cached image
embeddings, against the same step recomputing the frozen image tower, and against
two-tower finetuning (both towers trained), on the same batch.

    python benchmarks/pcclip_speed.py                       # tiny CLIP and ViT-L-14 (random weights), CPU
    python benchmarks/pcclip_speed.py --models ViT-L-14 --device cuda --batch 64

Random weights: only the cost is measured, so nothing is downloaded. Saves
``results/pcclip/speed.json`` (``--output`` to change), with provenance.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from reprobook.common import REPO_ROOT, resolve_device, save_results
from reprobook.models.clip import ClipModel, load_open_clip, tiny_clip, train_clip_tokenizer
from reprobook.pcclip import pcclip_loss

TEXTS = ["the first has bigger shapes than the second, and more of them",
         "the shapes in the first are further left than in the second",
         "the first has red shapes where the second has blue ones"]


def build(name: str, device: str) -> ClipModel:
    if name == "tiny":
        tok = train_clip_tokenizer(TEXTS * 20, 512, 32)
        return tiny_clip(tok, 512).to(device)
    return load_open_clip(name, None, device=device, random_weights=True)  # cost only: nothing is downloaded


def step_time(clip: ClipModel, mode: str, batch: int, repeats: int, device: str) -> float:
    """Median seconds of one optimizer step in ``mode``: cached | recompute | two-tower."""
    model = clip.model
    model.requires_grad_(False)
    params = list(model.parameters()) if mode == "two-tower" else clip.text_tower_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-8)
    rng = np.random.default_rng(0)
    first = torch.from_numpy(rng.random((batch, 3, clip.image_size, clip.image_size), dtype=np.float32))
    second = torch.from_numpy(rng.random((batch, 3, clip.image_size, clip.image_size), dtype=np.float32))
    ids = clip.tokenizer([TEXTS[i % len(TEXTS)] for i in range(batch)])
    with torch.no_grad():
        u1, u2 = clip.encode_images(first), clip.encode_images(second)
    times = []
    for _ in range(repeats + 1):  # the first step warms up and is dropped
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        if mode == "cached":
            a, b = u1, u2
        elif mode == "recompute":
            with torch.no_grad():
                a, b = model.encode_image(clip.preprocess(first)), model.encode_image(clip.preprocess(second))
        else:
            a, b = model.encode_image(clip.preprocess(first)), model.encode_image(clip.preprocess(second))
        t = clip.encode_ids(ids)
        loss = pcclip_loss(t, a, b)  # two-tower: the same loss, gradients through both towers
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    model.requires_grad_(False)
    return float(np.median(times[1:]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "ViT-L-14"])
    parser.add_argument("--batch", type=int, nargs="+", default=None,
                        help="batch per model (default: 64 for tiny, 4 for others on CPU, 64 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "pcclip" / "speed.json"))
    args = parser.parse_args(argv)
    device = resolve_device(args.device, "torch")
    batches = args.batch or [64 if m == "tiny" or device == "cuda" else 4 for m in args.models]
    if len(batches) != len(args.models):
        parser.error(f"give one --batch per model ({len(args.models)}), got {len(batches)}")
    if min(batches) < 2 or args.repeats < 1:
        parser.error("need --batch >= 2 (a contrastive batch) and --repeats >= 1")
    rows = []
    for name, batch in zip(args.models, batches):
        clip = build(name, device)
        t = {mode: step_time(clip, mode, batch, args.repeats, device) for mode in ("cached", "recompute", "two-tower")}
        rows.append({"model": name, "batch": batch, "device": device, "cached s": t["cached"],
                     "recompute s": t["recompute"], "two-tower s": t["two-tower"],
                     "recompute / cached": t["recompute"] / t["cached"],
                     "two-tower / cached": t["two-tower"] / t["cached"]})
        print(f"{name:>10} batch {batch:>3}: cached {t['cached']:.3f} s, recompute x{rows[-1]['recompute / cached']:.1f}, "
              f"two-tower x{rows[-1]['two-tower / cached']:.1f}", flush=True)
        del clip
    path = save_results(Path(args.output), {"rows": rows}, preset="benchmark", params=vars(args))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
