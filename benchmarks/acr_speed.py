"""Speed of GCG's candidate evaluation (chapter 05): candidates evaluated per
second by ``PromptProblem.evaluate`` (the model's body on the whole sequence,
the output layer only on the target slice, plus the loss and the exact-match
check) against the model's plain forward pass ``model(input_ids).logits``
(all positions, all vocabulary, nothing else) on the same batch of sequences.
A ratio near 1 is the limit of a candidate evaluation built on forward
passes; above 1, skipping the logits off the target slice saves work.

Also one whole GCG step (gradient + candidates) per second, for scale.
Saves results/acr/speed.json, which chapter 05 shows.

    python benchmarks/acr_speed.py                 # about 2 minutes on 2 cores
    python benchmarks/acr_speed.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse

import torch

from reprobook.common import REPO_ROOT, best_time, resolve_device, save_results
from reprobook.discrete import PromptProblem, gcg, random_free_tokens
from reprobook.models import load_causal_lm, tiny_llama


def measure(name, model, batch, prompt_len, target_len, repeats, device):
    gen = torch.Generator().manual_seed(0)
    vocab = model.get_input_embeddings().weight.shape[0]
    target = torch.randint(vocab, (target_len,), generator=gen)
    problem = PromptProblem(model, target)
    free = torch.randint(vocab, (batch, prompt_len), generator=gen).to(device)
    seqs = problem.sequences(free)

    def plain():
        with torch.no_grad():
            model(input_ids=seqs).logits.sum().item()

    t_plain = best_time(plain, repeats)
    t_eval = best_time(lambda: problem.evaluate(free, batch_size=batch)[0].sum().item(), repeats)
    t_step = best_time(lambda: gcg(problem, random_free_tokens(problem, prompt_len, gen), 1, batch_size=batch,
                                   eval_batch_size=batch), max(1, repeats // 2))
    row = {"model": name, "batch": batch, "sequence": seqs.shape[1], "forward_per_s": batch / t_plain,
           "candidates_per_s": batch / t_eval, "ratio": t_plain / t_eval, "gcg_steps_per_s": 1 / t_step}
    print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 100])
    parser.add_argument("--prompt-len", type=int, default=20)
    parser.add_argument("--target-len", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "acr" / "speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "torch")

    models = [("tiny Llama (chapter's canary model)",
               tiny_llama(1024, d_model=128, n_layers=4, n_heads=4, context=128).eval().requires_grad_(False))]
    smol, _ = load_causal_lm("smollm2", device=device)
    models.append(("SmolLM2-135M-Instruct", smol))
    rows = [measure(name, model.to(device), b, args.prompt_len, args.target_len, args.repeats, device)
            for name, model in models for b in args.batches]
    path = save_results(args.output, {"rows": rows, "device": device}, preset="benchmark", params=vars(args))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
