"""Finetuning the text tower: PC-CLIP, its MSE variant, and the two baselines
of the same budget (caption finetuning, rewritten-caption finetuning).

Every arm starts from the same base weights, sees the same images (their
embeddings computed once by the frozen image tower, in eval mode), trains
only the text transformer's blocks (open_clip's ``model.transformer``) with
Adam and an exponential decay per epoch, for the same number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..common import progress
from ..models.clip import ClipModel, clip_loss
from .core import pcclip_loss, pcclip_mse_loss

TRAINED_ARMS = ("caption-FT", "rewrite-FT", "PC-CLIP", "PC-CLIP-MSE")


@dataclass
class FinetuneData:
    """What the arms train on: ``P`` image pairs (``2P`` images).

    ``u_first``/``u_second``: the frozen tower's embeddings of the pairs'
    images; ``forward``/``reverse``: how the first differs from the second and
    the other way round; ``captions``: one caption per image (first images,
    then second images); ``rewrites``: several rewritten captions per image.
    """

    u_first: torch.Tensor
    u_second: torch.Tensor
    forward: list[str]
    reverse: list[str]
    captions: list[str]
    rewrites: list[list[str]]

    def __post_init__(self):
        p = len(self.u_first)
        if not (len(self.u_second) == len(self.forward) == len(self.reverse) == p
                and len(self.captions) == len(self.rewrites) == 2 * p):
            raise ValueError("FinetuneData needs P pairs of embeddings and texts and 2P captions and rewrite lists")

    @property
    def u_images(self) -> torch.Tensor:
        return torch.cat([self.u_first, self.u_second])


def _batches(n_items: int, batch: int, steps: int, generator: torch.Generator):
    """Indices per step, epoch by epoch (a fresh permutation each epoch), and the epoch of each step."""
    per_epoch = n_items // batch  # drop the ragged last batch: every batch has the same size
    for step in range(steps):
        epoch, k = divmod(step, per_epoch)
        if k == 0:
            perm = torch.randperm(n_items, generator=generator)
        yield epoch, perm[k * batch: (k + 1) * batch]


def finetune_text_tower(clip: ClipModel, arm: str, data: FinetuneData, *, steps: int, batch: int, lr: float,
                        lr_decay: float = 0.9, temperature: float = 1.0, caption_temperature: float = 0.1,
                        seed: int = 0, desc: str | None = None) -> list[float]:
    """Finetune ``clip``'s text transformer in place for one arm; returns the loss per step.
    ``temperature`` is PC-CLIP's (1 in the reference); ``caption_temperature`` that of the caption
    baselines' CLIP loss (0.1 in the reference code, not the model's learned scale)."""
    if arm not in TRAINED_ARMS:
        raise ValueError(f"unknown arm {arm!r}; trained arms are {', '.join(TRAINED_ARMS)}")
    pairs = arm.startswith("PC-CLIP")
    n_items = len(data.u_first) if pairs else 2 * len(data.u_first)
    if not 1 <= batch <= n_items:
        raise ValueError(f"batch must lie in [1, {n_items}] for arm {arm}, got {batch}")
    model = clip.model
    tok = clip.tokenizer
    model.requires_grad_(False)
    params = clip.text_tower_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = clip.device
    if pairs:
        ids_fwd, ids_rev = tok(data.forward), tok(data.reverse)
        u1, u2 = data.u_first.to(device), data.u_second.to(device)
    else:
        ids_cap = tok(data.captions)
        u_img = data.u_images.to(device)
        logit_scale = torch.tensor(1.0 / caption_temperature)
    losses = []
    model.train()
    current_epoch = 0
    for epoch, idx in progress(_batches(n_items, batch, steps, generator), total=steps, desc=desc or arm):
        if epoch != current_epoch:  # ExponentialLR, stepped once per epoch as in the reference
            current_epoch = epoch
            for g in opt.param_groups:
                g["lr"] = lr * lr_decay ** epoch
        if pairs:
            # Each pair enters once per epoch, in a random orientation: no reversed duplicate shares a batch.
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            ids = torch.where(flip[:, None], ids_rev[idx], ids_fwd[idx])
            a = torch.where(flip[:, None].to(device), u2[idx], u1[idx])
            b = torch.where(flip[:, None].to(device), u1[idx], u2[idx])
            t = clip.encode_ids(ids)
            loss = pcclip_loss(t, a, b, temperature) if arm == "PC-CLIP" else pcclip_mse_loss(t, a, b)
        else:
            if arm == "rewrite-FT":
                texts = [data.rewrites[i][rng.integers(len(data.rewrites[i]))] for i in idx.tolist()]
                ids = tok(texts)
            else:
                ids = ids_cap[idx]
            loss = clip_loss(u_img[idx], clip.encode_ids(ids), logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    model.requires_grad_(False)
    return losses


__all__ = ["FinetuneData", "TRAINED_ARMS", "finetune_text_tower"]
