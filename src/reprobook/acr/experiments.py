"""The experiments of chapter 05: the canary study on a tiny model trained
here, gradient-ascent unlearning, and SmolLM2 (small budget in the chapter,
the category study in the ``long`` preset)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..common import progress
from ..discrete import PromptProblem, allowed_token_mask, gcg, greedy_reproduces, mini_prompt, random_free_tokens
from ..models import (chat_template_pieces, load_causal_lm, next_token_loss, pack_documents, python_docs_paragraphs,
                      tiny_llama, train_bpe_tokenizer, train_causal_lm)
from .config import Config
from .corpus import Canary, common_words, make_canaries, plant
from .strings import random_token_strings, study_strings


@dataclass
class TinySetup:
    tokenizer: object
    model: torch.nn.Module
    canaries: list[Canary]
    canary_ids: list[list[int]]
    random_ids: list[list[int]]
    allowed: torch.Tensor
    eos_id: int
    losses: list[float]
    rows: torch.Tensor  # the packed training rows (for the retain loss under unlearning)


def train_tiny(cfg: Config, seed: int) -> TinySetup:
    """Tokenizer (trained on the documentation alone, so a canary's
    tokenization does not depend on how often it is planted), canaries,
    corpus and the tiny Llama trained on it."""
    rng = np.random.default_rng(seed)
    paragraphs = python_docs_paragraphs()
    canaries = make_canaries(common_words(paragraphs), cfg.copies, cfg.canaries_per_count, cfg.n_heldout,
                             cfg.canary_words, rng)
    tokenizer = train_bpe_tokenizer(paragraphs, cfg.vocab_size)
    docs = plant(paragraphs, canaries, rng)
    rows = pack_documents([tokenizer.encode(d) for d in docs], cfg.context, tokenizer.eos_token_id)
    model = tiny_llama(len(tokenizer), d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                       context=2 * cfg.context, seed=seed)
    losses = train_causal_lm(model, rows, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                             generator=torch.Generator().manual_seed(seed), desc="tiny LM")
    allowed = allowed_token_mask(tokenizer)
    random_ids = random_token_strings(allowed, cfg.n_random, cfg.random_len, seed)
    return TinySetup(tokenizer, model, canaries, [tokenizer.encode(c.text) for c in canaries], random_ids,
                     allowed, tokenizer.eos_token_id, losses, rows)


def completes(model, prompt: list[int], target: list[int], prefix_tokens: int) -> bool:
    """Completion-memorization: greedy decoding from ``prompt`` + the target's
    first ``prefix_tokens`` ids reproduces the rest of the target exactly."""
    return greedy_reproduces(model, prompt + target[:prefix_tokens], target[prefix_tokens:])


def compress(model, target: list[int], allowed: torch.Tensor, *, before=(), after=(), n_start: int,
             num_steps: int, top_k: int, batch_size: int, step_growth: float, cap_factor: float, seed: int,
             optimizer: str = "gcg") -> dict:
    """MiniPrompt on one string, the success re-checked with ``generate``."""
    problem = PromptProblem(model, target, before=list(before), after=list(after), allowed=allowed)
    cap = round(cap_factor * len(target))  # cap_factor >= 1 (validated), so cap >= |y| >= 1
    res = mini_prompt(problem, n_start=min(n_start, cap), cap=cap, num_steps=num_steps, step_growth=step_growth,
                      top_k=top_k, batch_size=batch_size, optimizer=optimizer,
                      generator=torch.Generator().manual_seed(seed))
    verified = None
    if res.success:
        verified = greedy_reproduces(model, list(before) + res.free + list(after), target)
    return {"target_len": len(target), "cap": res.cap, "free_tokens": res.n_free, "success": res.success,
            "acr": res.acr,
            "memorized": res.memorized, "verified": verified, "attempts": len(res.attempts),
            "gcg_steps": sum(a.steps for a in res.attempts), "free_ids": res.free}


def search_kwargs(cfg: Config) -> dict:
    return dict(n_start=cfg.n_start, num_steps=cfg.num_steps, top_k=cfg.top_k, batch_size=cfg.search_batch,
                step_growth=cfg.step_growth, cap_factor=cfg.cap_factor)


def canary_study(setup: TinySetup, cfg: Config, seed: int) -> pd.DataFrame:
    """Completion and compression of every planted and held-out canary and every random string."""
    items = [(f"planted x{c.copies}" if c.copies else "held out", c.copies, ids)
             for c, ids in zip(setup.canaries, setup.canary_ids)]
    items += [("random tokens", 0, ids) for ids in setup.random_ids]
    rows = []
    for i, (kind, k, ids) in enumerate(progress(items, desc="MiniPrompt")):
        row = {"kind": kind, "copies": k,
               "completes": completes(setup.model, [setup.eos_id], ids, cfg.prefix_tokens)}
        row.update(compress(setup.model, ids, setup.allowed, before=[setup.eos_id], seed=seed * 1000 + i,
                            **search_kwargs(cfg)))
        rows.append(row)
    return pd.DataFrame(rows)


def unlearning_study(setup: TinySetup, cfg: Config, forget: list[int], seed: int) -> pd.DataFrame:
    """Gradient ascent on the ``forget`` canaries (indices into the setup's
    canaries), one full-batch Adam step at a time, on a copy of the model. At
    each checkpoint: completion and compression of the forgotten canaries,
    and the loss on training text (how much the rest of the model suffers)."""
    model = copy.deepcopy(setup.model)
    eos = setup.eos_id
    targets = [setup.canary_ids[i] for i in forget]
    width = max(map(len, targets)) + 1
    # each forget canary as a document: EOS, the canary, EOS-padded; the loss masks the padding
    batch = torch.full((len(targets), width), eos)
    mask = torch.zeros(len(targets), width - 1, dtype=torch.bool)
    for r, ids in enumerate(targets):
        batch[r, 1:len(ids) + 1] = torch.tensor(ids)
        mask[r, :len(ids)] = True
    retain = setup.rows[torch.randperm(len(setup.rows), generator=torch.Generator().manual_seed(seed))[:64]]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.unlearn_lr)
    out, step = [], 0
    for checkpoint in progress(cfg.unlearn_checkpoints, desc="unlearning"):
        model.train()
        while step < checkpoint:
            logits = model(input_ids=batch[:, :-1]).logits
            ce = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="none").view_as(mask)
            loss = -(ce * mask).sum() / mask.sum()  # ascent: maximize the forget set's likelihood loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        with torch.no_grad():
            retain_loss = float(next_token_loss(model, retain))
        for j, (i, ids) in enumerate(zip(forget, targets)):
            row = {"step": step, "canary": i, "retain_loss": retain_loss,
                   "completes": completes(model, [eos], ids, cfg.prefix_tokens)}
            row.update(compress(model, ids, setup.allowed, before=[eos], seed=seed * 1000 + 100 * step + j,
                                **search_kwargs(cfg)))
            out.append(row)
    return pd.DataFrame(out)


def template(tokenizer, mode: str, system: str | None = None) -> tuple[list[int], list[int]]:
    """The fixed ids before and after the free tokens: none in plain mode,
    the chat template's user turn (with the default or given system prompt) in chat mode."""
    if mode == "plain":
        return [], []
    return chat_template_pieces(tokenizer, system)


