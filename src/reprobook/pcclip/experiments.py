"""Chapter 07's experiments: pretrain a tiny CLIP on the shapes world, finetune
every arm from it, and measure what the paper measures (difference accuracy,
ranking, zero-shot, comparative prompting, geometry, embedding arithmetic)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

from ..claims import paired_verdict  # noqa: F401 (the chapter calls ex.paired_verdict)
from ..common import progress
from ..models.clip import ClipModel, load_open_clip, tiny_clip, train_clip, train_clip_tokenizer
from ..world import (ATTRIBUTES, COMPARATIVE_WORDS, HELD_OUT_PAIRS, VALUES, Scenes, attribute_prompt, caption,
                     comparative, comparative_single, make_pairs, render, sample_scenes, vary)
from .config import ARMS, Config
from .core import (comparative_prompting, difference_correct, direction_distance, edit_embedding, nearest,
                   weight_average)
from .finetune import TRAINED_ARMS, FinetuneData, finetune_text_tower

#: The attributes the difference accuracy is measured on (the spec's four).
DIFF_ATTRIBUTES = ("size", "count", "colour", "position")
#: Ordinal attributes: ranking, comparative prompting and geometry use them.
ORDINAL = ("size", "count", "position")
#: Split offsets: each split draws from its own random stream.
_SPLITS = {"pretrain": 1, "finetune": 2, "val": 3, "test": 4, "heldout": 5, "gallery": 6}


def split_rng(seed: int, split: str, replicate: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLITS[split], replicate])


def value_names(attribute: str) -> list:
    return list(VALUES[attribute])


# ---------------------------------------------------------------------------------------------------------------
# The base model


@dataclass
class Base:
    clip: ClipModel
    state: dict  # the text transformer's base weights: every arm starts from them
    losses: list[float] = field(default_factory=list)


def build_base(cfg: Config, seed: int, device: str = "cpu") -> Base:
    """The tiny CLIP pretrained contrastively on captions of the world (held-out colour-shape
    pairs never shown), or an open_clip checkpoint from disk (``full``)."""
    if cfg.clip_model != "tiny":
        clip = load_open_clip(cfg.clip_model, cfg.clip_checkpoint, device=device)
        return Base(clip, clip.text_state())
    rng = split_rng(seed, "pretrain")
    # The tokenizer's merges come from captions and comparatives (text only, no model training), so
    # that a three-clause comparative fits the context; the model itself is pretrained on captions.
    corpus_scenes = sample_scenes(5000, rng, exclude=HELD_OUT_PAIRS)
    first, second, changed = make_pairs(2000, rng, exclude=HELD_OUT_PAIRS)
    corpus = caption(corpus_scenes, rng) + comparative(first, second, changed, rng)
    tokenizer = train_clip_tokenizer(corpus, cfg.vocab_size, cfg.context_length)
    clip = tiny_clip(tokenizer, cfg.vocab_size, embed_dim=cfg.embed_dim, width=cfg.text_width,
                     layers=cfg.text_layers, heads=cfg.text_heads, image_size=cfg.image_size, seed=seed).to(device)

    def batch(step):
        scenes = sample_scenes(cfg.pretrain_batch, rng, exclude=HELD_OUT_PAIRS)
        return render(scenes, cfg.image_size), caption(scenes, rng)

    losses = train_clip(clip, batch, steps=cfg.pretrain_steps, lr=cfg.pretrain_lr)
    return Base(clip, clip.text_state(), losses)


def vocabulary_report(clip: ClipModel, seed: int, n: int = 5000) -> pd.DataFrame:
    """How often each comparative word occurs in the base model's single-image captions (it must
    have seen every one, or the comparison with the base is rigged), and its token pieces."""
    texts = caption(sample_scenes(n, split_rng(seed, "pretrain", 1), exclude=HELD_OUT_PAIRS),
                    split_rng(seed, "pretrain", 2))
    padded = [f" {t.replace(',', ' ')} " for t in texts]
    rows = []
    for w in COMPARATIVE_WORDS:
        rows.append({"word": w, "captions containing it": sum(f" {w} " in t for t in padded) / n,
                     "tokens": len(clip.tokenizer.encode(" " + w))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# Data of the finetuning arms


def finetune_data(clip: ClipModel, cfg: Config, seed: int, replicate: int) -> tuple[FinetuneData, Scenes, Scenes]:
    """``n_finetune_pairs`` pairs that differ in one to three attributes, their comparatives both
    ways, a caption per image and five rewritten captions per image (other templates and
    synonyms of the training phrasing, standing in for the paper's LLM rewrites)."""
    rng = split_rng(seed, "finetune", replicate)
    first, second, changed = make_pairs(cfg.n_finetune_pairs, rng, exclude=HELD_OUT_PAIRS)
    forward = comparative(first, second, changed, rng)
    reverse = comparative(second, first, changed, rng)
    both = Scenes.concat([first, second])
    captions = caption(both, rng)
    rewrites = [list(r) for r in zip(*[caption(both, rng) for _ in range(5)])]
    u = clip.encode_images(render(both, cfg.image_size))
    p = len(first)
    return FinetuneData(u[:p], u[p:], forward, reverse, captions, rewrites), first, second


# ---------------------------------------------------------------------------------------------------------------
# Evaluations (all on embeddings; the image embeddings never change, only the text tower)


@dataclass
class EvalSet:
    scenes: Scenes
    u: torch.Tensor  # image embeddings (frozen tower)
    _pairs: dict = field(default_factory=dict, repr=False)

    def comparative_pairs(self, attribute: str, phrasing: str = "train"):
        """Index pairs ``i < j`` that differ in ``attribute``, the distinct comparatives of that
        attribute alone (how ``i`` differs from ``j``) and which text each pair has; computed once."""
        key = (attribute, phrasing)
        if key not in self._pairs:
            vals = _values(self.scenes, attribute)
            i, j = np.triu_indices(len(vals), 1)
            keep = vals[i] != vals[j]
            i, j = i[keep], j[keep]
            texts = comparative(self.scenes[i], self.scenes[j], [(attribute,)] * len(i), phrasing=phrasing)
            unique, inverse = np.unique(texts, return_inverse=True)
            self._pairs[key] = (i, j, list(unique), torch.from_numpy(inverse))
        return self._pairs[key]


def eval_set(clip: ClipModel, cfg: Config, seed: int, split: str, n: int, **kwargs) -> EvalSet:
    scenes = sample_scenes(n, split_rng(seed, split), **kwargs)
    return EvalSet(scenes, clip.encode_images(render(scenes, cfg.image_size)))


def _values(scenes: Scenes, attribute: str) -> np.ndarray:
    return np.asarray(getattr(scenes, attribute))


def difference_accuracy(clip: ClipModel | None, ev: EvalSet, phrasing: str = "train", embed=None) -> dict[str, float]:
    """Per attribute: the fraction of image pairs (i < j, differing in it) whose comparative
    (how i differs from j, in that attribute alone) points along ``normalize(u_i - u_j)``.
    ``embed`` (texts -> embeddings) replaces ``clip.embed_texts`` for other text encoders."""
    embed = embed or clip.embed_texts
    out = {}
    for attribute in DIFF_ATTRIBUTES:
        i, j, unique, inverse = ev.comparative_pairs(attribute, phrasing)
        t = embed(unique)[inverse]
        out[attribute] = float(difference_correct(t, ev.u[i], ev.u[j]).mean())
    return out


def zero_shot(clip: ClipModel, ev: EvalSet, attributes=ATTRIBUTES) -> dict[str, float]:
    """Per attribute, accuracy of ``argmax_k <u, f(attribute_prompt(k))>`` over its values."""
    u = F.normalize(ev.u, dim=-1)
    out = {}
    for attribute in attributes:
        names = value_names(attribute)
        t = F.normalize(clip.embed_texts([attribute_prompt(attribute, v) for v in names]), dim=-1)
        pred = (u @ t.T).argmax(-1).cpu().numpy()
        out[attribute] = float((pred == _values(ev.scenes, attribute)).mean())
    return out


def retrieval_at_1(clip: ClipModel, ev: EvalSet, seed: int) -> float:
    """Text -> image recall@1 with the full captions."""
    texts = caption(ev.scenes, split_rng(seed, "test", 7))
    t = clip.embed_texts(texts)
    return float((nearest(t, ev.u) == np.arange(len(texts))).mean())


def rank_tau(clip: ClipModel, ev: EvalSet, attribute: str, text: str) -> float:
    """Kendall's tau between ``<u, f(text)>`` and the attribute's true value."""
    true = {"size": ev.scenes.radius, "count": ev.scenes.count, "position": ev.scenes.x_mean}[attribute]
    score = (F.normalize(ev.u, dim=-1) @ F.normalize(clip.embed_texts([text]), dim=-1).T).squeeze(-1)
    return float(stats.kendalltau(score.cpu().numpy(), np.asarray(true, dtype=float)).statistic)


def ranking(clip: ClipModel, ev: EvalSet) -> dict[str, float]:
    """Tau for the comparative ("the first has bigger shapes than the second") and, beside it, the
    naive single-image prompt of the attribute's largest value ("an image of huge shapes")."""
    out = {}
    for attribute in ORDINAL:
        top = value_names(attribute)[-1]
        out[f"{attribute}: comparative"] = rank_tau(clip, ev, attribute, comparative_single(attribute, +1))
        out[f"{attribute}: top-class prompt"] = rank_tau(clip, ev, attribute, attribute_prompt(attribute, top))
    return out


def class_embeddings(clip: ClipModel, attribute: str) -> torch.Tensor:
    return clip.embed_texts([attribute_prompt(attribute, v) for v in value_names(attribute)])


def confusion(clip: ClipModel, ev: EvalSet, attribute: str) -> np.ndarray:
    """Zero-shot confusion matrix (true class x predicted class) on ``ev``."""
    k = len(value_names(attribute))
    t = F.normalize(class_embeddings(clip, attribute), dim=-1)
    pred = (F.normalize(ev.u, dim=-1) @ t.T).argmax(-1).cpu().numpy()
    m = np.zeros((k, k), dtype=int)
    np.add.at(m, (_values(ev.scenes, attribute), pred), 1)
    return m


def most_confused_pairs(matrix: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The ``n`` unordered class pairs with the most confusions either way (ties: lower indices first)."""
    k = len(matrix)
    scored = sorted(((matrix[a, b] + matrix[b, a], a, b) for a, b in itertools.combinations(range(k), 2)),
                    key=lambda x: (-x[0], x[1], x[2]))
    return [(a, b) for _, a, b in scored[:n]]


def prompted_accuracy(clip: ClipModel, ev: EvalSet, attribute: str, pairs: list[tuple[int, int]],
                      alpha: float) -> dict[str, float]:
    """Zero-shot accuracy with and without comparative prompting, on the images of the confused
    classes (subset) and on all images. Comparisons run both ways within each confused pair."""
    names = value_names(attribute)
    base_t = class_embeddings(clip, attribute)
    comps = {}
    for a, b in pairs:
        for i, j in ((a, b), (b, a)):
            comps[(names[i], names[j])] = clip.embed_texts([comparative_single(attribute, +1 if i > j else -1)])[0]
    prompted = comparative_prompting(base_t, names, comps, alpha)
    truth = _values(ev.scenes, attribute)
    u = F.normalize(ev.u, dim=-1)
    subset = np.isin(truth, sorted({c for p in pairs for c in p}))
    out = {}
    for label, t in (("plain", F.normalize(base_t, dim=-1)), ("prompted", prompted)):
        pred = (u @ t.T).argmax(-1).cpu().numpy()
        out[f"{label} subset"] = float((pred == truth)[subset].mean())
        out[f"{label} all"] = float((pred == truth).mean())
    return out


def geometry(clip: ClipModel, attribute: str) -> dict[str, float]:
    """Mean forward and reverse distances over ordered class pairs (i, j), i != j:
    ``1 - cos(normalize(t_i - t_j), c_ij)`` and the same with ``c_ji``."""
    names = value_names(attribute)
    t = class_embeddings(clip, attribute)
    up = clip.embed_texts([comparative_single(attribute, +1)])[0]
    down = clip.embed_texts([comparative_single(attribute, -1)])[0]
    fwd, rev = [], []
    for i, j in itertools.permutations(range(len(names)), 2):
        c_ij, c_ji = (up, down) if i > j else (down, up)
        fwd.append(float(direction_distance(t[i:i + 1], t[j:j + 1], c_ij[None])))
        rev.append(float(direction_distance(t[i:i + 1], t[j:j + 1], c_ji[None])))
    return {"forward": float(np.mean(fwd)), "reverse": float(np.mean(rev))}


@dataclass
class EditGallery:
    """Queries, and a gallery holding each query, its version with a larger value of ``attribute``
    (drawn uniformly among the larger ones), and versions with one other attribute changed (the
    distractors an edit must not drift to)."""

    attribute: str
    queries: Scenes
    gallery: Scenes
    u_gallery: torch.Tensor
    target: np.ndarray  # gallery index of each query's edited version
    self_index: np.ndarray  # gallery index of each query itself


def edit_gallery(clip: ClipModel, cfg: Config, seed: int, split: str, attribute: str, n: int) -> EditGallery:
    rng = split_rng(seed, split, 11)
    top = len(value_names(attribute)) - 1
    queries = sample_scenes(n, rng, exclude=HELD_OUT_PAIRS)
    queries = queries[np.flatnonzero(_values(queries, attribute) < top)]
    parts = [queries, vary(queries, attribute, rng, direction=+1)]
    for other in ("shape", "colour", "background"):
        parts.append(vary(queries, other, rng, exclude=HELD_OUT_PAIRS))
    gallery = Scenes.concat(parts)
    m = len(queries)
    return EditGallery(attribute, queries, gallery, clip.encode_images(render(gallery, cfg.image_size)),
                       target=np.arange(m) + m, self_index=np.arange(m))


def edit_success(clip: ClipModel, eg: EditGallery, beta: float) -> float:
    """Fraction of queries whose edit ``normalize(u + beta c)`` retrieves (itself excluded) exactly
    its version with a larger value of the attribute. Retrieval stands in for generation."""
    c = clip.embed_texts([comparative_single(eg.attribute, +1)])
    m = len(eg.queries)
    edited = edit_embedding(eg.u_gallery[:m], c.expand(m, -1), beta)
    hit = nearest(edited, eg.u_gallery, exclude=torch.from_numpy(eg.self_index))
    return float((hit == eg.target).mean())


# ---------------------------------------------------------------------------------------------------------------
# The study: every arm, several seeds


def evaluate(clip: ClipModel, sets: dict, cfg: Config, seed: int) -> dict:
    """Every measure of one model (its current text weights)."""
    rec = {f"diff {a}": v for a, v in difference_accuracy(clip, sets["test"]).items()}
    rec["diff mean"] = float(np.mean([rec[f"diff {a}"] for a in DIFF_ATTRIBUTES]))
    if cfg.heldout_phrasing:
        held = difference_accuracy(clip, sets["test"], phrasing="heldout")
        rec["diff heldout-phrasing mean"] = float(np.mean(list(held.values())))
    rec.update({f"tau {k}": v for k, v in ranking(clip, sets["test"]).items()})
    zs = zero_shot(clip, sets["zero_shot"])
    rec.update({f"zero-shot {a}": v for a, v in zs.items()})
    rec["zero-shot mean"] = float(np.mean(list(zs.values())))
    zh = zero_shot(clip, sets["heldout"])
    rec["zero-shot held-out pairs mean"] = float(np.mean(list(zh.values())))
    rec["R@1"] = retrieval_at_1(clip, sets["test"], seed)
    for attribute in ORDINAL:
        g = geometry(clip, attribute)
        rec[f"forward {attribute}"], rec[f"reverse {attribute}"] = g["forward"], g["reverse"]
    for attribute, pairs in sets["confused"].items():
        for alpha in sorted({cfg.prompt_alpha, 0.8}):
            pa = prompted_accuracy(clip, sets["zero_shot"], attribute, pairs, alpha)
            rec.update({f"prompting {attribute} a={alpha:g} {k}": v for k, v in pa.items()})
    for attribute, (val_gallery, test_gallery) in sets["edits"].items():
        # beta chosen on the validation gallery, per model
        beta = max(cfg.betas, key=lambda b: (edit_success(clip, val_gallery, b), -b))
        rec[f"edit {attribute}"] = edit_success(clip, test_gallery, beta)
        rec[f"edit beta {attribute}"] = beta
    return rec


EDIT_ATTRIBUTES = ("size", "count")


def make_eval_sets(clip: ClipModel, cfg: Config, seed: int) -> dict:
    """Validation and test images, zero-shot sets (held-out colour-shape pairs apart), the confused
    class pairs chosen on validation *with the base model* and shared by all arms, and the edit
    galleries. Call it with the base weights loaded."""
    sets = {
        "val": eval_set(clip, cfg, seed, "val", cfg.n_val_images, exclude=HELD_OUT_PAIRS),
        "test": eval_set(clip, cfg, seed, "test", cfg.n_test_images, exclude=HELD_OUT_PAIRS),
        "zero_shot": eval_set(clip, cfg, seed, "test", cfg.n_zero_shot, exclude=HELD_OUT_PAIRS),
        "heldout": eval_set(clip, cfg, seed, "heldout", cfg.n_zero_shot, only=HELD_OUT_PAIRS),
        "zs_val": eval_set(clip, cfg, seed, "val", cfg.n_zero_shot, exclude=HELD_OUT_PAIRS),
    }
    sets["confused"] = {a: most_confused_pairs(confusion(clip, sets["zs_val"], a), cfg.n_confused)
                        for a in ORDINAL}
    n_edit = max(cfg.n_gallery // 5, 10)
    sets["edits"] = {a: (edit_gallery(clip, cfg, seed, "val", a, n_edit), edit_gallery(clip, cfg, seed, "test", a, n_edit))
                     for a in EDIT_ATTRIBUTES}
    return sets


#: The lr of each trained arm is swept for the first arm of its family and shared within it.
SWEPT = {"PC-CLIP": ("PC-CLIP", "PC-CLIP-MSE"), "caption-FT": ("caption-FT", "rewrite-FT")}


def lr_sweep(base: Base, cfg: Config, seed: int, sets: dict) -> tuple[pd.DataFrame, dict[str, float]]:
    """Validation difference accuracy of PC-CLIP and caption-FT at each rate of ``lr_grid`` (one seed,
    its own finetuning pairs); each family's best rate is used by both its arms. Choosing the
    baseline's rate by the very metric PC-CLIP is judged on favours the baseline, not PC-CLIP."""
    data, _, _ = finetune_data(base.clip, cfg, seed, replicate=100)
    rows, best = [], {}
    for arm, lr in itertools.product(SWEPT, cfg.lr_grid):
        base.clip.load_text_state(base.state)
        finetune_text_tower(base.clip, arm, data, steps=cfg.finetune_steps, batch=cfg.finetune_batch, lr=lr,
                            lr_decay=cfg.lr_decay, temperature=cfg.temperature,
                            caption_temperature=cfg.caption_temperature, seed=seed)
        acc = difference_accuracy(base.clip, sets["val"])
        rows.append({"arm": arm, "lr": lr, "val diff mean": float(np.mean(list(acc.values())))})
    base.clip.load_text_state(base.state)
    df = pd.DataFrame(rows)
    for arm, family in SWEPT.items():
        sub = df[df.arm == arm]
        lr = float(sub.lr.iloc[int(np.argmax(sub["val diff mean"].to_numpy()))])
        best.update({a: lr for a in family})
    return df, best


def run_arms(base: Base, cfg: Config, seed: int, sets: dict, lrs: dict[str, float]) -> tuple[pd.DataFrame, dict]:
    """Every arm for ``cfg.seeds`` replicates (fresh finetuning pairs and order each); the base once
    per replicate too (it does not change). Returns one row per (arm, replicate) and the loss curves."""
    rows, curves = [], {}
    bar = progress(total=cfg.seeds * len(TRAINED_ARMS), desc="finetuning arms")
    for rep in range(cfg.seeds):
        data, _, _ = finetune_data(base.clip, cfg, seed, replicate=rep)
        base.clip.load_text_state(base.state)
        rows.append({"arm": "base", "replicate": rep, **evaluate(base.clip, sets, cfg, seed)})
        for arm in TRAINED_ARMS:
            base.clip.load_text_state(base.state)
            losses = finetune_text_tower(base.clip, arm, data, steps=cfg.finetune_steps, batch=cfg.finetune_batch,
                                         lr=lrs[arm], lr_decay=cfg.lr_decay, temperature=cfg.temperature,
                                         caption_temperature=cfg.caption_temperature, seed=seed * 1000 + rep)
            curves[(arm, rep)] = losses
            rows.append({"arm": arm, "replicate": rep, **evaluate(base.clip, sets, cfg, seed)})
            if arm == "PC-CLIP":
                wise = weight_average(base.clip.text_state(), base.state, cfg.wise_alpha)
                base.clip.load_text_state(wise)
                rows.append({"arm": "PC-CLIP WiSE", "replicate": rep, **evaluate(base.clip, sets, cfg, seed)})
            bar.update()
    bar.close()
    base.clip.load_text_state(base.state)
    df = pd.DataFrame(rows)
    df["arm"] = pd.Categorical(df["arm"], categories=list(ARMS), ordered=True)
    return df.sort_values(["arm", "replicate"]).reset_index(drop=True), curves


def mean_se(df: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and standard error over replicates, per arm."""
    g = df.groupby("arm", observed=True)[columns]
    return g.mean(), g.std(ddof=1) / np.sqrt(g.count())


def paired(df: pd.DataFrame, column: str, arm: str, other: str) -> np.ndarray:
    """Per-replicate differences ``arm - other`` of one measure."""
    a = df[df.arm == arm].set_index("replicate")[column]
    b = df[df.arm == other].set_index("replicate")[column]
    return (a - b.reindex(a.index)).to_numpy()
