"""Shared diffusion code: DDPM schedules, the epsilon-prediction training step, an
ancestral sampler that records x0-predictions, exact Gaussian-mixture denoisers and
small denoising networks; EDM's variance-exploding denoiser, loss and Euler/Heun ODE
samplers, conditional training and classifier-free guidance, and consistency models
(Easy Consistency Tuning). Used by the hallucination and ECT chapters and by :mod:`reprobook.t2i`."""

from .consistency import consistency_loss, consistency_sample, ect_r, ect_stage, train_consistency
from .edm import (EDMDenoiser, edm_loss, euler_sample, exact_edm_denoiser, guided, heun_sample, karras_sigmas,
                  log_normal_sigmas, pf_ode_map, train_edm)
from .mixture import GaussianMixture
from .models import ToyDenoiser, UNetDenoiser, sinusoidal_embedding
from .sampling import Samples, ancestral_sample, ancestral_step, predicted_x0
from .schedules import DDPMSchedule
from .training import (check_training_inputs, ddpm_loss, ema_decay_for_halflife, ema_model, train_ddpm,
                       train_minibatches)

__all__ = [
    "DDPMSchedule", "GaussianMixture", "Samples", "ToyDenoiser", "UNetDenoiser", "ancestral_sample",
    "ancestral_step", "ddpm_loss", "predicted_x0", "sinusoidal_embedding", "train_ddpm",
    "EDMDenoiser", "check_training_inputs", "consistency_loss", "consistency_sample", "ect_r", "ect_stage",
    "edm_loss", "euler_sample", "exact_edm_denoiser", "guided", "heun_sample", "karras_sigmas", "log_normal_sigmas",
    "pf_ode_map", "train_consistency", "train_edm", "train_minibatches", "ema_model", "ema_decay_for_halflife",
]
