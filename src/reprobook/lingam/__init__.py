"""Chapter 01: DirectLiNGAM and VARLiNGAM at scale (NumPy on CPU, CuPy on GPU)."""

from .direct import DirectLiNGAM, VARLiNGAM, causal_order, partial_orders_from_prior_knowledge
from .ordering import entropy, pairwise_scores

__all__ = [
    "DirectLiNGAM",
    "VARLiNGAM",
    "causal_order",
    "entropy",
    "pairwise_scores",
    "partial_orders_from_prior_knowledge",
]
