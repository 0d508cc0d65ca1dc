"""Ancestral (DDPM) sampling that can record the model's x0-predictions along the way."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common import progress
from .schedules import DDPMSchedule
from .training import EpsModel


@dataclass
class Samples:
    """Result of :func:`ancestral_sample`.

    ``x``: the samples, shape ``(n, *sample_shape)``.
    ``x0_trajectory``: the model's prediction of ``x_0`` at the last ``keep_last``
    reverse steps, shape ``(keep_last, n, *sample_shape)``, rows in sampling order
    (``t = keep_last - 1`` first, ``t = 0`` last); ``None`` when ``keep_last == 0``.
    """

    x: torch.Tensor
    x0_trajectory: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.x)


def predicted_x0(schedule: DDPMSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
    """``(x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``: the x0 the noise prediction implies."""
    a = float(schedule.alpha_bars[t].sqrt())
    s = float((1 - schedule.alpha_bars[t]).sqrt())
    return (x_t - s * eps) / a


def ancestral_step(schedule: DDPMSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: int,
                   noise: torch.Tensor | None) -> torch.Tensor:
    """One reverse step ``x_t -> x_{t-1}`` with variance ``beta_t`` (Ho et al.'s sigma_t^2 = beta_t).

    ``x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z``;
    no noise is added at ``t = 0`` and the x0-prediction is not clipped.
    """
    beta = float(schedule.betas[t])
    mean = (x_t - beta / float((1 - schedule.alpha_bars[t]).sqrt()) * eps) / (1 - beta) ** 0.5
    if t == 0:
        return mean
    if noise is None:
        raise ValueError("noise is required for t > 0")
    return mean + beta**0.5 * noise


@torch.no_grad()
def ancestral_sample(model: EpsModel, schedule: DDPMSchedule, n: int, sample_shape: tuple[int, ...], *,
                     keep_last: int = 0, start_step: int | None = None, batch_size: int | None = None,
                     seed: int = 0, device: str = "cpu", desc: str = "sampling") -> Samples:
    """Draw ``n`` samples by running the reverse chain from ``t = start_step - 1`` down to 0.

    ``start_step`` defaults to ``T`` (the full chain, x_{T-1} ~ N(0, I)). A smaller
    value starts from N(0, I) at an earlier step; this is only faithful where
    ``sqrt(alpha_bar)`` is already negligible (see ``DDPMSchedule.first_pure_noise_step``).
    ``keep_last``: record the x0-predictions of the last ``keep_last`` steps.
    ``batch_size``: run the chain on chunks of this many samples (memory).
    """
    start = schedule.steps if start_step is None else start_step
    if not 1 <= start <= schedule.steps:
        raise ValueError(f"start_step must be in 1..{schedule.steps}, got {start_step}")
    if not 0 <= keep_last <= start:
        raise ValueError(f"keep_last must be in 0..{start} (start_step), got {keep_last}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    batch_size = batch_size or n
    generator = torch.Generator(device=device).manual_seed(seed)
    xs, trajs = [], []
    chunks = [(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]
    bar = progress(total=start * len(chunks), desc=desc, leave=False)
    for lo, hi in chunks:
        x = torch.randn((hi - lo, *sample_shape), generator=generator, device=device)
        traj = []
        for t in range(start - 1, -1, -1):
            tt = torch.full((hi - lo,), t, dtype=torch.long, device=device)
            eps = model(x, tt)
            if t < keep_last:
                traj.append(predicted_x0(schedule, x, eps, t).cpu())
            noise = torch.randn(x.shape, generator=generator, device=device) if t > 0 else None
            x = ancestral_step(schedule, x, eps, t, noise)
            bar.update(1)
        xs.append(x.cpu())
        if keep_last:
            trajs.append(torch.stack(traj))
    bar.close()
    samples = Samples(torch.cat(xs), torch.cat(trajs, 1) if keep_last else None)
    bad = ~torch.isfinite(samples.x.flatten(1)).all(1)
    if bad.any():
        # Where eps_theta ~ 0 on pure noise, every step multiplies x by 1/sqrt(alpha_t) > 1.
        raise FloatingPointError(
            f"{int(bad.sum())} of {n} samples are not finite after the reverse chain from t = {start - 1}: "
            "the model's noise predictions are off on the early steps (undertrained, or not trained on the "
            "steps the chain visits); train longer or start the chain later (start_step)")
    return samples
