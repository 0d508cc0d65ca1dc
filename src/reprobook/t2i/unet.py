"""The text-conditioned denoising network: a small diffusers U-Net that reads a CLIP text tower's
*token states* ``[n, L, width]``, as Stable Diffusion 2.x reads OpenCLIP's penultimate layer.

Two ways in for the text:

* ``"pooled"``: a few learned queries attend over the L token states. Their result is mapped (a)
  to the U-Net's time-embedding width and enters through it (``UNet2DModel`` with
  ``class_embed_type="identity"``), scaling and shifting every residual block's features (FiLM),
  and (b) to a coarse spatial map fed as extra input channels, since a global vector cannot say
  *where* in a translation-equivariant U-Net. Learned pooling over all tokens, not CLIP's fixed
  EOS pooling. Cheap on a CPU.
* ``"cross-attention"``: every position of the coarsest level attends to all token states
  (``UNet2DConditionModel`` with cross-attention blocks), SD's own mechanism, which can put
  different words at different places in the image. Slower.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

CONDITIONINGS = ("pooled", "cross-attention")
MAP_CHANNELS = 4  # channels of the coarse text map the pooled conditioning feeds the U-Net


class TextConditionedUNet(nn.Module):
    """``net(x, noise_label, states) -> [n, channels, size, size]`` for EDM's :class:`EDMDenoiser`.

    ``states`` are a text tower's token states ``[n, L, text_width]``; ``widths`` the channels of
    the U-Net's levels (the image is halved between levels); ``heads`` and ``queries`` those of the
    pooling attention; ``film`` lets the time embedding scale as well as shift the features.
    """

    def __init__(self, size: int, text_width: int, channels: int = 3, widths: tuple[int, ...] = (32, 64),
                 layers_per_block: int = 1, conditioning: str = "pooled", heads: int = 4, queries: int = 4,
                 film: bool = True):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"unknown conditioning {conditioning!r}; valid: {', '.join(CONDITIONINGS)}")
        if len(widths) < 2:
            raise ValueError(f"need at least two levels (widths), got {tuple(widths)}")
        if size % 2 ** (len(widths) - 1):
            raise ValueError(f"size {size} must be divisible by 2^{len(widths) - 1} for {len(widths)} levels")
        if text_width < 1 or heads < 1 or text_width % heads:
            raise ValueError(f"text_width ({text_width}) must be a positive multiple of heads ({heads})")
        with warnings.catch_warnings():
            # diffusers imports tqdm.auto, which warns in a notebook without ipywidgets.
            warnings.filterwarnings("ignore", message="IProgress not found")
            from diffusers import UNet2DConditionModel, UNet2DModel

        self.conditioning = conditioning
        self.size = size
        self.text_width = text_width
        widths = tuple(widths)
        groups = min(8, widths[0])
        down = ["DownBlock2D"] * len(widths)
        up = ["UpBlock2D"] * len(widths)
        common = dict(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=widths,
                      layers_per_block=layers_per_block, norm_num_groups=groups)
        if conditioning == "pooled":
            time_width = 4 * widths[0]  # UNet2DModel's time-embedding width
            # Several queries, so that one can attend to the colour word and another to the shape's.
            self.query = nn.Parameter(0.02 * torch.randn(1, queries, text_width))
            self.pool = nn.MultiheadAttention(text_width, heads, batch_first=True)
            self.to_time = nn.Linear(queries * text_width, time_width)
            # ... and to a coarse spatial map, fed as extra input channels: a global vector added to the
            # time embedding cannot say *where* (the U-Net is translation-equivariant), a map can.
            self.map_size = max(1, size // 4)
            self.to_map = nn.Linear(queries * text_width, MAP_CHANNELS * self.map_size ** 2)
            # film: the time embedding scales and shifts every normalized feature map (FiLM), not only
            # adds a bias, which lets a global vector steer the image more strongly.
            self.unet = UNet2DModel(down_block_types=tuple(down), up_block_types=tuple(up),
                                    class_embed_type="identity",
                                    resnet_time_scale_shift="scale_shift" if film else "default",
                                    **{**common, "in_channels": channels + MAP_CHANNELS})
        else:
            down[-1], up[0] = "CrossAttnDownBlock2D", "CrossAttnUpBlock2D"  # the coarsest level
            # diffusers' attention_head_dim is, for historical reasons, the number of heads here
            self.unet = UNet2DConditionModel(down_block_types=tuple(down), up_block_types=tuple(up),
                                             cross_attention_dim=text_width, attention_head_dim=heads, **common)

    def pooled_text(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled conditioning: the learned queries' attention over the tokens, mapped to a
        vector for the time embedding ``[n, 4 widths[0]]`` and to a coarse map ``[n, C, size, size]``."""
        query = self.query.expand(len(states), -1, -1).to(states.dtype)
        pooled, _ = self.pool(query, states, states, need_weights=False)
        pooled = pooled.flatten(1)
        grid = self.to_map(pooled).view(len(states), MAP_CHANNELS, self.map_size, self.map_size)
        return self.to_time(pooled), F.interpolate(grid, size=(self.size, self.size), mode="nearest")

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        if states.ndim != 3 or states.shape[0] != x.shape[0] or states.shape[2] != self.text_width:
            raise ValueError(f"states must have shape ({x.shape[0]}, L, {self.text_width}), got {tuple(states.shape)}")
        if self.conditioning == "pooled":
            vector, grid = self.pooled_text(states)
            return self.unet(torch.cat([x, grid.to(x.dtype)], dim=1), noise_label, class_labels=vector).sample
        return self.unet(x, noise_label, encoder_hidden_states=states).sample
