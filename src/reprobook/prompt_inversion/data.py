"""The chapter's slice of the shapes world: one object on black, a few attribute values, captions
with alt-text noise, and the attribute combinations held out of every model's training."""

from __future__ import annotations

import itertools

import numpy as np

from ..models.corpus import python_docs_paragraphs
from ..world import POSITIONS, Scenes, caption, render, sample_scenes
from .config import Config

VARYING = ("shape", "colour", "size", "position")  # count (one) and background (black) are fixed
_SPLITS = {"clip": 1, "heldout-clip": 2, "generator": 3, "captioner": 4, "targets": 5, "regenerate": 6,
           "sweep": 7, "tokenizer": 8, "reader": 9}


def split_rng(seed: int, split: str, replicate: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, 8, _SPLITS[split], replicate])


def combos(cfg: Config) -> list[tuple[str, str, str, str]]:
    """Every (shape, colour, size, position) of the chapter's world."""
    return list(itertools.product(cfg.shapes, cfg.colours, cfg.sizes, POSITIONS))


def heldout_combos(cfg: Config, seed: int) -> list[tuple[str, str, str, str]]:
    """``n_heldout_combos`` combinations drawn once per seed: no model is trained on them."""
    all_combos = combos(cfg)
    pick = np.random.default_rng([seed, 8, 0]).choice(len(all_combos), cfg.n_heldout_combos, replace=False)
    return [all_combos[i] for i in sorted(pick)]


def scenes_of(cfg: Config, chosen: list[tuple[str, str, str, str]], rng: np.random.Generator) -> Scenes:
    """One scene per combination (fresh radius within the size bin and fresh placement)."""
    shape, colour, size, position = (list(v) for v in zip(*chosen))
    return sample_scenes(len(chosen), rng, shape=shape, colour=colour, size=size, position=position, count=1,
                         background="black")


def training_scenes(cfg: Config, n: int, rng: np.random.Generator, heldout) -> Scenes:
    """``n`` scenes uniform over the combinations that are not held out."""
    allowed = [c for c in combos(cfg) if c not in set(heldout)]
    return scenes_of(cfg, [allowed[i] for i in rng.integers(len(allowed), size=n)], rng)


def distractor_words() -> list[str]:
    """Lower-case alphabetic words of Python's docs: the alt-text noise."""
    words = {w.lower() for p in python_docs_paragraphs() for w in p.split() if w.isalpha() and 3 <= len(w) <= 10}
    return sorted(words)


def noisy_captions(scenes: Scenes, rng: np.random.Generator, cfg: Config, words: list[str]) -> list[str]:
    """Captions of ``scenes``; a ``distractor_rate`` share gets 1-3 words of the docs appended."""
    texts = caption(scenes, rng)
    noisy = rng.random(len(texts)) < cfg.distractor_rate
    k = rng.integers(1, 4, size=len(texts))
    return [t + " " + " ".join(words[j] for j in rng.integers(len(words), size=k[i])) if noisy[i] else t
            for i, t in enumerate(texts)]


def images(cfg: Config, scenes: Scenes) -> np.ndarray:
    return render(scenes, cfg.image_size)
