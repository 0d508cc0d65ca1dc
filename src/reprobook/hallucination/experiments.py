"""The experiments of chapter 03, as functions the chapter calls."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..common import progress
from ..diffusion import DDPMSchedule, GaussianMixture, Samples, ToyDenoiser, UNetDenoiser, ancestral_sample, train_ddpm
from .config import Config
from .metrics import BETWEEN, binomial_interval, distance_in_sigmas, label_samples, trajectory_variance

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
              share_blocks: bool | None = None, desc: str = "training", steps: int | None = None) -> ToyDenoiser:
    """A fresh toy denoiser trained on ``data`` (1D: ``steps_1d`` at ``lr``; 2D: ``steps_2d`` at
    ``lr_2d``; ``steps`` overrides the count), only on the steps the sampler visits (t < chain start)."""
    torch.manual_seed(seed)
    share = cfg.share_blocks if share_blocks is None else share_blocks
    one_d = data.shape[1] == 1
    model = ToyDenoiser(data.shape[1], cfg.width, cfg.n_blocks, share).to(device)
    schedule = ddpm_schedule(cfg)
    steps = steps or (cfg.steps_1d if one_d else cfg.steps_2d)
    train_ddpm(model, data, schedule, steps=steps, batch_size=cfg.batch,
               lr=cfg.lr if one_d else cfg.lr_2d, cosine_decay=cfg.cosine_decay,
               max_step=chain_start(cfg, schedule), seed=seed, desc=desc)
    return model


def sample_toy(model, cfg: Config, n: int, dim: int, seed: int, device: str = "cpu",
               keep_last: int | None = None, desc: str = "sampling") -> Samples:
    schedule = ddpm_schedule(cfg)
    return ancestral_sample(model, schedule, n, (dim,), keep_last=keep_last or cfg.hal_window,
                            start_step=chain_start(cfg, schedule), seed=seed, device=device, desc=desc)


def labels(x: torch.Tensor, mixture: GaussianMixture, cfg: Config) -> np.ndarray:
    """The band of every sample (see ``metrics.BANDS``) under the chapter's two distances."""
    return label_samples(x, mixture, cfg.support_sigmas, cfg.hallucination_sigmas)


def hallucination_rate(x: torch.Tensor, mixture: GaussianMixture, cfg: Config) -> float:
    """The fraction of samples that lie between modes (the clean hallucination label)."""
    return float((labels(x, mixture, cfg) == BETWEEN).mean())


def mode_width(x: torch.Tensor, mixture: GaussianMixture, cfg: Config) -> float:
    """Root-mean-square distance of the in-support samples to their nearest mode, per
    dimension, in sigmas: about 1 for the true modes (0.9995 in 1D and 0.9987 in 2D, as the
    band cuts the tail at ``support_sigmas`` = 4)."""
    d = distance_in_sigmas(x, mixture)
    inside = d <= cfg.support_sigmas
    return float(np.sqrt((d[inside] ** 2).mean() / mixture.dim)) if inside.any() else float("nan")


def rate_row(x: torch.Tensor, mixture: GaussianMixture, cfg: Config, **keys) -> dict:
    """Counts, rate and 95% Wilson interval of the between-modes label, with ``keys``."""
    count, n = int((labels(x, mixture, cfg) == BETWEEN).sum()), len(x)
    lo, hi = binomial_interval(count, n)
    return {**keys, "between": count, "samples": n, "rate": count / n, "low": lo, "high": hi}


def sweep_1d(cfg: Config, seed: int, device: str = "cpu", done: dict | None = None) -> list[dict]:
    """Hallucination rate of 1D models over the training-set sizes ``n_train_sweep`` (modes 1, 2,
    3) and the spacings ``spacing_sweep`` (n = ``n_train_1d``): one model per value and seed
    ``seed .. seed + sweep_seeds - 1``, each trained for ``steps_1d`` and sampled
    ``n_samples_sweep`` times. ``done``: samples already drawn, keyed by (n, spacing, seed)."""
    done = done or {}
    rows, cache = [], {}
    points = [("training points", n, 1.0) for n in cfg.n_train_sweep]
    points += [("mode spacing", cfg.n_train_1d, g) for g in cfg.spacing_sweep]
    for setting, n, spacing in progress(points, desc="sweep"):
        mix = mixture_1d(1 + spacing * torch.arange(3.0), cfg.sigma)
        for s in range(seed, seed + cfg.sweep_seeds):
            key = (n, spacing, s)
            if key not in cache:
                if key in done:
                    cache[key] = done[key][: cfg.n_samples_sweep]
                else:
                    model = train_toy(training_data(mix, n, s), cfg, s, device, desc=f"n={n}, spacing {spacing}")
                    cache[key] = sample_toy(model, cfg, cfg.n_samples_sweep, 1, s + 1, device, keep_last=2).x
            rows.append(rate_row(cache[key], mix, cfg, setting=setting, n_train=n, spacing=spacing, seed=s))
    return rows


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
    the lowest trajectory variance over the reference window ``hal_window`` ("variance")."""
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
    """Chains of models, each trained only on samples of the previous one.

    For every chain seed ``seed .. seed + recursive_seeds - 1``: generation 0 trains on
    ``recursive_n`` real points; every later generation trains a fresh model (``recursive_steps``
    steps) on ``recursive_n`` samples of the previous one, chosen by each filter of
    ``recursive_filters`` from ``recursive_n + recursive_extra`` (the "none" filter draws exactly
    ``recursive_n``). Generation 0 and its samples are shared by the filters of a chain.

    Returns one row per (seed, filter, generation): the between-modes rate of the model's raw
    samples and of the set kept for the next generation, and the width of its modes.
    """
    n, extra, dim = cfg.recursive_n, cfg.recursive_extra, mixture.dim
    rows = []
    for chain in progress(range(seed, seed + cfg.recursive_seeds), desc="chains"):
        model0 = train_toy(training_data(mixture, n, chain), cfg, chain, device, desc="generation 0",
                           steps=cfg.recursive_steps)
        first = sample_toy(model0, cfg, n + extra, dim, chain + 1, device, desc="generation 0 samples")
        for mode in cfg.recursive_filters:
            samples = first
            for gen in range(cfg.generations):
                if gen > 0:
                    s = chain + 100 * gen
                    model = train_toy(kept, cfg, s, device, desc=f"{mode}, gen {gen}", steps=cfg.recursive_steps)
                    count = n if mode == "none" else n + extra
                    samples = sample_toy(model, cfg, count, dim, s + 1, device, desc=f"{mode}, gen {gen} samples")
                raw = samples if mode != "none" else Samples(samples.x[:n], samples.x0_trajectory[:, :n])
                kept = select(raw, n, mode, cfg, chain + gen)
                rows.append({"seed": chain, "filter": mode, "generation": gen,
                             "raw_hallucination": hallucination_rate(raw.x, mixture, cfg),
                             "kept_hallucination": hallucination_rate(kept, mixture, cfg),
                             "mode_width": mode_width(raw.x, mixture, cfg)})
    return rows
