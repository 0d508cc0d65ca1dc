"""GPU check of chapter 10: the engineer's batched, left-padded sampling on the device.

Run with every other chapter's check by ``make gpu-check``, or alone:

    python -m reprobook.gpucheck --only prism           # about 40 s on an H200
    python -m reprobook.gpucheck --only prism --smoke   # a tiny random Llama on the CPU

SmolLM2-135M's architecture with random weights (nothing has to be on disk), prompts of random
ids of PRISM's lengths (a ~170-token system prompt plus turns: 240-450 tokens):
1. correctness: the last position's logits of 10 left-padded rows on the device against the CPU's
   (float32, relative 1e-3), and greedy continuations of the left-padded batch on the device
   equal to each row's continuation alone (left padding changes nothing);
2. speed: tokens/s of N = 10 streams (the paper's N) in one batched ``generate`` against one by
   one, 24 new tokens each.

Saved to results/prism/gpu.json, which chapter 10 shows.
"""

from __future__ import annotations

import copy
import time

import torch

from acr_gpu import smollm2_architecture  # SmolLM2's architecture, random weights; same directory
from reprobook.gpucheck import relative_difference, synchronize
from reprobook.models.tiny import tiny_llama

TOLERANCE = 1e-3  # relative, float32 on both sides
PAD = 2


def left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    return ids, mask


def generate(model, ids, mask, new_tokens: int, device: str) -> torch.Tensor:
    with torch.no_grad():
        out = model.generate(ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=PAD)
    return out[:, ids.shape[1]:].cpu()


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    model = tiny_llama(300, d_model=32, n_layers=2, n_heads=2) if smoke else smollm2_architecture()
    vocab = model.config.vocab_size
    n, new_tokens = (3, 4) if smoke else (10, 24)
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(20 if smoke else 240, 40 if smoke else 450, (n,), generator=gen).tolist()
    rows = [torch.randint(3, vocab, (k,), generator=gen).tolist() for k in lengths]
    ids, mask = left_padded(rows)
    on_device = copy.deepcopy(model).to(device)
    with torch.no_grad():
        logits = {d: m(ids.to(d), attention_mask=mask.to(d), logits_to_keep=1).logits[:, -1].float().cpu()
                  for d, m in (("cpu", model), (device, on_device))}
    difference = relative_difference(logits[device], logits["cpu"])
    batched = generate(on_device, ids, mask, new_tokens, device)
    alone = torch.cat([generate(on_device, *left_padded([r]), new_tokens, device) for r in rows])
    same_tokens = float((batched == alone).float().mean())
    print({"logits": difference, "greedy tokens equal, batched vs alone": same_tokens}, flush=True)
    timing = {}
    if deadline.allows(0.3):
        generate(on_device, *left_padded(rows[:1]), 2, device)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        generate(on_device, ids, mask, new_tokens, device)
        synchronize(device)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        for r in rows:
            generate(on_device, *left_padded([r]), new_tokens, device)
        synchronize(device)
        single_s = time.perf_counter() - start
        timing = {"n": n, "new_tokens": new_tokens, "batched_tokens_per_s": n * new_tokens / batched_s,
                  "one_by_one_tokens_per_s": n * new_tokens / single_s, "ratio": single_s / batched_s}
        print(timing, flush=True)
    # greedy ties between near-equal logits may flip a token under a different kernel: ask for 95%
    passed = difference <= TOLERANCE and same_tokens >= 0.95
    figure = f"logits equal the CPU's within {difference:.1e}; batched greedy tokens {same_tokens:.0%} equal to alone"
    if timing:
        figure += (f"; N = {n} streams batched {timing['batched_tokens_per_s']:.0f} tokens/s, "
                   f"{timing['ratio']:.1f}x one by one")
    return {"passed": passed, "key_figure": figure, "tolerance": TOLERANCE, "relative_difference": difference,
            "greedy_token_agreement": same_tokens, "timing": timing,
            "model": "tiny random Llama" if smoke else "SmolLM2-135M's architecture, random weights"}
