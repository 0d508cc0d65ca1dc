"""Chapter 08's experiments: the models of the world, the inversions, and their evaluation.

Every number of the chapter comes from here; the notebook calls these functions and shows
their tables. Seeds: each split of data has its own generator (``data.split_rng``); the
targets are generated with seeds no regeneration uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

from ..discrete import (BigramPrior, ClipImageObjective, autodan_append, gcg, pez, random_free_tokens,
                        random_search)
from ..models.clip import ClipModel, tiny_clip, train_clip, train_clip_tokenizer
from ..models.corpus import python_docs_paragraphs
from ..world import VALUES, caption, read_attributes
from . import data as d
from .captioner import HEADS, Captioner
from .config import METHODS, Config
from .metrics import kernel_inception_distance

TARGET_SEED_BASE = 10_000  # target images: seeds 10_000 + i
REFERENCE_SEED_BASE = 20_000  # the reference set of KID: seeds 20_000 + ...
REGEN_SEED_BASE = 30_000  # regenerations: seeds 30_000 + ...
OPTIMIZERS = ("GCG", "random", "PEZ", "AutoDAN w=1", "AutoDAN w=0")


# ---------------------------------------------------------------------------------------------------------------
# The models


@dataclass
class World:
    cfg: Config
    seed: int
    heldout: list
    words: list[str]
    proxy: ClipModel
    heldout_clip: ClipModel
    prior: BigramPrior
    clip_seconds: float = 0.0
    clip_losses: dict = field(default_factory=dict)


def build_world(cfg: Config, seed: int, device: str = "cpu") -> World:
    """The tokenizer (BPE on captions and Python's docs), the proxy CLIP and the held-out CLIP
    (chapter 07's recipe; another seed and other data), and the bigram prior of the captions."""
    heldout = d.heldout_combos(cfg, seed)
    words = d.distractor_words()
    rng = d.split_rng(seed, "tokenizer")
    captions = d.noisy_captions(d.training_scenes(cfg, 5000, rng, heldout), rng, cfg, words)
    tokenizer = train_clip_tokenizer(captions + python_docs_paragraphs(), cfg.vocab_size, cfg.context_length)
    start = time.perf_counter()
    clips, losses = [], {}
    for name, split, model_seed in (("proxy", "clip", seed), ("held-out", "heldout-clip", seed + 1)):
        clip = tiny_clip(tokenizer, cfg.vocab_size, embed_dim=cfg.embed_dim, width=cfg.text_width,
                         layers=cfg.text_layers, heads=cfg.text_heads, image_size=cfg.image_size,
                         seed=model_seed).to(device)
        rng_split = d.split_rng(seed, split)

        def batch(step, rng_split=rng_split):
            scenes = d.training_scenes(cfg, cfg.clip_batch, rng_split, heldout)
            return d.images(cfg, scenes), d.noisy_captions(scenes, rng_split, cfg, words)

        losses[name] = train_clip(clip, batch, steps=cfg.clip_steps, lr=cfg.clip_lr, desc=f"{name} CLIP")
        clips.append(clip)
    prior = BigramPrior([tokenizer.encode(c) for c in captions], cfg.vocab_size, tokenizer.bos_id)
    return World(cfg, seed, heldout, words, clips[0], clips[1], prior, time.perf_counter() - start, losses)


def build_generator(world: World):
    """The text-to-image model: EDM on a small U-Net reading the proxy's penultimate token states."""
    from ..t2i import build_text_to_image, train_text_to_image

    cfg = world.cfg
    rng = d.split_rng(world.seed, "generator")
    scenes = d.training_scenes(cfg, cfg.generator_images, rng, world.heldout)
    generator = build_text_to_image(world.proxy, cfg.image_size, widths=cfg.generator_widths,
                                    conditioning=cfg.conditioning, seed=world.seed)
    losses = train_text_to_image(generator, d.images(cfg, scenes), d.noisy_captions(scenes, rng, cfg, world.words),
                                 steps=cfg.generator_steps, batch_size=cfg.generator_batch, lr=cfg.generator_lr,
                                 cond_dropout=cfg.caption_dropout, p_mean=cfg.generator_p_mean, seed=world.seed)
    return generator, losses


def world_values(cfg: Config) -> dict[str, tuple]:
    return {"shape": cfg.shapes, "colour": cfg.colours, "size": cfg.sizes, "position": VALUES["position"]}


def train_captioner(world: World, n_images: int, mention: tuple[str, ...] = HEADS, replicate: int = 0) -> Captioner:
    cfg = world.cfg
    rng = d.split_rng(world.seed, "captioner", replicate)
    scenes = d.training_scenes(cfg, n_images, rng, world.heldout)
    captioner = Captioner(cfg.image_size, world_values(cfg), mention, seed=world.seed)
    captioner.train(d.images(cfg, scenes), scenes, steps=cfg.captioner_steps)
    return captioner


# ---------------------------------------------------------------------------------------------------------------
# Reading images


def read_varying(cfg: Config, images) -> dict[str, np.ndarray]:
    """The world's pixel reader on the attributes that vary here, as value names; a size is read
    as the nearest of the chapter's sizes (their bins are far apart, the reader's are not)."""
    raw = read_attributes(np.clip(np.asarray(images, dtype=np.float64), 0, 1))
    size_idx = np.array([VALUES["size"].index(s) for s in cfg.sizes])
    out = {}
    for k in ("shape", "colour", "position"):
        out[k] = np.array([VALUES[k][i] if i >= 0 else "?" for i in raw[k]], dtype=object)
    nearest = np.abs(raw["size"][:, None] - size_idx[None]).argmin(1)
    out["size"] = np.array([cfg.sizes[j] if i >= 0 else "?" for i, j in zip(raw["size"], nearest)], dtype=object)
    return out


def attribute_accuracy(cfg: Config, images, truth: dict[str, list]) -> dict[str, float]:
    """Per attribute, the share of images the reader reads as ``truth`` (value names)."""
    read = read_varying(cfg, images)
    return {k: float(np.mean(read[k] == np.asarray(truth[k], dtype=object))) for k in d.VARYING}


def scene_truth(scenes) -> dict[str, list]:
    return {k: [VALUES[k][i] for i in getattr(scenes, k)] for k in d.VARYING}


# ---------------------------------------------------------------------------------------------------------------
# Targets and inversion


@dataclass
class Targets:
    scenes: object
    captions: list[str]  # the true prompts
    images: np.ndarray  # generated from the true prompts with the target seeds
    seeds: list[int]
    read: dict  # the reader's attributes of the target images


def make_targets(world: World, generator) -> Targets:
    cfg = world.cfg
    rng = d.split_rng(world.seed, "targets")
    chosen = [world.heldout[i % len(world.heldout)] for i in range(cfg.n_targets)]
    scenes = d.scenes_of(cfg, chosen, rng)
    captions = caption(scenes, rng)
    seeds = [TARGET_SEED_BASE + i for i in range(cfg.n_targets)]
    images = generator.generate(captions, seeds, guidance=cfg.guidance, steps=cfg.sample_steps).cpu().numpy()
    return Targets(scenes, captions, images, seeds, read_varying(cfg, images))


@dataclass
class Inversion:
    target: int
    method: str
    n_free: int
    prompt: str
    ids: list[int] | None  # the optimizer's ids (None for text methods)
    retokenized_changed: bool  # decoding then encoding the prompt changes its ids
    seconds: float
    evaluations: int
    optimized_loss: float | None  # the loss the optimizer reports (from its ids)


def _decode(clip: ClipModel, ids) -> str:
    return clip.tokenizer.decode([int(i) for i in ids])


def optimizer_runs(world: World, objective: ClipImageObjective, init: torch.Tensor, n_free: int,
                   gen: torch.Generator) -> dict:
    """Each optimizer at the config's budget, as a call returning its ``SearchResult`` (all from
    the same random prompt ``init``; GCG and random search draw their candidates from ``gen``)."""
    cfg = world.cfg
    return {
        "GCG": lambda: gcg(objective, init, cfg.gcg_steps, top_k=cfg.gcg_top_k, batch_size=cfg.gcg_batch,
                           generator=gen),
        "random": lambda: random_search(objective, init, cfg.random_steps, batch_size=cfg.random_batch,
                                        generator=gen),
        "PEZ": lambda: pez(objective, init, cfg.pez_steps),
        "AutoDAN w=1": lambda: autodan_append(objective, n_free, batch_size=cfg.autodan_batch,
                                              weight=cfg.autodan_weight, prior=world.prior),
        "AutoDAN w=0": lambda: autodan_append(objective, n_free, batch_size=cfg.autodan_batch, weight=0.0),
    }


def invert(world: World, targets: Targets, captioner: Captioner, n_free: int) -> list[Inversion]:
    """Every method on every target. The optimizers start from the same random prompt per target
    (which is also the "random prompt" baseline)."""
    cfg, proxy = world.cfg, world.proxy
    rows = []
    cap_rng = d.split_rng(world.seed, "targets", 1)
    for i in range(cfg.n_targets):
        objective = ClipImageObjective(proxy, targets.images[i])
        gen = torch.Generator().manual_seed(world.seed * 1000 + i)
        init = random_free_tokens(objective, n_free, gen)
        runs = optimizer_runs(world, objective, init, n_free, gen)
        for method, run in runs.items():
            start = time.perf_counter()
            res = run()
            seconds = time.perf_counter() - start
            text = _decode(proxy, res.free)
            changed = proxy.tokenizer.encode(text) != res.free.tolist()
            rows.append(Inversion(i, method, n_free, text, res.free.tolist(), changed, seconds, res.candidates,
                                  res.loss))
        start = time.perf_counter()
        text = captioner(targets.images[i: i + 1], cap_rng)[0]
        rows.append(Inversion(i, "captioner", n_free, text, None, False, time.perf_counter() - start, 1, None))
        rows.append(Inversion(i, "true prompt", n_free, targets.captions[i], None, False, 0.0, 0, None))
        text = _decode(proxy, init)
        rows.append(Inversion(i, "random prompt", n_free, text, init.tolist(),
                              proxy.tokenizer.encode(text) != init.tolist(), 0.0, 0, None))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def _fits(clip: ClipModel, text: str) -> str:
    """Texts longer than the context are cut to it by tokens (only decoded optimizer prompts that
    re-tokenize longer can be), and the cut is counted by the caller."""
    ids = clip.tokenizer.encode(text)
    room = clip.tokenizer.context_length - 2
    return text if len(ids) <= room else clip.tokenizer.decode(ids[:room])


def text_image_similarity(clip: ClipModel, texts: list[str], images: np.ndarray) -> np.ndarray:
    """Cosine of each text's embedding with its image's (row by row)."""
    t = F.normalize(clip.embed_texts([_fits(clip, x) for x in texts]), dim=-1)
    v = F.normalize(clip.encode_images(images), dim=-1)
    return (t * v).sum(1).cpu().numpy()


def regenerate(world: World, generator, prompts: list[str], n: int, seed_base: int = REGEN_SEED_BASE) -> np.ndarray:
    """``n`` images per prompt, ``(len(prompts), n, 3, H, W)``, seeds ``seed_base + n * row + j``
    (never a target's seed)."""
    texts = [_fits(world.proxy, p) for p in prompts for _ in range(n)]
    seeds = [seed_base + k for k in range(len(texts))]
    out = generator.generate(texts, seeds, guidance=world.cfg.guidance, steps=world.cfg.sample_steps)
    return out.cpu().numpy().reshape(len(prompts), n, *out.shape[1:])


def agreement(read: dict[str, np.ndarray], targets: Targets, target_of_row: np.ndarray) -> dict[str, np.ndarray]:
    """Per attribute and image: read the same as on its target. Unreadable ("?") never agrees."""
    return {k: (read[k] == targets.read[k][target_of_row]) & (read[k] != "?") for k in d.VARYING}


def evaluate(world: World, generator, targets: Targets, inversions: list[Inversion], minilm=None) -> pd.DataFrame:
    """One row per (target, method): proxy and held-out-CLIP text-image similarity, MiniLM cosine to
    the true prompt, and over ``n_regenerations`` regenerations the attribute agreement with the
    target as read and the held-out CLIP's image-image cosine."""
    cfg = world.cfg
    idx = [r.target for r in inversions]
    prompts = [r.prompt for r in inversions]
    tgt = targets.images[idx]
    df = pd.DataFrame([r.__dict__ for r in inversions])
    df["tokens"] = [len(world.proxy.tokenizer.encode(p)) for p in prompts]
    df["cut to context"] = df["tokens"] > cfg.context_length - 2
    df["proxy similarity"] = text_image_similarity(world.proxy, prompts, tgt)
    df["held-out CLIP similarity"] = text_image_similarity(world.heldout_clip, prompts, tgt)
    if minilm is not None:
        emb = minilm(prompts + targets.captions)
        truth = emb[len(prompts):][idx]
        df["MiniLM to true prompt"] = F.cosine_similarity(emb[:len(prompts)], truth, dim=-1).numpy()
    regen = regenerate(world, generator, prompts, cfg.n_regenerations)
    flat = regen.reshape(-1, *regen.shape[2:])
    hits = agreement(read_varying(cfg, flat), targets, np.repeat(idx, cfg.n_regenerations))
    df["attribute agreement"] = np.mean(list(hits.values()), axis=0).reshape(len(prompts), -1).mean(1)
    for k, hit in hits.items():
        df[f"{k} agrees"] = hit.reshape(len(prompts), -1).mean(1)
    v = F.normalize(world.heldout_clip.encode_images(flat), dim=-1).reshape(len(prompts), cfg.n_regenerations, -1)
    t = F.normalize(world.heldout_clip.encode_images(tgt), dim=-1)
    df["image similarity"] = (v * t[:, None]).sum(-1).mean(1).cpu().numpy()
    df.attrs["regenerations"] = regen
    df.attrs["features"] = v.cpu()
    return df


def reference_features(world: World, generator, targets: Targets, per_target: int = 8) -> torch.Tensor:
    """KID's reference set: images generated from the true prompts with their own seeds, as
    held-out-CLIP features."""
    images = regenerate(world, generator, targets.captions, per_target, REFERENCE_SEED_BASE)
    return F.normalize(world.heldout_clip.encode_images(images.reshape(-1, *images.shape[2:])), dim=-1).cpu()


def kid_by_method(df: pd.DataFrame, reference: torch.Tensor, seed: int) -> pd.DataFrame:
    """KID (mean and standard deviation over 20 subsets) of each method's regenerations against
    the reference set."""
    feats = df.attrs["features"]
    out = {}
    for method in df["method"].unique():
        rows = np.flatnonzero(df["method"].to_numpy() == method)
        out[method] = kernel_inception_distance(feats[rows].reshape(-1, feats.shape[-1]).numpy(),
                                                reference.numpy(), subsets=20, subset_size=None, seed=seed)
    return pd.DataFrame(out, index=["KID", "KID sd"]).T


def summary(df: pd.DataFrame, kid: pd.DataFrame | None = None) -> pd.DataFrame:
    cols = ["proxy similarity", "held-out CLIP similarity", "MiniLM to true prompt", "attribute agreement",
            "image similarity", "tokens", "seconds", "evaluations"]
    cols = [c for c in cols if c in df]
    table = df.groupby("method", sort=False)[cols].mean()
    table["re-tokenization changed"] = df.groupby("method", sort=False)["retokenized_changed"].mean()
    if kid is not None:
        table["KID"] = kid["KID"]
    return table.reindex([m for m in METHODS if m in table.index])


def spearman(df: pd.DataFrame, score: str, image_metric: str, methods=None) -> tuple[float, float]:
    """Spearman of a prompt score vs an image metric over all (target, method) rows, and the mean
    within targets (across the methods of one target); ``methods``: only those rows."""
    if methods is not None:
        df = df[df["method"].isin(list(methods))]
    overall = float(stats.spearmanr(df[score], df[image_metric]).statistic)
    within = [stats.spearmanr(g[score], g[image_metric]).statistic for _, g in df.groupby("target")]
    within = [w for w in within if np.isfinite(w)]
    return overall, float(np.mean(within)) if within else float("nan")


def win_rate(df: pd.DataFrame, method: str, others, metric: str) -> float:
    """Share of targets where ``method`` beats every one of ``others`` on ``metric`` (ties: half)."""
    wide = df.pivot(index="target", columns="method", values=metric)
    best_other = wide[list(others)].max(1)
    return float(((wide[method] > best_other) + 0.5 * (wide[method] == best_other)).mean())


# ---------------------------------------------------------------------------------------------------------------
# Experiment 1 and 5, figures


def fidelity(world: World, generator, captioner: Captioner, n: int = 60) -> pd.DataFrame:
    """The reader on renders; the generator on true captions of held-out and training combinations
    and on random prompts (read against the caption's attributes); the captioner on renders and on
    generated images (against what the reader reads there)."""
    cfg = world.cfg
    rng = d.split_rng(world.seed, "reader")
    held = d.scenes_of(cfg, [world.heldout[i % len(world.heldout)] for i in range(n)], rng)
    seen = d.training_scenes(cfg, n, rng, world.heldout)
    rows = [{"what": "reader on renders (held-out combinations)",
             **attribute_accuracy(cfg, d.images(cfg, held), scene_truth(held))}]
    seeds = [REGEN_SEED_BASE + 500_000 + k for k in range(n)]
    generated = {}
    for name, scenes in (("held-out", held), ("training", seen)):
        images = generator.generate(caption(scenes, rng), seeds, guidance=cfg.guidance,
                                    steps=cfg.sample_steps).cpu().numpy()
        generated[name] = images
        rows.append({"what": f"generator, true captions ({name} combinations)",
                     **attribute_accuracy(cfg, images, scene_truth(scenes))})
    random_ids = torch.randint(3, cfg.vocab_size, (n, 8), generator=torch.Generator().manual_seed(world.seed))
    texts = [_fits(world.proxy, world.proxy.tokenizer.decode(r.tolist())) for r in random_ids]
    images = generator.generate(texts, seeds, guidance=cfg.guidance, steps=cfg.sample_steps).cpu().numpy()
    rows.append({"what": "generator, random prompts (chance)", **attribute_accuracy(cfg, images, scene_truth(held))})
    pred = captioner.predict(d.images(cfg, held))
    rows.append({"what": "captioner on renders (held-out combinations)",
                 **{k: float(np.mean(np.asarray(pred[k], dtype=object) == np.asarray(scene_truth(held)[k],
                                                                                       dtype=object)))
                    for k in d.VARYING}})
    pred = captioner.predict(generated["held-out"])
    read = read_varying(cfg, generated["held-out"])
    rows.append({"what": "captioner on generated images (vs the reader)",
                 **{k: float(np.mean(np.asarray(pred[k], dtype=object) == read[k])) for k in d.VARYING}})
    return pd.DataFrame(rows)


def captioner_sweep(world: World, generator, targets: Targets, scores: pd.DataFrame) -> pd.DataFrame:
    """Captioners trained on fewer images, and one that names only colour and shape, against the
    full captioner and the best optimizer (by attribute agreement) on the same targets."""
    cfg = world.cfg
    variants = [(f"captioner, {n} images", n, HEADS) for n in cfg.captioner_sweep]
    variants.append(("captioner, colour and shape only", cfg.captioner_images, ("shape", "colour")))
    rows = []
    idx = np.arange(cfg.n_targets)
    for k, (name, n_images, mention) in enumerate(variants):
        cap = train_captioner(world, n_images, mention, replicate=k + 1)
        prompts = cap(targets.images, d.split_rng(world.seed, "sweep", k))
        regen = regenerate(world, generator, prompts, cfg.n_regenerations, REGEN_SEED_BASE + 100_000 * (k + 1))
        read = read_varying(cfg, regen.reshape(-1, *regen.shape[2:]))
        agree = np.mean(list(agreement(read, targets, np.repeat(idx, cfg.n_regenerations)).values()))
        pred = cap.predict(targets.images)
        acc = np.mean([np.asarray(pred[a], dtype=object) == targets.read[a] for a in d.VARYING])
        rows.append({"prompts from": name, "attributes read right on targets": float(acc),
                     "attribute agreement": float(agree)})
    table = scores.groupby("method")["attribute agreement"].mean()
    best = max(OPTIMIZERS, key=lambda m: table[m])
    rows.append({"prompts from": f"captioner (chapter's, {cfg.captioner_images} images)",
                 "attributes read right on targets": np.nan,
                 "attribute agreement": float(table["captioner"])})
    rows.append({"prompts from": f"best optimizer ({best})", "attributes read right on targets": np.nan,
                 "attribute agreement": float(table[best])})
    return pd.DataFrame(rows)
