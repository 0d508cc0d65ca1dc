"""The experiments of chapter 04, as functions the chapter calls."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch

from ..diffusion import (EDMDenoiser, GaussianMixture, ToyDenoiser, UNetDenoiser, consistency_sample,
                         heun_sample, karras_sigmas, train_consistency, train_edm)
from .config import Config
from .evaluation import DigitClassifier, frechet_distance, memorization_rate


def ring_mixture(cfg: Config) -> GaussianMixture:
    """``toy_modes`` equal Gaussians on a circle: per-axis spread close to sigma_data."""
    angles = 2 * math.pi * torch.arange(cfg.toy_modes, dtype=torch.float64) / cfg.toy_modes
    means = cfg.toy_radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture.isotropic(means, cfg.toy_sigma)


def toy_denoiser(cfg: Config, seed: int, device: str = "cpu") -> EDMDenoiser:
    torch.manual_seed(seed)
    net = ToyDenoiser(2, cfg.toy_width, 3, share_blocks=False)
    return EDMDenoiser(net, cfg.sigma_data, cfg.shift_sigma, label_scale=cfg.toy_label_scale).to(device)


def digits_denoiser(cfg: Config, seed: int, device: str = "cpu") -> EDMDenoiser:
    torch.manual_seed(seed)
    # diffusers' sinusoidal timestep embedding expects DDPM-sized steps: spread ln(sigma)/4 likewise.
    net = UNetDenoiser(cfg.digits_size, 1, cfg.unet_widths, dropout=cfg.dropout)
    return EDMDenoiser(net, cfg.sigma_data, cfg.shift_sigma, label_scale=250.0).to(device)


def pretrain(denoiser: EDMDenoiser, data: torch.Tensor, cfg: Config, *, steps: int, batch: int, lr: float,
             seed: int, desc: str) -> list[float]:
    return train_edm(denoiser, data, steps=steps, batch_size=batch, lr=lr, p_mean=cfg.pretrain_p_mean,
                     p_std=cfg.pretrain_p_std, seed=seed, desc=desc)


def tune(denoiser: EDMDenoiser, data: torch.Tensor, cfg: Config, *, steps: int, stage_len: int, batch: int,
         lr: float, seed: int, desc: str, fixed_stage: int | None = None, share_noise: bool = True,
         share_dropout: bool = True, on_step=None) -> list[float]:
    """ECT when ``denoiser`` is pretrained; consistency training from scratch when it is fresh."""
    return train_consistency(denoiser, data, steps=steps, stage_len=stage_len, batch_size=batch, lr=lr,
                             fixed_stage=fixed_stage, seed=seed, desc=desc, on_step=on_step,
                             p_mean=cfg.p_mean, p_std=cfg.p_std, k=cfg.k, b=cfg.b, q=cfg.q, huber_c=cfg.huber_c,
                             share_noise=share_noise, share_dropout=share_dropout)


def final_stage(steps: int, stage_len: int) -> int:
    """The stage the schedule reaches on its last iteration."""
    return 1 + (steps - 1) // stage_len


@torch.no_grad()
def few_step(denoiser: EDMDenoiser, cfg: Config, n: int, shape: tuple[int, ...], steps: int, seed: int,
             device: str = "cpu") -> torch.Tensor:
    """1- or 2-step consistency sampling (2 steps: sigma_max, then mid_sigma)."""
    sigmas = (cfg.sigma_max,) if steps == 1 else (cfg.sigma_max, cfg.mid_sigma)
    denoiser.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    return consistency_sample(denoiser, n, shape, sigmas=sigmas, generator=gen, device=device).cpu()


@torch.no_grad()
def diffusion_sample(denoiser, cfg: Config, n: int, shape: tuple[int, ...], steps: int, seed: int,
                     device: str = "cpu") -> torch.Tensor:
    """Deterministic Heun sampling of the diffusion model on EDM's grid with ``steps`` steps
    (2 * steps - 1 network evaluations); 1 step is Euler: D(sigma_max z, sigma_max)."""
    if hasattr(denoiser, "eval"):
        denoiser.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    x = cfg.sigma_max * torch.randn((n, *shape), generator=gen, device=device)
    sigmas = karras_sigmas(steps, cfg.sigma_min, cfg.sigma_max).to(device)
    return heun_sample(denoiser, sigmas, x).cpu()


def power_law_fit(budget: np.ndarray, value: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of log(value) = log(c) + slope * log(budget); returns (slope, c)."""
    slope, intercept = np.polyfit(np.log(budget), np.log(value), 1)
    return float(slope), float(np.exp(intercept))


