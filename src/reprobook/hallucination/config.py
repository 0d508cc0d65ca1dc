"""Parameters of chapter 03 and its presets.

``cpu`` (the defaults): every experiment of the spec at toy size, about 6 minutes
on 2 CPU cores. The toy denoiser is 64 wide (the reference uses 128, as the
``full`` preset does) and its learning rate is annealed; the sweeps run 3 seeds
of 5,000 samples per point; the shapes are 16x24 images (the paper's are 64x64);
recursive training runs on the 1D mixture with 3 seeds and cheaper models.
``full``: the reference sizes, for a GPU (``device="cuda"``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    # DDPM: the reference's unusual linear schedule, 1e-3 to 0.2 over 1000 steps.
    timesteps: int = 1000
    beta_start: float = 1e-3
    beta_end: float = 0.2
    # The reverse chain starts at the first step with sqrt(alpha_bar) < start_tol (0: at T).
    start_tol: float = 1e-4
    # Toy denoiser and its training (Adam, epsilon prediction, no EMA).
    width: int = 64
    n_blocks: int = 3
    share_blocks: bool = True
    lr: float = 1e-3  # the reference's rate, used in 1D
    lr_2d: float = 3e-3
    cosine_decay: bool = True  # anneal the rate to 0 (the reference keeps it constant)
    batch: int = 1024
    steps_1d: int = 1_200
    steps_2d: int = 5_000
    # The mixtures: sigma of every mode. Labels: "in support" within support_sigmas of a mode;
    # "between modes" (a hallucination) beyond hallucination_sigmas of every mode, inside the
    # modes' hull; the band in between is dropped from the classification.
    sigma: float = 0.05
    support_sigmas: float = 4.0
    hallucination_sigmas: float = 6.0
    n_train_1d: int = 50_000
    # Sweeps: one model per (value, seed), sweep_seeds seeds, n_samples_sweep samples each.
    n_train_sweep: tuple[int, ...] = (100, 1_000, 50_000)
    spacing_sweep: tuple[float, ...] = (1.0, 1.5, 2.0)
    sweep_seeds: int = 3
    n_samples_sweep: int = 5_000
    n_train_2d: int = 100_000
    n_samples_1d: int = 20_000
    n_samples_2d: int = 6_000
    # Samples of a separate sampling seed, used only to choose the Hal window.
    n_select_1d: int = 10_000
    n_select_2d: int = 3_000
    # The metric: variance of the predicted x0 over the last K reverse steps; hal_window is the
    # reference's K, hal_windows the candidates K is chosen from.
    hal_window: int = 10
    hal_windows: tuple[int, ...] = (3, 5, 10, 20)
    keep_in_support: float = 0.96  # the operating point: keep this fraction of in-support samples
    # Shapes (height x width images, three vertical strips).
    shape_height: int = 16
    shape_width: int = 24
    n_shapes_train: int = 3_000
    unet_widths: tuple[int, ...] = (16, 32, 64)
    shapes_steps: int = 1_000
    shapes_batch: int = 32
    shapes_lr: float = 1e-3
    n_shapes_samples: int = 128
    # Recursive training, on the 1D mixture ("1d") or the 2D grid ("2d"): recursive_seeds chains
    # per filter, each model trained for recursive_steps.
    recursive_data: str = "1d"
    recursive_filters: tuple[str, ...] = ("random", "variance")
    recursive_seeds: int = 3
    recursive_steps: int = 1_200
    generations: int = 3
    recursive_n: int = 2_000
    recursive_extra: int = 500

    def validate(self) -> None:
        from ..presets import ConfigError

        if self.timesteps < 20 or not 0 < self.beta_start <= self.beta_end < 1:
            raise ConfigError("need timesteps >= 20 and 0 < beta_start <= beta_end < 1")
        if not 0 <= self.start_tol < 1:
            raise ConfigError(f"start_tol must be in [0, 1), got {self.start_tol}")
        if self.width < 2 or self.width % 2 or self.n_blocks < 1:
            raise ConfigError("width must be even and >= 2; n_blocks >= 1")
        if self.recursive_data not in ("1d", "2d"):
            raise ConfigError(f"recursive_data must be '1d' or '2d', got {self.recursive_data!r}")
        if min(self.lr, self.lr_2d, self.shapes_lr) <= 0:
            raise ConfigError("learning rates must be positive")
        if min(self.batch, self.steps_1d, self.steps_2d, self.shapes_steps, self.shapes_batch) < 1:
            raise ConfigError("batch sizes and step counts must be >= 1")
        if self.sigma <= 0 or not 0 < self.support_sigmas <= self.hallucination_sigmas:
            raise ConfigError("need sigma > 0 and 0 < support_sigmas <= hallucination_sigmas, got "
                              f"{self.sigma}, {self.support_sigmas}, {self.hallucination_sigmas}")
        if min(self.n_train_sweep) < 10 or min(self.spacing_sweep) <= 0:
            raise ConfigError("n_train_sweep entries must be >= 10 and spacing_sweep entries positive")
        if self.n_train_1d not in self.n_train_sweep or 1.0 not in self.spacing_sweep:
            raise ConfigError("n_train_sweep must contain n_train_1d and spacing_sweep must contain 1.0 "
                              "(the main model is one point of each sweep)")
        if self.sweep_seeds < 2 or self.recursive_seeds < 2:
            raise ConfigError("sweep_seeds and recursive_seeds must be >= 2 (a spread needs two seeds)")
        if min(self.n_samples_1d, self.n_samples_2d, self.n_shapes_samples, self.n_samples_sweep,
               self.n_select_1d, self.n_select_2d) < 20:
            raise ConfigError("sample counts must be >= 20")
        windows = (self.hal_window, *self.hal_windows)
        if not self.hal_windows or not all(2 <= k <= self.timesteps for k in windows):
            raise ConfigError(f"hal_window and every hal_windows entry must be in 2..timesteps, got {windows}")
        if not set(self.recursive_filters) <= {"none", "random", "variance"} or "variance" not in self.recursive_filters:
            raise ConfigError("recursive_filters: some of 'none', 'random', 'variance', with 'variance' among them; "
                              f"got {self.recursive_filters}")
        if self.recursive_steps < 1:
            raise ConfigError("recursive_steps must be >= 1")
        if not 0 < self.keep_in_support < 1:
            raise ConfigError(f"keep_in_support must be in (0, 1), got {self.keep_in_support}")
        if self.shape_height < 12 or self.shape_width < 12:
            raise ConfigError("shape images must be at least 12x12")
        if self.generations < 2 or self.recursive_n < 100 or self.recursive_extra < 1:
            raise ConfigError("need generations >= 2, recursive_n >= 100 and recursive_extra >= 1")


PRESETS: dict[str, dict] = {
    "cpu": {},
    "full": {
        "start_tol": 0.0, "width": 128, "lr_2d": 1e-3, "cosine_decay": False,
        "steps_1d": 20_000, "steps_2d": 30_000, "batch": 10_000,
        "n_samples_1d": 100_000, "n_samples_2d": 100_000,
        "shape_height": 64, "shape_width": 64, "n_shapes_train": 10_000, "unet_widths": (64, 128, 256),
        "shapes_steps": 50_000, "shapes_batch": 128, "shapes_lr": 2e-4, "n_shapes_samples": 5_000,
        "n_samples_sweep": 100_000, "n_select_1d": 50_000, "n_select_2d": 50_000,
        "recursive_data": "2d", "recursive_steps": 30_000, "generations": 10, "recursive_n": 100_000,
        "recursive_extra": 2_500, "recursive_filters": ("none", "random", "variance"),
    },
}
