"""Speed of PRISM's prompt engineer (chapter 10): SmolLM2-135M-Instruct with the chapter's
system prompt (SETTING / FORMAT / EXAMPLES, about 180 tokens), a one-line user turn and the JSON prefill, as
``Engineer.chat_text`` builds them.

1. N streams at once against one by one, N in (1, 4, 8): generated tokens per second of one
   left-padded batched ``model.generate`` of N conversations (built as ``Engineer.sample_raw``
   builds them; each stream its own reference image, so the rows differ a little in length and
   the batch pays for its padding) against N separate calls of one conversation each. Every
   call samples exactly ``--max-new-tokens`` tokens (``min_new_tokens = max_new_tokens``, no
   stop strings) so the token counts are equal; the one-by-one times for N are the sums of the
   first N single calls of a repeat, and at N = 1 both are that same call. Prefill included
   (what a PRISM step pays). Goal: batched >= 3x one by one at N = 8.
2. A shared system-prompt KV cache: the prefill of system prompt + user turn for 8 rows from
   scratch against the system prompt's KV computed once (one row), copied and expanded to the
   8 rows (``DynamicCache.batch_repeat_interleave``) and only the user-turn suffix prefilled.
   The 8 rows share one user turn, so the suffixes have equal lengths (no padding inside the
   sequence). The last position's logits of both must agree (atol 1e-4; asserted).

Both prefills keep only the last position's logits (as ``generate`` does). Timings are the
fastest of ``--repeats`` after a warm-up; the load average is saved with them, since other
jobs may share the cores. Saves results/prism/speed.json, which chapter 10 shows.

    python benchmarks/prism_speed.py            # about 1.5 minutes on 2 idle cores
    python benchmarks/prism_speed.py --smoke    # N in (1, 2), 4 tokens, 2 cached rows
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch

from reprobook.common import REPO_ROOT, save_results
from reprobook.models.pretrained import load_causal_lm
from reprobook.prism.engineer import Engineer
from reprobook.prism.experiments import SYSTEM_PROMPT

SYSTEM = SYSTEM_PROMPT  # the chapter's own system prompt

REFERENCES = [
    "a small red circle on the left on a white background",
    "three large blue squares at the bottom on a black background",
    "one green triangle in the centre on a yellow background",
    "two small purple circles at the top right on a grey background",
    "a large orange square on the right on a white background",
    "four tiny black triangles in a row on a pink background",
    "a yellow circle and a blue square side by side on a black background",
    "one large white triangle at the top on a dark green background",
]


def user_turn(reference: str) -> list[dict]:
    return [{"role": "user", "content": f"Reference image: {reference}. Write a prompt for it."}]


def left_padded(engineer: Engineer, conversations) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask exactly as ``Engineer.sample_raw`` builds them."""
    encoded = [engineer.tokenizer.encode(engineer.chat_text(c), add_special_tokens=False) for c in conversations]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), engineer.pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, width - len(e):] = torch.tensor(e)
        mask[i, width - len(e):] = 1
    return ids, mask


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def generate_fixed(engineer: Engineer, ids, mask, new_tokens: int, seed: int = 0) -> float:
    """Seconds of one ``generate`` that samples exactly ``new_tokens`` per row (sample_raw's settings
    without the stop strings)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        seconds, out = timed(lambda: engineer.model.generate(
            ids, attention_mask=mask, do_sample=True, temperature=engineer.temperature, top_p=engineer.top_p,
            top_k=0, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=engineer.pad_id))
    assert out.shape == (ids.shape[0], ids.shape[1] + new_tokens), out.shape
    return seconds


def prefill(model, ids, mask=None, cache=None) -> tuple[float, torch.Tensor, object]:
    """Seconds, last position's logits and the cache of one forward keeping one position's logits."""
    with torch.no_grad():
        seconds, out = timed(lambda: model(ids, attention_mask=mask, cache=cache, use_cache=True, logits_to_keep=1))
    kv = getattr(out, "cache", None)
    kv = out.past_key_values if kv is None else kv
    return seconds, out.logits[:, -1].float(), kv


def streams(engineer: Engineer, ns, new_tokens: int, repeats: int) -> list[dict]:
    conversations = [user_turn(REFERENCES[i % len(REFERENCES)]) for i in range(max(ns))]
    batches = {n: left_padded(engineer, conversations[:n]) for n in ns}
    singles = [left_padded(engineer, [c]) for c in conversations]
    generate_fixed(engineer, *singles[0], 2)  # warm-up
    best: dict = {}
    for r in range(repeats):
        single = [generate_fixed(engineer, ids, mask, new_tokens, seed=r) for ids, mask in singles]
        for n in ns:
            gen = single[0] if n == 1 else generate_fixed(engineer, *batches[n], new_tokens, seed=r)
            times = {"batched": gen, "one_by_one": sum(single[:n])}
            best[n] = {k: min(v, best.get(n, {}).get(k, float("inf"))) for k, v in times.items()}
        print(f"repeat {r + 1}/{repeats}: " + ", ".join(f"N={n} {best[n]['batched']:.2f} s vs "
                                                      f"{best[n]['one_by_one']:.2f} s" for n in ns), flush=True)
    rows = []
    for n in ns:
        t = best[n]
        tokens = n * new_tokens
        batched, single = tokens / t["batched"], tokens / t["one_by_one"]
        rows.append({"n": n, "new_tokens_per_row": new_tokens, "context_tokens": int(batches[n][0].shape[1]),
                     "batched_s": t["batched"], "one_by_one_s": t["one_by_one"],
                     "batched_tokens_per_s": batched, "one_by_one_tokens_per_s": single, "ratio": batched / single})
    return rows


def shared_cache(engineer: Engineer, rows: int, repeats: int, atol: float = 1e-4) -> dict:
    model, tok = engineer.model, engineer.tokenizer
    text = engineer.chat_text(user_turn(REFERENCES[0]))
    cut = text.index("<|im_start|>user")  # the system turn ends here
    prefix = tok.encode(text[:cut], add_special_tokens=False)
    suffix = tok.encode(text[cut:], add_special_tokens=False)
    assert prefix + suffix == tok.encode(text, add_special_tokens=False), "the seam changes the tokenization"
    full_ids = torch.tensor([prefix + suffix] * rows)
    suffix_ids = torch.tensor([suffix] * rows)
    prefix_s, _, prefix_kv = prefill(model, torch.tensor([prefix]))

    def cached():
        kv = copy.deepcopy(prefix_kv)
        kv.batch_repeat_interleave(rows)
        return prefill(model, suffix_ids, cache=kv)

    full_times, cached_times = [], []
    _, full_logits, _ = prefill(model, full_ids)  # warm-up, and the reference logits
    _, cached_logits, _ = cached()
    for _ in range(repeats):
        full_times.append(prefill(model, full_ids)[0])
        cached_times.append(timed(cached)[0])
    diff = float((full_logits - cached_logits).abs().max())
    assert torch.allclose(full_logits, cached_logits, atol=atol), f"cached prefix changes the logits by {diff}"
    full_s, cached_s = min(full_times), min(cached_times)
    out = {"rows": rows, "system_prefix_tokens": len(prefix), "user_suffix_tokens": len(suffix),
           "identical_user_turns": True, "full_prefill_s": full_s, "cached_prefill_s": cached_s,
           "system_prefix_forward_s": prefix_s, "ratio": full_s / cached_s,
           "ratio_with_prefix_forward": full_s / (cached_s + prefix_s),
           "max_abs_logit_difference": diff, "atol": atol}
    print(f"cache: full {full_s:.3f} s, cached {cached_s:.3f} s (+ {prefix_s:.3f} s once), "
          f"max |dlogit| {diff:.2e}", flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--cache-rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="N in (1, 2), 4 tokens, 2 cached rows, 1 repeat")
    parser.add_argument("--output", default=str(REPO_ROOT / "results" / "prism" / "speed.json"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.ns, args.max_new_tokens, args.cache_rows, args.repeats = [1, 2], 4, 2, 1
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    model, tok = load_causal_lm("smollm2")
    engineer = Engineer(model, tok, SYSTEM, max_new_tokens=args.max_new_tokens)
    system_tokens = len(tok.encode(SYSTEM, add_special_tokens=False))
    print(f"system prompt: {system_tokens} tokens", flush=True)

    rows = streams(engineer, args.ns, args.max_new_tokens, args.repeats)
    cache = shared_cache(engineer, args.cache_rows, args.repeats)
    top = rows[-1]
    results = {"model": "SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32)", "device": "cpu",
               "threads": args.threads, "system_prompt_tokens": system_tokens, "streams": rows,
               "shared_system_cache": cache,
               "goal_ratio": 3.0, "goal_n": 8, "ratio_at_largest_n": top["ratio"],
               "meets_goal": bool(top["n"] >= 8 and top["ratio"] >= 3.0),
               "load_average_before": load_before, "load_average_after": os.getloadavg()}
    path = save_results(args.output, results, preset="benchmark-smoke" if args.smoke else "benchmark",
                        params=vars(args))

    print(f"\n{'N':>3} {'batched tok/s':>14} {'1-by-1 tok/s':>13} {'ratio':>6}")
    for r in rows:
        print(f"{r['n']:>3} {r['batched_tokens_per_s']:>14.1f} {r['one_by_one_tokens_per_s']:>13.1f} "
              f"{r['ratio']:>6.2f}")
    print(f"prefill of {cache['rows']} rows ({cache['system_prefix_tokens']} + {cache['user_suffix_tokens']} tokens): "
          f"full {cache['full_prefill_s']:.3f} s, cached system prompt {cache['cached_prefill_s']:.3f} s, "
          f"ratio {cache['ratio']:.1f}x ({cache['ratio_with_prefix_forward']:.1f}x counting the prefix forward)")
    print(f"goal >= 3x at N = 8: {'met' if results['meets_goal'] else 'not met'} "
          f"(ratio {top['ratio']:.2f} at N = {top['n']}); saved {path}")


if __name__ == "__main__":
    main()
