"""The ``long`` preset's two extra studies: comparatives written by a real
LLM (SmolLM2-135M-Instruct) instead of the grammar, and paraphrase transfer
through a frozen pretrained sentence encoder (all-MiniLM-L6-v2) with a
trainable head."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..common import progress
from ..models import load_causal_lm, minilm_embed
from ..models.clip import clip_loss
from ..world import HELD_OUT_PAIRS, caption, render, sample_scenes
from .config import Config
from .core import pcclip_loss
from .experiments import DIFF_ATTRIBUTES, Base, difference_accuracy, finetune_data, split_rng
from .finetune import FinetuneData, finetune_text_tower

SYSTEM = ("You compare two pictures of simple coloured shapes. Answer with one short sentence that starts with "
          "'The first' and says how the first picture differs from the second.")

# Markers after which the reference filter cuts a response, and substrings for which it drops one
# (a selection of its list: the rest are artefacts of LLaMA-2-13B that a 135M model does not produce).
_CUT_AT = ("Q:", "I hope", "#2:", "Note")
_DROP_IF = ("#include", "#define", "</p>", "<br>", "*", "{{{", "?????????", "!!!!!", "-----", ". . . . ")


def clean_comparative(text: str, min_chars: int = 60) -> str | None:
    """The reference's filter for LLM-written differences: drop a response with code, markup or
    non-ASCII characters; cut it where a new question, a note or a second answer starts; remove
    "#1:", "A: " and "#", newlines, tabs and double spaces; drop it when shorter than ``min_chars``.
    Returns the cleaned text, or None when dropped."""
    if any(marker in text for marker in _DROP_IF) or not text.isascii():
        return None
    text = text.strip()
    for marker in _CUT_AT:
        if marker in text:
            text = text[: text.find(marker)].strip()
    text = text.replace("#1:", "").replace("A: ", "").replace("#", "").strip()
    text = text.replace("\n", " ").replace("\t", " ")
    while "  " in text:
        text = text.replace("  ", " ")
    text = text.strip()
    if text.startswith(". "):
        text = text[2:].strip()
    return text if len(text) >= min_chars else None


def first_sentence(text: str | None) -> str | None:
    """Up to and including the first full stop followed by a space (None stays None)."""
    if text is None:
        return None
    cut = text.find(". ")
    return text if cut < 0 else text[: cut + 1]


def llm_comparatives(first_captions: list[str], second_captions: list[str], *, batch_size: int = 16,
                     max_new_tokens: int = 40) -> list[str]:
    """SmolLM2-135M-Instruct, greedy, asked how the first caption's picture differs from the
    second's; batched with left padding and our own system prompt (its template would inject one)."""
    model, tok = load_causal_lm("smollm2")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prompts = [tok.apply_chat_template(
        [{"role": "system", "content": SYSTEM},
         {"role": "user", "content": f"Picture 1: {a}.\nPicture 2: {b}.\nHow does the first picture differ from "
                                     "the second?"}], tokenize=False, add_generation_prompt=True)
        for a, b in zip(first_captions, second_captions)]
    out = []
    for i in progress(range(0, len(prompts), batch_size), desc="SmolLM2 comparatives"):
        enc = tok(prompts[i: i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def llm_study(base: Base, cfg: Config, seed: int, sets: dict, lr: float) -> dict:
    """PC-CLIP on SmolLM2's comparatives against PC-CLIP on the grammar's, on the same pairs (those
    whose LLM text survives the filter, both ways, and fits the text context), several replicates."""
    rng = split_rng(seed, "finetune", 500)
    data, first, second = finetune_data(base.clip, cfg, seed, replicate=500)
    n = min(cfg.llm_pairs, len(first))
    cap_first, cap_second = caption(first[np.arange(n)], rng), caption(second[np.arange(n)], rng)
    raw_fwd = llm_comparatives(cap_first, cap_second)
    raw_rev = llm_comparatives(cap_second, cap_first)
    tok = base.clip.tokenizer
    fits = lambda t: t is not None and tok.n_tokens(t) <= tok.context_length  # noqa: E731
    # The reference filter, then the first sentence only: SmolLM2 goes on for several sentences,
    # and the tiny text encoder's context is short (a departure from the reference, which keeps all).
    clean_fwd = [first_sentence(clean_comparative(t, cfg.llm_min_chars)) for t in raw_fwd]
    clean_rev = [first_sentence(clean_comparative(t, cfg.llm_min_chars)) for t in raw_rev]
    keep = [k for k in range(n) if fits(clean_fwd[k]) and fits(clean_rev[k])]
    record = {"pairs asked": n, "kept": len(keep),
              "dropped by the filter": int(sum(c is None for c in clean_fwd + clean_rev)),
              "examples": [{"first": cap_first[k], "second": cap_second[k], "llm": raw_fwd[k],
                            "template": data.forward[k]} for k in range(min(n, 6))]}
    if len(keep) < cfg.finetune_batch:
        record["note"] = f"only {len(keep)} pairs kept, fewer than a batch: no training"
        return record
    idx = torch.tensor(keep)
    pick = lambda xs: [xs[k] for k in keep]  # noqa: E731
    variants = {
        "templates": FinetuneData(data.u_first[idx], data.u_second[idx], pick(data.forward), pick(data.reverse),
                                  ["-"] * 2 * len(keep), [["-"]] * 2 * len(keep)),
        "SmolLM2": FinetuneData(data.u_first[idx], data.u_second[idx], pick(clean_fwd), pick(clean_rev),
                                ["-"] * 2 * len(keep), [["-"]] * 2 * len(keep)),
    }
    rows = []
    for rep in range(cfg.seeds):
        for name, d in variants.items():
            base.clip.load_text_state(base.state)
            finetune_text_tower(base.clip, "PC-CLIP", d, steps=cfg.finetune_steps, batch=cfg.finetune_batch, lr=lr,
                                lr_decay=cfg.lr_decay, temperature=cfg.temperature, seed=seed * 1000 + rep)
            acc = difference_accuracy(base.clip, sets["test"])
            rows.append({"comparatives": name, "replicate": rep, **{f"diff {a}": v for a, v in acc.items()},
                         "diff mean": float(np.mean(list(acc.values())))})
    base.clip.load_text_state(base.state)
    record["rows"] = rows
    return record


def minilm_study(base: Base, cfg: Config, seed: int, sets: dict) -> dict:
    """A frozen MiniLM text tower with a trainable linear head onto the tiny CLIP's image space:
    the head is first aligned with captions (CLIP loss), then trained PC-CLIP-style on "train"
    phrasing comparatives only, and tested on both phrasings ("bigger" trained, "larger" tested)."""
    rng = split_rng(seed, "pretrain", 77)
    align_scenes = sample_scenes(cfg.minilm_align_images, rng, exclude=HELD_OUT_PAIRS)
    u_align = base.clip.encode_images(render(align_scenes, cfg.image_size))
    x_align = minilm_embed(caption(align_scenes, rng))
    gen = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(x_align.shape[1], u_align.shape[1])
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in progress(range(cfg.minilm_align_steps), desc="MiniLM head: captions"):
        idx = torch.randint(len(x_align), (cfg.pretrain_batch,), generator=gen)
        loss = clip_loss(u_align[idx], head(x_align[idx]), torch.tensor(1 / cfg.caption_temperature))
        opt.zero_grad()
        loss.backward()
        opt.step()
    aligned = {k: v.clone() for k, v in head.state_dict().items()}
    cache: dict[str, torch.Tensor] = {}

    def embed(texts):
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, minilm_embed(missing)))
        with torch.no_grad():
            return head(torch.stack([cache[t] for t in texts]))

    rows = []
    for rep in range(cfg.seeds):
        head.load_state_dict(aligned)
        for phrasing in ("train", "heldout"):
            acc = difference_accuracy(None, sets["test"], phrasing, embed=embed)
            rows.append({"model": "MiniLM + head, captions only", "replicate": rep, "phrasing": phrasing, **acc})
        data, _, _ = finetune_data(base.clip, cfg, seed, replicate=rep)
        x_fwd, x_rev = minilm_embed(data.forward), minilm_embed(data.reverse)
        opt = torch.optim.Adam(head.parameters(), lr=cfg.minilm_lr)
        g = torch.Generator().manual_seed(seed * 1000 + rep)
        for _ in range(cfg.finetune_steps):
            idx = torch.randperm(len(x_fwd), generator=g)[: cfg.finetune_batch]
            flip = (torch.rand(len(idx), generator=g) < 0.5)[:, None]
            x = torch.where(flip, x_rev[idx], x_fwd[idx])
            a = torch.where(flip, data.u_second[idx], data.u_first[idx])
            b = torch.where(flip, data.u_first[idx], data.u_second[idx])
            loss = pcclip_loss(head(x), a, b, cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
        for phrasing in ("train", "heldout"):
            acc = difference_accuracy(None, sets["test"], phrasing, embed=embed)
            rows.append({"model": "MiniLM + head, PC-CLIP", "replicate": rep, "phrasing": phrasing, **acc})
    df = pd.DataFrame(rows)
    df["diff mean"] = df[list(DIFF_ATTRIBUTES)].mean(axis=1)
    return {"rows": df.to_dict(orient="records")}


__all__ = ["clean_comparative", "llm_comparatives", "llm_study", "minilm_study"]
