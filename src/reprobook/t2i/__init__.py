"""Text-to-image generators on the shapes world, one interface: ``generate(prompts, seeds)`` gives one
float image ``(3, S, S)`` in [0, 1] per (prompt, seed), the same in any batch.

* :class:`TextToImage` (chapter 08): a frozen CLIP text tower whose token states (penultimate
  block, as SD 2.x reads OpenCLIP) condition an EDM U-Net, trained with caption dropout and
  sampled with classifier-free guidance against the empty caption: Stable Diffusion 2.x's stand-in.
* :class:`OneStepGenerator` (chapter 10): frozen MiniLM -> attribute distribution -> one draw ->
  render: SDXL-Turbo's stand-in, white-box through its cross-entropy.
* :class:`RendererGenerator` (chapter 10): the world's parser and renderer, the "closed" model.
"""

from .generator import TextToImage, build_text_to_image, train_text_to_image
from .onestep import (AttributeHeads, OneStepGenerator, RendererGenerator, parse_known_words, train_one_step_generator,
                      training_captions)
from .unet import CONDITIONINGS, TextConditionedUNet

__all__ = ["AttributeHeads", "CONDITIONINGS", "OneStepGenerator", "RendererGenerator", "TextConditionedUNet",
           "TextToImage", "build_text_to_image", "parse_known_words", "train_one_step_generator", "train_text_to_image",
           "training_captions"]
