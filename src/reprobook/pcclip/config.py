"""Parameters of chapter 07 (PC-CLIP) and its presets.

``cpu`` (the defaults, about 5 minutes on 2 CPU cores): a tiny CLIP
pretrained here on the shapes world, then finetuned by every arm from the
same base on the same 1000 images. ``long`` (at most about 2 CPU hours,
saved to ``results/pcclip/long.json``): 64x64 images and a longer text
context, comparatives written by SmolLM2-135M-Instruct beside the grammar's,
and paraphrase transfer through the frozen MiniLM sentence encoder.
``full``: an open_clip checkpoint (ViT-L-14) from a local file at the
reference hyperparameters, on the world's images rendered at 224 px.
"""

from __future__ import annotations

from dataclasses import dataclass

ARMS = ("base", "caption-FT", "rewrite-FT", "PC-CLIP", "PC-CLIP-MSE", "PC-CLIP WiSE")


@dataclass(frozen=True)
class Config:
    # The world.
    image_size: int = 32
    # The tiny CLIP and its pretraining.
    vocab_size: int = 512
    context_length: int = 40  # a three-clause comparative is at most 38 tokens
    embed_dim: int = 64
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 4
    pretrain_steps: int = 400
    pretrain_batch: int = 128
    pretrain_lr: float = 1e-3
    # Real CLIP (full preset): an open_clip model name and a local checkpoint file.
    clip_model: str = "tiny"
    clip_checkpoint: str = ""
    # Finetuning: every arm from the same base, on the same images, same steps.
    n_finetune_pairs: int = 500  # 1000 images
    finetune_steps: int = 80
    finetune_batch: int = 64
    sweep_lr: bool = True  # choose each family's rate from lr_grid on validation (else lr_pcclip / lr_caption)
    lr_pcclip: float = 1e-4
    lr_caption: float = 1e-4
    lr_grid: tuple[float, ...] = (3e-5, 1e-4, 3e-4)
    lr_decay: float = 0.9  # ExponentialLR per epoch (reference)
    temperature: float = 1.0  # PC-CLIP's, fixed, as in the paper
    caption_temperature: float = 0.1  # the caption baselines' CLIP loss (reference code)
    wise_alpha: float = 0.5
    seeds: int = 5
    # Evaluation.
    n_val_images: int = 100
    n_test_images: int = 100
    n_zero_shot: int = 500  # images per zero-shot evaluation
    prompt_alpha: float = 0.9  # comparative prompting (reference CLI; its function default is 0.8)
    n_confused: int = 2  # of 3-5 classes: 3 pairs would cover every class, leaving no subset
    n_gallery: int = 1000
    betas: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)  # embedding arithmetic; chosen on validation
    heldout_phrasing: bool = False  # also test comparatives in the held-out phrasing (needs a longer context)
    # The long preset's studies (run when long_study is set).
    long_study: bool = False
    llm_pairs: int = 300  # pairs whose comparatives SmolLM2 writes, both ways
    llm_min_chars: int = 40  # the reference filter drops shorter answers (its value: 60, for COCO scenes)
    minilm_align_images: int = 5000
    minilm_align_steps: int = 600
    minilm_lr: float = 1e-3

    def validate(self) -> None:
        from ..presets import ConfigError, require_at_least_one

        require_at_least_one(image_size=self.image_size, vocab_size=self.vocab_size,
                             context_length=self.context_length, embed_dim=self.embed_dim,
                             text_width=self.text_width, text_layers=self.text_layers, text_heads=self.text_heads,
                             pretrain_steps=self.pretrain_steps, pretrain_batch=self.pretrain_batch,
                             n_finetune_pairs=self.n_finetune_pairs, finetune_steps=self.finetune_steps,
                             finetune_batch=self.finetune_batch, seeds=self.seeds, n_val_images=self.n_val_images,
                             n_test_images=self.n_test_images, n_zero_shot=self.n_zero_shot,
                             n_confused=self.n_confused, n_gallery=self.n_gallery,
                             llm_pairs=self.llm_pairs, minilm_align_images=self.minilm_align_images,
                             minilm_align_steps=self.minilm_align_steps)
        if self.image_size % 8:
            raise ConfigError(f"image_size must be a multiple of 8, got {self.image_size}")
        if self.vocab_size <= 259:
            raise ConfigError(f"vocab_size must be > 259 (bytes and three special tokens), got {self.vocab_size}")
        if self.text_width % self.text_heads:
            raise ConfigError(f"text_width ({self.text_width}) must be divisible by text_heads ({self.text_heads})")
        for name in ("pretrain_lr", "lr_pcclip", "lr_caption", "temperature", "caption_temperature", "minilm_lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.lr_grid or min(self.lr_grid) <= 0:
            raise ConfigError(f"lr_grid must be a non-empty list of rates > 0, got {self.lr_grid}")
        for name in ("wise_alpha", "prompt_alpha", "lr_decay"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.finetune_batch > self.n_finetune_pairs:
            raise ConfigError(f"finetune_batch ({self.finetune_batch}) must not exceed n_finetune_pairs "
                              f"({self.n_finetune_pairs})")
        if not self.betas or min(self.betas) <= 0:
            raise ConfigError(f"betas must be a non-empty list of values > 0, got {self.betas}")
        if self.clip_model != "tiny":
            from pathlib import Path

            if not self.clip_checkpoint or not Path(self.clip_checkpoint).expanduser().is_file():
                raise ConfigError(f"clip_model={self.clip_model!r} needs clip_checkpoint, the path of its weights "
                                  f"file on this machine (nothing is downloaded); {self.clip_checkpoint!r} is not a file")


PRESETS: dict[str, dict] = {
    "cpu": {},
    "long": {"image_size": 64, "context_length": 64, "pretrain_steps": 1000, "finetune_steps": 150,
             "heldout_phrasing": True, "long_study": True},
    # The paper's setting: ViT-L-14 (datacomp_xl_s13b_b90k) from a local file, Adam 1e-8 for PC-CLIP and 1e-6
    # for the baselines, batch 512, 20 epochs of the finetuning pairs.
    "full": {"image_size": 224, "clip_model": "ViT-L-14",
             "clip_checkpoint": "open_clip_pytorch_model.bin", "n_finetune_pairs": 5000, "finetune_batch": 512,
             "finetune_steps": 200, "sweep_lr": False, "lr_pcclip": 1e-8, "lr_caption": 1e-6,
             "n_gallery": 5000, "n_zero_shot": 2000},
}
