"""Isotropic Gaussian mixtures and their exact (Bayes-optimal) denoiser.

If ``x_0 ~ sum_k w_k N(mu_k, s_k^2 I)`` and ``x_t = a x_0 + sigma eps`` (DDPM:
``a = sqrt(alpha_bar_t)``, ``sigma = sqrt(1 - alpha_bar_t)``; variance exploding: ``a = 1``),
then ``x_t | k ~ N(a mu_k, (a^2 s_k^2 + sigma^2) I)`` and

    E[x_0 | x_t] = sum_k r_k(x_t) [mu_k + a s_k^2 / (a^2 s_k^2 + sigma^2) (x_t - a mu_k)],

with ``r_k`` the posterior responsibilities. This is the denoiser that
minimizes the training loss exactly: the ground truth a network approximates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .schedules import DDPMSchedule


@dataclass(frozen=True)
class GaussianMixture:
    means: torch.Tensor  # (k, d)
    stds: torch.Tensor  # (k,)
    weights: torch.Tensor  # (k,), sums to 1

    @classmethod
    def isotropic(cls, means, std: float, weights=None) -> "GaussianMixture":
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim == 1:
            means = means[:, None]
        if means.ndim != 2 or len(means) < 1:
            raise ValueError(f"means must have shape (k, d) or (k,), got {tuple(means.shape)}")
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        k = len(means)
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or torch.any(w < 0) or abs(float(w.sum()) - 1) > 1e-9:
            raise ValueError("weights must be k non-negative numbers summing to 1")
        return cls(means, torch.full((k,), float(std), dtype=torch.float64), w)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def scaled(self, factor: float) -> "GaussianMixture":
        """The mixture of ``factor * x`` (used to normalize data)."""
        return GaussianMixture(self.means * factor, self.stds * abs(factor), self.weights)

    def sample(self, n: int, generator: torch.Generator | None = None, balanced: bool = False):
        """``n`` samples and their component labels. ``balanced``: equal counts per component
        (the reference toy data), instead of multinomial draws."""
        k = len(self.weights)
        if balanced:
            comp = torch.arange(n) % k
        else:
            comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn((n, self.dim), generator=generator, dtype=torch.float64)
        return self.means[comp] + self.stds[comp, None] * z, comp

    def _component_logpdf(self, x: torch.Tensor, a, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """log N(x; a mu_k, v_k I) for every row and component, and v_k."""
        x = x.to(torch.float64)
        a = torch.as_tensor(a, dtype=torch.float64).reshape(-1, 1)
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1)
        v = a**2 * self.stds[None, :] ** 2 + sigma**2  # (n or 1, k)
        sq = ((x[:, None, :] - a[:, :, None] * self.means[None]) ** 2).sum(-1)  # (n, k)
        return -0.5 * sq / v - 0.5 * self.dim * torch.log(2 * math.pi * v), v

    def distance_in_stds(self, x: torch.Tensor) -> torch.Tensor:
        """Distance from each row of ``x`` to its nearest mode, in units of that mode's std
        (``min_k ||x - mu_k|| / s_k``, float64)."""
        return (torch.cdist(torch.as_tensor(x, dtype=torch.float64), self.means) / self.stds[None, :]).min(1).values

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log density of the mixture at the rows of ``x``."""
        logp, _ = self._component_logpdf(x, 1.0, 0.0)
        return torch.logsumexp(logp + self.weights.log(), dim=1)

    def posterior_mean(self, x_t: torch.Tensor, a, sigma) -> torch.Tensor:
        """``E[x_0 | x_t]`` for ``x_t = a x_0 + sigma eps``; ``a``, ``sigma``: scalars or one per row."""
        logp, v = self._component_logpdf(x_t, a, sigma)
        r = torch.softmax(logp + self.weights.log(), dim=1)  # (n, k)
        a = torch.as_tensor(a, dtype=torch.float64).reshape(-1, 1)
        x = x_t.to(torch.float64)
        gain = a * self.stds[None, :] ** 2 / v  # (n or 1, k)
        # sum_k r_k [mu_k (1 - a gain_k) + gain_k x]
        return r @ self.means - ((r * gain * a) @ self.means) + (r * gain).sum(1, keepdim=True) * x

    def eps_model(self, schedule: DDPMSchedule):
        """The exact epsilon-predictor of this mixture under a DDPM schedule, with the
        network's calling convention ``(x_t, t) -> eps``; sampling with it uses the true score."""

        def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            a = schedule.signal_scale(t.cpu())
            s = schedule.noise_std(t.cpu())
            x0 = self.posterior_mean(x_t.cpu(), a, s)
            return ((x_t.cpu().double() - a[:, None] * x0) / s[:, None]).to(x_t)

        return eps
