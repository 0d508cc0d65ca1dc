"""Two more text-to-image generators on the shapes world, behind the same ``generate(prompts, seeds)``
as :class:`~reprobook.t2i.TextToImage` (chapter 08's diffusion model).

* :class:`OneStepGenerator`, SDXL-Turbo's stand-in: a frozen sentence encoder (all-MiniLM-L6-v2)
  reads the prompt, a small MLP maps its embedding to a distribution over the scene's attributes,
  and the seed's noise draws one scene from it in one step; the world's renderer decodes the
  scene into pixels. Its latent is the scene record, so every pixel is a clean render and the
  judge reads it exactly; what the text leaves open (no background named, say) the noise decides,
  as the learned conditional distribution says. Its training loss (cross-entropy of a reference's
  attributes) is the white-box optimizers' loss, as the denoising loss is Textual Inversion's.
* :class:`RendererGenerator`, the "closed" model: the world's own caption parser and renderer. It
  knows only the world's words, skips the rest, and draws what the prompt leaves open uniformly.
  Another encoder entirely (a word list, not a network): prompts transfer to it only through words.

Images are float tensors ``(n, 3, S, S)`` in [0, 1] on the CPU; one image per (prompt, seed), the same in any batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..common import progress
from ..world import ATTRIBUTES, NUMBERS, VALUES, parse_caption, render, sample_scenes

#: How a training caption may say each attribute (a few paraphrases, so the encoder's neighbourhood,
#: not one template, is learned).
_SIZE_WORDS = {"tiny": ("tiny", "very small"), "small": ("small", "little"), "medium": ("medium", "medium-sized"),
               "large": ("large", "big"), "huge": ("huge", "giant")}
_POSITION_WORDS = {"left": ("on the left", "on the left side", "at the left"),
                   "middle": ("in the middle", "in the centre", "centered"),
                   "right": ("on the right", "on the right side", "at the right")}
_BACKGROUND_WORDS = ("on a {} background", "against a {} background", "with a {} background")
_PREFIXES = ("", "", "a picture of ", "an image of ", "a photo of ", "a drawing of ")
#: Attributes a training caption may leave out, and how often; shape and colour are always said.
DROP = {"size": 0.3, "position": 0.4, "background": 0.4}


def training_captions(scenes, rng: np.random.Generator, drop: dict[str, float] = DROP) -> tuple[list[str], dict]:
    """One caption per scene, some attributes left out with probability ``drop[name]``; returns the
    captions and, per attribute, whether each caption states it. A left-out attribute's label is
    the scene's value, drawn uniformly by :func:`~reprobook.world.sample_scenes`: the generator
    learns that the text does not decide it."""
    n = len(scenes)
    said = {name: rng.random(n) >= drop.get(name, 0.0) for name in ATTRIBUTES}
    u = rng.random((n, 6))
    out = []
    for i in range(n):
        a = scenes.attributes(i)
        k = a["count"]
        words = [_PREFIXES[int(u[i, 0] * len(_PREFIXES))]
                 + (("a" if u[i, 1] < 0.5 else "one") if k == 1 else NUMBERS[k - 1] if u[i, 1] < 0.7 else str(k))]
        if said["size"][i]:
            options = _SIZE_WORDS[a["size"]]
            words.append(options[int(u[i, 2] * len(options))])
        words.append(a["colour"])
        words.append(a["shape"] + ("s" if k > 1 else ""))
        if said["position"][i]:
            options = _POSITION_WORDS[a["position"]]
            words.append(options[int(u[i, 3] * len(options))])
        if said["background"][i]:
            bg = "grey" if a["background"] == "gray" and u[i, 5] < 0.5 else a["background"]
            words.append(_BACKGROUND_WORDS[int(u[i, 4] * len(_BACKGROUND_WORDS))].format(bg))
        out.append(" ".join(w for w in words if w).replace("  ", " ").strip())
    return out, said


class AttributeHeads(nn.Module):
    """Sentence embedding -> logits of every attribute's values (one MLP, one linear head each)."""

    def __init__(self, embed_dim: int = 384, hidden: int = 256):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, len(VALUES[name])) for name in ATTRIBUTES})

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(embedding)
        return {name: head(h) for name, head in self.heads.items()}


def _check_prompts(prompts, seeds) -> list[str]:
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of strings, not one string")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts to generate from")
    if not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be strings")
    if len(seeds) != len(prompts):
        raise ValueError(f"need one seed per prompt: {len(prompts)} prompts, {len(seeds)} seeds")
    return prompts


def _draw(probabilities: dict[str, np.ndarray], seeds: Sequence[int], image_size: int) -> torch.Tensor:
    """One scene per row from per-attribute probabilities, by the row's seed alone (inverse-CDF
    draws of its uniforms, then the layout), rendered."""
    images = []
    for row, seed in enumerate(seeds):
        rng = np.random.default_rng([int(seed), 0x7215])
        u = rng.random(len(ATTRIBUTES))
        fixed = {}
        for j, name in enumerate(ATTRIBUTES):
            cdf = np.cumsum(probabilities[name][row])
            fixed[name] = VALUES[name][min(int(np.searchsorted(cdf, u[j] * cdf[-1], side="right")),
                                           len(cdf) - 1)]
        images.append(render(sample_scenes(1, rng, **fixed), image_size))
    return torch.from_numpy(np.concatenate(images).astype(np.float32))


