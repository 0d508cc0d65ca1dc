"""Parameters of chapter 04 (Easy Consistency Tuning) and its presets.

``cpu`` (the defaults): a 2D mixture and scikit-learn's 8x8 digits, each
pretrained as an EDM diffusion model and then consistency-tuned, every arm
with ``n_seeds`` independent seeds, about 6 minutes on 2 CPU cores. ``full``: the reference CIFAR-10 run, for GPUs, with the
pretrained EDM checkpoint and the data given as paths (see ``reprobook.ect.cifar``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    # EDM preconditioning and sampling (the reference values).
    sigma_data: float = 0.5
    sigma_min: float = 0.002  # the end of EDM's sampling grid
    shift_sigma: float = 0.003  # consistency sampling: f(x, shift_sigma) = x (the reference's shift)
    sigma_max: float = 80.0
    heun_steps: int = 18  # EDM's CIFAR-10 sampler: 18 Heun steps, 35 network evaluations
    mid_sigma: float = 0.821  # the reference's 2-step intermediate noise level (CIFAR-10; shown, not used)
    # 2-step intermediate levels tried for every 2-step consistency sampler; the best is picked on
    # held-out sampling noise and a held-out reference sample, never on the evaluation draws.
    mid_grid: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.821, 1.5, 3.0)
    # Independent seeds (data draw, initialization, minibatches) of every trained arm.
    n_seeds: int = 3
    # EMA of the weights, evaluated everywhere: half-life in stages of the tuning schedule (the
    # reference: decay 0.9999 per iteration with 25k-iteration stages, a half-life of 0.28 stage).
    ema_halflife_stages: float = 0.28
    # Pretraining noise distribution (EDM) and tuning distribution and gap schedule (ECT).
    pretrain_p_mean: float = -1.2
    pretrain_p_std: float = 1.2
    p_mean: float = -1.1
    p_std: float = 2.0
    k: float = 8.0
    b: float = 1.0
    q: float = 2.0
    huber_c: float = 0.0
    # The 2D toy: modes on a ring, per-axis spread about sigma_data.
    toy_modes: int = 8
    toy_radius: float = 0.7
    toy_sigma: float = 0.04
    toy_width: int = 128
    toy_label_scale: float = 100.0  # spreads ln(sigma)/4 over the sinusoidal embedding's frequencies
    toy_batch: int = 256
    toy_pretrain_steps: int = 1_000
    toy_pretrain_lr: float = 1e-3
    toy_tune_steps: int = 480
    toy_stage_len: int = 60
    toy_tune_lr: float = 3e-4
    toy_checkpoints: tuple[int, ...] = (60, 120, 240, 480)
    n_eval: int = 4_000
    # Digits: scikit-learn's 8x8 digits in [-1, 1], a small diffusers U-Net.
    digits_size: int = 8
    unet_widths: tuple[int, ...] = (16, 32, 32)
    dropout: float = 0.2
    digits_batch: int = 32
    digits_pretrain_steps: int = 640
    digits_pretrain_lr: float = 1e-3
    digits_tune_steps: int = 192
    digits_stage_len: int = 24
    digits_tune_lr: float = 1e-4
    n_digit_samples: int = 500
    classifier_epochs: int = 15
    # Quality margin for "ECT 2-step is close to many-step diffusion": within this factor.
    margin: float = 1.5
    # Verdicts over seeds: a rule holds when the mean paired difference is z standard errors
    # beyond its margin, fails when z standard errors short of it, else inconclusive.
    z: float = 2.0
    # full preset only: the CIFAR-10 run (see reprobook.ect.cifar).
    cifar_dir: str | None = None
    edm_checkpoint: str | None = None
    edm_repo: str | None = None

    def validate(self) -> None:
        from ..presets import ConfigError

        if not 0 < self.sigma_min < self.mid_sigma < self.sigma_max or not 0 < self.shift_sigma < self.mid_sigma:
            raise ConfigError("need 0 < sigma_min < mid_sigma < sigma_max and 0 < shift_sigma < mid_sigma")
        if self.sigma_data <= 0 or self.p_std <= 0 or self.pretrain_p_std <= 0:
            raise ConfigError("sigma_data, p_std and pretrain_p_std must be positive")
        if self.q <= 1 or self.k < 0 or self.b <= 0 or self.huber_c < 0:
            raise ConfigError("need q > 1, k >= 0, b > 0 and huber_c >= 0")
        if self.heun_steps < 1:
            raise ConfigError("heun_steps must be >= 1")
        if not self.mid_grid or not all(self.shift_sigma < m < self.sigma_max for m in self.mid_grid):
            raise ConfigError(f"mid_grid must be non-empty, inside (shift_sigma, sigma_max); got {self.mid_grid}")
        if self.n_seeds < 2:
            raise ConfigError(f"n_seeds must be >= 2 (the verdicts need a standard error), got {self.n_seeds}")
        if self.ema_halflife_stages <= 0 or self.z <= 0:
            raise ConfigError("ema_halflife_stages and z must be positive")
        if self.toy_modes < 2 or self.toy_sigma <= 0 or self.toy_radius <= 0:
            raise ConfigError("the toy needs >= 2 modes, a positive sigma and a positive radius")
        counts = (self.toy_batch, self.toy_pretrain_steps, self.toy_tune_steps, self.toy_stage_len,
                  self.digits_batch, self.digits_pretrain_steps, self.digits_tune_steps, self.digits_stage_len,
                  self.classifier_epochs)
        if min(counts) < 1:
            raise ConfigError("batch sizes, step counts, stage lengths and epochs must be >= 1")
        if len(self.toy_checkpoints) < 2 or max(self.toy_checkpoints) != self.toy_tune_steps \
                or sorted(self.toy_checkpoints) != list(self.toy_checkpoints) or min(self.toy_checkpoints) < 1:
            raise ConfigError(f"toy_checkpoints must be increasing, >= 1, at least two, and end at toy_tune_steps "
                              f"({self.toy_tune_steps}); got {self.toy_checkpoints}")
        if self.digits_size not in (8, 16):
            raise ConfigError(f"digits_size must be 8 or 16, got {self.digits_size}")
        if self.digits_size % 2 ** (len(self.unet_widths) - 1):
            raise ConfigError(f"digits_size {self.digits_size} must be divisible by 2^(levels - 1) "
                              f"for unet_widths {self.unet_widths}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if min(self.n_eval, self.n_digit_samples) < 50:
            raise ConfigError("n_eval and n_digit_samples must be >= 50")
        if self.margin < 1:
            raise ConfigError(f"margin is a factor >= 1, got {self.margin}")


PRESETS: dict[str, dict] = {
    "cpu": {},
    # The reference CIFAR-10 settings (RAdam 1e-4, batch 128, dropout 0.2, 8 stages of 25k
    # iterations); the toy and digits experiments are run larger too.
    "full": {
        "n_seeds": 5, "toy_batch": 512, "toy_pretrain_steps": 20_000, "toy_tune_steps": 16_000,
        "toy_stage_len": 2_000, "toy_checkpoints": (1_000, 2_000, 4_000, 8_000, 16_000), "n_eval": 20_000,
        "digits_size": 16, "unet_widths": (64, 128, 128), "digits_batch": 64, "digits_pretrain_steps": 20_000,
        "digits_tune_steps": 8_000, "digits_stage_len": 1_000, "n_digit_samples": 2_000,
    },
}
