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
from .strings import BOILERPLATE, FAMOUS_QUOTES, NEW_TEXT, random_token_strings, study_strings


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
                             cfg.canary_words, rng, per_top=cfg.top_canaries)
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
    canaries), one full-batch Adam step at a time, on a copy of the model.
    With ``cfg.unlearn_on == "continuation"`` the ascent is on the tokens after
    the first ``prefix_tokens`` given those (the path the completion test
    reads); with ``"whole"`` on every token. At each checkpoint: completion
    and compression of the forgotten canaries (each canary's search seed is
    the same at every checkpoint) and the loss on training text. The study
    stops after the first checkpoint past step 0 where no forgotten canary is
    completed: every canary's first forgotten step is then known."""
    model = copy.deepcopy(setup.model)
    eos = setup.eos_id
    targets = [setup.canary_ids[i] for i in forget]
    width = max(map(len, targets)) + 1
    first = cfg.prefix_tokens if cfg.unlearn_on == "continuation" else 0
    # each forget canary as a document: EOS, the canary, EOS-padded; logits at t predict token t + 1,
    # so mask[r, t] selects the canary's token t; the loss masks the padding (and the prefix)
    batch = torch.full((len(targets), width), eos)
    mask = torch.zeros(len(targets), width - 1, dtype=torch.bool)
    for r, ids in enumerate(targets):
        batch[r, 1:len(ids) + 1] = torch.tensor(ids)
        mask[r, first:len(ids)] = True
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
        rows = []
        for j, (i, ids) in enumerate(zip(forget, targets)):
            row = {"step": step, "canary": i, "retain_loss": retain_loss,
                   "completes": completes(model, [eos], ids, cfg.prefix_tokens)}
            row.update(compress(model, ids, setup.allowed, before=[eos], seed=seed * 1000 + 500 + j,
                                **search_kwargs(cfg)))
            rows.append(row)
        out += rows
        if step > 0 and not any(r["completes"] for r in rows):
            break
    return pd.DataFrame(out)


def first_forgotten(unlearn: pd.DataFrame) -> pd.DataFrame:
    """Per canary memorized by both tests at step 0: the first checkpoint
    where completion fails, and whether compression (ACR > 1) still succeeds
    there. Canaries still completed at the last checkpoint are left out."""
    rows = []
    for canary, part in unlearn.sort_values("step").groupby("canary", sort=False):
        start = part.iloc[0]
        if not (start.completes and start.memorized):
            continue
        gone = part[~part.completes.astype(bool)]
        if len(gone):
            row = gone.iloc[0]
            rows.append({"canary": canary, "step": int(row.step), "compressible": bool(row.memorized),
                         "acr": row.acr})
    return pd.DataFrame(rows, columns=["canary", "step", "compressible", "acr"])


def template(tokenizer, mode: str, system: str | None = None) -> tuple[list[int], list[int]]:
    """The fixed ids before and after the free tokens: none in plain mode,
    the chat template's user turn (with the default or given system prompt) in chat mode."""
    if mode == "plain":
        return [], []
    return chat_template_pieces(tokenizer, system)


def load_real(cfg: Config, device: str = "cpu", ascii_only: bool | None = None):
    """``(model, tokenizer, allowed)``: the real model and the ids a free token may take
    (``ascii_only`` defaults to ``cfg.ascii_only``)."""
    model, tokenizer = load_causal_lm(cfg.real_model, device=device)
    ascii_only = cfg.ascii_only if ascii_only is None else ascii_only
    allowed = allowed_token_mask(tokenizer, model.get_input_embeddings().weight.shape[0], ascii_only=ascii_only)
    return model, tokenizer, allowed


def screen(model, tokenizer, items: list[tuple[str, str]], fraction: float, before=()) -> pd.DataFrame:
    """The completion screen: for each ``(category, text)``, does greedy
    decoding from the first ``fraction`` of its tokens (at least one, at most
    all but one) reproduce the rest exactly? A string that passes is one the
    model provably holds: a positive control for the compression test."""
    rows = []
    for category, text in items:
        ids = tokenizer.encode(text, add_special_tokens=False)
        k = min(max(1, round(fraction * len(ids))), len(ids) - 1)
        rows.append({"category": category, "text": text, "target_len": len(ids), "prefix_tokens": k,
                     "completes": completes(model, list(before), ids, k)})
    return pd.DataFrame(rows)


