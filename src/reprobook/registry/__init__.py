"""The book's chapters: number, slug, title, the shared subpackages each uses, and its GPU
check's budget.

This list lives in its own subpackage, outside every chapter's inputs hash (no chapter names
``registry`` in its ``uses``): adding a chapter must not mark the eight others stale. What an
entry decides that a chapter's output depends on, the subpackages it uses, enters that
chapter's hash through the folders it names (see :meth:`reprobook.chapters.Chapter.inputs_hash`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    number: int
    slug: str
    title: str
    uses: tuple[str, ...] = ()  # shared subpackages of reprobook the chapter depends on (e.g. "diffusion")
    gpu_budget_s: float | None = None  # wall clock of benchmarks/<slug>_gpu.py on one H200 (None: no check)
    gpu_backend: str = "torch"  # the GPU library the chapter's GPU path runs on ("torch" or "cupy")


ENTRIES: tuple[Entry, ...] = (
    Entry(1, "lingam", "DirectLiNGAM at scale", gpu_budget_s=40, gpu_backend="cupy"),
    Entry(2, "qqt", "Data curation cannot be compute agnostic", gpu_budget_s=35),
    Entry(3, "hallucination", "Hallucinations in diffusion models through mode interpolation",
          uses=("diffusion", "world"), gpu_budget_s=50),
    Entry(4, "ect", "Consistency models made easy", uses=("diffusion",), gpu_budget_s=50),
    Entry(5, "acr", "Memorization as adversarial compression",
          uses=("discrete", "models"), gpu_budget_s=55),
    Entry(6, "mohawk", "Transformers to SSMs: MOHAWK distillation", uses=("models",), gpu_budget_s=45),
    Entry(7, "pcclip", "CLIP finetuned on pairwise differences (PC-CLIP)", uses=("models", "world"),
          gpu_budget_s=55),
    Entry(8, "prompt_inversion", "Prompt inversion: discrete optimizers vs a captioner",
          uses=("discrete", "diffusion", "models", "t2i", "world"), gpu_budget_s=65),
    Entry(9, "fuse", "FUSE: gradients across tokenizers", uses=("discrete", "models", "world"), gpu_budget_s=45),
    Entry(10, "prism", "PRISM: black-box prompt engineering by in-context refinement",
          uses=("discrete", "models", "t2i", "world"), gpu_budget_s=40),
)
