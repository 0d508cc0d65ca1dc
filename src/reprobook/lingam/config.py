"""Parameters of chapter 01 and its presets.

``cpu`` (the defaults) runs in a few minutes on 2 CPU cores; ``full`` is the
paper-scale run for a GPU (``device="cuda"``): larger graphs and samples.
"""

from __future__ import annotations

from dataclasses import dataclass

NOISES = ("uniform", "laplace", "student_t", "exponential")


@dataclass(frozen=True)
class Config:
    # Experiment 1: exact agreement with the `lingam` package.
    agree_dims: tuple[int, ...] = (3, 5, 10, 20)
    agree_ns: tuple[int, ...] = (200, 1000)
    agree_noises: tuple[str, ...] = ("uniform", "laplace", "student_t")
    agree_seeds: int = 3
    # Experiment 2: accuracy on random graphs with known B.
    acc_dims: tuple[int, ...] = (5, 10, 20, 40, 80)
    acc_ns: tuple[int, ...] = (250, 1000, 4000)
    acc_seeds: int = 5
    acc_noise: str = "laplace"
    expected_degree: float = 2.0
    # Experiment 3b: bootstrap edge probabilities, ours and the package's on the same resamples.
    boot_dims: int = 8
    boot_samples: int = 200
    boot_resamples: int = 100
    # Experiment 4: VarLiNGAM on statsmodels' macrodata.
    var_max_lags: int = 4
    # Experiment 5: gene-network knockouts.
    genes: int = 30
    gene_degree: float = 1.5
    gene_samples: int = 2000
    gene_seeds: int = 10
    knockdown_sd: float = 2.0
    # settings: "lingam" (exactly LiNGAM), "gaussian" (part of the noise Gaussian),
    # "confounded" (hidden variables drive several genes)
    gene_settings: tuple[str, ...] = ("lingam", "gaussian", "confounded")
    gene_gaussian_fraction: float = 0.5
    gene_latents: int = 3
    gene_latent_children: int = 4
    # the NOTEARS baseline (Zheng et al. 2018): l1 weight and final threshold on |W|
    notears_lambda: float = 0.1
    notears_threshold: float = 0.3
    # "competitive": LiNGAM's knockout RMSE at most (1 + margin) x NOTEARS's
    competitive_margin: float = 0.1
    # Worker processes for the CPU path (None: all cores).
    n_jobs: int | None = None

    def validate(self) -> None:
        """Clear errors for values the experiments cannot run with."""
        from ..presets import ConfigError

        for name in ("agree_dims", "acc_dims"):
            if not getattr(self, name) or min(getattr(self, name)) < 2:
                raise ConfigError(f"{name} must be a non-empty tuple of integers >= 2")
        for name in ("agree_ns", "acc_ns"):
            if not getattr(self, name) or min(getattr(self, name)) < 10:
                raise ConfigError(f"{name} must be a non-empty tuple of integers >= 10")
        for noise in (*self.agree_noises, self.acc_noise):
            if noise not in NOISES:
                raise ConfigError(f"unknown noise {noise!r}; valid noises: {', '.join(NOISES)}")
        for name in ("agree_seeds", "acc_seeds", "gene_seeds", "var_max_lags"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.boot_dims < 2 or self.boot_samples < 10 or self.boot_resamples < 1:
            raise ConfigError(
                f"boot_dims must be >= 2, boot_samples >= 10 and boot_resamples >= 1; got "
                f"{self.boot_dims}, {self.boot_samples}, {self.boot_resamples}"
            )
        if self.genes < 3 or self.gene_samples < 10:
            raise ConfigError("genes must be >= 3 and gene_samples >= 10")
        if self.expected_degree <= 0 or self.gene_degree <= 0:
            raise ConfigError("expected_degree and gene_degree must be positive")
        from .simulate import KNOCKOUT_SETTINGS

        if not self.gene_settings or any(g not in KNOCKOUT_SETTINGS for g in self.gene_settings):
            raise ConfigError(
                f"gene_settings must be a non-empty tuple of {', '.join(KNOCKOUT_SETTINGS)}; "
                f"got {self.gene_settings!r}"
            )
        if len(set(self.gene_settings)) != len(self.gene_settings):
            raise ConfigError(f"gene_settings has repeats: {self.gene_settings!r}")
        if not 0 < self.gene_gaussian_fraction <= 1:
            raise ConfigError(f"gene_gaussian_fraction must be in (0, 1], got {self.gene_gaussian_fraction}")
        if self.gene_latents < 1 or not 1 <= self.gene_latent_children <= self.genes:
            raise ConfigError(
                f"gene_latents must be >= 1 and gene_latent_children in [1, genes = {self.genes}]; "
                f"got {self.gene_latents}, {self.gene_latent_children}"
            )
        if self.notears_lambda < 0 or self.notears_threshold < 0:
            raise ConfigError(
                f"notears_lambda and notears_threshold must be >= 0; "
                f"got {self.notears_lambda}, {self.notears_threshold}"
            )
        if self.competitive_margin < 0:
            raise ConfigError(f"competitive_margin must be >= 0, got {self.competitive_margin}")
        if self.gene_seeds < 2:
            raise ConfigError(f"gene_seeds must be >= 2 (the verdicts need a standard error), got {self.gene_seeds}")
        if self.n_jobs is not None and self.n_jobs < 1:
            raise ConfigError(f"n_jobs must be None or >= 1, got {self.n_jobs}")


PRESETS: dict[str, dict] = {
    "cpu": {},
    "full": {
        "agree_dims": (3, 5, 10, 20, 50),
        "agree_ns": (200, 1000, 5000),
        "agree_seeds": 5,
        "acc_dims": (10, 50, 100, 250, 500),
        "acc_ns": (1000, 10000),
        "acc_seeds": 10,
        # NOTEARS (CPU, L-BFGS over 2 d^2 weights) limits the knockout study's size
        "genes": 100,
        "gene_samples": 20000,
        "gene_seeds": 20,
    },
}
