"""EDM (Karras et al. 2022): the variance-exploding process ``x_sigma = x_0 + sigma eps``,
its preconditioned denoiser, training loss, noise-level grid and deterministic samplers.

A denoiser ``D(x, sigma)`` estimates ``E[x_0 | x_sigma = x]``; the probability-flow ODE is

    dx / dsigma = (x - D(x, sigma)) / sigma,

and solving it from ``sigma_max`` (where ``x ~ N(0, sigma_max^2 I)``) down to 0 samples the data.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .mixture import GaussianMixture
from .training import train_minibatches

# Any x0-estimator with the calling convention (x, sigma of shape (n,)) -> same shape as x.
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_row(sigma, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` (a scalar or one value per row) as a float tensor of shape ``(n,)`` like ``x``."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        return sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    return sigma


def _over_sample_dims(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-row ``(n,)`` tensor shaped to broadcast over the sample dimensions of ``x``."""
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


class EDMDenoiser(nn.Module):
    """EDM's preconditioned denoiser around a raw network ``net(x_in, noise_label)``:

        D(x, sigma) = c_skip x + c_out F(c_in x, label_scale c_noise),
        c_in = 1 / sqrt(sigma^2 + sd^2),        c_noise = ln(sigma) / 4,
        c_skip = sd^2 / (sigma^2 + sd^2),       c_out = sigma sd / sqrt(sigma^2 + sd^2),

    with ``sd = sigma_data``, so that the network's input and target have unit variance.
    ``shifted=True`` is the consistency-model parameterization used at sampling time (ECT):

        c_skip = sd^2 / ((sigma - sigma_min)^2 + sd^2),  c_out = (sigma - sigma_min) sd / sqrt(sigma^2 + sd^2),

    so ``D(x, sigma_min, shifted=True) == x`` exactly (the boundary condition f(x, sigma_min) = x).
    ``label_scale`` stretches ``c_noise`` for networks whose time embedding expects large
    (DDPM-step-sized) times. A conditional network ``net(x_in, noise_label, cond)`` gets ``cond``
    (e.g. a caption's token states, one row per row of ``x``) when one is given.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, sigma_min: float = 0.002, label_scale: float = 1.0):
        super().__init__()
        if sigma_data <= 0 or sigma_min < 0 or label_scale <= 0:
            raise ValueError(f"need sigma_data > 0, sigma_min >= 0 and label_scale > 0; "
                             f"got {sigma_data}, {sigma_min}, {label_scale}")
        self.net = net
        self.sigma_data = float(sigma_data)
        self.sigma_min = float(sigma_min)
        self.label_scale = float(label_scale)

    def preconditioning(self, sigma: torch.Tensor, shifted: bool = False):
        """``(c_skip, c_out, c_in, c_noise)`` at the noise levels ``sigma`` (elementwise)."""
        sd2 = self.sigma_data**2
        total = (sigma**2 + sd2).sqrt()
        skip_sigma = sigma - self.sigma_min if shifted else sigma
        c_skip = sd2 / (skip_sigma**2 + sd2)
        c_out = skip_sigma * self.sigma_data / total
        return c_skip, c_out, 1.0 / total, sigma.log() / 4

    def forward(self, x: torch.Tensor, sigma, shifted: bool = False, cond: torch.Tensor | None = None) -> torch.Tensor:
        sigma = _per_row(sigma, x)
        c_skip, c_out, c_in, c_noise = self.preconditioning(sigma, shifted)
        c_skip, c_out, c_in = (_over_sample_dims(c, x) for c in (c_skip, c_out, c_in))
        if cond is None:
            out = c_out * self.net(c_in * x, c_noise * self.label_scale)
        else:
            out = c_out * self.net(c_in * x, c_noise * self.label_scale, cond)
        if shifted:
            # At sigma_min, c_out is exactly 0 and c_skip exactly 1: mask the network's term so
            # that D(x, sigma_min) is x bit for bit even where F returns inf or NaN.
            out = torch.where(c_out == 0, 0.0, out)
        return c_skip * x + out


def log_normal_sigmas(n: int, p_mean: float, p_std: float, generator: torch.Generator | None = None,
                      device=None, dtype=None) -> torch.Tensor:
    """``n`` noise levels with ``ln sigma ~ N(p_mean, p_std^2)`` (EDM's training distribution)."""
    if p_std < 0:
        raise ValueError(f"p_std must be >= 0 (0: a fixed sigma = exp(p_mean)), got {p_std}")
    return torch.exp(torch.randn(n, generator=generator, device=device, dtype=dtype) * p_std + p_mean)


def edm_loss(denoiser: Denoiser, x0: torch.Tensor, p_mean: float = -1.2, p_std: float = 1.2,
             generator: torch.Generator | None = None, sigma_data: float | None = None,
             cond: torch.Tensor | None = None) -> torch.Tensor:
    """EDM's denoising loss ``E_{sigma, eps} lambda(sigma) mean_dims (D(x0 + sigma eps, sigma) - x0)^2``.

    ``ln sigma ~ N(p_mean, p_std^2)``, ``lambda = (sigma^2 + sd^2) / (sigma sd)^2`` (unit weight on
    the network's own output scale); mean over the batch. The draws: ``sigma`` first, then ``eps``.
    ``sigma_data`` defaults to ``denoiser.sigma_data`` (give it for a plain callable). ``cond``
    (one row per row of ``x0``) is passed on as ``denoiser(x, sigma, cond=cond)``; the draws are the same.
    """
    sd = getattr(denoiser, "sigma_data", None) if sigma_data is None else sigma_data
    if sd is None or sd <= 0:
        raise ValueError(f"need a positive sigma_data (the denoiser has none, or pass sigma_data=), got {sd}")
    sigma = log_normal_sigmas(x0.shape[0], p_mean, p_std, generator, x0.device, x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_sigma = x0 + _over_sample_dims(sigma, x0) * eps
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    estimate = denoiser(x_sigma, sigma) if cond is None else denoiser(x_sigma, sigma, cond=cond)
    per_sample = ((estimate - x0) ** 2).flatten(1).mean(1)
    return torch.mean(weight * per_sample)


def train_edm(denoiser: nn.Module, data: torch.Tensor, *, steps: int, batch_size: int, lr: float = 1e-3,
              p_mean: float = -1.2, p_std: float = 1.2, seed: int = 0, desc: str = "EDM training",
              on_step: Callable[[int], None] | None = None, conditions: torch.Tensor | None = None,
              null_condition: torch.Tensor | None = None, cond_dropout: float = 0.0,
              ema: torch.optim.swa_utils.AveragedModel | None = None) -> list[float]:
    """Adam on :func:`edm_loss`, minibatches drawn with replacement from ``data`` (the loop of
    :func:`train_minibatches`; ``on_step`` and ``ema`` are described there). Returns the loss of
    every step.

    ``conditions`` (one row per data row) trains a conditional denoiser ``D(x, sigma, cond)``. With
    ``cond_dropout > 0`` each row's condition is replaced by ``null_condition`` (shape
    ``conditions.shape[1:]``) with that probability, so the one network also learns the
    unconditional denoiser that classifier-free guidance (:func:`guided`) needs. The dropout
    draw (one uniform per row, whatever the rate) comes after the minibatch indices and before
    the loss's own draws, and only when conditions are given: without them every draw is as before.
    """
    if conditions is None:
        if null_condition is not None or cond_dropout != 0:
            raise ValueError("null_condition and cond_dropout need conditions")
    else:
        if not 0 <= cond_dropout < 1:
            raise ValueError(f"cond_dropout must lie in [0, 1) (the probability of dropping a row's "
                             f"condition), got {cond_dropout}")
        if cond_dropout > 0 and null_condition is None:
            raise ValueError("cond_dropout > 0 needs a null_condition (the unconditional input, e.g. the "
                             "empty caption's states)")
        if null_condition is not None and tuple(null_condition.shape) != tuple(conditions.shape[1:]):
            raise ValueError(f"null_condition must have the shape of one condition, {tuple(conditions.shape[1:])}, "
                             f"got {tuple(null_condition.shape)}")
    opt = torch.optim.Adam(denoiser.parameters(), lr=lr)
    if conditions is None:
        return train_minibatches(denoiser, data, lambda batch, gen, _: edm_loss(denoiser, batch, p_mean, p_std, gen),
                                 opt, steps=steps, batch_size=batch_size, seed=seed, desc=desc, on_step=on_step,
                                 ema=ema)

    null = None if null_condition is None else null_condition.to(next(denoiser.parameters()).device)

    def conditional_loss(batch: torch.Tensor, gen: torch.Generator, _, cond: torch.Tensor) -> torch.Tensor:
        dropped = torch.rand(len(batch), generator=gen, device=batch.device) < cond_dropout
        if null is not None:
            cond = torch.where(dropped.reshape((-1,) + (1,) * (cond.ndim - 1)), null.to(cond.dtype), cond)
        return edm_loss(denoiser, batch, p_mean, p_std, gen, cond=cond)

    return train_minibatches(denoiser, data, conditional_loss, opt, steps=steps, batch_size=batch_size, seed=seed,
                             desc=desc, on_step=on_step, conditions=conditions, ema=ema)


def guided(denoiser: Callable[..., torch.Tensor], cond: torch.Tensor, null_cond: torch.Tensor,
           scale: float) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans, 2022) as a plain denoiser ``(x, sigma) -> x0-estimate``
    for :func:`heun_sample` / :func:`euler_sample`:

        D_w(x, sigma) = D(x, sigma, null) + w (D(x, sigma, cond) - D(x, sigma, null)),

    ``w = scale``: 0 is the unconditional denoiser, 1 the conditional one, ``w > 1`` pushes the
    estimate further along the direction the condition adds. Both terms come from ONE call of
    ``denoiser(x, sigma, cond=...)`` on ``[x; x]`` with ``[cond; null]``; at ``w = 0`` or ``w = 1`` only
    the term needed is computed (the other has weight 0), so those are exactly the plain denoisers.
    ``cond`` has one row per sample; ``null_cond`` is one condition (shape ``cond.shape[1:]``),
    broadcast to the batch, or one per row.
    """
    scale = float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"guidance scale must be finite and >= 0 (0: unconditional, 1: conditional, "
                         f">1: guided), got {scale}")
    if null_cond.shape == cond.shape[1:]:
        null_cond = null_cond.unsqueeze(0).expand_as(cond)
    elif null_cond.shape != cond.shape:
        raise ValueError(f"null_cond must have shape {tuple(cond.shape[1:])} (one condition) or "
                         f"{tuple(cond.shape)} (one per row), got {tuple(null_cond.shape)}")
    null_cond = null_cond.to(cond.dtype)

    def denoise(x: torch.Tensor, sigma) -> torch.Tensor:
        if x.shape[0] != cond.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows, the guided denoiser has {cond.shape[0]} conditions")
        sigma = _per_row(sigma, x)
        if scale == 0:
            return denoiser(x, sigma, cond=null_cond)
        if scale == 1:
            return denoiser(x, sigma, cond=cond)
        both = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=torch.cat([cond, null_cond]))
        conditional, unconditional = both.chunk(2)
        return unconditional + scale * (conditional - unconditional)

    return denoise


def _karras_grid(n_steps: int, sigma_min, sigma_max, rho: float) -> torch.Tensor:
    """EDM's levels ``(sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``,
    ``i = 0 .. N-1``, then 0; elementwise over tensors of endpoints (one grid per column)."""
    sigma_min = torch.as_tensor(sigma_min, dtype=torch.float64)
    sigma_max = torch.as_tensor(sigma_max, dtype=torch.float64)
    if n_steps == 1:
        levels = sigma_max[None]
    else:
        frac = torch.linspace(0, 1, n_steps, dtype=torch.float64).reshape((-1,) + (1,) * sigma_max.ndim)
        levels = (sigma_max ** (1 / rho) + frac * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
        # exact endpoints, not rounded powers (a grid from sigma to sigma stays constant, never rises)
        levels = torch.minimum(torch.maximum(levels, sigma_min), sigma_max)
        levels[0], levels[-1] = sigma_max, sigma_min
    return torch.cat([levels, torch.zeros_like(levels[:1])])


def karras_sigmas(n_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM's sampling grid: ``n_steps + 1`` levels (float64) from ``sigma_max`` down to
    ``sigma_min``, evenly spaced in ``sigma^(1/rho)``, then a final 0. ``n_steps = 1``: [sigma_max, 0]."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    return _karras_grid(n_steps, sigma_min, sigma_max, rho)


def _check_grid(sigmas, x: torch.Tensor) -> torch.Tensor:
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim not in (1, 2) or len(sigmas) < 2 or (sigmas.ndim == 2 and sigmas.shape[1] != x.shape[0]):
        raise ValueError(f"sigmas must have shape (steps + 1,) or (steps + 1, {x.shape[0]}) with steps >= 1, "
                         f"got {tuple(sigmas.shape)}")
    if not torch.isfinite(sigmas).all() or (sigmas[:-1] <= 0).any() or (sigmas[-1] < 0).any():
        raise ValueError("sigmas must be finite and positive (only the last level may be 0)")
    if (sigmas[1:] > sigmas[:-1]).any():
        raise ValueError("sigmas must not increase along the solve (the ODE runs from high to low noise)")
    if ((sigmas[-1] == 0).any() and not (sigmas[-1] == 0).all()):
        raise ValueError("the last level must be 0 for every row or for none")
    return sigmas


@torch.no_grad()
def _solve(denoiser: Denoiser, sigmas, x: torch.Tensor, second_order: bool) -> torch.Tensor:
    sigmas = _check_grid(sigmas, x)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        s_row, next_row = _per_row(s, x), _per_row(s_next, x)
        s_b, h = _over_sample_dims(s_row, x), _over_sample_dims(next_row - s_row, x)
        slope = (x - denoiser(x, s_row)) / s_b
        x_next = x + h * slope
        if second_order and bool((s_next > 0).all()):
            # Heun: average the slopes at both ends (skipped on the last step to sigma = 0,
            # where the slope is undefined and the Euler step x - sigma slope = D(x, sigma) is exact).
            slope_next = (x_next - denoiser(x_next, next_row)) / _over_sample_dims(next_row, x)
            x_next = x + h * (slope + slope_next) / 2
        x = x_next
    return x


def euler_sample(denoiser: Denoiser, sigmas, x: torch.Tensor) -> torch.Tensor:
    """Euler steps of the probability-flow ODE, ``x <- x + (sigma' - sigma) (x - D(x, sigma)) / sigma``,
    along ``sigmas`` (shape ``(steps + 1,)`` or one column per row, non-increasing; only the
    last level may be 0). ``x`` is the state at ``sigmas[0]`` (for sampling: ``sigma_max z``).
    Deterministic (EDM's Algorithm 1 without churn); any module's train/eval mode is left as is."""
    return _solve(denoiser, sigmas, x, second_order=False)


def heun_sample(denoiser: Denoiser, sigmas, x: torch.Tensor) -> torch.Tensor:
    """EDM's deterministic sampler (Algorithm 1, no churn): Heun steps of the probability-flow
    ODE, Euler on a last step to sigma = 0; ``2 steps - 1`` denoiser calls on a grid ending in 0.
    Arguments as in :func:`euler_sample`."""
    return _solve(denoiser, sigmas, x, second_order=True)


def pf_ode_map(denoiser: Denoiser, x: torch.Tensor, sigma_from, n_steps: int = 64, sigma_min: float = 0.002,
               rho: float = 7.0) -> torch.Tensor:
    """The probability-flow ODE solved from ``sigma_from`` (a scalar or one level per row) down
    to 0: Heun on EDM's grid from ``sigma_from`` to ``sigma_min`` with ``n_steps`` steps, then an
    Euler step to 0. With the exact denoiser this is the ideal consistency function
    ``f*(x, sigma_from)``, against which a consistency model's error can be measured. Rows with
    ``sigma_from <= sigma_min`` get a single denoising step, ``D(x, sigma_from)``."""
    if n_steps < 1 or sigma_min <= 0 or rho <= 0:
        raise ValueError(f"need n_steps >= 1, sigma_min > 0 and rho > 0; got {n_steps}, {sigma_min}, {rho}")
    start = torch.as_tensor(sigma_from, dtype=torch.float64).cpu()
    start = start.expand(x.shape[0]) if start.ndim == 0 else start
    if start.shape != (x.shape[0],) or not torch.isfinite(start).all() or (start <= 0).any():
        raise ValueError(f"sigma_from must be positive and finite, a scalar or one per row ({x.shape[0]})")
    # Rows at or below sigma_min get a constant grid: their Heun steps have length 0 and change nothing.
    grid = _karras_grid(n_steps, torch.minimum(start, torch.tensor(sigma_min, dtype=torch.float64)), start, rho)
    return heun_sample(denoiser, grid, x)


def exact_edm_denoiser(mixture: GaussianMixture) -> Denoiser:
    """The Bayes-optimal denoiser ``E[x_0 | x_0 + sigma eps = x]`` of a Gaussian mixture, with the
    calling convention ``(x, sigma) -> x0-estimate`` (``x`` of shape ``(n, *dims)`` with
    ``prod(dims) == mixture.dim``; ``sigma`` a scalar or one per row). Computed in float64 on
    the CPU, returned in ``x``'s dtype and device."""

    def denoise(x: torch.Tensor, sigma) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != mixture.dim:
            raise ValueError(f"x has {flat.shape[1]} values per sample, the mixture has dimension {mixture.dim}")
        sigma = torch.as_tensor(sigma, dtype=torch.float64).cpu()
        x0 = mixture.posterior_mean(flat.detach().cpu(), 1.0, sigma)
        return x0.to(device=x.device, dtype=x.dtype).reshape(x.shape)

    return denoise
