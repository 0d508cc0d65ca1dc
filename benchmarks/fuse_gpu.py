"""GPU check of chapter 09: the adapter's fit and backward on the device equal the CPU's, and
how long the fit takes at the reference's size.

Run with every other chapter's check by ``make gpu-check``, or alone:

    python -m reprobook.gpucheck --only fuse           # about 45 s on an H200
    python -m reprobook.gpucheck --only fuse --smoke   # toy size on the CPU

Random tubes of the chapter's shapes (d_A = 576 as SmolLM2, d_B = 384 as MiniLM; 8192 words per
k; no model weights are needed):
1. correctness: G_k fitted on the device (float64) against the CPU's, relative difference;
   the backward (t-product with the t-transpose) on the device against the CPU's;
2. time of the fit for k = 1..4 at 8192 words, and at the reference config's 16834 words
   (as many as the budget allows), and of the reference port's pseudo-inverse fit at k = 4.

Saved to results/fuse/gpu.json, which chapter 09 shows.
"""

from __future__ import annotations

import time

import torch

from reprobook.fuse.tensor import fit_adapter, reference_fit, t_product, t_transpose
from reprobook.gpucheck import relative_difference, synchronize

TOLERANCE = 1e-9  # float64 on both sides


def _tubes(n, d, k, seed, device):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, k, generator=gen, dtype=torch.float64).to(device)


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    d_a, d_b = (24, 16) if smoke else (576, 384)
    n_check = 200 if smoke else 4096
    diffs = {}
    for k in (1, 3, 4):
        x_a, x_b = _tubes(n_check, d_a, k, k, "cpu"), _tubes(n_check, d_b, k, 10 + k, "cpu")
        g_cpu = fit_adapter(x_a, x_b, 1e-3)
        g_dev = fit_adapter(x_a.to(device), x_b.to(device), 1e-3)
        diffs[f"fit k={k}"] = relative_difference(g_dev, g_cpu)
        up = _tubes(64, d_b, k, 20 + k, "cpu")
        diffs[f"backward k={k}"] = relative_difference(t_product(up.to(device), t_transpose(g_dev)),
                                                       t_product(up, t_transpose(g_cpu)))
    print(diffs, flush=True)
    timings, cut = [], []
    for n in ([256, 512] if smoke else [8192, 16834]):
        if not deadline.allows(0.3):
            cut.append(n)
            continue
        tubes = [(_tubes(n, d_a, k, k, device), _tubes(n, d_b, k, 10 + k, device)) for k in range(1, 5)]
        synchronize(device)
        start = time.perf_counter()
        for x_a, x_b in tubes:
            fit_adapter(x_a, x_b, 0.0)
        synchronize(device)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        reference_fit(tubes[3][0].float(), tubes[3][1].float())
        synchronize(device)
        timings.append({"words_per_k": n, "fit_k1_to_4_s": ours, "reference_port_k4_float32_s":
                        time.perf_counter() - start})
        print(timings[-1], flush=True)
    worst = max(diffs.values())
    passed = worst <= TOLERANCE
    figure = f"fit and backward equal to the CPU's within {worst:.1e}"
    if timings:
        figure += f"; fit of k = 1..4 at {timings[-1]['words_per_k']} words in {timings[-1]['fit_k1_to_4_s']:.2f} s"
    return {"passed": passed, "key_figure": figure, "tolerance": TOLERANCE, "relative_differences": diffs,
            "timings": timings, "cut_sizes": cut}
