"""The experiments of chapter 03, as functions the chapter calls."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..common import progress
from ..diffusion import DDPMSchedule, GaussianMixture, Samples, ToyDenoiser, UNetDenoiser, ancestral_sample, train_ddpm
from .config import Config
from .metrics import out_of_support, trajectory_variance

FILTERS = ("none", "random", "variance")


def ddpm_schedule(cfg: Config) -> DDPMSchedule:
    return DDPMSchedule.linear(cfg.timesteps, cfg.beta_start, cfg.beta_end)


def chain_start(cfg: Config, schedule: DDPMSchedule) -> int:
    """Where the reverse chain starts: T, or the first step with sqrt(alpha_bar) < start_tol."""
    return schedule.steps if cfg.start_tol == 0 else min(schedule.steps, schedule.first_pure_noise_step(cfg.start_tol) + 1)


def mixture_1d(modes, sigma: float) -> GaussianMixture:
    """Equal-weight 1D mixture, not normalized (the reference's choice)."""
    return GaussianMixture.isotropic(torch.as_tensor(modes, dtype=torch.float64)[:, None], sigma)


def grid_2d(sigma: float, rotate: bool = False) -> GaussianMixture:
    """25 modes at 2 * {-2..2}^2 (rotated 45 degrees if ``rotate``: the diamond), divided by
    sqrt(sigma^2 + 8), the standard deviation of the data along an axis."""
    g = torch.arange(-2, 3, dtype=torch.float64) * 2
    means = torch.cartesian_prod(g, g)
    if rotate:
        c = math.cos(math.pi / 4)
        means = means @ torch.tensor([[c, c], [-c, c]], dtype=torch.float64)
    return GaussianMixture.isotropic(means, sigma).scaled(1 / math.sqrt(sigma**2 + 8))


def training_data(mixture: GaussianMixture, n: int, seed: int) -> torch.Tensor:
    x, _ = mixture.sample(n, torch.Generator().manual_seed(seed), balanced=True)
    return x.float()


def train_toy(data: torch.Tensor, cfg: Config, seed: int, device: str = "cpu",
              share_blocks: bool | None = None, desc: str = "training") -> ToyDenoiser:
    """A fresh toy denoiser trained on ``data`` (1D: ``steps_1d`` at ``lr``; 2D: ``steps_2d`` at
    ``lr_2d``), only on the steps the sampler visits (t < chain start)."""
    torch.manual_seed(seed)
    share = cfg.share_blocks if share_blocks is None else share_blocks
    one_d = data.shape[1] == 1
    model = ToyDenoiser(data.shape[1], cfg.width, cfg.n_blocks, share).to(device)
    schedule = ddpm_schedule(cfg)
    train_ddpm(model, data, schedule, steps=cfg.steps_1d if one_d else cfg.steps_2d, batch_size=cfg.batch,
               lr=cfg.lr if one_d else cfg.lr_2d, cosine_decay=cfg.cosine_decay,
               max_step=chain_start(cfg, schedule), seed=seed, desc=desc)
    return model


def sample_toy(model, cfg: Config, n: int, dim: int, seed: int, device: str = "cpu",
               keep_last: int | None = None, desc: str = "sampling") -> Samples:
    schedule = ddpm_schedule(cfg)
    return ancestral_sample(model, schedule, n, (dim,), keep_last=keep_last or cfg.hal_window,
                            start_step=chain_start(cfg, schedule), seed=seed, device=device, desc=desc)


def hallucination_rate(x: torch.Tensor, mixture: GaussianMixture, cfg: Config) -> float:
    return float(out_of_support(x, mixture, cfg.support_sigmas).mean())


@torch.no_grad()
def denoiser_curves(model, mixture: GaussianMixture, schedule: DDPMSchedule, steps, grid: torch.Tensor,
                    device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Learned and exact E[x0 | x_t] on a 1D grid of x_t values, one row per t in ``steps``."""
    learned, exact = [], []
    for t in steps:
        tt = torch.full((len(grid),), t, dtype=torch.long)
        a, s = schedule.signal_scale(tt), schedule.noise_std(tt)
        eps = model(grid[:, None].float().to(device), tt.to(device)).cpu().double()
        learned.append(((grid[:, None] - s[:, None] * eps) / a[:, None])[:, 0].numpy())
        exact.append(mixture.posterior_mean(grid[:, None], a, s)[:, 0].numpy())
    return np.array(learned), np.array(exact)


def train_shapes(images: np.ndarray, cfg: Config, seed: int, device: str = "cpu") -> UNetDenoiser:
    torch.manual_seed(seed)
    model = UNetDenoiser(cfg.shape_height, 1, cfg.unet_widths).to(device)
    schedule = ddpm_schedule(cfg)
    train_ddpm(model, torch.from_numpy(images), schedule, steps=cfg.shapes_steps, batch_size=cfg.shapes_batch,
               lr=cfg.shapes_lr, cosine_decay=cfg.cosine_decay, max_step=chain_start(cfg, schedule), seed=seed,
               desc="U-Net on shapes")
    return model


def sample_shapes(model, cfg: Config, n: int, seed: int, device: str = "cpu") -> Samples:
    schedule = ddpm_schedule(cfg)
    return ancestral_sample(model, schedule, n, (1, cfg.shape_height, cfg.shape_width), keep_last=cfg.hal_window,
                            start_step=chain_start(cfg, schedule), batch_size=256, seed=seed, device=device,
                            desc="sampling shapes")


def select(samples: Samples, n: int, mode: str, cfg: Config, seed: int) -> torch.Tensor:
    """Keep ``n`` of the samples: the first n ("none"), n at random ("random"), or the n with
    the lowest trajectory variance ("variance")."""
    if mode not in FILTERS:
        raise ValueError(f"unknown filter {mode!r}; valid filters: {', '.join(FILTERS)}")
    if n > len(samples):
        raise ValueError(f"cannot keep {n} of {len(samples)} samples")
    if mode == "none":
        return samples.x[:n]
    if mode == "random":
        idx = np.random.default_rng(seed).permutation(len(samples))[:n]
    else:
        idx = np.argsort(trajectory_variance(samples.x0_trajectory, cfg.hal_window), kind="stable")[:n]
    return samples.x[torch.as_tensor(idx)]


def recursive_training(mixture: GaussianMixture, cfg: Config, seed: int, device: str = "cpu") -> list[dict]:
    """Train generation 0 on real data; every later generation trains a fresh model only on
    ``recursive_n`` samples of the previous one, chosen by each filter from
    ``recursive_n + recursive_extra`` (the unfiltered chain draws exactly recursive_n).

    Returns one row per (filter, generation): the hallucination rate of the model's raw samples
    and of the set kept to train the next generation.
    """
    n, extra, dim = cfg.recursive_n, cfg.recursive_extra, mixture.dim
    data = training_data(mixture, n, seed)
    model0 = train_toy(data, cfg, seed, device, desc="generation 0")
    first = sample_toy(model0, cfg, n + extra, dim, seed + 1, device, desc="generation 0 samples")
    rows = []
    for mode in progress(FILTERS, desc="filters"):
        samples = first
        for gen in range(cfg.generations):
            if gen > 0:
                model = train_toy(kept, cfg, seed + 100 * gen, device, desc=f"{mode}, gen {gen}")
                count = n if mode == "none" else n + extra
                samples = sample_toy(model, cfg, count, dim, seed + 100 * gen + 1, device, desc=f"{mode}, gen {gen} samples")
            raw = samples if mode != "none" else Samples(samples.x[:n], samples.x0_trajectory[:, :n])
            kept = select(raw, n, mode, cfg, seed + gen)
            rows.append({"filter": mode, "generation": gen,
                         "raw_hallucination": hallucination_rate(raw.x, mixture, cfg),
                         "kept_hallucination": hallucination_rate(kept, mixture, cfg)})
    return rows

