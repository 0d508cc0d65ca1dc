"""A small text-to-image diffusion model, a stand-in for Stable Diffusion 2.x: a frozen CLIP text
tower, whose token states condition an EDM denoiser (:class:`TextConditionedUNet`), trained with
caption dropout and sampled with classifier-free guidance.

* SD 2.x conditions on the states of all token positions of OpenCLIP's *penultimate* block (after
  ``ln_final``), not on the pooled, projected text embedding: :meth:`ClipModel.token_states`.
* The unconditional input is the empty caption's states (SD's empty prompt), not zeros: the
  network only ever sees states the text tower can produce. Training replaces a caption by the
  empty one with probability ``cond_dropout``, so one network learns both denoisers.
* Sampling uses classifier-free guidance, ``D = D(x, sigma, "") + w (D(x, sigma, caption) - D(x, sigma, ""))``
  (:func:`reprobook.diffusion.guided`), with EDM's Heun sampler from ``sigma_max z``.

Images are float ``[n, 3, H, W]`` in [0, 1]; the diffusion runs on ``x = 2 image - 1`` in [-1, 1]
(``sigma_data = 0.5``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..diffusion import EDMDenoiser, guided, heun_sample, karras_sigmas, train_edm
from ..models.clip import ClipModel
from .unet import TextConditionedUNet

SIGMA_DATA = 0.5
# Spreads c_noise = ln(sigma) / 4 over the U-Net's sinusoidal time embedding, which expects
# DDPM-step-sized times (as the ECT chapter's U-Net does).
LABEL_SCALE = 250.0

Prompts = Sequence[str] | torch.Tensor


@dataclass
class TextToImage:
    """A frozen CLIP text encoder and the EDM denoiser it conditions, for ``image_size`` RGB images."""

    clip: ClipModel
    denoiser: EDMDenoiser
    image_size: int

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def _ids(self, texts_or_ids: Prompts) -> torch.Tensor:
        if isinstance(texts_or_ids, torch.Tensor):
            ids = texts_or_ids
        else:
            texts = [texts_or_ids] if isinstance(texts_or_ids, str) else list(texts_or_ids)
            ids = self.clip.tokenizer(texts)
        context = self.clip.tokenizer.context_length
        if ids.ndim != 2 or ids.shape[1] != context or len(ids) == 0 or ids.is_floating_point():
            raise ValueError(f"ids must be a non-empty integer tensor of shape (n, {context}), got "
                             f"{tuple(ids.shape)} {ids.dtype}")
        return ids

    def states(self, texts_or_ids: Prompts, batch_size: int = 512) -> torch.Tensor:
        """The text tower's token states ``[n, L, width]`` (what the denoiser reads) of captions or of
        id rows from ``clip.tokenizer``; eval mode, no gradients, on the denoiser's device."""
        ids = self._ids(texts_or_ids)
        model = self.clip.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = torch.cat([self.clip.token_states(ids[i: i + batch_size])
                                 for i in range(0, len(ids), batch_size)])
        finally:
            model.train(was_training)
        return out.to(self.device)

    def null_states(self) -> torch.Tensor:
        """The unconditional condition: the empty caption's states ``[1, L, width]`` (SD's empty prompt)."""
        return self.states([""])

    def generate(self, prompts: Prompts, seeds: Sequence[int], *, guidance: float = 3.0, steps: int = 10,
                 sigma_max: float = 80.0, sigma_min: float = 0.002, batch_size: int = 64) -> torch.Tensor:
        """One image per (prompt, seed), float ``[n, 3, H, W]`` in [0, 1] on the CPU.

        Each image starts from ``sigma_max z`` with ``z`` drawn from ``torch.Generator().manual_seed(seed)``
        alone, so a (prompt, seed) pair gives the same image in any batch. Heun's sampler on EDM's
        grid of ``steps`` levels (``2 steps - 1`` evaluations), with classifier-free guidance
        ``guidance`` (0: unconditional, 1: conditional, > 1: guided; guided steps cost two rows each).
        """
        if isinstance(prompts, str):
            raise ValueError("prompts must be a list of strings (or an id tensor), not one string")
        n_prompts = len(prompts)
        if n_prompts == 0:
            raise ValueError("no prompts to generate from")
        if len(seeds) != n_prompts:
            raise ValueError(f"need one seed per prompt: {n_prompts} prompts, {len(seeds)} seeds")
        if not guidance >= 0 or not np.isfinite(guidance):
            raise ValueError(f"guidance must be finite and >= 0 (0: unconditional, 1: conditional, >1: guided), "
                             f"got {guidance}")
        if steps < 1 or batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
        sigmas = karras_sigmas(steps, sigma_min, sigma_max)
        ids = self._ids(prompts)
        null = self.null_states()[0]
        shape = (3, self.image_size, self.image_size)
        noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
                             for seed in seeds])
        was_training = self.denoiser.training
        self.denoiser.eval()
        images = []
        try:
            for start in range(0, n_prompts, batch_size):
                cond = self.states(ids[start: start + batch_size])
                z = noise[start: start + batch_size].to(self.device)
                x = heun_sample(guided(self.denoiser, cond, null, guidance), sigmas, sigma_max * z)
                images.append(((x.float().cpu() + 1) / 2).clamp(0, 1))
        finally:
            self.denoiser.train(was_training)
        return torch.cat(images)


