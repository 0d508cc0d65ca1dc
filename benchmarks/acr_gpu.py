"""GPU check and GPU study of chapter 05.

The check, run with every other chapter's by ``make gpu-check`` (results/acr/gpu.json, which
chapter 05 shows), or alone:

    python -m reprobook.gpucheck --only acr           # about 60 s on an H200
    python -m reprobook.gpucheck --only acr --smoke   # a tiny random Llama on the CPU

1. correctness: exact losses of 64 free-token rows and the one-hot gradient of one (12 target
   tokens) on the device against the CPU (float32; relative 1e-3), for SmolLM2-135M's
   architecture with random weights (the GPU machine needs no model file);
2. GCG at the reference budget (top-k 250, batch 100): seconds per step on the device.

The study: the SmolLM2 category study at the reference GCG
budget (top-k 250, batch 100, 200 steps growing 1.2x per failed length, cap
5|y|) on five strings per category (twenty in plain mode, plus the famous
quotes twice in chat mode), saved to results/acr/gpu_study.json.

    python benchmarks/acr_gpu.py                    # needs a CUDA GPU; about 10 minutes on an H200
    python benchmarks/acr_gpu.py --per-category 2 --steps 20 --device cpu   # a smoke test
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from reprobook.acr.experiments import run_study
from reprobook.chapters import get_chapter
from reprobook.common import REPO_ROOT, resolve_device
from reprobook.discrete import PromptProblem, gcg, random_free_tokens
from reprobook.gpucheck import relative_difference, synchronize
from reprobook.models import tiny_llama

TOLERANCE = 1e-3  # relative, float32 on both sides


def smollm2_architecture():
    """SmolLM2-135M's architecture (config.json of HuggingFaceTB/SmolLM2-135M-Instruct) with random
    weights: correctness and speed do not depend on the weights, and nothing has to be on disk."""
    import transformers

    cfg = transformers.LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                                   rope_parameters={"rope_theta": 100000.0, "rope_type": "default"}, rms_norm_eps=1e-5,
                                   tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return transformers.LlamaForCausalLM(cfg).eval()


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    model = tiny_llama(300, d_model=32, n_layers=2, n_heads=2) if smoke else smollm2_architecture()
    target = list(range(5, 17)) if smoke else list(range(1000, 1012))  # 12 target tokens, as a short quote
    on_device = copy.deepcopy(model).to(device)
    problems = {d: PromptProblem(m, target) for d, m in (("cpu", model), (device, on_device))}
    rows = random_free_tokens(problems["cpu"], 64 * 16, torch.Generator().manual_seed(0)).reshape(64, 16)
    losses = {d: p.evaluate(rows.to(p.device), batch_size=64)[0] for d, p in problems.items()}
    grads = {d: p.one_hot_gradient(rows[0].to(p.device))[0] for d, p in problems.items()}
    differences = {"losses": relative_difference(losses[device], losses["cpu"]),
                   "one_hot_gradient": relative_difference(grads[device], grads["cpu"])}
    print(differences, flush=True)
    steps, top_k, batch = (3, 16, 8) if smoke else (10, 250, 100)
    gen = torch.Generator().manual_seed(1)
    init = random_free_tokens(problems[device], 16, gen)
    gcg(problems[device], init, 1, top_k=top_k, batch_size=batch, generator=gen)  # warm-up (kernels, allocator)
    synchronize(device)
    start = time.perf_counter()
    gcg(problems[device], init, steps, top_k=top_k, batch_size=batch, generator=gen)
    synchronize(device)
    per_step = (time.perf_counter() - start) / steps
    passed = max(differences.values()) <= TOLERANCE
    figure = (f"losses and gradient equal the CPU's within {max(differences.values()):.1e}; GCG (top-k {top_k}, "
              f"batch {batch}, 16 free tokens) {per_step:.3f} s/step")
    return {"passed": passed, "key_figure": figure, "tolerance": TOLERANCE, "relative_difference": differences,
            "model": "tiny random Llama" if smoke else "SmolLM2-135M's architecture, random weights",
            "target_tokens": len(target),
            "gcg": {"top_k": top_k, "batch": batch, "steps": steps, "seconds_per_step": per_step}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-category", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="gpu_study", help="saved as results/acr/NAME.json")
    args = parser.parse_args()
    device = resolve_device(args.device, "torch")  # asking for cuda without a GPU is an error
    torch.set_num_threads(2)
    cfg = get_chapter("acr").config("full", {"real_model": "smollm2", "study_per_category": args.per_category,
                                             "study_steps": args.steps})
    path = run_study(cfg, args.name, args.seed, device, results_dir=REPO_ROOT / "results" / "acr")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
