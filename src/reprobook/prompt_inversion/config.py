"""Parameters of chapter 08 (prompt inversion) and its presets.

``cpu`` (the defaults, about 5 minutes on 2 CPU cores): 24x24 scenes of one shape (3 shapes x 4
colours x 2 sizes x 3 positions), a proxy CLIP and a held-out CLIP trained here, a generator that
reads the proxy's token states, a captioner, and 10 held-out targets inverted by every method.
``long`` (at most about 2 CPU hours, saved to ``results/prompt_inversion/long.json``): more
targets, longer searches, prompt lengths 8 and 16, a cross-attention generator.
``full``: the reference setting from local paths (Stable Diffusion 2.1-base, OpenCLIP ViT-H-14 as
the proxy, ViT-g-14 as the held-out CLIP), on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("GCG", "random", "PEZ", "AutoDAN w=1", "AutoDAN w=0", "captioner", "true prompt", "random prompt")


@dataclass(frozen=True)
class Config:
    # The world: one object per scene on black.
    image_size: int = 24
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    sizes: tuple[str, ...] = ("medium", "huge")  # smaller shapes are a few pixels: shape is unreadable
    n_heldout_combos: int = 10  # attribute combinations never shown to any model: the targets come from them
    distractor_rate: float = 0.3  # captions with words from Python's docs appended (alt-text noise)
    # The CLIPs (chapter 07's recipe): a proxy and a held-out one (another seed).
    vocab_size: int = 2048  # BPE on the captions and Python's docs
    context_length: int = 40  # the longest noisy caption is ~34 tokens with BOS and EOS
    embed_dim: int = 64
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 4
    clip_steps: int = 250
    clip_batch: int = 96
    clip_lr: float = 1e-3
    # The generator: EDM on a small U-Net reading the proxy's penultimate token states.
    generator_widths: tuple[int, ...] = (32, 64)
    conditioning: str = "pooled"  # "pooled" (attention-pooled into the time embedding) | "cross-attention"
    generator_images: int = 4000
    generator_steps: int = 800
    generator_batch: int = 32
    generator_lr: float = 2e-3
    generator_p_mean: float = 0.0  # EDM's ln-sigma mean; above its -1.2 so more steps train the noisy end,
    # where a one-object layout (position, colour) is decided
    caption_dropout: float = 0.1
    sample_steps: int = 10  # Heun
    guidance: float = 3.0
    # The captioner (BLIP-2's stand-in): an attribute CNN and the caption template.
    captioner_images: int = 2000
    captioner_steps: int = 300
    captioner_sweep: tuple[int, ...] = (30, 300)  # fewer training images
    # Inversion.
    n_targets: int = 10
    n_free: tuple[int, ...] = (8,)
    gcg_steps: int = 80
    gcg_batch: int = 64
    gcg_top_k: int = 64
    random_steps: int = 80
    random_batch: int = 64
    pez_steps: int = 300
    autodan_batch: int = 64
    autodan_weight: float = 1.0
    n_regenerations: int = 4
    # The full preset: local paths (nothing is downloaded).
    sd_path: str = ""
    proxy_clip: str = "tiny"  # or an open_clip name, e.g. "ViT-H-14"
    proxy_checkpoint: str = ""
    heldout_clip: str = "tiny"  # e.g. "ViT-g-14"
    heldout_checkpoint: str = ""
    prompt_file: str = ""

    def validate(self) -> None:
        from ..presets import ConfigError, require_at_least_one
        from ..world import SHAPES, COLOURS, SIZES

        require_at_least_one(image_size=self.image_size, n_heldout_combos=self.n_heldout_combos,
                             vocab_size=self.vocab_size, context_length=self.context_length,
                             embed_dim=self.embed_dim, text_width=self.text_width, text_layers=self.text_layers,
                             text_heads=self.text_heads, clip_steps=self.clip_steps, clip_batch=self.clip_batch,
                             generator_images=self.generator_images, generator_steps=self.generator_steps,
                             generator_batch=self.generator_batch, sample_steps=self.sample_steps,
                             captioner_images=self.captioner_images, captioner_steps=self.captioner_steps,
                             n_targets=self.n_targets, gcg_steps=self.gcg_steps, gcg_batch=self.gcg_batch,
                             gcg_top_k=self.gcg_top_k, random_steps=self.random_steps,
                             random_batch=self.random_batch, pez_steps=self.pez_steps,
                             autodan_batch=self.autodan_batch, n_regenerations=self.n_regenerations)
        for name, values, valid in (("shapes", self.shapes, SHAPES), ("colours", self.colours, COLOURS),
                                    ("sizes", self.sizes, SIZES)):
            if not values or len(set(values)) != len(values) or any(v not in valid for v in values):
                raise ConfigError(f"{name} must be distinct values from {', '.join(valid)}, got {values!r}")
        n_combos = len(self.shapes) * len(self.colours) * len(self.sizes) * 3
        if self.n_heldout_combos >= n_combos:
            raise ConfigError(f"n_heldout_combos ({self.n_heldout_combos}) must leave combinations to train on "
                              f"(there are {n_combos})")
        if self.image_size % 8:
            raise ConfigError(f"image_size must be a multiple of 8, got {self.image_size}")
        if self.vocab_size <= 259:
            raise ConfigError(f"vocab_size must be > 259 (bytes and three special tokens), got {self.vocab_size}")
        if self.text_width % self.text_heads:
            raise ConfigError(f"text_width ({self.text_width}) must be divisible by text_heads ({self.text_heads})")
        if not self.n_free or min(self.n_free) < 1 or max(self.n_free) > self.context_length - 2:
            raise ConfigError(f"n_free must be prompt lengths in [1, {self.context_length - 2}] (the context minus "
                              f"BOS and EOS), got {self.n_free!r}")
        if self.conditioning not in ("pooled", "cross-attention"):
            raise ConfigError(f"conditioning must be 'pooled' or 'cross-attention', got {self.conditioning!r}")
        if self.guidance < 0:
            raise ConfigError(f"guidance must be >= 0 (0 unconditional, 1 conditional, > 1 guided), "
                              f"got {self.guidance}")
        for name in ("distractor_rate", "caption_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        for name in ("clip_lr", "generator_lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.autodan_weight < 0:
            raise ConfigError(f"autodan_weight must be >= 0, got {self.autodan_weight}")
        if not self.captioner_sweep or min(self.captioner_sweep) < 1:
            raise ConfigError(f"captioner_sweep must be training-set sizes >= 1, got {self.captioner_sweep!r}")
        if self.sd_path or self.proxy_clip != "tiny" or self.heldout_clip != "tiny":
            self.check_full_paths()

    def check_full_paths(self) -> None:
        """Every local path the full preset needs, all missing ones named in one error, before work."""
        from pathlib import Path

        from ..presets import ConfigError

        needed = {"sd_path": (self.sd_path, "a Stable Diffusion 2.1-base folder (diffusers layout)"),
                  "proxy_checkpoint": (self.proxy_checkpoint, f"the {self.proxy_clip} open_clip weights file"),
                  "heldout_checkpoint": (self.heldout_checkpoint, f"the {self.heldout_clip} open_clip weights file"),
                  "prompt_file": (self.prompt_file, "a text file of target prompts, one per line")}
        missing = [f"{key} = {path!r} ({what})" for key, (path, what) in needed.items()
                   if not path or not Path(path).expanduser().exists()]
        if missing:
            raise ConfigError("the full preset reads everything from local paths (nothing is downloaded; "
                              "HF_HUB_OFFLINE is respected) and these are missing: " + "; ".join(missing))


PRESETS: dict[str, dict] = {
    "cpu": {},
    "long": {"image_size": 32, "conditioning": "cross-attention", "generator_steps": 3000, "generator_images": 20000,
             "clip_steps": 1000, "n_targets": 50, "n_free": (8, 16), "gcg_steps": 300, "gcg_batch": 256,
             "gcg_top_k": 256, "random_steps": 300, "random_batch": 256, "pez_steps": 1000, "autodan_batch": 256},
    # The reference setting (TROPT's reading of the paper, FUSE's code): SD 2.1-base with OpenCLIP ViT-H-14
    # (laion2b_s32b_b79k) as the proxy, ViT-g-14 (laion2b_s12b_b42k) held out; GCG 3000 steps, B 512, top-k 256;
    # PEZ 3000; random B 128; AutoDAN B 256, w 1; 16 free tokens.
    "full": {"image_size": 512, "proxy_clip": "ViT-H-14", "proxy_checkpoint": "open_clip_vit_h14.bin",
             "heldout_clip": "ViT-g-14", "heldout_checkpoint": "open_clip_vit_g14.bin",
             "sd_path": "stable-diffusion-2-1-base", "prompt_file": "prompts.txt", "n_targets": 100,
             "n_free": (16,), "gcg_steps": 3000, "gcg_batch": 512, "gcg_top_k": 256, "random_steps": 3000,
             "random_batch": 128, "pez_steps": 3000, "autodan_batch": 256, "sample_steps": 50, "guidance": 7.5},
}