def build_text_to_image(clip: ClipModel, image_size: int, *, widths: tuple[int, ...] = (32, 64),
                        conditioning: str = "pooled", layers_per_block: int = 1, seed: int = 0) -> TextToImage:
    """A :class:`TextToImage` around ``clip`` with a freshly initialized U-Net (weights from ``seed``,
    the global random state untouched), on the CLIP model's device."""
    width = clip.model.transformer.width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TextConditionedUNet(image_size, width, 3, widths, layers_per_block, conditioning)
    denoiser = EDMDenoiser(net, SIGMA_DATA, label_scale=LABEL_SCALE).to(clip.device)
    denoiser.eval()
    return TextToImage(clip, denoiser, image_size)


def _check_images(images, size: int) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise ValueError("images must be a float tensor or array in [0, 1] (convert uint8 with images / 255)")
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise ValueError(f"images must have shape (n, 3, {size}, {size}), got {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError("no images to train on")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError("images must be finite and lie in [0, 1]")
    return images.float()


def train_text_to_image(generator: TextToImage, images, captions: Sequence[str], *, steps: int, batch_size: int,
                        lr: float = 2e-3, cond_dropout: float = 0.1, seed: int = 0, p_mean: float = -1.2,
                        p_std: float = 1.2, desc: str = "text-to-image training",
                        on_step: Callable[[int], None] | None = None) -> list[float]:
    """EDM training of ``generator.denoiser`` on (image, caption) pairs; returns the loss of every step.

    The text tower is frozen: the token states of every distinct caption are computed once, up front.
    Each row's caption is replaced by the empty one with probability ``cond_dropout`` (the
    unconditional denoiser that guidance needs). Adam, no EMA; see :func:`train_edm`.
    """
    data = 2 * _check_images(images, generator.image_size) - 1
    captions = list(captions)
    if len(captions) != len(data):
        raise ValueError(f"need one caption per image: {len(data)} images, {len(captions)} captions")
    if not all(isinstance(c, str) for c in captions):
        raise ValueError("captions must be strings")
    distinct = sorted(set(captions))
    row_of = {caption: i for i, caption in enumerate(distinct)}
    conditions = generator.states(distinct)[torch.tensor([row_of[c] for c in captions], device=generator.device)]
    return train_edm(generator.denoiser, data, steps=steps, batch_size=batch_size, lr=lr, p_mean=p_mean,
                     p_std=p_std, seed=seed, desc=desc, on_step=on_step, conditions=conditions,
                     null_condition=generator.null_states()[0], cond_dropout=cond_dropout)