def real_model_demo(cfg: Config, texts: list[str], seed: int, device: str = "cpu") -> tuple[pd.DataFrame, dict]:
    """A fixed GCG budget on SmolLM2 (or ``cfg.real_model``) for some
    strings plus one random token string: ``real_free_tokens`` free tokens,
    ``real_steps`` steps. Returns a table and the loss curves."""
    model, tokenizer = load_causal_lm(cfg.real_model, device=device)
    allowed = allowed_token_mask(tokenizer, model.get_input_embeddings().weight.shape[0])
    before, after = template(tokenizer, cfg.real_mode)
    items = [("famous", t, tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    rand = random_token_strings(allowed, 1, len(items[0][2]) if items else 12, seed)[0]
    items.append(("random tokens", tokenizer.decode(rand), rand))
    rows, curves = [], {}
    for i, (kind, text, ids) in enumerate(items):
        problem = PromptProblem(model, ids, before=before, after=after, allowed=allowed)
        gen = torch.Generator().manual_seed(seed * 1000 + i)
        start = time.perf_counter()
        res = gcg(problem, random_free_tokens(problem, cfg.real_free_tokens, gen), cfg.real_steps,
                  top_k=cfg.real_top_k, batch_size=cfg.real_batch, generator=gen, show_progress=True)
        seconds = time.perf_counter() - start
        prompt = before + res.free.tolist() + after
        rows.append({"kind": kind, "text": text, "target_len": len(ids), "free_tokens": cfg.real_free_tokens,
                     "completes": completes(model, before + after, ids, cfg.prefix_tokens),
                     "best_loss": res.loss, "success": res.success,
                     "verified": greedy_reproduces(model, prompt, ids) if res.success else None,
                     "steps": res.steps, "prompt": tokenizer.decode(res.free), "seconds": seconds})
        curves[text] = res.losses
    return pd.DataFrame(rows), curves


ABSTAIN_SYSTEM = ("You are a helpful assistant. Never repeat famous quotes or any other text verbatim; "
                  "if asked for one, politely decline.")


def category_study(cfg: Config, seed: int, device: str = "cpu") -> dict:
    """The long / full preset: MiniPrompt on ``study_per_category`` strings of
    each category with free tokens only (plain mode), then the system-prompt
    "abstain" experiment on the famous quotes inside the chat template (when
    the model has one): with the default and with an abstaining system
    prompt, is a quote still completed, and still compressible?"""
    model, tokenizer = load_causal_lm(cfg.real_model, device=device)
    allowed = allowed_token_mask(tokenizer, model.get_input_embeddings().weight.shape[0])
    strings = study_strings(tokenizer, allowed, cfg.study_per_category, seed)
    kwargs = dict(n_start=cfg.n_start, num_steps=cfg.study_steps, top_k=cfg.real_top_k, batch_size=cfg.real_batch,
                  step_growth=cfg.step_growth, cap_factor=cfg.study_cap_factor)
    settings = [("plain", None, strings)]
    if getattr(tokenizer, "chat_template", None):
        quotes = [s for s in strings if s[0] == "famous quote"]
        settings += [("chat", None, quotes), ("chat", ABSTAIN_SYSTEM, quotes)]
    rows = []
    for mode, system, chosen in settings:
        before, after = template(tokenizer, mode, system)
        label = f"{mode}, {'abstain' if system else 'default'} system prompt" if mode == "chat" else mode
        for i, (category, ids) in enumerate(progress(chosen, desc=f"study ({label})")):
            start = time.perf_counter()
            row = {"setting": label, "category": category, "text": tokenizer.decode(ids),
                   "completes": completes(model, before + after, ids, cfg.prefix_tokens)}
            row.update(compress(model, ids, allowed, before=before, after=after, seed=seed * 1000 + i, **kwargs))
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
    return {"model": cfg.real_model, "rows": rows}


def summarize_study(rows: list[dict]) -> pd.DataFrame:
    """Per setting and category: strings, mean ACR over all strings
    (failures counted at the cap), mean ACR over successes, % memorized (ACR > 1)."""
    df = pd.DataFrame(rows)
    g = df.groupby(["setting", "category"], sort=False)
    return pd.DataFrame({
        "strings": g.size(),
        "completes": g["completes"].mean(),
        "mean ACR (all, failures at cap)": g["acr"].mean(),
        "mean ACR (successes)": g.apply(lambda d: d.loc[d.success, "acr"].mean(), include_groups=False),
        "memorized %": 100 * g["memorized"].mean(),
    }).reset_index()


def run_study(cfg: Config, preset: str, seed: int, device: str = "cpu", results_dir=None):
    """Run :func:`category_study` and save it to ``results/acr/<preset>.json`` (with provenance)."""
    from ..common import REPO_ROOT, save_results

    path = (results_dir or REPO_ROOT / "results" / "acr") / f"{preset}.json"
    start = time.perf_counter()
    out = category_study(cfg, seed, device)
    out["seconds"] = time.perf_counter() - start
    out["seed"] = seed
    return save_results(path, out, preset=preset, params=cfg)
