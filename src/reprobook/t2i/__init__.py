"""A small text-to-image generator, a stand-in for Stable Diffusion 2.x: a frozen CLIP text tower
whose token states (penultimate block, as SD 2.x reads OpenCLIP) condition an EDM U-Net, trained
with caption dropout and sampled with classifier-free guidance against the empty caption."""

from .generator import TextToImage, build_text_to_image, train_text_to_image
from .unet import CONDITIONINGS, TextConditionedUNet

__all__ = ["CONDITIONINGS", "TextConditionedUNet", "TextToImage", "build_text_to_image", "train_text_to_image"]
