"""Denoising networks: the toy MLP of the hallucination paper's reference code, and a
small diffusers U-Net, both with the calling convention ``model(x_t, t) -> eps``."""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style embedding of (integer or real) times: ``[cos(t f_i), sin(t f_i)]``."""
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResidualBlock(nn.Module):
    """``h + W2 act(LN(W1 act(LN(h)) + E temb))``: the time embedding enters between the two layers."""

    def __init__(self, width: int, slope: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width, bias=False)
        self.fc2 = nn.Linear(width, width, bias=False)
        self.time = nn.Linear(width, width)
        self.act = nn.LeakyReLU(slope)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        out = self.fc1(self.act(self.norm1(h))) + self.time(temb)
        return h + self.fc2(self.act(self.norm2(out)))


class ToyDenoiser(nn.Module):
    """MLP denoiser for low-dimensional data, after the hallucination paper's reference code:
    width 128, sinusoidal time embedding, layer norm, LeakyReLU(0.02), residual blocks.
    ``share_blocks=True`` applies ONE block ``n_blocks`` times (shared weights), as the reference
    does; ``False`` gives every block its own weights."""

    def __init__(self, dim: int, width: int = 128, n_blocks: int = 3, share_blocks: bool = True,
                 slope: float = 0.02):
        super().__init__()
        if dim < 1 or width < 2 or width % 2 or n_blocks < 1:
            raise ValueError(f"need dim >= 1, an even width >= 2 and n_blocks >= 1; got {dim}, {width}, {n_blocks}")
        self.width = width
        self.inp = nn.Linear(dim, width, bias=False)
        self.time = nn.Sequential(nn.Linear(width, width), nn.LeakyReLU(slope))
        if share_blocks:
            block = ResidualBlock(width, slope)
            self.blocks = nn.ModuleList([block] * n_blocks)  # the same module, n_blocks times
        else:
            self.blocks = nn.ModuleList([ResidualBlock(width, slope) for _ in range(n_blocks)])
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            # Training: embed every row. Gathering shared rows would backpropagate through a
            # parallel scatter-add, whose summation order (and so the result) varies run to run.
            temb = self.time(sinusoidal_embedding(t, self.width))
        else:
            # Sampling: all rows share one t; embed each distinct time once.
            t_unique, inverse = torch.unique(t, return_inverse=True)
            temb = self.time(sinusoidal_embedding(t_unique, self.width))[inverse]
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(self.out_norm(h))


class UNetDenoiser(nn.Module):
    """A small ``diffusers.UNet2DModel`` for ``(n, channels, size, size)`` images."""

    def __init__(self, size: int, channels: int = 1, widths: tuple[int, ...] = (32, 64, 64),
                 layers_per_block: int = 1, attention: bool = False, dropout: float = 0.0):
        super().__init__()
        with warnings.catch_warnings():
            # diffusers imports tqdm.auto, which warns in a notebook without ipywidgets; our own
            # progress bars already choose text bars there.
            warnings.filterwarnings("ignore", message="IProgress not found")
            from diffusers import UNet2DModel

        if size % 2 ** (len(widths) - 1):
            raise ValueError(f"size {size} must be divisible by 2^{len(widths) - 1} for {len(widths)} levels")
        down = ["DownBlock2D"] * len(widths)
        up = ["UpBlock2D"] * len(widths)
        if attention:  # self-attention at the coarsest level only
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet = UNet2DModel(
            sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=tuple(widths),
            down_block_types=tuple(down), up_block_types=tuple(up), layers_per_block=layers_per_block,
            norm_num_groups=min(8, widths[0]), dropout=dropout,
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t).sample
