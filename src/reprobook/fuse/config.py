"""Parameters of chapter 09 (FUSE) and its presets.

``cpu`` (the defaults, about 5 minutes on 2 CPU cores): SmolLM2-135M-Instruct as A, all-MiniLM-L6-v2
as B; the adapter fitted on ~30k words; gradient quality on 16 prompts; search on 3 hidden
captions x 2 seeds; captioning of 2 world images with a MiniLM-tower CLIP.
``long`` (about 90 minutes; saved to ``results/fuse/long.json``): more prompts and candidates, any
ASCII tokens, 12 images, longer AutoDAN.
``full``: GPT-2-medium, CLIP ViT-B/32, a RoBERTa sentiment model, wikitext-103 and COCO from local
paths, on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

MODELS_A = ("smollm2",)
MODELS_B = ("minilm",)


@dataclass(frozen=True)
class Config:
    model_a: str = "smollm2"
    model_b: str = "minilm"
    # Experiment 1: the adapter.
    K: int = 4  # the longest word (in tokens) the adapter maps
    lambdas: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # ridge penalties tried on validation words
    min_word_chars: int = 2
    heldout_fraction: float = 0.1
    max_words_per_k: int = 8192  # training words per k (the reference: 8192 in the paper, 16834 in its config)
    recovery_words: int = 400  # held-out words per k whose B tokens are looked up among all 30k
    # Experiment 2: gradient quality.
    n_prompts: int = 16
    prompt_tokens: int = 6
    positions: int = 4
    candidates: int = 48
    top: int = 8  # best of the top-8 predicted vs of 8 random
    token_set: str = "words"  # "words": A tokens " [a-z]+"; "ascii": any printable ASCII token
    # Experiment 3: search for a hidden caption.
    n_targets: int = 3
    search_seeds: int = 2
    n_free: int = 6
    gcg_steps: int = 20
    gcg_batch: int = 48
    gcg_top_k: int = 128
    # Experiment 4: captioning world images.
    n_images: int = 2
    caption_prefix: str = "An image of"
    autodan_steps: int = 8
    autodan_beam: int = 2
    autodan_batch: int = 32
    image_size: int = 32
    clip_images: int = 4000
    clip_steps: int = 300
    clip_batch: int = 128
    clip_lr: float = 2e-3
    # The full preset: local paths (nothing is downloaded).
    model_a_path: str = ""
    clip_checkpoint: str = ""
    sentiment_path: str = ""
    wikitext_path: str = ""
    coco_path: str = ""

    def validate(self) -> None:
        from ..presets import ConfigError, require_at_least_one

        require_at_least_one(K=self.K, max_words_per_k=self.max_words_per_k, recovery_words=self.recovery_words,
                             n_prompts=self.n_prompts,
                             prompt_tokens=self.prompt_tokens, positions=self.positions, candidates=self.candidates,
                             top=self.top, n_targets=self.n_targets, search_seeds=self.search_seeds,
                             n_free=self.n_free, gcg_steps=self.gcg_steps, gcg_batch=self.gcg_batch,
                             gcg_top_k=self.gcg_top_k, n_images=self.n_images, autodan_steps=self.autodan_steps,
                             autodan_beam=self.autodan_beam, autodan_batch=self.autodan_batch,
                             clip_images=self.clip_images, clip_steps=self.clip_steps, clip_batch=self.clip_batch,
                             min_word_chars=self.min_word_chars)
        if self.model_a not in MODELS_A and not self.model_a_path:
            raise ConfigError(f"unknown model_a {self.model_a!r}: valid are {', '.join(MODELS_A)} (or a local "
                              "checkpoint through model_a_path in the full preset)")
        if self.model_b not in MODELS_B and not self.clip_checkpoint:
            raise ConfigError(f"unknown model_b {self.model_b!r}: valid are {', '.join(MODELS_B)}")
        if not self.lambdas or any(not lam >= 0 for lam in self.lambdas):
            raise ConfigError(f"lambdas must be ridge penalties >= 0, got {self.lambdas!r}")
        if not 0 < self.heldout_fraction < 0.5:
            raise ConfigError(f"heldout_fraction must lie in (0, 0.5), got {self.heldout_fraction}")
        if self.positions > self.prompt_tokens:
            raise ConfigError(f"positions ({self.positions}) cannot exceed prompt_tokens ({self.prompt_tokens})")
        if self.token_set not in ("words", "ascii"):
            raise ConfigError(f"token_set must be 'words' or 'ascii', got {self.token_set!r}")
        if self.image_size % 8:
            raise ConfigError(f"image_size must be a multiple of 8, got {self.image_size}")
        if self.clip_lr <= 0:
            raise ConfigError(f"clip_lr must be > 0, got {self.clip_lr}")
        if not self.caption_prefix.strip():
            raise ConfigError("caption_prefix must be a non-empty text (the reference: 'An image of')")
        if self.model_a_path or self.clip_checkpoint:
            self.check_full_paths()

    def check_full_paths(self) -> None:
        """Every local path the full preset needs, all missing ones named in one error, before work."""
        from pathlib import Path

        from ..presets import ConfigError

        needed = {"model_a_path": (self.model_a_path, "a GPT-2-medium checkpoint folder (transformers layout)"),
                  "clip_checkpoint": (self.clip_checkpoint, "the open_clip ViT-B-32 weights file"),
                  "sentiment_path": (self.sentiment_path, "a RoBERTa sentiment checkpoint whose label2id has "
                                                          "'positive'"),
                  "wikitext_path": (self.wikitext_path, "wikitext-103 raw training text (the fitting words)"),
                  "coco_path": (self.coco_path, "COCO captions (annotations JSON) and images")}
        missing = [f"{key} = {path!r} ({what})" for key, (path, what) in needed.items()
                   if not path or not Path(path).expanduser().exists()]
        if missing:
            raise ConfigError("the full preset reads everything from local paths (nothing is downloaded; "
                              "HF_HUB_OFFLINE is respected) and these are missing: " + "; ".join(missing))


PRESETS: dict[str, dict] = {
    "cpu": {},
    "long": {"n_prompts": 100, "candidates": 96, "token_set": "ascii", "n_targets": 6, "search_seeds": 3,
             "gcg_steps": 60, "n_images": 12, "autodan_beam": 4, "autodan_steps": 12, "autodan_batch": 64,
             "clip_steps": 1000, "clip_images": 20000},
    # The reference setting: GPT-2-medium + CLIP ViT-B/32 (weights 1 and 22), AutoDAN append, beam 4,
    # 16 steps, 256 candidates, K = 4, 8192 words per k.
    "full": {"model_a": "gpt2-medium", "model_b": "ViT-B-32", "model_a_path": "gpt2-medium",
             "clip_checkpoint": "open_clip_vit_b32.bin", "sentiment_path": "roberta-sentiment",
             "wikitext_path": "wikitext-103-raw/wiki.train.raw", "coco_path": "coco", "autodan_beam": 4,
             "autodan_steps": 16, "autodan_batch": 256, "n_images": 100},
}
