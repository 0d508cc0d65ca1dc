"""Speed of FUSE's adapter (chapter 09).

1. The fit: ours (both tokenizers' batch encoders; per k one float64 ridge solve per rfft
   frequency, floor(k/2) + 1 of them) against a port of the reference code's fit (every word
   tokenized on its own, as its ``set_dataset`` does; a ``torch.linalg.pinv`` of every one of the
   k full-FFT slices; the outer-product t-product), on the same words grouped the same way.
   The port is timed in float32 (the reference computes in complex64); its G is compared with
   ours in float64 at lam = 0 on the first 1024 words of each k (goal: relative difference
   <= 1e-6). Goal: ours >= 10x faster.
2. The backward: FUSE's ``dL/dX_B -> dL/d onehot_A`` (t-products, then the product with A's
   embedding matrix) as a fraction of B's forward + backward for the same prompt.

Saves results/fuse/speed.json, which chapter 09 shows.

    python benchmarks/fuse_speed.py        # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from reprobook.common import REPO_ROOT, best_time, save_results
from reprobook.fuse import experiments as ex
from reprobook.fuse.adapter import Adapter
from reprobook.fuse.config import Config
from reprobook.fuse.objective import CrossTokenizerObjective
from reprobook.fuse.tensor import fit_adapter, reference_fit
from reprobook.fuse.words import WordTokens, fitting_words, tokenize_words
from reprobook.models import minilm_embed


def groups(words: WordTokens, K: int, per_k: int) -> dict[int, np.ndarray]:
    ks = words.k
    return {k: np.flatnonzero(ks == k)[:per_k] for k in range(1, K + 1)}


def our_fit(word_list, models, K, per_k, dtype=torch.float64):
    words = tokenize_words(word_list, models.tokenizer_a, models.tokenizer_b)
    out = {}
    for k, idx in groups(words, K, per_k).items():
        x_a, x_b = words.tubes(idx, models.emb_a, models.emb_b, k)
        out[k] = fit_adapter(x_a.to(dtype), x_b.to(dtype), 0.0)
    return out


def reference_port_fit(word_list, models, K, per_k, dtype=torch.float32):
    ids_a = [models.tokenizer_a(" " + w, add_special_tokens=False)["input_ids"] for w in word_list]
    ids_b = [models.tokenizer_b(w, add_special_tokens=False)["input_ids"] for w in word_list]
    words = WordTokens(list(word_list), ids_a, ids_b)
    out = {}
    for k, idx in groups(words, K, per_k).items():
        x_a, x_b = words.tubes(idx, models.emb_a, models.emb_b, k)
        out[k] = reference_fit(x_a.to(dtype), x_b.to(dtype))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--equality-words", type=int, default=1024,
                        help="words per k for the float64 comparison of G (the port's SVDs are slow)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = Config()
    models = ex.load_models(cfg)
    word_list = fitting_words(models.token_texts, models.tokenizer_b, cfg.min_word_chars)
    K, per_k = cfg.K, cfg.max_words_per_k
    counts = {k: len(v) for k, v in groups(tokenize_words(word_list, models.tokenizer_a, models.tokenizer_b), K,
                                          per_k).items()}
    print(f"{len(word_list)} words; per k: {counts}", flush=True)

    ours_s = best_time(lambda: our_fit(word_list, models, K, per_k), args.repeats)
    print(f"ours: {ours_s:.2f} s", flush=True)
    ref_s = best_time(lambda: reference_port_fit(word_list, models, K, per_k), 1)
    print(f"reference port (float32): {ref_s:.2f} s", flush=True)
    ours = our_fit(word_list, models, K, args.equality_words)
    ref64 = reference_port_fit(word_list, models, K, args.equality_words, dtype=torch.float64)
    rel = {k: float((ours[k] - ref64[k]).norm() / ref64[k].norm()) for k in ours}
    print(f"relative difference of G (float64, lam = 0): {rel}", flush=True)

    # The backward on a prompt of the chapter's kind: 6 word tokens.
    allowed = ex.token_mask(models.token_texts, "words", cfg.min_word_chars)
    free = ex.random_prompts(allowed, 1, cfg.prompt_tokens, np.random.default_rng(0))[0]
    target = minilm_embed(["three small red circles on the left on a black background"])[0]
    obj = CrossTokenizerObjective(models.token_texts, models.emb_a, ex.minilm_similarity(models, target),
                                  Adapter(ours), allowed)
    _, ids_b, grad_b, alignment = obj.b_side(free)
    b_s = best_time(lambda: obj.b.loss_and_grad(ids_b), 20)
    t_s = best_time(lambda: obj.adapter.backward(grad_b, alignment), 20)
    proj_s = best_time(lambda: obj.adapter.backward(grad_b, alignment)[0].float() @ models.emb_a.T, 20)
    print(f"B forward + backward {b_s * 1e3:.1f} ms; FUSE t-products {t_s * 1e3:.2f} ms; "
          f"with the product by E_A^T {proj_s * 1e3:.1f} ms", flush=True)
    results = {"words": len(word_list), "words_per_k": counts, "our_fit_s": ours_s, "reference_port_fit_s": ref_s,
               "speedup": ref_s / ours_s, "goal_speedup": 10.0, "g_relative_difference": rel,
               "equality_words_per_k": args.equality_words,
               "b_forward_backward_ms": b_s * 1e3, "fuse_t_products_ms": t_s * 1e3,
               "fuse_backward_with_projection_ms": proj_s * 1e3,
               "backward_fraction_of_b": proj_s / b_s, "prompt_tokens": cfg.prompt_tokens}
    path = save_results(REPO_ROOT / "results" / "fuse" / "speed.json", results, preset="benchmark")
    print(f"speedup {ref_s / ours_s:.1f}x; saved {path}")


if __name__ == "__main__":
    main()