DIGIT_RUNS = (("ECT", "pretrained", {}), ("CT from scratch", "fresh", {}),
              ("ECT, fresh dropout mask", "pretrained", {"share_dropout": False}))


def digit_metrics(x: torch.Tensor, classifier: DigitClassifier, real_features: torch.Tensor,
                  train_digits: torch.Tensor) -> dict:
    """Fréchet distance in ``classifier``'s features to ``real_features``, and the near-copy rate."""
    classifier.eval()
    with torch.no_grad():
        feats = classifier.features(x.clamp(-1, 1).to(real_features.device)).double()
    copies, _ = memorization_rate(x.flatten(1), train_digits.flatten(1))
    return {"FD (classifier features)": frechet_distance(feats, real_features.double()), "near-copies": copies}


def run_digits(cfg: Config, digits: torch.Tensor, classifier: DigitClassifier, seed: int,
               device: str = "cpu") -> tuple[list[dict], dict]:
    """Experiment 2 of the chapter: pretrain a U-Net EDM on ``digits``, tune it (ECT, CT from
    scratch, ECT with a fresh dropout mask) and score 1/2-step samples, plus the diffusion
    model's consistency-sampler 1/2-step and Heun samples, against the training digits.

    Returns the rows (with the samples under ``"samples"``) and wall-clock seconds of the
    pretraining and of the ECT run.
    """
    classifier.eval()
    with torch.no_grad():
        real_features = classifier.features(digits.to(next(classifier.parameters()).device)).double()
    shape = tuple(digits.shape[1:])
    data = digits.to(device)

    started = time.perf_counter()
    diffusion = digits_denoiser(cfg, seed, device)
    pretrain(diffusion, data, cfg, steps=cfg.digits_pretrain_steps, batch=cfg.digits_batch,
             lr=cfg.digits_pretrain_lr, seed=seed, desc="pretraining digits (EDM)")
    seconds = {"pretraining": time.perf_counter() - started}
    tuned = {}
    for label, start, kwargs in DIGIT_RUNS:
        model = copy.deepcopy(diffusion) if start == "pretrained" else digits_denoiser(cfg, seed + 10, device)
        started = time.perf_counter()
        tune(model, data, cfg, steps=cfg.digits_tune_steps, stage_len=cfg.digits_stage_len, batch=cfg.digits_batch,
             lr=cfg.digits_tune_lr, seed=seed, desc=label, **kwargs)
        seconds[label] = time.perf_counter() - started
        tuned[label] = model

    def scored(label: str, steps: int, x: torch.Tensor) -> dict:
        return {"model": label, "steps": steps, **digit_metrics(x, classifier, real_features, digits), "samples": x}

    n = cfg.n_digit_samples
    holdout = digits[torch.randperm(len(digits), generator=torch.Generator().manual_seed(seed))[:n]]
    rows = [scored("training digits (floor)", 0, holdout)]
    for steps in (1, 2, cfg.heun_steps):
        sample = diffusion_sample if steps == cfg.heun_steps else few_step
        rows.append(scored("diffusion model", steps, sample(diffusion, cfg, n, shape, steps, seed + 3, device)))
    for label, model in tuned.items():
        for steps in (1, 2):
            rows.append(scored(label, steps, few_step(model, cfg, n, shape, steps, seed + 3, device)))
    return rows, seconds
