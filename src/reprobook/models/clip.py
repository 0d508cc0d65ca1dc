"""CLIP models: a tiny one trained here, and real open_clip checkpoints from disk.

Both are ``open_clip.CLIP`` objects behind one wrapper, :class:`ClipModel`,
so code written against the tiny model (PC-CLIP's finetuning, the prompt
optimizers of later chapters) runs unchanged on ViT-L-14. The tiny model has
open_clip's own text transformer (pooled at the first EOS, with BOS, EOS and
PAD distinct) on a byte-level BPE trained here, and a small CNN as its image
tower; it is trained contrastively (Radford et al., 2021, "Learning
transferable visual models from natural language supervision").
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..common import progress
from .pretrained import ModelUnavailable, _offline
from .tiny import EOS, train_bpe_tokenizer

BOS = "<|startoftext|>"
PAD = "<|pad|>"


@dataclass
class ClipTokenizer:
    """Texts -> ids of exactly ``context_length``: BOS, the text's tokens, EOS, then PAD.

    ``CLIP.encode_text`` adds the whole positional table, so every row must
    have exactly the context length; a text that does not fit is an error,
    never silently truncated (a cut-off comparative could flip its meaning).
    """

    encode: Callable[[str], list[int]]
    context_length: int
    bos_id: int
    eos_id: int
    pad_id: int
    decode: Callable[[list[int]], str] | None = None

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        if len(texts) == 0:
            raise ValueError("no texts to tokenize")
        rows = torch.full((len(texts), self.context_length), self.pad_id, dtype=torch.long)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts must be strings, got {type(text).__name__} at position {i}")
            ids = [self.bos_id, *self.encode(text), self.eos_id]
            if len(ids) > self.context_length:
                raise ValueError(
                    f"text {i} is {len(ids)} tokens with BOS and EOS, over the context of {self.context_length}: "
                    f"{text[:80]!r}; shorten it (texts are never truncated)")
            rows[i, : len(ids)] = torch.tensor(ids)
        return rows

    def n_tokens(self, text: str) -> int:
        """Tokens of ``text`` with BOS and EOS."""
        return len(self.encode(text)) + 2


def train_clip_tokenizer(texts: Sequence[str], vocab_size: int, context_length: int) -> ClipTokenizer:
    """A byte-level BPE trained on ``texts`` with distinct BOS, EOS and PAD (see :func:`train_bpe_tokenizer`)."""
    hf = train_bpe_tokenizer(texts, vocab_size, bos_token=BOS, pad_token=PAD)
    ids = {t: hf.convert_tokens_to_ids(t) for t in (BOS, EOS, PAD)}
    if len(set(ids.values())) != 3:
        raise RuntimeError(f"BOS, EOS and PAD must be distinct ids, got {ids}")
    return ClipTokenizer(encode=lambda s: hf.encode(s, add_special_tokens=False), context_length=context_length,
                         bos_id=ids[BOS], eos_id=ids[EOS], pad_id=ids[PAD],
                         decode=lambda ids_: hf.decode(ids_, skip_special_tokens=True))


class SmallConvNet(nn.Module):
    """The tiny CLIP's image tower: three stride-2 convolutions, then a linear map of the
    *flattened* feature map (not a global pool, which would throw away where the shapes are)."""

    def __init__(self, image_size: int, output_dim: int, width: int = 32):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        self.image_size = image_size
        self.output_dim = output_dim
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(4 * width, 4 * width, 3, stride=2, padding=1), nn.GELU(),
        )
        self.proj = nn.Linear(4 * width * (image_size // 8) ** 2, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).flatten(1))

    def set_grad_checkpointing(self, enable: bool = True) -> None:  # open_clip calls it on every tower
        pass


class ClipModel:
    """An ``open_clip.CLIP`` with its tokenizer and image preprocessing.

    Images enter as float arrays ``(n, 3, H, W)`` in [0, 1] (the world's
    renderer gives them so); they are resized to the model's input size and
    normalized with its mean and standard deviation.
    """

    def __init__(self, model, tokenizer: ClipTokenizer, image_size: int, mean: Sequence[float],
                 std: Sequence[float], name: str = "clip"):
        self.model = model
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.name = name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> "ClipModel":
        self.model.to(device)
        return self

    def text_tower_parameters(self) -> list[nn.Parameter]:
        """The text transformer's blocks (``model.transformer``): what PC-CLIP trains."""
        return list(self.model.transformer.parameters())

    def preprocess(self, images) -> torch.Tensor:
        """Check and normalize images: float ``(n, 3, H, W)`` in [0, 1], resized to the model's size."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images must be a NumPy array or a tensor, got {type(images).__name__}")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (n, 3, height, width), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be floats in [0, 1], got dtype {images.dtype} "
                             "(convert uint8 images with images / 255)")
        if images.numel() and (images.min() < 0 or images.max() > 1 or not torch.isfinite(images).all()):
            raise ValueError(f"images must lie in [0, 1], got values in [{float(images.min()):.3g}, "
                             f"{float(images.max()):.3g}]")
        x = images.to(self.device, torch.float32)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def encode_images(self, images, batch_size: int = 512) -> torch.Tensor:
        """Image embeddings (not normalized), computed in eval mode without gradients."""
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            out = torch.cat([self.model.encode_image(self.preprocess(images[i: i + batch_size]))
                             for i in range(0, len(images), batch_size)])
        self.model.train(was_training)
        return out

    def encode_texts(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Text embeddings (not normalized); gradients flow when the caller enables them."""
        return self.encode_ids(self.tokenizer(texts))

    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Text embeddings of already tokenized rows (``[n, context_length]``, from :attr:`tokenizer`)."""
        if ids.ndim != 2 or ids.shape[1] != self.tokenizer.context_length:
            raise ValueError(f"ids must have shape (n, {self.tokenizer.context_length}), got {tuple(ids.shape)}")
        return self.model.encode_text(ids.to(self.device))

    def embed_texts(self, texts: Sequence[str], batch_size: int = 512) -> torch.Tensor:
        """Text embeddings (not normalized) in eval mode without gradients, in batches."""
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            out = torch.cat([self.encode_texts(list(texts[i: i + batch_size]))
                             for i in range(0, len(texts), batch_size)])
        self.model.train(was_training)
        return out

    def text_hidden(self, token_embeds: torch.Tensor, n_layers: int | None = None) -> torch.Tensor:
        """The text tower from token *embeddings* ``[n, L, width]`` (``L`` = the context length):
        positional embedding, the first ``n_layers`` blocks (all by default) under the causal mask,
        then ``ln_final``. Works for soft (non-vocabulary) embeddings, which ids cannot express."""
        model, ctx = self.model, self.tokenizer.context_length
        if token_embeds.ndim != 3 or token_embeds.shape[1] != ctx:
            raise ValueError(f"token_embeds must have shape (n, {ctx}, width), got {tuple(token_embeds.shape)}")
        blocks = model.transformer.resblocks
        n_layers = len(blocks) if n_layers is None else n_layers
        if not 0 <= n_layers <= len(blocks):
            raise ValueError(f"n_layers must lie in [0, {len(blocks)}], got {n_layers}")
        x = token_embeds + model.positional_embedding.to(token_embeds.dtype)
        batch_first = getattr(model.transformer, "batch_first", True)
        x = x if batch_first else x.transpose(0, 1)
        for block in blocks[:n_layers]:
            x = block(x, attn_mask=model.attn_mask)
        x = x if batch_first else x.transpose(0, 1)
        return model.ln_final(x)

    def encode_embeddings(self, token_embeds: torch.Tensor, eos_index: int | torch.Tensor) -> torch.Tensor:
        """Text embeddings (not normalized) from token embeddings, pooled at ``eos_index`` (one
        index, or one per row) and projected: ``encode_ids`` for rows that are real tokens."""
        hidden = self.text_hidden(token_embeds)
        rows = torch.arange(len(hidden), device=hidden.device)
        pooled = hidden[rows, torch.as_tensor(eos_index, device=hidden.device).expand(len(hidden))]
        proj = self.model.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj

    def token_states(self, ids: torch.Tensor) -> torch.Tensor:
        """What Stable Diffusion 2.x conditions on: the states of every position after the
        *penultimate* block, through ``ln_final`` (open_clip's embedder with layer="penultimate"),
        ``[n, context_length, width]``. Not the pooled, projected embedding of :meth:`encode_ids`."""
        if ids.ndim != 2 or ids.shape[1] != self.tokenizer.context_length:
            raise ValueError(f"ids must have shape (n, {self.tokenizer.context_length}), got {tuple(ids.shape)}")
        embeds = self.model.token_embedding(ids.to(self.device))
        return self.text_hidden(embeds, n_layers=len(self.model.transformer.resblocks) - 1)

    def text_state(self) -> dict[str, torch.Tensor]:
        """A copy of the text transformer's weights (for weight averaging and resets)."""
        return {k: v.detach().clone() for k, v in self.model.transformer.state_dict().items()}

    def load_text_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.transformer.load_state_dict(state)


def tiny_clip(tokenizer: ClipTokenizer, vocab_size: int, *, embed_dim: int = 64, width: int = 128, layers: int = 3,
              heads: int = 4, image_size: int = 32, seed: int = 0) -> ClipModel:
    """``open_clip.CLIP`` with a small text transformer (pooled at EOS) and :class:`SmallConvNet`."""
    import open_clip

    if width % heads:
        raise ValueError(f"width ({width}) must be divisible by heads ({heads})")
    text_cfg = open_clip.CLIPTextCfg(context_length=tokenizer.context_length, vocab_size=vocab_size, width=width,
                                     heads=heads, layers=layers, pool_type="eos", eos_id=tokenizer.eos_id,
                                     pad_id=tokenizer.pad_id)
    # The vision config is a placeholder that open_clip builds and we replace by the CNN.
    vision_cfg = open_clip.CLIPVisionCfg(layers=1, width=32, head_width=32, patch_size=8, image_size=image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(embed_dim, vision_cfg, text_cfg)
        model.visual = SmallConvNet(image_size, embed_dim)
    return ClipModel(model, tokenizer, image_size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="tiny CLIP")


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over a batch of matching (image, text) rows."""
    logits = logit_scale * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    labels = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def train_clip(clip: ClipModel, batches: Callable[[int], tuple[np.ndarray, list[str]]], *, steps: int, lr: float,
               warmup: int = 50, weight_decay: float = 0.1, desc: str = "CLIP pretraining") -> list[float]:
    """Contrastive training of both towers (and the temperature, capped at 100 as in CLIP).
    ``batches(step)`` returns that step's images ``(B, 3, H, W)`` in [0, 1] and their texts."""
    if steps < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1 and lr > 0, got {steps}, {lr}")
    model = clip.model
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses = []
    for step in progress(range(steps), desc=desc):
        images, texts = batches(step)
        loss = clip_loss(model.encode_image(clip.preprocess(images)), clip.encode_texts(texts),
                         model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def load_open_clip(name: str, checkpoint: str | os.PathLike | None, *, device: str = "cpu",
                   random_weights: bool = False) -> ClipModel:
    """A real open_clip model (e.g. ``"ViT-L-14"``) with weights from a local file.

    Nothing is downloaded: a checkpoint that is not on disk is one error naming
    it, raised before the model is built. The tokenizer is open_clip's own
    (its BPE vocabulary ships with the package); it pools at EOT by argmax,
    since EOT is that vocabulary's largest id. ``random_weights=True`` (no
    checkpoint) builds the architecture untrained, for timing only.
    """
    import open_clip

    if random_weights:
        if checkpoint is not None:
            raise ValueError("give either a checkpoint or random_weights=True, not both")
    elif checkpoint is None or not Path(checkpoint).expanduser().is_file():
        raise ModelUnavailable(
            f"the open_clip checkpoint for {name!r} is not on this machine: {str(checkpoint)!r} is not a file"
            f"{' (HF_HUB_OFFLINE is set, so nothing is downloaded)' if _offline() else ''}. Download it once "
            "(e.g. open_clip_pytorch_model.bin from the model's Hugging Face page) and give its path.")
    if name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {name!r}; known ones include ViT-B-32, ViT-L-14")
    model = open_clip.create_model(name, pretrained=None if random_weights else str(Path(checkpoint).expanduser()),
                                   device=device)
    model.eval()
    simple = open_clip.get_tokenizer(name)
    inner = getattr(simple, "tokenizer", simple)
    if not hasattr(inner, "encode") or not hasattr(simple, "sot_token_id"):
        raise ValueError(f"{name!r} does not use open_clip's own BPE tokenizer; only those models are supported")
    tokenizer = ClipTokenizer(encode=inner.encode, context_length=simple.context_length, bos_id=simple.sot_token_id,
                              eos_id=simple.eot_token_id, pad_id=0, decode=inner.decode)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean = cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)
    std = cfg.get("std", open_clip.OPENAI_DATASET_STD)
    return ClipModel(model, tokenizer, int(size), mean=mean, std=std, name=name)
