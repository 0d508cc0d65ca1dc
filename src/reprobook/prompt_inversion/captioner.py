"""The captioner, BLIP-2's stand-in: a small CNN reads the attributes of an image and the
world's caption template writes them out.

It knows the world's grammar by construction (its template *is* the training captions'), an
edge BLIP-2 has only approximately on web images; the chapter's sweep measures how much of its
advantage that edge is, by training it on fewer images and by dropping size and position from
its captions, as BLIP-2's short captions often do.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..common import progress
from ..world import NUMBERS, POSITIONS, Scenes, caption, sample_scenes

HEADS = ("shape", "colour", "size", "position")


class AttributeNet(nn.Module):
    """Convolutions at full and half resolution; shape, colour and size from the global max of the
    feature map (they do not depend on where the object is), position from the whole map."""

    def __init__(self, image_size: int, n_values: dict[str, int], width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU())
        flat = 2 * width * ((image_size + 1) // 2) ** 2
        self.heads = nn.ModuleDict({k: nn.Linear(flat if k == "position" else 2 * width, v)
                                    for k, v in n_values.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(2 * x - 1)
        pooled = h.amax(dim=(2, 3))
        return {k: head(h.flatten(1) if k == "position" else pooled) for k, head in self.heads.items()}


class Captioner:
    """``values``: per attribute, the values the captioner can name (the chapter's world);
    ``mention``: the attributes its captions state (all four, or BLIP-2-like without size and
    position)."""

    def __init__(self, image_size: int, values: dict[str, tuple], mention: tuple[str, ...] = HEADS, seed: int = 0):
        bad = [m for m in mention if m not in HEADS]
        if bad or not {"shape", "colour"} <= set(mention):
            raise ValueError(f"mention must include shape and colour and only name {', '.join(HEADS)}, got {mention}")
        self.values = {k: tuple(values[k]) for k in HEADS}
        self.mention = tuple(mention)
        self.image_size = image_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = AttributeNet(image_size, {k: len(v) for k, v in self.values.items()})

    def labels(self, scenes: Scenes) -> dict[str, torch.Tensor]:
        from ..world import VALUES

        return {k: torch.tensor([self.values[k].index(VALUES[k][i]) for i in getattr(scenes, k)]) for k in HEADS}

    def train(self, images: np.ndarray, scenes: Scenes, *, steps: int, batch_size: int = 64, lr: float = 3e-3,
              seed: int = 0) -> list[float]:
        """Cross-entropy on every head, minibatches drawn with replacement."""
        if len(images) != len(scenes) or len(images) == 0:
            raise ValueError(f"need as many scenes as images (>= 1), got {len(scenes)} and {len(images)}")
        x = torch.as_tensor(images, dtype=torch.float32)
        y = self.labels(scenes)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.net.train()
        losses = []
        for _ in progress(range(steps), desc="captioner", leave=False):
            idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
            out = self.net(x[idx])
            loss = sum(F.cross_entropy(out[k], y[k][idx]) for k in HEADS)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        self.net.eval()
        return losses

    def predict(self, images) -> dict[str, list]:
        """Attribute value names per image."""
        with torch.no_grad():
            out = self.net(torch.as_tensor(np.asarray(images), dtype=torch.float32))
        return {k: [self.values[k][i] for i in out[k].argmax(1).tolist()] for k in HEADS}

    def __call__(self, images, rng: np.random.Generator) -> list[str]:
        """Captions of ``images``: the world's template on the predicted attributes (words drawn by
        ``rng``), or, without size and position, "a picture of one red circle on a black background"."""
        pred = self.predict(images)
        if set(self.mention) == set(HEADS):
            scenes = sample_scenes(len(pred["shape"]), rng, count=1, background="black", **pred)
            return caption(scenes, rng)
        words = []
        for i in range(len(pred["shape"])):
            size = f"{pred['size'][i]} " if "size" in self.mention else ""
            where = f" {_POSITION_WORDS[pred['position'][i]]}" if "position" in self.mention else ""
            words.append(f"a picture of {NUMBERS[0]} {size}{pred['colour'][i]} {pred['shape'][i]}{where} "
                         "on a black background")
        return words


_POSITION_WORDS = {p: w for p, w in zip(POSITIONS, ("on the left", "in the middle", "on the right"))}
