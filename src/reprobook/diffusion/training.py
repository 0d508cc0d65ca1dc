"""The epsilon-prediction training objective of DDPM, and a plain training loop."""

from __future__ import annotations

from typing import Callable

import torch

from ..common import progress
from .schedules import DDPMSchedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddpm_loss(model: EpsModel, x0: torch.Tensor, schedule: DDPMSchedule,
              generator: torch.Generator | None = None, max_step: int | None = None) -> torch.Tensor:
    """``E_{t, eps} || eps - eps_theta(x_t, t) ||^2`` (mean over batch and dimensions).

    ``t`` is uniform on ``0 .. T-1`` (the "simple" loss of Ho et al.), or on
    ``0 .. max_step-1`` when the sampler never visits the later steps.
    """
    high = schedule.steps if max_step is None else max_step
    if not 1 <= high <= schedule.steps:
        raise ValueError(f"max_step must be in 1..{schedule.steps}, got {max_step}")
    t = torch.randint(0, high, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = schedule.add_noise(x0, t, eps)
    return torch.mean((model(x_t, t) - eps) ** 2)


def train_ddpm(model: torch.nn.Module, data: torch.Tensor, schedule: DDPMSchedule, *, steps: int,
               batch_size: int, lr: float = 1e-3, cosine_decay: bool = False, max_step: int | None = None,
               seed: int = 0, desc: str = "training") -> list[float]:
    """Adam on ``ddpm_loss`` with minibatches drawn with replacement from ``data``.

    ``cosine_decay``: anneal the learning rate from ``lr`` to 0 over the run (a constant
    rate is the reference toy setting). ``max_step``: train only on ``t < max_step`` (see
    ``ddpm_loss``). Returns the loss of every step. No EMA.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if len(data) < 1:
        raise ValueError("data is empty")
    if not torch.isfinite(data).all():
        raise ValueError("data contains NaN or infinite values")
    device = next(model.parameters()).device
    data = data.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine_decay else None
    model.train()
    losses = []
    for _ in progress(range(steps), desc=desc, leave=False):
        idx = torch.randint(0, len(data), (batch_size,), generator=generator, device=device)
        loss = ddpm_loss(model, data[idx], schedule, generator, max_step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    model.eval()
    return losses
