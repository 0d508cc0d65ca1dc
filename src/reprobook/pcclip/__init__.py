"""PC-CLIP: CLIP whose text tower is finetuned so that the embedding of a text
saying how one image differs from another points along the difference of the
two images' embeddings (Sam, Willmott, Semedo, Kolter, "Finetuning CLIP to
reason about pairwise differences", TMLR 2025). Comparative prompting and
embedding arithmetic follow from ``f(D_ij) ~ g(i) - g(j)``."""

from .core import (comparative_prompting, difference_correct, direction_distance, edit_embedding, image_differences,
                   nearest, pcclip_loss, pcclip_mse_loss, weight_average)
from .finetune import TRAINED_ARMS, FinetuneData, finetune_text_tower

__all__ = ["FinetuneData", "TRAINED_ARMS", "comparative_prompting", "difference_correct", "direction_distance",
           "edit_embedding", "finetune_text_tower", "image_differences", "nearest", "pcclip_loss", "pcclip_mse_loss",
           "weight_average"]
