"""Chapter 09's experiments: the adapter's fit, the gradient's quality, search, captioning.

Every number of the chapter comes from here. Seeds: each experiment draws from its own generator
(``np.random.default_rng([seed, tag])``), so changing one experiment's size leaves the others' draws
unchanged.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

from ..common import progress
from ..discrete import CausalLMPrior, autodan_append, gcg, random_search
from ..models import load_causal_lm, load_minilm, minilm_embed
from ..models.clip import SmallConvNet, clip_loss
from ..world import caption, parse_caption, render, sample_scenes
from .adapter import (
    Adapter,
    ReferenceAdapter,
    fit_grid,
    heldout_error,
    matrix_adapter,
    random_adapter,
    recovery,
    reference_grid,
    split_words,
)
from .config import Config
from .objective import CrossTokenizerObjective, EncoderSimilarity, LanguageModelProposals, PromptNLL, WeightedSum
from .words import WordTokens, fitting_words, tokenize_words

_TAGS = {"split": 1, "prompts": 2, "search": 3, "captioner": 4, "images": 5, "random G": 6}


def rng_for(seed: int, tag: str) -> np.random.Generator:
    return np.random.default_rng([seed, _TAGS[tag]])


# ---------------------------------------------------------------------------------------------------------------
# Models


@dataclass
class Models:
    lm: object
    tokenizer_a: object
    token_texts: list[str]  # A's tokens decoded one by one
    decode: object  # A's decode of a row of ids
    emb_a: torch.Tensor  # (V_A, d_A)
    encoder: object
    tokenizer_b: object
    emb_b: torch.Tensor  # (V_B, d_B)
    bos: int
    seconds: float


def load_models(cfg: Config) -> Models:
    start = time.perf_counter()
    lm, tok_a = load_causal_lm(cfg.model_a)
    encoder, tok_b = load_minilm()
    vocab_size = lm.get_input_embeddings().weight.shape[0]
    texts = [tok_a.decode([i], clean_up_tokenization_spaces=False) for i in range(vocab_size)]
    bos = tok_a.bos_token_id if tok_a.bos_token_id is not None else tok_a.eos_token_id
    def decode(ids):
        return tok_a.decode(ids, clean_up_tokenization_spaces=False)

    return Models(lm, tok_a, texts, decode, lm.get_input_embeddings().weight.detach(), encoder, tok_b,
                  encoder.get_input_embeddings().weight.detach(), bos, time.perf_counter() - start)


def token_mask(token_texts: list[str], which: str, min_chars: int = 2) -> torch.Tensor:
    """A's tokens a prompt may use: ``"words"``: a space and a lower-case word (" red");
    ``"ascii"``: any printable ASCII text with a non-space character."""
    if which == "words":
        pattern = re.compile(rf"^ [a-z]{{{min_chars},}}$")
        return torch.tensor([bool(pattern.match(t)) for t in token_texts])
    if which == "ascii":
        return torch.tensor([bool(t.strip()) and t.isascii() and t.isprintable() for t in token_texts])
    raise ValueError(f"token set must be 'words' or 'ascii', got {which!r}")


def minilm_similarity(models: Models, target: torch.Tensor, head=None) -> EncoderSimilarity:
    return EncoderSimilarity(models.encoder, models.tokenizer_b, target, head=head)


# ---------------------------------------------------------------------------------------------------------------
# Experiment 1: the adapter


@dataclass
class Fit:
    words: WordTokens
    split: dict[str, np.ndarray]
    adapters: dict[str, Adapter]  # FUSE, K = 1 matrix, random G, reference backward
    table: pd.DataFrame
    seconds: float  # FUSE's fit, tokenization included
    baseline_seconds: float  # the matrix, random G and the reference grid


def fit_study(models: Models, cfg: Config, seed: int) -> Fit:
    """Fit FUSE's grid on the fitting words; the matrix and random ``G`` beside; per ``k``: word
    counts, chosen ridge, held-out relative error and B-token recovery of each."""
    start = time.perf_counter()
    words = tokenize_words(fitting_words(models.token_texts, models.tokenizer_b, cfg.min_word_chars),
                           models.tokenizer_a, models.tokenizer_b)
    ks = words.k
    split = split_words(len(words.words), int(rng_for(seed, "split").integers(2**31)), cfg.heldout_fraction,
                        cfg.heldout_fraction)
    fuse, table = fit_grid(words, models.emb_a, models.emb_b, split, cfg.K, cfg.lambdas, cfg.max_words_per_k)
    seconds = time.perf_counter() - start
    # the baselines see at most as many words per k as FUSE
    train = np.concatenate([np.concatenate([split["train"][ks[split["train"]] == k][:cfg.max_words_per_k],
                                            split["validation"][ks[split["validation"]] == k]])
                            for k in range(1, cfg.K + 1)])
    matrix = matrix_adapter(words, models.emb_a, models.emb_b, train, cfg.K, fuse.lam[1])
    rand = random_adapter(fuse, int(rng_for(seed, "random G").integers(2**31)))
    reference = ReferenceAdapter(reference_grid(words, models.emb_a, models.emb_b, train, cfg.K), seed)
    baseline_seconds = time.perf_counter() - start - seconds
    rows = []
    for k in range(1, cfg.K + 1):
        idx = split["heldout"][ks[split["heldout"]] == k]
        x_a, x_b = words.tubes(idx, models.emb_a, models.emb_b, k)
        row = {"k": k}
        few = slice(0, cfg.recovery_words)  # nearest neighbours over B's 30k tokens: a subsample is enough
        for adapter in (fuse, matrix, rand):
            hits, total = recovery(adapter.grid[k], x_a[few], [words.ids_b[i] for i in idx[few]], models.emb_b)
            row[f"error {adapter.name}"] = heldout_error(adapter.grid[k], x_a, x_b)
            row[f"recovery {adapter.name}"] = hits / max(total, 1)
        rows.append(row)
    table = table.merge(pd.DataFrame(rows), on="k")
    counts = pd.Series(ks).value_counts()
    table.insert(1, "all words", table["k"].map(counts).fillna(0).astype(int))
    over = int((ks > cfg.K).sum())
    table.attrs["words over K"] = over
    table.attrs["words"] = len(ks)
    return Fit(words, split, {"FUSE": fuse, "K = 1 matrix": matrix, "random G": rand, "reference backward": reference},
               table, seconds, baseline_seconds)


# ---------------------------------------------------------------------------------------------------------------
# Experiment 2: gradient quality


def mean_interval(values) -> tuple[float, float, float]:
    """Mean and a 95% t-interval."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) < 2:
        return (float(v.mean()) if len(v) else np.nan), np.nan, np.nan
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def single_token_words(models: Models, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed A ids " w" whose word is one B token too, and that B id: where the exact gradient
    over A's tokens is B's one-hot gradient at the matching id."""
    ids = allowed.nonzero().squeeze(1)
    words = [models.token_texts[int(i)].strip() for i in ids]
    enc = models.tokenizer_b(words, add_special_tokens=False)["input_ids"]
    keep = [j for j, e in enumerate(enc) if len(e) == 1]
    return ids[keep], torch.tensor([enc[j][0] for j in keep])


def world_captions(n: int, rng: np.random.Generator) -> list[str]:
    return caption(sample_scenes(n, rng), rng)


def random_prompts(allowed: torch.Tensor, n: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    ids = allowed.nonzero().squeeze(1).numpy()
    return torch.from_numpy(rng.choice(ids, size=(n, length)))


def gradient_study(models: Models, fit: Fit, cfg: Config, seed: int) -> dict[str, pd.DataFrame]:
    """(a) exact reference on one-token words; (b) finite differences of token swaps; by variant."""
    rng = rng_for(seed, "prompts")
    allowed = token_mask(models.token_texts, cfg.token_set, cfg.min_word_chars)
    single_a, single_b = single_token_words(models, allowed)
    prompts = random_prompts(allowed, cfg.n_prompts, cfg.prompt_tokens, rng)
    captions = world_captions(cfg.n_prompts, rng)
    targets = minilm_embed(captions)
    allowed_ids = allowed.nonzero().squeeze(1).numpy()
    exact_rows, fd_rows, best_rows, example = [], [], [], {}
    for p in progress(range(cfg.n_prompts), desc="gradient quality"):
        obj = CrossTokenizerObjective(models.token_texts, models.emb_a, minilm_similarity(models, targets[p]),
                                      fit.adapters["FUSE"], allowed, decode=models.decode)
        free = prompts[p]
        loss0, ids_b, grad_b, alignment = obj.b_side(free)
        grads = {name: a.backward(grad_b, alignment)[0].float() @ models.emb_a.T for name, a in fit.adapters.items()}
        word_of = {}
        for a_pos, b_pos in alignment.words:
            for j in a_pos:
                word_of[j] = (len(a_pos), len(b_pos), b_pos)
        # (a) exact: a word of one token on both sides
        onehot_b = grad_b @ models.emb_b.T  # (n_B, V_B)
        for pos in range(len(free)):
            n_a, n_b, b_pos = word_of.get(pos, (0, 0, []))
            if (n_a, n_b) != (1, 1):
                continue
            exact = onehot_b[b_pos[0], single_b].numpy()
            top_exact = set(np.argsort(exact)[:256])
            for name, g in grads.items():
                pred = g[pos, single_a].numpy()
                exact_rows.append({"prompt": p, "position": pos, "variant": name,
                                   "spearman": stats.spearmanr(pred, exact).statistic,
                                   "top-256 overlap": len(top_exact & set(np.argsort(pred)[:256])) / 256})
        # (b) finite differences
        positions = rng.choice(len(free), size=cfg.positions, replace=False)
        for pos in positions:
            current = int(free[pos])
            pool = allowed_ids[allowed_ids != current]
            cands = rng.choice(pool, size=cfg.candidates, replace=False)
            rows = free.repeat(len(cands), 1)
            rows[:, pos] = torch.from_numpy(cands)
            true = (obj.evaluate(rows)[0] - loss0).numpy()
            n_a, n_b, _ = word_of.get(int(pos), (0, 0, []))
            if not example:  # one (prompt, position) kept whole, for a figure
                example = {"prompt": obj.text(free), "position": int(pos), "true": true,
                           **{name: (g[pos, cands] - g[pos, current]).numpy() for name, g in grads.items()}}
            for name, g in grads.items():
                pred = (g[pos, cands] - g[pos, current]).numpy()
                fd_rows.append({"prompt": p, "position": int(pos), "n_A": n_a, "n_B": n_b, "variant": name,
                                "spearman": stats.spearmanr(pred, true).statistic})
            # the ceiling: B's own linearization, where B's tokenization keeps its length
            ceil_pred, ceil_true, ceil_idx = [], [], []
            for j, row in enumerate(rows):
                new_b, _ = obj.b.encode(obj.text(row))
                if len(new_b) != len(ids_b):
                    continue
                diff = models.emb_b[new_b] - models.emb_b[ids_b]
                ceil_pred.append(float((grad_b * diff).sum()))
                ceil_true.append(true[j])
                ceil_idx.append(j)
            if len(ceil_idx) >= 8:
                fd_rows.append({"prompt": p, "position": int(pos), "n_A": n_a, "n_B": n_b, "variant": "ceiling",
                                "spearman": stats.spearmanr(ceil_pred, ceil_true).statistic})
                pred = (grads["FUSE"][pos, cands[ceil_idx]] - grads["FUSE"][pos, current]).numpy()
                fd_rows.append({"prompt": p, "position": int(pos), "n_A": n_a, "n_B": n_b,
                                "variant": "FUSE where the ceiling exists",
                                "spearman": stats.spearmanr(pred, ceil_true).statistic})
            # best of the top predicted vs of as many random tokens
            g = grads["FUSE"][pos].clone()
            g[~allowed] = float("inf")
            g[current] = float("inf")
            top = g.topk(cfg.top, largest=False).indices.numpy()
            rand = rng.choice(pool, size=cfg.top, replace=False)
            both = free.repeat(2 * cfg.top, 1)
            both[:, pos] = torch.from_numpy(np.concatenate([top, rand]))
            change = (obj.evaluate(both)[0] - loss0).numpy()
            best_rows.append({"prompt": p, "position": int(pos), "best of top predicted": change[: cfg.top].min(),
                              "best of random": change[cfg.top:].min()})
    return {"exact": pd.DataFrame(exact_rows), "finite differences": pd.DataFrame(fd_rows),
            "best of": pd.DataFrame(best_rows), "single-token words": len(single_a), "example": example}


def summarize_spearman(df: pd.DataFrame, variants) -> pd.DataFrame:
    rows = []
    for name in variants:
        sub = df[df["variant"] == name]
        mean, lo, hi = mean_interval(sub["spearman"])
        rows.append({"variant": name, "groups": len(sub), "mean Spearman": mean, "95% CI low": lo, "95% CI high": hi})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# Experiment 3: search


SEARCH_METHODS = ("FUSE", "random search", "SmolLM2 proposals", "random G")


def search_study(models: Models, fit: Fit, cfg: Config, seed: int) -> pd.DataFrame:
    """GCG with FUSE's gradient vs random search vs A's proposals vs random ``G``, at equal
    evaluations, from the same start per (target, seed)."""
    rng = rng_for(seed, "search")
    allowed = token_mask(models.token_texts, "words", cfg.min_word_chars)
    captions = world_captions(cfg.n_targets, rng)
    targets = minilm_embed(captions)
    rows = []
    for t, text in enumerate(captions):
        b = minilm_similarity(models, targets[t])
        fuse = CrossTokenizerObjective(models.token_texts, models.emb_a, b, fit.adapters["FUSE"], allowed,
                                       decode=models.decode)
        rand_g = CrossTokenizerObjective(models.token_texts, models.emb_a, b, fit.adapters["random G"], allowed,
                                       decode=models.decode)
        proposals = LanguageModelProposals(fuse, models.lm, [models.bos])
        for s in range(cfg.search_seeds):
            init = random_prompts(allowed, 1, cfg.n_free, rng)[0]
            run_seed = int(rng.integers(2**31))
            for method in SEARCH_METHODS:  # the same candidate draws for every method
                kw = {"batch_size": cfg.gcg_batch, "generator": torch.Generator().manual_seed(run_seed)}
                start = time.perf_counter()
                if method == "random search":
                    res = random_search(fuse, init, cfg.gcg_steps, **kw)
                else:
                    obj = {"FUSE": fuse, "SmolLM2 proposals": proposals, "random G": rand_g}[method]
                    res = gcg(obj, init, cfg.gcg_steps, top_k=cfg.gcg_top_k, **kw)
                rows.append({"target": t, "caption": text, "seed": s, "method": method, "best loss": res.loss,
                             "evaluations": res.candidates, "prompt": fuse.text(res.free),
                             "start loss": float(fuse.evaluate(init[None])[0][0]),
                             "seconds": time.perf_counter() - start,
                             "best so far": np.minimum.accumulate(res.losses).tolist()})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# Experiment 4: captioning


@dataclass
class CaptionModel:
    """A CLIP whose text tower is the frozen MiniLM (plus a linear head) and whose image tower is a
    small CNN trained here, contrastively (a locked text tower, as in chapter 07's long variant)."""

    image_tower: SmallConvNet
    head: torch.nn.Linear
    losses: list[float]
    seconds: float

    def embed_images(self, images: np.ndarray) -> torch.Tensor:
        x = (torch.as_tensor(images, dtype=torch.float32) - 0.5) / 0.25
        with torch.no_grad():
            return F.normalize(self.image_tower.eval()(x), dim=-1)


def train_caption_model(cfg: Config, seed: int) -> CaptionModel:
    start = time.perf_counter()
    rng = rng_for(seed, "captioner")
    scenes = sample_scenes(cfg.clip_images, rng)
    images = torch.as_tensor(render(scenes, cfg.image_size), dtype=torch.float32)
    texts = caption(scenes, rng)
    text_emb = minilm_embed(texts)
    torch.manual_seed(seed)
    tower, head = SmallConvNet(cfg.image_size, 64), torch.nn.Linear(text_emb.shape[1], 64)
    params = list(tower.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.clip_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.clip_steps)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in progress(range(cfg.clip_steps), desc="MiniLM-tower CLIP"):
        idx = torch.randint(len(images), (cfg.clip_batch,), generator=gen)
        loss = clip_loss(tower((images[idx] - 0.5) / 0.25), head(text_emb[idx]), torch.tensor(20.0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    tower.eval().requires_grad_(False)
    head.eval().requires_grad_(False)
    return CaptionModel(tower, head, losses, time.perf_counter() - start)


def read_caption(text: str) -> set[tuple[str, object]]:
    """The (attribute, value) pairs a free-form caption states, word by word through the world's
    caption parser; unknown words are skipped, two values of an attribute are both kept."""
    stated = set()
    for word in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower()):
        try:
            stated |= set(parse_caption(word).items())
        except ValueError:
            continue
    return stated


def attribute_f1(text: str, truth: dict) -> float:
    """F1 of the caption's stated attributes against the scene's (SPICE's analogue: tuples, not n-grams)."""
    stated, true = read_caption(text), set(truth.items())
    hits = len(stated & true)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(stated), hits / len(true)
    return 2 * precision * recall / (precision + recall)


CAPTION_METHODS = ("FUSE + logits", "logits only")


def captioning_study(models: Models, fit: Fit, captioner: CaptionModel, cfg: Config, seed: int) -> dict:
    """AutoDAN append of ``NLL_A(prefix + p) + a (1 - cos)``: the NLL term re-ranks and enters through
    the prior's log-probabilities (exactly its dependence on the appended token); the CLIP term's
    gradient comes through FUSE, or not at all ("logits only"). ``a`` is fixed before the run so that
    both terms spread alike over true captions paired with random images."""
    rng = rng_for(seed, "images")
    allowed = token_mask(models.token_texts, "words", cfg.min_word_chars)
    prefix_ids = [models.bos, *models.tokenizer_a.encode(cfg.caption_prefix, add_special_tokens=False)]
    nll = PromptNLL(models.lm, prefix_ids, allowed)
    # the weight: spreads of both terms over 32 true captions scored against shuffled images
    cal = sample_scenes(32, rng)
    cal_text = caption(cal, rng)
    cal_img = captioner.embed_images(render(cal, cfg.image_size))
    cal_ids = models.tokenizer_a([" " + c for c in cal_text], add_special_tokens=False)["input_ids"]
    nll_spread = np.std([float(nll.evaluate(torch.tensor([ids]))[0][0]) for ids in cal_ids])
    emb = F.normalize(captioner.head(minilm_embed(cal_text)), dim=-1)
    cos_spread = float((1 - (emb * cal_img[rng.permutation(32)]).sum(1)).std())
    weight = float(nll_spread / cos_spread)
    prior = CausalLMPrior(models.lm, prefix_ids)
    scenes = sample_scenes(cfg.n_images, rng)
    images = render(scenes, cfg.image_size)
    targets = captioner.embed_images(images)
    rows, diagnostics = [], []
    for i in range(cfg.n_images):
        b = minilm_similarity(models, targets[i], head=captioner.head)
        clip_term = CrossTokenizerObjective(models.token_texts, models.emb_a, b, fit.adapters["FUSE"], allowed,
                                       decode=models.decode)
        truth = scenes.attributes(i)
        # What AutoDAN's first proposals see: the gradient term's spread over the vocabulary against
        # the prior's, and how many of the top candidates the gradient changes.
        with_grad = WeightedSum([(1.0, nll, False), (weight, clip_term, True)])
        first = torch.tensor([int(allowed.nonzero()[0, 0])])
        grad_score = -with_grad.one_hot_gradient(first)[0][-1].float()
        prior_score = prior(torch.zeros(0, dtype=torch.long)).float()
        def top(score):
            return set(score.masked_fill(~allowed, -np.inf).topk(cfg.autodan_batch).indices.tolist())

        top_with, top_without = top(grad_score + prior_score), top(prior_score)
        diagnostics.append({"image": i, "gradient term spread": float(grad_score[allowed].std()),
                            "prior spread": float(prior_score[allowed].std()),
                            "first proposals changed by the gradient":
                                len(top_with - top_without) / cfg.autodan_batch})
        for method in CAPTION_METHODS:
            obj = WeightedSum([(1.0, nll, False), (weight, clip_term, method == "FUSE + logits")])
            start = time.perf_counter()
            res = autodan_append(obj, cfg.autodan_steps, batch_size=cfg.autodan_batch, weight=1.0, prior=prior,
                                 beam=cfg.autodan_beam)
            text = cfg.caption_prefix + clip_term.text(res.free)
            rows.append({"image": i, "method": method, "caption": text, "attribute F1": attribute_f1(text, truth),
                         "CLIP-S": 1 - float(clip_term.evaluate(res.free[None])[0][0]),
                         "perplexity": math.exp(float(nll.evaluate(res.free[None])[0][0])), "loss": res.loss,
                         "seconds": time.perf_counter() - start})
        true_caption = caption(scenes[i: i + 1], rng)[0]
        rows.append({"image": i, "method": "a true caption", "caption": true_caption,
                     "attribute F1": attribute_f1(true_caption, truth),
                     "CLIP-S": 1 - float(b.loss_of_texts([true_caption])[0]), "perplexity": np.nan, "loss": np.nan,
                     "seconds": 0.0})
    return {"rows": pd.DataFrame(rows), "weight": weight, "diagnostics": pd.DataFrame(diagnostics),
            "images": images, "truth": [scenes.attributes(i) for i in range(cfg.n_images)]}


__all__ = [
    "CAPTION_METHODS",
    "SEARCH_METHODS",
    "CaptionModel",
    "Fit",
    "Models",
    "attribute_f1",
    "captioning_study",
    "fit_study",
    "gradient_study",
    "load_models",
    "mean_interval",
    "read_caption",
    "search_study",
    "summarize_spearman",
    "token_mask",
    "train_caption_model",
    "world_captions",
]
