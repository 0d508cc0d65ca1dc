"""Parameters of chapter 06 (MOHAWK) and its presets.

``cpu`` (the defaults, about 5 minutes on 2 CPU cores): a tiny Phi-style
teacher trained here on Python's documentation, the matrix-fitting study,
the four arms at equal tokens (four seeds), and the scan-vs-materialized
benchmark. ``long``: SmolLM2-135M-Instruct as the teacher (about an hour
on 2 CPU cores), saved to ``results/mohawk/long.json``. ``full``: Phi-1.5
(a checkpoint folder) at the reference budgets on GPUs, bf16.
"""

from __future__ import annotations

from dataclasses import dataclass

# "3 (lr_12)": stage 3 alone at stage 2's learning rate, the control for the aligned arms' faster mixer rate.
ARMS = ("3", "3 (lr_12)", "2+3", "1+2+3")
INITS = ("random", "attention")
SKIP_INITS = ("least-squares", "zero", "one")


@dataclass(frozen=True)
class Config:
    # The teacher: "tiny" (a Phi-style model trained here) or "smollm2" or a checkpoint folder.
    teacher: str = "tiny"
    vocab_size: int = 1024
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    context: int = 128
    epochs: int = 4
    batch_size: int = 16
    lr: float = 3e-3
    eval_rows: int = 64  # held-out rows of context + 1 tokens
    # Matrix-fitting study: families fitted to the teacher's attention, per layer.
    fit_layers: tuple[int, ...] = ()  # () = every layer
    fit_rows: int = 128  # rows whose attention matrices are fitted (the held-out rows score the fit)
    fit_steps: int = 800
    fit_lr: float = 1e-2
    fit_batch: int = 8
    small_state: int = 4  # SSD small state and the low-rank family's rank (paper: 16 of head dim 128)
    large_state: int = 16  # SSD large state (paper: 64 of head dim 128, half the head dim)
    # The arms at equal tokens: the paper's three and a learning-rate control.
    arms: tuple[str, ...] = ARMS
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    total_tokens: int = 98_304  # per arm
    stage1_fraction: float = 0.1  # of the total, in the arms that have stage 1 (paper: 80M of 3B)
    stage2_fraction: float = 0.2  # of the total, in the arms that have stage 2 (paper: 160M of 3B)
    tokens_per_update_12: int = 1024  # stages 1-2 (paper: 2^15)
    tokens_per_update_3: int = 4096  # stage 3 (paper: 2^19)
    micro_batch: int = 8  # rows per forward / backward
    lr_12: float = 3e-3
    # Stage 1's own rate: at 3e-3 its first updates overshoot (the loss rose from 5 to 17 and
    # was still above the zero matrix's after 9 updates); the paper uses one rate for all stages.
    lr_1: float = 1e-3
    lr_3: float = 1e-3
    warmup: float = 0.1  # fractions of each stage's updates
    decay: float = 0.2
    state_size: int = 0  # the student's SSD state; 0 = head dim (Phi-Mamba)
    # D at the start of stage 1: its least-squares value given the rest of the matrix (ours), 0, or 1 (official)
    skip_init: str = "least-squares"
    skip_init_rows: int = 32  # training rows the least-squares D is computed on
    mixer_init: str = "random"  # "random" (the paper's transfer copies all but the mixer) | "attention" (V, K, Q, O)
    keep_attention: tuple[int, ...] = ()  # layers that keep attention (a hybrid)
    chunk: int = 64
    # Scan vs materialized: sequence lengths timed.
    bench_lengths: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
    bench_repeats: int = 3
    # GPU / full-scale options.
    bf16: bool = False
    checkpoint_every: int = 0  # updates between checkpoints (0: none)

    @property
    def student_state(self) -> int | None:
        return self.state_size or None

    def validate(self) -> None:
        from ..presets import ConfigError, check_small_transformer, require_at_least_one

        require_at_least_one(vocab_size=self.vocab_size, d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
                             context=self.context, epochs=self.epochs, batch_size=self.batch_size, eval_rows=self.eval_rows,
                             fit_rows=self.fit_rows, fit_steps=self.fit_steps, fit_batch=self.fit_batch,
                             small_state=self.small_state, large_state=self.large_state, total_tokens=self.total_tokens,
                             tokens_per_update_12=self.tokens_per_update_12, tokens_per_update_3=self.tokens_per_update_3,
                             micro_batch=self.micro_batch, chunk=self.chunk, bench_repeats=self.bench_repeats)
        check_small_transformer(self.vocab_size, self.d_model, self.n_heads)
        if not self.arms or any(a not in ARMS for a in self.arms):
            raise ConfigError(f"arms must be a non-empty subset of {', '.join(ARMS)}, got {self.arms}")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds must be a non-empty list of non-negative integers, got {self.seeds}")
        if not (0 <= self.stage1_fraction and 0 <= self.stage2_fraction and self.stage1_fraction + self.stage2_fraction < 1):
            raise ConfigError("need stage1_fraction, stage2_fraction >= 0 with a sum < 1 (stage 3 gets the rest)")
        for name in ("tokens_per_update_12", "tokens_per_update_3"):
            if getattr(self, name) % (self.context * self.micro_batch):
                raise ConfigError(f"{name} ({getattr(self, name)}) must be a multiple of context x micro_batch "
                                  f"({self.context} x {self.micro_batch})")
        if min(self.lr, self.fit_lr, self.lr_1, self.lr_12, self.lr_3) <= 0:
            raise ConfigError("learning rates must be > 0")
        if not (0 <= self.warmup and 0 <= self.decay and self.warmup + self.decay <= 1):
            raise ConfigError(f"need warmup, decay >= 0 and warmup + decay <= 1, got {self.warmup}, {self.decay}")
        if self.small_state >= self.large_state:
            raise ConfigError(f"small_state ({self.small_state}) must be < large_state ({self.large_state})")
        if self.state_size < 0 or self.checkpoint_every < 0:
            raise ConfigError("state_size and checkpoint_every must be >= 0")
        if self.skip_init not in SKIP_INITS:
            raise ConfigError(f"skip_init must be one of {', '.join(SKIP_INITS)}, got {self.skip_init!r}")
        if self.skip_init_rows < 1:
            raise ConfigError(f"skip_init_rows must be >= 1, got {self.skip_init_rows}")
        if self.mixer_init not in INITS:
            raise ConfigError(f"mixer_init must be one of {', '.join(INITS)}, got {self.mixer_init!r}")
        if any(T < 1 for T in self.bench_lengths) or not self.bench_lengths:
            raise ConfigError(f"bench_lengths must be a non-empty list of lengths >= 1, got {self.bench_lengths}")
        if self.teacher == "tiny" and any(not 0 <= i < self.n_layers for i in (*self.fit_layers, *self.keep_attention)):
            raise ConfigError(f"fit_layers and keep_attention must be layers in 0..{self.n_layers - 1}")


