"""Speed of the chunked SSD scan (chapter 06's Mamba-2 mixer): ``ssd_scan``, built on batched
matmuls over a ``[batch, chunk, head, position, *]`` layout, against the scan it replaced,
kept here verbatim as :func:`einsum_scan` (a four-operand einsum inside chunks, three-operand
einsums for the chunk states and their read-out). Both run forward only, at batch 1 and
chunk 64, on SmolLM2-135M's head shape (9 heads, head dim 64, state 64) and the chapter's
small one (4 heads, 32, 32), in float32 and float64; the float64 rows also record the
largest difference between the two outputs (it should stay <= 1e-12).
Saves results/mohawk/scan_speed.json.

    python benchmarks/ssd_scan_speed.py                # about 2 minutes on 2 cores
    python benchmarks/ssd_scan_speed.py --lengths 1024 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import os

import torch
import torch.nn.functional as F

from reprobook.common import REPO_ROOT, best_time, save_results
from reprobook.mohawk.ssd import _check_ssd_inputs, segsum, ssd_scan

SHAPES = {"SmolLM2-135M (9 heads, 64, 64)": (9, 64, 64), "chapter (4 heads, 32, 32)": (4, 32, 32)}


def einsum_scan(x, log_alpha, B, C, D=None, chunk: int = 64) -> torch.Tensor:
    """The library's scan before the matmul layout (the reference this benchmark times against)."""
    _check_ssd_inputs(x, log_alpha, B, C, D)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    b, T, h, p = x.shape
    n = B.shape[-1]
    pad = (-T) % chunk
    if pad:
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        log_alpha = F.pad(log_alpha, (0, 0, 0, pad))
    c = (T + pad) // chunk
    x, B, C = (t.reshape(b, c, chunk, h, t.shape[-1]) for t in (x, B, C))
    la = log_alpha.reshape(b, c, chunk, h).permute(0, 3, 1, 2)  # [b, h, c, l]

    # 1. Inside each chunk: the diagonal blocks of M.
    L = torch.exp(segsum(la))  # [b, h, c, l, l]
    y = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, L, x)

    # 2. Each chunk's contribution to the state at its end: decay from s to the chunk's end,
    #    sum_{k=s+1..l} log_alpha_k, as a reversed cumulative sum (stable, <= 0).
    to_end = la.flip(-1).cumsum(-1).flip(-1) - la
    chunk_states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, torch.exp(to_end), x)

    # 3. Carry the state across chunks (linear in the number of chunks).
    chunk_decay = torch.exp(la.sum(-1))  # [b, h, c]: the decay over a whole chunk
    state = x.new_zeros(b, h, p, n)
    states = []
    for k in range(c):
        states.append(state)
        state = state * chunk_decay[:, :, k, None, None] + chunk_states[:, k]
    states = torch.stack(states, dim=1)  # [b, c, h, p, n]: the state entering each chunk

    # 4. The carried state's contribution inside each chunk: decay from the chunk's start to t.
    from_start = torch.exp(la.cumsum(-1))  # [b, h, c, l]
    y = y + torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, from_start)
    y = y.reshape(b, c * chunk, h, p)[:, :T]
    if D is not None:
        y = y + D[:, None] * x.reshape(b, c * chunk, h, p)[:, :T]
    return y


def ssd_inputs(T, h, p, n, dtype, seed=0):
    """Random inputs on the mixer's scale: B and C of norm about 1 (the mixer starts them small), decays in (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, T, h, p, generator=g, dtype=dtype)
    log_alpha = -F.softplus(torch.randn(1, T, h, generator=g, dtype=dtype))
    B, C = (torch.randn(1, T, h, n, generator=g, dtype=dtype) / n ** 0.5 for _ in range(2))
    D = torch.ones(h, dtype=dtype)
    return x, log_alpha, B, C, D


def measure(shape_name, T, dtype, chunk, repeats):
    h, p, n = SHAPES[shape_name]
    inputs = ssd_inputs(T, h, p, n, dtype)
    with torch.no_grad():
        # Alternating single timings, so that both scans see the same load on a shared machine.
        t_old, t_new = math.inf, math.inf
        for _ in range(repeats):
            t_old = min(t_old, best_time(lambda: einsum_scan(*inputs, chunk=chunk), 1))
            t_new = min(t_new, best_time(lambda: ssd_scan(*inputs, chunk=chunk), 1))
        diff = (ssd_scan(*inputs, chunk=chunk) - einsum_scan(*inputs, chunk=chunk)).abs().max().item()
    row = {"shape": shape_name, "heads": h, "head_dim": p, "state": n, "T": T,
           "dtype": str(dtype).removeprefix("torch."), "einsum_s": t_old, "matmul_s": t_new,
           "speedup": t_old / t_new, "max_abs_diff": diff}
    print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "mohawk" / "scan_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = [measure(shape, T, dtype, args.chunk, args.repeats)
            for shape in SHAPES for dtype in (torch.float32, torch.float64) for T in args.lengths]
    worst = max(r["max_abs_diff"] for r in rows if r["dtype"] == "float64")
    print(f"largest float64 difference: {worst:.3g}")
    # Other jobs on the cores slow both scans (two threads then wait on each other): the load average
    # tells how clean the timings are.
    load = {"before": load_before, "after": os.getloadavg()}
    print(f"1-minute load average: {load['before'][0]:.1f} before, {load['after'][0]:.1f} after")
    results = {"rows": rows, "max_abs_diff_float64": worst, "device": "cpu", "load_average": load}
    path = save_results(args.output, results, preset="benchmark", params=vars(args))
    print(f"saved {path}")
    if worst > 1e-12:
        raise SystemExit(f"the two scans differ by {worst:.3g} in float64 (more than 1e-12)")


if __name__ == "__main__":
    main()
