"""Easy Consistency Tuning (ECT; Geng et al.): consistency models trained on pairs ``r < t``
of noise levels along ``x_t = x_0 + t eps``, with the gap ``t - r`` shrinking stage by stage.

A consistency model ``f(x_t, t)`` maps every point of a probability-flow ODE trajectory to the
trajectory's start ``x_0``: ``df(x_t, t)/dt = 0`` with ``f(x_0, 0) = x_0``. Discretized on pairs,

    loss = E_{x_0, eps, t} || f(x_0 + t eps, t) - sg[f(x_0 + r eps, r)] || / (t - r),

where ``sg`` stops the gradient and ``f(x, 0) = x``. With ``r = 0`` this is a denoising loss (a
diffusion model is a consistency model with step ``t``), so training can start from a pretrained
EDM denoiser and tighten ``r -> t`` over stages. The semantics follow the reference implementation
(``ECMLoss``): the same ``eps`` and the same dropout mask for both points, the target from the
same online weights (no EMA teacher), the L2 norm (not squared), the weight ``1 / (t - r)``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Sequence

import torch

from .edm import _over_sample_dims, log_normal_sigmas
from .training import train_minibatches


def ect_stage(iteration: int, stage_len: int) -> int:
    """The stage ``a = 1 + iteration // stage_len`` of a 0-based training iteration (a starts at 1)."""
    if iteration < 0 or stage_len < 1:
        raise ValueError(f"need iteration >= 0 and stage_len >= 1, got {iteration}, {stage_len}")
    return 1 + iteration // stage_len


def _check_gap_params(stage: float, k: float, b: float, q: float) -> None:
    if stage < 1:
        raise ValueError(f"stage must be >= 1 (the first stage is 1), got {stage}")
    if q <= 1:
        raise ValueError(f"q must be > 1 (each stage divides the gap by q), got {q}")
    if k < 0 or b < 0:
        raise ValueError(f"need k >= 0 and b >= 0 (n(t) = 1 + k sigmoid(-b t)), got k={k}, b={b}")


def ect_r(t: torch.Tensor, stage: float, k: float = 8.0, b: float = 1.0, q: float = 2.0) -> torch.Tensor:
    """The partner level ``r = max(0, t (1 - n(t) / q^stage))``, ``n(t) = 1 + k sigmoid(-b t)``.

    ``n(t)`` multiplies ``1/q^stage`` (it is not in the exponent): the relative gap
    ``(t - r)/t = n(t)/q^stage`` halves each stage for ``q = 2``, and is larger at small ``t``
    (``n -> 1 + k/2`` as ``t -> 0``, ``-> 1`` as ``t -> inf``). Where ``n(t) >= q^stage``, ``r = 0``.
    """
    _check_gap_params(stage, k, b, q)
    n = 1 + k * torch.sigmoid(-b * t)
    return torch.clamp(t * (1 - n / q**stage), min=0)


