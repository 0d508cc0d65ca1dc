"""Chapter 01: DirectLiNGAM and VARLiNGAM at scale (NumPy and numba on CPU, CuPy on GPU).

The estimator classes subclass the `lingam` package's, so they are imported
on first use: the order search (``causal_order``, ``pairwise_scores``) runs
without that package, as the GPU check does on a machine that lacks it.
"""

from .ordering import entropy, pairwise_scores
from .search import causal_order, partial_orders_from_prior_knowledge

__all__ = [
    "DirectLiNGAM",
    "VARLiNGAM",
    "causal_order",
    "entropy",
    "pairwise_scores",
    "partial_orders_from_prior_knowledge",
]


def __getattr__(name):
    if name in ("DirectLiNGAM", "VARLiNGAM"):
        from . import direct

        return getattr(direct, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
