"""Shared diffusion code: DDPM schedules, the epsilon-prediction training step, an
ancestral sampler that records x0-predictions, exact Gaussian-mixture denoisers and
small denoising networks. Used by the hallucination and ECT chapters."""

from .mixture import GaussianMixture
from .models import ToyDenoiser, UNetDenoiser, sinusoidal_embedding
from .sampling import Samples, ancestral_sample, ancestral_step, predicted_x0
from .schedules import DDPMSchedule
from .training import ddpm_loss, train_ddpm

__all__ = [
    "DDPMSchedule", "GaussianMixture", "Samples", "ToyDenoiser", "UNetDenoiser", "ancestral_sample",
    "ancestral_step", "ddpm_loss", "predicted_x0", "sinusoidal_embedding", "train_ddpm",
]
