"""Parameters of chapter 02 and its presets.

``cpu`` (the defaults): the released-parameter reproduction plus a training
study of a few dozen small students, a few minutes on 2 CPU cores.
``full``: the same study with a 10x larger pool, wider students and more
seeds, for a GPU (``device="cuda"``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    # The synthetic web pool.
    pool_size: int = 50_000  # buckets are 10% of it each
    n_buckets: int = 4
    quality_beta: tuple[float, ...] = (1.0, 2.0)
    metadata_noise: float = 0.3
    # Students.
    seeds: int = 8  # paired by seed across pools; standard errors over seeds decide the claims
    hidden: int = 64
    batch: int = 32
    lr: float = 0.05
    weight_decay: float = 0.003
    # Budgets, in units of one bucket (samples seen / bucket size).
    min_passes: float = 0.25
    max_passes: float = 40.0
    checkpoints: int = 12
    fit_from_passes: float = 0.6  # fit the laws on points with at least this many passes

    def validate(self) -> None:
        from ..presets import ConfigError

        if self.pool_size < 1000:
            raise ConfigError(f"pool_size must be >= 1000, got {self.pool_size}")
        if not 2 <= self.n_buckets <= 10:
            raise ConfigError(f"n_buckets must be in 2..10, got {self.n_buckets}")
        if len(self.quality_beta) != 2 or min(self.quality_beta) <= 0:
            raise ConfigError(f"quality_beta must be two positive numbers, got {self.quality_beta}")
        if self.seeds < 1 or self.hidden < 1 or self.batch < 1 or self.checkpoints < 3:
            raise ConfigError("seeds, hidden and batch must be >= 1 and checkpoints >= 3")
        if not 0 < self.min_passes < self.fit_from_passes < self.max_passes:
            raise ConfigError("need 0 < min_passes < fit_from_passes < max_passes")
        if self.lr <= 0 or self.weight_decay < 0 or self.metadata_noise < 0:
            raise ConfigError("lr must be positive; weight_decay and metadata_noise non-negative")


PRESETS: dict[str, dict] = {
    "cpu": {},
    "full": {"pool_size": 500_000, "seeds": 16, "hidden": 256, "batch": 128, "checkpoints": 16},
}
