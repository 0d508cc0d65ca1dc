"""Discrete-time DDPM noise schedules.

The forward process is ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``
for ``t = 0 .. T-1`` (0-based, as in diffusers), with ``alpha_bar_t`` the running
product of ``1 - beta_s`` for ``s <= t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DDPMSchedule:
    """A DDPM variance schedule: ``betas[t]`` for ``t = 0 .. T-1`` (float64)."""

    betas: torch.Tensor

    def __post_init__(self):
        b = self.betas
        if b.ndim != 1 or len(b) < 2:
            raise ValueError(f"betas must be a 1-D tensor of length >= 2, got shape {tuple(b.shape)}")
        if not torch.all((b > 0) & (b < 1)):
            raise ValueError("every beta must lie in the open interval (0, 1)")
        object.__setattr__(self, "betas", b.to(torch.float64))

    @classmethod
    def linear(cls, steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "DDPMSchedule":
        """Betas evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. use 1e-4 to 0.02)."""
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        return cls(torch.linspace(beta_start, beta_end, steps, dtype=torch.float64))

    @property
    def steps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, 0)

    def signal_scale(self, t: torch.Tensor) -> torch.Tensor:
        """``sqrt(alpha_bar_t)``: how much of ``x_0`` is left in ``x_t``."""
        return self.alpha_bars[t].sqrt()

    def noise_std(self, t: torch.Tensor) -> torch.Tensor:
        """``sqrt(1 - alpha_bar_t)``."""
        return (1.0 - self.alpha_bars[t]).sqrt()

    def first_pure_noise_step(self, tol: float = 1e-3) -> int:
        """The first ``t`` with ``sqrt(alpha_bar_t) < tol``: from there on ``x_t`` is noise."""
        below = torch.nonzero(self.alpha_bars.sqrt() < tol)
        return int(below[0]) if len(below) else self.steps

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Sample ``x_t | x_0`` with the given noise (``t`` has one entry per row of ``x0``)."""
        shape = (-1,) + (1,) * (x0.ndim - 1)
        t = t.cpu()  # the schedule lives on the CPU in float64; the coefficients move to x0
        a = self.signal_scale(t).to(x0).view(shape)
        s = self.noise_std(t).to(x0).view(shape)
        return a * x0 + s * eps
