"""Chapter 02: scaling laws for data filtering (the quality-quantity trade-off)."""

from .fit import FitPoints, fit_pools
from .laws import PoolLaw, best_top_k, frontier, predicted_accuracy, predicted_error

__all__ = ["FitPoints", "PoolLaw", "best_top_k", "fit_pools", "frontier", "predicted_accuracy", "predicted_error"]
