"""The experiments of chapter 04, as functions the chapter calls.

One seed of an experiment (:func:`train_arms`): pretrain an EDM denoiser for
``pretrain_steps + tune_steps`` iterations, keeping the EMA weights at ``pretrain_steps`` (the
teacher ECT starts from) and at the end (the teacher given ECT's tuning images too, a control);
tune a copy of the teacher with ECT; train the same network from scratch with the same loss for
the tuning steps only (equal tuning budget) and for the total (equal total budget, pretraining
included); optionally ECT's ablations. Every arm keeps an EMA of its weights (half-life
``ema_halflife_stages`` of its stage length), and the EMA is what is evaluated.
:func:`evaluate_arms` samples every model with the samplers its NFE allows.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..diffusion import (EDMDenoiser, GaussianMixture, ToyDenoiser, UNetDenoiser, consistency_sample,
                         ema_decay_for_halflife, ema_model, euler_sample, heun_sample, karras_sigmas,
                         train_consistency, train_edm)
from .config import Config
from .evaluation import DigitClassifier, frechet_distance, memorization_rate, negative_log_likelihood, \
    off_support_fraction, sliced_wasserstein


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


def ema_decay(cfg: Config, stage_len: int) -> float:
    """The EMA decay per iteration whose half-life is ``ema_halflife_stages`` stages."""
    return ema_decay_for_halflife(cfg.ema_halflife_stages * stage_len)


def pretrain(denoiser: EDMDenoiser, data: torch.Tensor, cfg: Config, *, steps: int, batch: int, lr: float,
             seed: int, desc: str, ema=None, on_step=None) -> list[float]:
    return train_edm(denoiser, data, steps=steps, batch_size=batch, lr=lr, p_mean=cfg.pretrain_p_mean,
                     p_std=cfg.pretrain_p_std, seed=seed, desc=desc, ema=ema, on_step=on_step)


def tune(denoiser: EDMDenoiser, data: torch.Tensor, cfg: Config, *, steps: int, stage_len: int, batch: int,
         lr: float, seed: int, desc: str, fixed_stage: int | None = None, share_noise: bool = True,
         share_dropout: bool = True, on_step=None, ema=None) -> list[float]:
    """ECT when ``denoiser`` is pretrained; consistency training from scratch when it is fresh."""
    return train_consistency(denoiser, data, steps=steps, stage_len=stage_len, batch_size=batch, lr=lr,
                             fixed_stage=fixed_stage, seed=seed, desc=desc, on_step=on_step, ema=ema,
                             p_mean=cfg.p_mean, p_std=cfg.p_std, k=cfg.k, b=cfg.b, q=cfg.q, huber_c=cfg.huber_c,
                             share_noise=share_noise, share_dropout=share_dropout)


def final_stage(steps: int, stage_len: int) -> int:
    """The stage the schedule reaches on its last iteration."""
    return 1 + (steps - 1) // stage_len


@dataclass(frozen=True)
class Setting:
    """The sizes of one experiment (the toy or digits)."""

    make: Callable[[int], EDMDenoiser]  # seed -> a fresh denoiser
    pretrain_steps: int
    tune_steps: int
    stage_len: int
    batch: int
    pretrain_lr: float
    tune_lr: float


def toy_setting(cfg: Config, device: str = "cpu") -> Setting:
    return Setting(lambda s: toy_denoiser(cfg, s, device), cfg.toy_pretrain_steps, cfg.toy_tune_steps,
                   cfg.toy_stage_len, cfg.toy_batch, cfg.toy_pretrain_lr, cfg.toy_tune_lr)


def digits_setting(cfg: Config, device: str = "cpu") -> Setting:
    return Setting(lambda s: digits_denoiser(cfg, s, device), cfg.digits_pretrain_steps, cfg.digits_tune_steps,
                   cfg.digits_stage_len, cfg.digits_batch, cfg.digits_pretrain_lr, cfg.digits_tune_lr)


TEACHER, TEACHER_PLUS = "diffusion model", "diffusion model, + tuning images"
ECT, CT_TUNING, CT_TOTAL = "ECT", "CT from scratch, equal tuning steps", "CT from scratch, equal total steps"
TOY_ABLATIONS = (("ECT, no stage schedule", "fixed_stage"), ("ECT, independent noise", {"share_noise": False}))
DIGIT_ABLATIONS = (("ECT, fresh dropout mask", {"share_dropout": False}),)


def train_arms(cfg: Config, setting: Setting, data: torch.Tensor, seed: int, *, ablations=(),
               checkpoints=(), on_checkpoint: Callable[[int, EDMDenoiser], None] | None = None
               ) -> tuple[dict[str, EDMDenoiser], dict[str, float]]:
    """One seed of an experiment (see the module's docstring). Returns the EMA models by arm and
    the wall-clock seconds of each training run. ``on_checkpoint(iteration, ema_model)`` runs for
    ECT at the iterations in ``checkpoints``. ``ablations``: ``(name, kwargs of tune)`` pairs, or
    ``(name, "fixed_stage")`` for ECT at its final stage from the first iteration."""
    p, t, stage_len = setting.pretrain_steps, setting.tune_steps, setting.stage_len
    models, seconds = {}, {}

    model = setting.make(seed)
    ema = ema_model(model, ema_decay(cfg, stage_len))

    def keep_teacher(iteration: int) -> None:
        if iteration == p:
            models[TEACHER] = copy.deepcopy(ema.module)
            seconds["pretraining"] = time.perf_counter() - started

    started = time.perf_counter()
    pretrain(model, data, cfg, steps=p + t, batch=setting.batch, lr=setting.pretrain_lr, seed=seed,
             desc="pretraining (EDM)", ema=ema, on_step=keep_teacher)
    models[TEACHER_PLUS] = ema.module
    seconds["pretraining, + tuning images"] = time.perf_counter() - started - seconds["pretraining"]

    n_stages = final_stage(t, stage_len)
    long_stage = -(-(p + t) // n_stages)  # the same number of stages over the longer run
    runs = [(ECT, "teacher", t, stage_len, {}), (CT_TUNING, "fresh", t, stage_len, {}),
            (CT_TOTAL, "fresh", p + t, long_stage, {})]
    for name, kwargs in ablations:
        runs.append((name, "teacher", t, stage_len, {"fixed_stage": n_stages} if kwargs == "fixed_stage" else kwargs))
    for name, start, steps, length, kwargs in runs:
        model = copy.deepcopy(models[TEACHER]).requires_grad_(True) if start == "teacher" else setting.make(seed + 10)
        ema = ema_model(model, ema_decay(cfg, length))
        callback = None
        if name == ECT and on_checkpoint is not None:
            def callback(iteration: int, ema=ema) -> None:
                if iteration in checkpoints:
                    on_checkpoint(iteration, ema.module)
        started = time.perf_counter()
        tune(model, data, cfg, steps=steps, stage_len=length, batch=setting.batch, lr=setting.tune_lr, seed=seed,
             desc=name, on_step=callback, ema=ema, **kwargs)
        seconds[name] = time.perf_counter() - started
        models[name] = ema.module
    return models, seconds


# ----------------------------------------------------------------------------- samplers


@torch.no_grad()
def few_step(denoiser: EDMDenoiser, cfg: Config, n: int, shape: tuple[int, ...], steps: int, seed: int,
             device: str = "cpu", mid: float | None = None) -> torch.Tensor:
    """1- or 2-step consistency sampling (2 steps: sigma_max, then ``mid``, default cfg.mid_sigma)."""
    sigmas = (cfg.sigma_max,) if steps == 1 else (cfg.sigma_max, cfg.mid_sigma if mid is None else mid)
    denoiser.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    return consistency_sample(denoiser, n, shape, sigmas=sigmas, generator=gen, device=device).cpu()


@torch.no_grad()
def ode_sample(denoiser, cfg: Config, n: int, shape: tuple[int, ...], sigmas: torch.Tensor, solver: str,
               seed: int, device: str = "cpu") -> torch.Tensor:
    """The probability-flow ODE from ``sigma_max z`` along ``sigmas`` (``"euler"`` or ``"heun"``)."""
    if hasattr(denoiser, "eval"):
        denoiser.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    x = cfg.sigma_max * torch.randn((n, *shape), generator=gen, device=device)
    step = {"euler": euler_sample, "heun": heun_sample}[solver]
    return step(denoiser, sigmas.to(device), x).cpu()


def diffusion_sample(denoiser, cfg: Config, n: int, shape: tuple[int, ...], steps: int, seed: int,
                     device: str = "cpu") -> torch.Tensor:
    """Deterministic Heun sampling of the diffusion model on EDM's grid with ``steps`` steps
    (2 * steps - 1 network evaluations); 1 step is Euler: D(sigma_max z, sigma_max)."""
    return ode_sample(denoiser, cfg, n, shape, karras_sigmas(steps, cfg.sigma_min, cfg.sigma_max), "heun", seed,
                      device)


def two_nfe_grids(cfg: Config) -> dict[str, tuple[torch.Tensor, str]]:
    """The diffusion model's ODE samplers with 2 network evaluations on EDM's grid: two Euler
    steps (sigma_max -> sigma_min -> 0), and one Heun step (sigma_max -> sigma_min)."""
    grid = karras_sigmas(2, cfg.sigma_min, cfg.sigma_max)
    return {"Euler, EDM grid": (grid, "euler"), "Heun, EDM grid": (grid[:-1], "heun")}


def tune_mid(denoiser: EDMDenoiser, cfg: Config, score: Callable[[torch.Tensor], float], n: int,
             shape: tuple[int, ...], seed: int, device: str = "cpu") -> tuple[float, dict[float, float]]:
    """The 2-step intermediate level of ``cfg.mid_grid`` with the lowest ``score`` (lower is
    better) on samples drawn with ``seed`` (pass a seed the evaluation does not use, and a
    score against a held-out reference). Returns the level and every level's score."""
    scores = {m: float(score(few_step(denoiser, cfg, n, shape, 2, seed, device, mid=m))) for m in cfg.mid_grid}
    return min(scores, key=scores.get), scores


def evaluate_arms(models: dict[str, EDMDenoiser], cfg: Config, metrics: Callable[[torch.Tensor], dict],
                  tuning_score: Callable[[torch.Tensor], float], n: int, shape: tuple[int, ...], seed: int,
                  device: str = "cpu") -> list[dict]:
    """Rows ``{model, sampler, NFE, mid, **metrics(x), samples}`` for every model of
    :func:`train_arms`: the teacher with Euler at 1 NFE (``D(sigma_max z, sigma_max)``), the
    2-NFE ODE samplers of :func:`two_nfe_grids`, the 2-step consistency sampler and Heun with
    ``heun_steps`` steps; the teacher with extra images with Heun; the tuned models with the
    1- and 2-step consistency sampler. Every 2-step consistency sampler uses its own
    intermediate level from :func:`tune_mid` (``seed + 1``, scored with ``tuning_score``);
    the evaluation draws use ``seed``."""
    rows = []

    def row(model: str, sampler: str, nfe: int, x: torch.Tensor, mid: float = float("nan")) -> None:
        rows.append({"model": model, "sampler": sampler, "NFE": nfe, "mid": mid, **metrics(x), "samples": x})

    for name, model in models.items():
        if name == TEACHER:
            row(name, "Euler", 1, ode_sample(model, cfg, n, shape, karras_sigmas(1, cfg.sigma_min, cfg.sigma_max),
                                             "euler", seed, device))
            for sampler, (grid, solver) in two_nfe_grids(cfg).items():
                row(name, sampler, 2, ode_sample(model, cfg, n, shape, grid, solver, seed, device))
        if name in (TEACHER, TEACHER_PLUS):
            row(name, f"Heun, {cfg.heun_steps} steps", 2 * cfg.heun_steps - 1,
                diffusion_sample(model, cfg, n, shape, cfg.heun_steps, seed, device))
        if name == TEACHER_PLUS:
            continue
        mid, _ = tune_mid(model, cfg, tuning_score, n, shape, seed + 1, device)
        if name != TEACHER:
            row(name, "consistency, 1 step", 1, few_step(model, cfg, n, shape, 1, seed, device))
        row(name, "consistency, 2 steps", 2, few_step(model, cfg, n, shape, 2, seed, device, mid=mid), mid)
    return rows


# ----------------------------------------------------------------------------- metrics


def between_modes_fraction(x: torch.Tensor, mix: GaussianMixture, cfg: Config, n_sigmas: float = 4.0) -> float:
    """Fraction of samples off support (farther than ``n_sigmas`` std from every mode) that
    nevertheless lie on the ring (radius within ``n_sigmas`` std of ``toy_radius``): samples
    interpolating between neighbouring modes, as in chapter 03's mode interpolation."""
    x = x.double()
    off = mix.distance_in_stds(x) > n_sigmas
    on_ring = (x.norm(dim=1) - cfg.toy_radius).abs() <= n_sigmas * cfg.toy_sigma
    return float((off & on_ring).double().mean())


def toy_metrics(x: torch.Tensor, mix: GaussianMixture, reference: torch.Tensor, cfg: Config,
                seed: int = 0) -> dict:
    """Sliced W to ``reference`` (fresh data of the same size), NLL under the true density, the
    off-support fraction and its part on the ring between modes."""
    return {"sliced W": sliced_wasserstein(x.double(), reference.double(), seed=seed),
            "NLL": negative_log_likelihood(x, mix), "off support": off_support_fraction(x, mix, 4.0),
            "between modes": between_modes_fraction(x, mix, cfg)}


def power_law_fit(budget: np.ndarray, value: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of log(value) = log(c) + slope * log(budget); returns (slope, c)."""
    slope, intercept = np.polyfit(np.log(budget), np.log(value), 1)
    return float(slope), float(np.exp(intercept))


def digit_metrics(x: torch.Tensor, classifier: DigitClassifier, real_features: torch.Tensor,
                  train_digits: torch.Tensor) -> dict:
    """Fréchet distance in ``classifier``'s features to ``real_features``, and the near-copy rate."""
    classifier.eval()
    with torch.no_grad():
        feats = classifier.features(x.clamp(-1, 1).to(real_features.device)).double()
    copies, _ = memorization_rate(x.flatten(1), train_digits.flatten(1))
    return {"FD (classifier features)": frechet_distance(feats, real_features.double()), "near-copies": copies}


def digit_fd(x: torch.Tensor, classifier: DigitClassifier, real_features: torch.Tensor) -> float:
    """The Fréchet distance of :func:`digit_metrics` alone (for :func:`tune_mid`)."""
    with torch.no_grad():
        feats = classifier.features(x.clamp(-1, 1).to(real_features.device)).double()
    return frechet_distance(feats, real_features.double())


def run_digits(cfg: Config, digits: torch.Tensor, classifier: DigitClassifier, seed: int,
               device: str = "cpu", ablations=DIGIT_ABLATIONS) -> tuple[list[dict], dict]:
    """One seed of experiment 2: :func:`train_arms` on ``digits`` and :func:`evaluate_arms`
    against all of them (the 2-step intermediate levels are tuned on held-out sampling noise).
    Returns the rows (samples under ``"samples"``, the floor first) and the wall-clock seconds
    of each training run."""
    classifier.eval()
    with torch.no_grad():
        real_features = classifier.features(digits.to(next(classifier.parameters()).device)).double()
    shape = tuple(digits.shape[1:])
    models, seconds = train_arms(cfg, digits_setting(cfg, device), digits.to(device), seed, ablations=ablations)
    n = cfg.n_digit_samples
    holdout = digits[torch.randperm(len(digits), generator=torch.Generator().manual_seed(seed))[:n]]
    floor = {"model": "training digits (floor)", "sampler": "", "NFE": 0, "mid": float("nan"),
             **digit_metrics(holdout, classifier, real_features, digits), "samples": holdout}
    rows = evaluate_arms(models, cfg, lambda x: digit_metrics(x, classifier, real_features, digits),
                         lambda x: digit_fd(x, classifier, real_features), n, shape, seed + 3, device)
    return [floor, *rows], seconds