class OneStepGenerator:
    """G1: ``encode`` (frozen MiniLM, L2-normalized mean pooling) -> :class:`AttributeHeads` ->
    one draw per seed -> render. ``temperature`` scales the logits (1: the learned distribution)."""

    def __init__(self, heads: AttributeHeads, image_size: int, temperature: float = 1.0):
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 for the reader to see shapes, got {image_size}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.heads = heads.eval().requires_grad_(False)
        self.image_size = image_size
        self.temperature = temperature

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        from ..models.minilm import minilm_embed

        return minilm_embed(list(prompts))

    def logits(self, condition: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attribute logits of conditions ``(n, 384)`` (differentiable w.r.t. the condition)."""
        return {k: v / self.temperature for k, v in self.heads(condition).items()}

    def probabilities(self, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {k: F.softmax(v, -1).numpy() for k, v in self.logits(self.encode(prompts)).items()}

    def generate_from_condition(self, condition: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Images of conditions given directly (Textual Inversion's analogue optimizes one)."""
        condition = torch.as_tensor(condition, dtype=torch.float32)
        if condition.ndim != 2 or condition.shape[1] != self.heads.trunk[0].in_features:
            raise ValueError(f"conditions must have shape (n, {self.heads.trunk[0].in_features}), "
                             f"got {tuple(condition.shape)}")
        if len(seeds) != len(condition):
            raise ValueError(f"need one seed per condition: {len(condition)} conditions, {len(seeds)} seeds")
        with torch.no_grad():
            probs = {k: F.softmax(v, -1).numpy() for k, v in self.logits(condition).items()}
        return _draw(probs, seeds, self.image_size)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """One image per (prompt, seed), ``(n, 3, S, S)`` float32 in [0, 1]."""
        prompts = _check_prompts(prompts, seeds)
        return self.generate_from_condition(self.encode(prompts), seeds)

    def nll(self, condition: torch.Tensor, targets: dict[str, torch.Tensor],
            attributes: Sequence[str]) -> torch.Tensor:
        """Cross-entropy ``(n,)`` of target attribute indices ``{name: (n,) or (n, m)}`` (m references
        per row: the mean over them), summed over ``attributes``: the training loss, differentiable."""
        logits = self.logits(condition)
        total = 0.0
        for name in attributes:
            t = targets[name]
            logp = F.log_softmax(logits[name], -1)
            total = total + (-logp.gather(1, t.reshape(len(logp), -1))).mean(1)
        return total


def train_one_step_generator(n_captions: int, image_size: int, *, steps: int, batch_size: int = 256,
                             lr: float = 2e-3, seed: int = 0, drop: dict[str, float] = DROP,
                             show_progress: bool = True) -> tuple[OneStepGenerator, list[float]]:
    """G1 trained on ``n_captions`` random scenes' captions (attributes left out at ``drop``'s rates):
    MiniLM embeddings computed once, then Adam on the heads' cross-entropy. Returns the generator and
    the loss of every step."""
    if n_captions < 1 or steps < 1 or batch_size < 1:
        raise ValueError(f"n_captions, steps and batch_size must be >= 1, got {n_captions}, {steps}, {batch_size}")
    rng = np.random.default_rng([seed, 0x61])
    scenes = sample_scenes(n_captions, rng)
    captions, _ = training_captions(scenes, rng, drop)
    from ..models.minilm import minilm_embed

    embeddings = minilm_embed(captions)
    labels = {name: torch.as_tensor(getattr(scenes, name)) for name in ATTRIBUTES}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = AttributeHeads(embeddings.shape[1])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(heads.parameters(), lr=lr)
    losses = []
    for _ in progress(range(steps), desc="one-step generator", disable=not show_progress, leave=False):
        idx = torch.randint(n_captions, (min(batch_size, n_captions),), generator=gen)
        out = heads(embeddings[idx])
        loss = sum(F.cross_entropy(out[k], labels[k][idx]) for k in ATTRIBUTES)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return OneStepGenerator(heads, image_size), losses


_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def parse_known_words(text: str) -> dict:
    """The attributes a free-form prompt states in the world's words, ``{name: value}``: every word
    the world's caption parser knows counts, every other word is skipped; when a prompt names two
    values of an attribute, the first one said wins."""
    out: dict = {}
    for word in _WORD.findall(text.lower()):
        try:
            parsed = parse_caption(word)
        except ValueError:
            continue
        for name, value in parsed.items():
            out.setdefault(name, value)
    return out


class RendererGenerator:
    """G3, the closed model: :func:`parse_known_words`, then a scene with the stated attributes fixed
    (the rest uniform, by the seed), rendered."""

    def __init__(self, image_size: int):
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 for the reader to see shapes, got {image_size}")
        self.image_size = image_size

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        prompts = _check_prompts(prompts, seeds)
        images = []
        for prompt, seed in zip(prompts, seeds):
            rng = np.random.default_rng([int(seed), 0x3C])
            images.append(render(sample_scenes(1, rng, **parse_known_words(prompt)), self.image_size))
        return torch.from_numpy(np.concatenate(images).astype(np.float32))