PRESETS: dict[str, dict] = {
    "cpu": {},
    # SmolLM2-135M-Instruct (30 layers, 9 query / 3 kv heads of dim 64) as the teacher, on CPU.
    "long": {"teacher": "smollm2", "context": 128, "eval_rows": 24, "fit_layers": (0, 10, 20, 29), "fit_rows": 16,
             "fit_steps": 150, "fit_batch": 4, "small_state": 8, "large_state": 32, "seeds": (0,),
             "total_tokens": 49_152, "tokens_per_update_12": 1024, "tokens_per_update_3": 4096, "micro_batch": 4,
             "lr_1": 1e-3, "lr_12": 1e-3, "lr_3": 3e-4},
    # Phi-1.5 at the reference budgets (80M / 160M / 2.76B tokens, 2^15 and 2^19 tokens per update, lr 1e-4).
    "full": {"teacher": "microsoft/phi-1_5", "context": 2048, "eval_rows": 256, "fit_layers": (0, 8, 16, 23),
             "fit_rows": 64, "fit_steps": 500, "fit_batch": 8, "small_state": 8, "large_state": 32, "seeds": (0,),
             "total_tokens": 3_000_000_000, "stage1_fraction": 80 / 3000, "stage2_fraction": 160 / 3000,
             "tokens_per_update_12": 2 ** 15, "tokens_per_update_3": 2 ** 19, "micro_batch": 4, "lr_1": 1e-4, "lr_12": 1e-4,
             "lr_3": 1e-4, "bf16": True, "checkpoint_every": 200, "bench_lengths": (1024, 4096, 16384, 65536)},
}