def _rng_state(device: torch.device):
    """The global generator states that dropout draws from on ``device``."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextmanager
def _replayed_rng(device: torch.device, state):
    """Run a block from the saved generator state (so a second forward pass draws the same
    dropout mask as the first), then restore the state the block found."""
    cpu, cuda = state
    with torch.random.fork_rng(devices=[device] if cuda is not None else []):
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)
        yield


def consistency_loss(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                     stage: float, *, p_mean: float = -1.1, p_std: float = 2.0, k: float = 8.0, b: float = 1.0,
                     q: float = 2.0, huber_c: float = 0.0, share_noise: bool = True, share_dropout: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """ECT's loss on the batch ``x0`` at ``stage``:

        mean_i d(f(x0 + t eps, t), sg[f(x0 + r eps, r)]) / (t - r),   r = ect_r(t, stage),

    ``ln t ~ N(p_mean, p_std^2)``, ``d`` the L2 norm over all non-batch dimensions, or the
    pseudo-Huber distance ``sqrt(||.||^2 + c^2) - c`` when ``huber_c = c > 0``. ``f`` is called
    as ``denoiser(x, sigma)`` (an :class:`EDMDenoiser` with its unshifted training
    preconditioning, so stage 0 is exactly the pretrained denoiser). The target comes from the
    same weights under ``no_grad``, replaying the random-generator state of the first pass so
    dropout draws the same mask; where ``r = 0`` the target is ``x0`` itself and the network is
    not evaluated at ``sigma = 0`` (``c_noise = ln 0``). Draws from ``generator``: ``ln t`` then
    ``eps`` (then an independent ``eps`` for ``x_r`` when ``share_noise=False``).

    Ablations: ``share_noise=False`` (independent noise for ``x_r``), ``share_dropout=False``
    (a fresh dropout mask for the target pass).
    """
    _check_gap_params(stage, k, b, q)
    if huber_c < 0:
        raise ValueError(f"huber_c must be >= 0 (0: the plain L2 norm), got {huber_c}")
    n = x0.shape[0]
    t = log_normal_sigmas(n, p_mean, p_std, generator, x0.device, x0.dtype)
    r = ect_r(t, stage, k, b, q)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    eps_r = eps if share_noise else torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = x0 + _over_sample_dims(t, x0) * eps

    has_partner = r > 0
    state = _rng_state(x0.device) if share_dropout else None
    f_t = denoiser(x_t, t)
    with torch.no_grad():
        if has_partner.any():
            # Rows with r = 0 are evaluated at t instead (a valid level) and then replaced by x0:
            # the batch keeps its shape, so a replayed dropout mask lines up row for row.
            r_eval = torch.where(has_partner, r, t)
            x_r = x0 + _over_sample_dims(r_eval, x0) * eps_r
            if share_dropout:
                with _replayed_rng(x0.device, state):
                    f_r = denoiser(x_r, r_eval)
            else:
                f_r = denoiser(x_r, r_eval)
            # nan_to_num: a bad target (fp16 overflow) must not poison the batch.
            target = torch.where(_over_sample_dims(has_partner, x0), torch.nan_to_num(f_r), x0)
        else:
            target = x0
    diff = (f_t - target).flatten(1)
    if huber_c > 0:
        dist = torch.sqrt(diff.square().sum(1) + huber_c**2) - huber_c
    else:
        dist = torch.linalg.vector_norm(diff, dim=1)  # its gradient at 0 is 0, not NaN
    return torch.mean(dist / (t - r))


def train_consistency(denoiser: torch.nn.Module, data: torch.Tensor, *, steps: int, stage_len: int,
                      batch_size: int, lr: float = 1e-4, optimizer: str = "radam", fixed_stage: float | None = None,
                      seed: int = 0, desc: str = "consistency training",
                      on_step: Callable[[int], None] | None = None,
                      ema: torch.optim.swa_utils.AveragedModel | None = None, **loss_kwargs) -> list[float]:
    """Train ``denoiser`` on :func:`consistency_loss` (``loss_kwargs`` go there) with minibatches
    drawn with replacement from ``data``; returns the loss of every step.

    The stage of 0-based iteration ``i`` is ``ect_stage(i, stage_len)`` unless ``fixed_stage`` is
    given (the "no stage schedule" ablation: the final gap from the start). ECT is this on a
    pretrained :class:`EDMDenoiser`; consistency training from scratch is the same on a freshly
    initialized one. ``optimizer``: ``"radam"`` (the reference) or ``"adam"``. ``on_step`` and
    ``ema`` (an average of the weights for evaluation, :func:`~reprobook.diffusion.training.ema_model`;
    never the target's weights) are described in :func:`train_minibatches`.
    """
    if stage_len < 1:
        raise ValueError(f"stage_len must be >= 1, got {stage_len}")
    if fixed_stage is not None and fixed_stage < 1:
        raise ValueError(f"fixed_stage must be >= 1 (or None for the stage schedule), got {fixed_stage}")
    unknown = set(loss_kwargs) - {"p_mean", "p_std", "k", "b", "q", "huber_c", "share_noise", "share_dropout"}
    if unknown:
        raise TypeError(f"unknown consistency_loss arguments: {sorted(unknown)}")
    optimizers = {"radam": torch.optim.RAdam, "adam": torch.optim.Adam}
    if optimizer not in optimizers:
        raise ValueError(f"optimizer must be one of {sorted(optimizers)}, got {optimizer!r}")
    opt = optimizers[optimizer](denoiser.parameters(), lr=lr)

    def batch_loss(batch: torch.Tensor, generator: torch.Generator, step: int) -> torch.Tensor:
        stage = ect_stage(step, stage_len) if fixed_stage is None else fixed_stage
        return consistency_loss(denoiser, batch, stage, generator=generator, **loss_kwargs)

    return train_minibatches(denoiser, data, batch_loss, opt, steps=steps, batch_size=batch_size, seed=seed,
                             desc=desc, on_step=on_step, ema=ema)


@torch.no_grad()
def consistency_sample(denoiser, n: int, sample_shape: tuple[int, ...], sigmas: Sequence[float] = (80.0,),
                       generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """Few-step consistency sampling with the shifted (boundary-exact) parameterization:

        x = f(sigmas[0] z, sigmas[0]),  then for each later s:  x = f(x + s z', s),

    with fresh noise ``z'`` each step (ECT on CIFAR-10: ``sigmas = (80,)`` or ``(80, 0.821)``).
    ``denoiser(x, sigma, shifted=True)`` is called (an :class:`EDMDenoiser`); its train/eval
    mode is left as is. ``sigmas`` must be positive and decreasing.
    """
    levels = [float(s) for s in sigmas]
    if n < 1 or not levels:
        raise ValueError(f"need n >= 1 and at least one sigma, got n={n}, sigmas={sigmas}")
    if any(s <= 0 for s in levels) or any(b >= a for a, b in zip(levels, levels[1:])):
        raise ValueError(f"sigmas must be positive and strictly decreasing, got {levels}")
    x = None
    for s in levels:
        z = torch.randn((n, *sample_shape), generator=generator, device=device)
        x = s * z if x is None else x + s * z
        x = denoiser(x, torch.full((n,), s, device=device), shifted=True)
    return x