def real_model_demo(model, tokenizer, allowed, cfg: Config, items: list[tuple[str, str]],
                    seed: int) -> tuple[pd.DataFrame, dict]:
    """A fixed GCG budget on the real model for some ``(kind, text)`` strings:
    ``real_free_tokens`` free tokens, ``real_steps`` steps, the same seed for
    every string. Returns a table and the loss curves."""
    before, after = template(tokenizer, cfg.real_mode)
    rows, curves = [], {}
    for kind, text in items:
        ids = tokenizer.encode(text, add_special_tokens=False)
        problem = PromptProblem(model, ids, before=before, after=after, allowed=allowed)
        gen = torch.Generator().manual_seed(seed * 1000)
        start = time.perf_counter()
        res = gcg(problem, random_free_tokens(problem, cfg.real_free_tokens, gen), cfg.real_steps,
                  top_k=cfg.real_top_k, batch_size=cfg.real_batch, generator=gen, show_progress=True)
        seconds = time.perf_counter() - start
        prompt = before + res.free.tolist() + after
        rows.append({"kind": kind, "text": text, "target_len": len(ids), "free_tokens": cfg.real_free_tokens,
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
    model, tokenizer, allowed = load_real(cfg, device)
    screened = screen(model, tokenizer, screen_items(), cfg.screen_fraction)
    strings = study_strings(tokenizer, allowed, cfg.study_per_category, seed,
                            prefer=screened.text[screened.completes])
    kwargs = dict(n_start=cfg.n_start, num_steps=cfg.study_steps, top_k=cfg.real_top_k, batch_size=cfg.real_batch,
                  step_growth=cfg.step_growth, cap_factor=cfg.study_cap_factor)
    filters = [cfg.ascii_only, not cfg.ascii_only] if cfg.study_both_filters else [cfg.ascii_only]
    settings = [("plain", None, strings, f) for f in filters]
    if getattr(tokenizer, "chat_template", None):
        quotes = [s for s in strings if s[0] == "famous quote"]
        settings += [("chat", None, quotes, cfg.ascii_only), ("chat", ABSTAIN_SYSTEM, quotes, cfg.ascii_only)]
    rows = []
    for mode, system, chosen, ascii_only in settings:
        before, after = template(tokenizer, mode, system)
        mask = allowed_token_mask(tokenizer, model.get_input_embeddings().weight.shape[0], ascii_only=ascii_only)
        vocab = "ASCII filter" if ascii_only else "whole vocabulary"
        label = f"{mode}, {'abstain' if system else 'default'} system prompt" if mode == "chat" else mode
        for i, (category, ids) in enumerate(progress(chosen, desc=f"study ({label}, {vocab})")):
            start = time.perf_counter()
            row = {"setting": label, "free tokens from": vocab, "category": category, "text": tokenizer.decode(ids),
                   "completes": completes(model, before + after, ids, cfg.prefix_tokens)}
            # the same seed per string in every setting: the settings differ only in what they change
            row.update(compress(model, ids, mask, before=before, after=after, seed=seed * 1000 + i, **kwargs))
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
    return {"model": cfg.real_model, "rows": rows, "screen": screened.to_dict("records")}


def screen_items() -> list[tuple[str, str]]:
    """The strings the completion screen runs on: every famous quote, boilerplate and new text."""
    return ([("famous quote", t) for t in dict.fromkeys(FAMOUS_QUOTES)] + [("boilerplate", t) for t in BOILERPLATE]
            + [("new text", t) for t in NEW_TEXT])


def summarize_study(rows: list[dict]) -> pd.DataFrame:
    """Per setting and category: strings, mean ACR over all strings
    (failures counted at the cap), mean ACR over successes, % memorized (ACR > 1)."""
    df = pd.DataFrame(rows)
    keys = ["setting", "free tokens from", "category"] if "free tokens from" in df else ["setting", "category"]
    g = df.groupby(keys, sort=False)
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
