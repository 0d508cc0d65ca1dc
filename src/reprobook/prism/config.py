"""Parameters of chapter 10 (PRISM) and its presets.

``cpu`` (the defaults, about 5 minutes on 2 CPU cores): SmolLM2-135M-Instruct as the engineer, the
one-step generator (MiniLM -> scene -> render) as the black box, the world's reader as the judge;
2 concepts + 2 scenes x 2 seeds at N = 4, K = 3, C = 3; white-box baselines through the one-step
generator; transfer to the world's renderer.
``long`` (saved to ``results/prism/long.json``): the paper's N and K (personalization 10 x 4,
inversion 6 x 5), 5 concepts + 5 scenes, more seeds.
``full``: an open VLM as engineer and judge, SDXL-Turbo and SD 2.1 as generators, from local paths.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINEERS = ("smollm2",)
GENERATORS = ("one-step", "renderer")
JUDGES = ("attributes",)


@dataclass(frozen=True)
class Config:
    engineer: str = "smollm2"
    generator: str = "one-step"  # the black box the loop queries
    transfer_generator: str = "renderer"  # the "closed" model prompts are carried to
    judge: str = "attributes"
    image_size: int = 32
    # The one-step generator (SDXL-Turbo's analogue).
    generator_captions: int = 8000
    generator_steps: int = 600
    # Tasks.
    n_concepts: int = 2  # personalization: one object in M renders
    n_scenes: int = 2  # inversion: one image, every attribute
    references_per_concept: int = 4  # M
    seeds: tuple[int, ...] = (0, 1)
    # PRISM (the paper: personalization N = 10, K = 4; inversion N = 6, K = 5; C = 5).
    n_streams: int = 4
    n_iterations: int = 3
    top_c: int = 3
    keep: int = 3  # exchanges kept in the history
    temperature: float = 1.0
    top_p: float = 0.9
    max_new_tokens: int = 32
    retries: int = 5
    # White-box baselines (through the one-step generator's cross-entropy).
    n_free: int = 8  # MiniLM tokens
    gcg_steps: int = 15
    gcg_batch: int = 32
    gcg_top_k: int = 64
    ti_steps: int = 200
    # Evaluation on fresh draws.
    draws_per_template: int = 4  # objects: x 6 templates
    scene_draws: int = 16
    readability_captions: int = 2000  # the trigram's held-out training captions
    # The full preset: local paths (nothing is downloaded).
    engineer_path: str = ""
    generator_path: str = ""
    transfer_path: str = ""

    def validate(self) -> None:
        from ..presets import ConfigError, require_at_least_one

        require_at_least_one(image_size=self.image_size, generator_captions=self.generator_captions,
                             generator_steps=self.generator_steps, references_per_concept=self.references_per_concept,
                             n_streams=self.n_streams, n_iterations=self.n_iterations, top_c=self.top_c,
                             keep=self.keep, max_new_tokens=self.max_new_tokens, n_free=self.n_free,
                             gcg_steps=self.gcg_steps, gcg_batch=self.gcg_batch, gcg_top_k=self.gcg_top_k,
                             ti_steps=self.ti_steps, draws_per_template=self.draws_per_template,
                             scene_draws=self.scene_draws, readability_captions=self.readability_captions)
        for name, value, valid in (("engineer", self.engineer, ENGINEERS), ("generator", self.generator, GENERATORS),
                                   ("transfer_generator", self.transfer_generator, GENERATORS),
                                   ("judge", self.judge, JUDGES)):
            if value not in valid:
                raise ConfigError(f"unknown {name} {value!r}; valid here: {', '.join(valid)} (the full preset's "
                                  "models come from local paths)")
        if self.n_concepts < 0 or self.n_scenes < 0 or self.n_concepts + self.n_scenes == 0:
            raise ConfigError(f"need at least one task: n_concepts = {self.n_concepts}, n_scenes = {self.n_scenes}")
        if self.top_c > self.n_streams * self.n_iterations:
            raise ConfigError(f"top_c ({self.top_c}) cannot exceed N K = {self.n_streams * self.n_iterations}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct ints, at least one, got {self.seeds!r}")
        if self.image_size < 16:
            raise ConfigError(f"image_size must be >= 16 (the reader needs a few pixels per shape), got {self.image_size}")
        if not self.temperature > 0 or not 0 < self.top_p <= 1:
            raise ConfigError(f"need temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.n_free > 126:
            raise ConfigError(f"n_free must be <= 126 (MiniLM's 128 positions minus [CLS] and [SEP]), got {self.n_free}")
        if self.engineer_path or self.generator_path or self.transfer_path:
            self.check_full_paths()

    def check_full_paths(self) -> None:
        """Every local path the full preset needs, all missing ones named in one error, before work."""
        from pathlib import Path

        from ..presets import ConfigError

        needed = {"engineer_path": (self.engineer_path, "an open VLM folder (engineer and judge), e.g. LLaVA-1.6"),
                  "generator_path": (self.generator_path, "an SDXL-Turbo folder (diffusers layout)"),
                  "transfer_path": (self.transfer_path, "a Stable Diffusion 2.1 folder (diffusers layout)")}
        missing = [f"{key} = {path!r} ({what})" for key, (path, what) in needed.items()
                   if not path or not Path(path).expanduser().exists()]
        if missing:
            raise ConfigError("the full preset reads everything from local paths (nothing is downloaded; "
                              "HF_HUB_OFFLINE is respected) and these are missing: " + "; ".join(missing))


PRESETS: dict[str, dict] = {
    "cpu": {},
    # The paper's N and K (personalization 10 x 4; inversion 6 x 5 is run at 10 x 4 for one budget), C = 5.
    "long": {"n_concepts": 5, "n_scenes": 5, "seeds": (0, 1), "n_streams": 10, "n_iterations": 4, "top_c": 5,
             "gcg_steps": 60, "gcg_batch": 64, "draws_per_template": 8, "scene_draws": 32,
             "generator_captions": 20000, "generator_steps": 1500},
    "full": {"engineer_path": "llava-v1.6-mistral-7b-hf", "generator_path": "sdxl-turbo",
             "transfer_path": "stable-diffusion-2-1", "image_size": 512, "n_streams": 10, "n_iterations": 4,
             "top_c": 5},
}
