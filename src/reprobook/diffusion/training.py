"""The epsilon-prediction training objective of DDPM, and the minibatch training loop that
the DDPM, EDM and consistency objectives share, with an optional exponential moving average
(EMA) of the weights (:func:`ema_model`)."""

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


def check_training_inputs(data: torch.Tensor, steps: int, batch_size: int) -> None:
    """The checks every training loop makes before it touches the model."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if len(data) < 1:
        raise ValueError("data is empty")
    if not torch.isfinite(data).all():
        raise ValueError("data contains NaN or infinite values")


# batch_loss(batch, generator, step), or batch_loss(batch, generator, step, condition_batch) with conditions
BatchLoss = Callable[..., torch.Tensor]


def ema_model(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s weights for :func:`train_minibatches`
    (``ema=``): torch's ``AveragedModel`` with ``get_ema_multi_avg_fn(decay)``.

    After the first update it holds the weights of that step; after each later one,
    ``ema <- decay * ema + (1 - decay) * weights`` (parameters and buffers). Call it like the
    model (``ema(x, sigma, ...)``); ``ema.module`` is the averaged copy, in eval mode and
    without gradients. The half-life in updates is ``ln 2 / -ln(decay)``.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    if not 0 <= decay < 1:
        raise ValueError(f"decay must be in [0, 1) (0: the latest weights), got {decay}")
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.module.eval().requires_grad_(False)
    return ema


def ema_decay_for_halflife(halflife: float) -> float:
    """The per-update decay whose EMA forgets half of a weight's contribution in ``halflife`` updates."""
    if halflife <= 0:
        raise ValueError(f"halflife must be positive, got {halflife}")
    return 0.5 ** (1.0 / halflife)


def train_minibatches(model: torch.nn.Module, data: torch.Tensor, batch_loss: BatchLoss,
                      optimizer: torch.optim.Optimizer, *, steps: int, batch_size: int, seed: int = 0,
                      scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, desc: str = "training",
                      on_step: Callable[[int], None] | None = None,
                      conditions: torch.Tensor | None = None,
                      ema: torch.optim.swa_utils.AveragedModel | None = None) -> list[float]:
    """The minibatch loop every objective here shares; returns the loss of every step.

    Each step draws ``batch_size`` rows of ``data`` with replacement (``randint`` on a generator
    seeded with ``seed``, on the model's device), then calls ``batch_loss(batch, generator, step)``
    with that same generator, so the objective's own draws (noise levels, noise) come next from it,
    then takes one optimizer (and scheduler) step. ``on_step(completed_steps)``, if given, runs
    after each step with the model in eval mode (e.g. to evaluate checkpoints); training mode is
    restored afterwards. The model is left in eval mode.

    ``conditions`` (optional, one row per row of ``data``, e.g. caption embeddings): the same rows
    as the batch's are passed on, ``batch_loss(batch, generator, step, condition_batch)``; without
    them the call keeps its three arguments. The draws are the same either way.

    ``ema`` (optional, from :func:`ema_model`): updated from the model after every optimizer step,
    before ``on_step``, so a checkpoint callback can evaluate it. The training itself (draws,
    weights, losses) is the same with or without it.
    """
    check_training_inputs(data, steps, batch_size)
    if conditions is not None and len(conditions) != len(data):
        raise ValueError(f"conditions must have one row per data row: got {len(conditions)} for {len(data)}")
    if conditions is not None and conditions.is_floating_point() and not torch.isfinite(conditions).all():
        raise ValueError("conditions contain NaN or infinite values")
    device = next(model.parameters()).device
    data = data.to(device)
    conditions = None if conditions is None else conditions.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    model.train()
    losses = []
    for step in progress(range(steps), desc=desc, leave=False):
        idx = torch.randint(0, len(data), (batch_size,), generator=generator, device=device)
        if conditions is None:
            loss = batch_loss(data[idx], generator, step)
        else:
            loss = batch_loss(data[idx], generator, step, conditions[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        losses.append(loss.item())
        if on_step is not None:
            model.eval()
            on_step(step + 1)
            model.train()
    model.eval()
    return losses


def train_ddpm(model: torch.nn.Module, data: torch.Tensor, schedule: DDPMSchedule, *, steps: int,
               batch_size: int, lr: float = 1e-3, cosine_decay: bool = False, max_step: int | None = None,
               seed: int = 0, desc: str = "training",
               ema: torch.optim.swa_utils.AveragedModel | None = None) -> list[float]:
    """Adam on ``ddpm_loss`` with minibatches drawn with replacement from ``data``.

    ``cosine_decay``: anneal the learning rate from ``lr`` to 0 over the run (a constant
    rate is the reference toy setting). ``max_step``: train only on ``t < max_step`` (see
    ``ddpm_loss``). Returns the loss of every step. ``ema``: see :func:`train_minibatches`.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine_decay else None
    return train_minibatches(model, data, lambda batch, gen, _: ddpm_loss(model, batch, schedule, gen, max_step),
                             opt, steps=steps, batch_size=batch_size, seed=seed, scheduler=sched, desc=desc,
                             ema=ema)
