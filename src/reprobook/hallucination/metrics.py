"""Labels for the toy mixtures' samples (in support, between modes, beyond the modes) and the
trajectory-variance metric Hal."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from ..diffusion import GaussianMixture


def distance_in_sigmas(x: torch.Tensor, mixture: GaussianMixture) -> np.ndarray:
    """Distance from each row of ``x`` to its nearest mode, in units of that mode's sigma."""
    return mixture.distance_in_stds(x).numpy()


def out_of_support(x: torch.Tensor, mixture: GaussianMixture, support_sigmas: float) -> np.ndarray:
    """True for samples farther than ``support_sigmas`` sigma from every mode.

    For one Gaussian the in-support band holds all but 6e-5 (1D, 4 sigma) or 3e-4 (2D)
    of the true mass, so almost every flagged sample is a real hallucination.
    """
    return distance_in_sigmas(x, mixture) > support_sigmas


#: The four bands a toy sample falls in, by its distance ``d`` to the nearest mode (in sigmas) and
#: where it lies relative to the modes' convex hull: in support (d <= inner); ambiguous
#: (inner < d <= outer, dropped from the classification: a widened mode or the foot of an
#: interpolation); between modes (d > outer, inside the hull widened by ``inner`` sigmas: the
#: paper's mode interpolation); beyond the modes (d > outer, outside it: extrapolation).
IN_SUPPORT, AMBIGUOUS, BETWEEN, BEYOND = range(4)
BANDS = ("in support", "ambiguous", "between modes", "beyond the modes")


def outside_hull_in_sigmas(x: torch.Tensor, mixture: GaussianMixture) -> np.ndarray:
    """How far each row of ``x`` lies outside the convex hull of the modes, in sigmas (<= 0
    inside). In 1D the hull is [min, max]; in more dimensions the largest signed distance to the
    hull's facets, which is the distance to the hull wherever the nearest hull point lies on a
    facet (at a corner it is smaller)."""
    from scipy.spatial import ConvexHull

    x = torch.as_tensor(x, dtype=torch.float64).numpy()
    means = mixture.means.numpy()
    if x.ndim != 2 or x.shape[1] != means.shape[1]:
        raise ValueError(f"x must have shape (n, {means.shape[1]}), got {tuple(x.shape)}")
    if mixture.stds.unique().numel() != 1:
        raise ValueError("the hull distance is defined for mixtures with one common sigma")
    sigma = float(mixture.stds[0])
    if means.shape[1] == 1:
        outside = np.maximum(means.min() - x[:, 0], x[:, 0] - means.max())
    else:
        eq = ConvexHull(means).equations  # rows (unit normal, offset): normal . x + offset <= 0 inside
        outside = (x @ eq[:, :-1].T + eq[:, -1]).max(1)
    return outside / sigma


def label_samples(x: torch.Tensor, mixture: GaussianMixture, inner: float, outer: float) -> np.ndarray:
    """One band per row of ``x`` (``IN_SUPPORT``, ``AMBIGUOUS``, ``BETWEEN`` or ``BEYOND``; see
    ``BANDS``), from its distance to the nearest mode and to the modes' hull, in sigmas."""
    if not 0 < inner <= outer:
        raise ValueError(f"need 0 < inner <= outer, got inner={inner}, outer={outer}")
    d = distance_in_sigmas(x, mixture)
    labels = np.full(len(d), AMBIGUOUS)
    labels[d <= inner] = IN_SUPPORT
    far = d > outer
    inside = outside_hull_in_sigmas(x, mixture) <= inner
    labels[far & inside] = BETWEEN
    labels[far & ~inside] = BEYOND
    return labels


def binomial_interval(count: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``count / n`` (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if n < 1 or not 0 <= count <= n:
        raise ValueError(f"need 0 <= count <= n and n >= 1, got {count} of {n}")
    lo, hi = proportion_confint(count, n, alpha=1 - level, method="wilson")
    return float(lo), float(hi)


def trajectory_variance(x0_trajectory: torch.Tensor, window: int) -> np.ndarray:
    """Hal(x): the variance of the predicted x0 over the last ``window`` reverse steps,
    averaged over dimensions (population variance, as the reference's ``np.var``).

    ``x0_trajectory``: shape ``(steps, n, *dims)`` in sampling order (the last row is t = 0).
    """
    if x0_trajectory.ndim < 2 or len(x0_trajectory) < window:
        raise ValueError(f"need a trajectory of at least {window} steps, got shape {tuple(x0_trajectory.shape)}")
    last = x0_trajectory[-window:].to(torch.float64)
    return last.var(0, correction=0).flatten(1).mean(1).numpy()


def auroc(hal: np.ndarray, hallucinated: np.ndarray) -> float:
    """Area under the ROC curve of Hal as a detector of hallucinations (NaN if one class is empty)."""
    hallucinated = np.asarray(hallucinated, bool)
    if hallucinated.all() or not hallucinated.any():
        return float("nan")
    return float(roc_auc_score(hallucinated, hal))


def auroc_standard_error(area: float, n_positive: int, n_negative: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUROC estimated from ``n_positive``
    and ``n_negative`` samples (exact when the scores of both classes are exponential)."""
    if n_positive < 1 or n_negative < 1 or not 0 <= area <= 1:
        raise ValueError(f"need both classes and an area in [0, 1], got {area}, {n_positive}, {n_negative}")
    q1, q2 = area / (2 - area), 2 * area**2 / (1 + area)
    var = (area * (1 - area) + (n_positive - 1) * (q1 - area**2) + (n_negative - 1) * (q2 - area**2))
    return float(np.sqrt(max(var, 0.0) / (n_positive * n_negative)))


def roc(hal: np.ndarray, hallucinated: np.ndarray):
    """False- and true-positive rates of the thresholds on Hal (sklearn's ``roc_curve``)."""
    fpr, tpr, _ = roc_curve(np.asarray(hallucinated, bool), hal)
    return fpr, tpr


def operating_point(hal: np.ndarray, hallucinated: np.ndarray, keep_in_support: float) -> dict:
    """Remove samples with Hal above the threshold that keeps ``keep_in_support`` of the
    in-support samples; report what fraction of each class that removes / keeps."""
    hal = np.asarray(hal, dtype=float)
    hallucinated = np.asarray(hallucinated, bool)
    if len(hal) != len(hallucinated):
        raise ValueError(f"hal and hallucinated differ in length: {len(hal)} vs {len(hallucinated)}")
    if hallucinated.all():
        raise ValueError("no in-support samples: the threshold is undefined")
    threshold = float(np.quantile(hal[~hallucinated], keep_in_support, method="higher"))
    keep = hal <= threshold
    return {
        "threshold": threshold,
        "kept_in_support": float(keep[~hallucinated].mean()),
        "removed_hallucinations": float((~keep[hallucinated]).mean()) if hallucinated.any() else float("nan"),
        "n_in_support": int((~hallucinated).sum()),
        "n_hallucinated": int(hallucinated.sum()),
    }


def toward_a_neighbour(x: torch.Tensor, mixture: GaussianMixture, half_angle_deg: float = 22.5) -> np.ndarray:
    """For each point, whether its offset from the nearest mode points toward one of that
    mode's nearest neighbours (within ``half_angle_deg``).

    A point interpolating between two adjacent modes lies on the segment joining them, so its
    offset points at the neighbour; a point in an isotropic blur around a mode points anywhere.
    Nearest neighbours are the modes at the smallest inter-mode distance (up to 1e-6 relative).
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    means = mixture.means
    if len(means) < 2 or means.shape[1] < 2:
        raise ValueError("directions need a mixture of at least two modes in at least two dimensions")
    if x.ndim != 2 or x.shape[1] != means.shape[1]:
        raise ValueError(f"x must have shape (n, {means.shape[1]}), got {tuple(x.shape)}")
    md = torch.cdist(means, means)
    spacing = md[md > 0].min()
    neighbours = (md > 0) & (md <= spacing * (1 + 1e-6))  # (k, k)
    nearest = torch.cdist(x, means).argmin(1)
    offset = torch.nn.functional.normalize(x - means[nearest], dim=1)
    to_others = torch.nn.functional.normalize(means[None, :, :] - means[nearest][:, None, :], dim=2)  # (n, k, d)
    cosines = torch.einsum("nd,nkd->nk", offset, to_others)
    cosines = torch.where(neighbours[nearest], cosines, torch.tensor(-2.0, dtype=torch.float64))
    return (cosines.max(1).values >= np.cos(np.radians(half_angle_deg))).numpy()


def chance_toward_a_neighbour(x: torch.Tensor, mixture: GaussianMixture, half_angle_deg: float = 22.5,
                              draws: int = 64, seed: int = 0) -> float:
    """The fraction ``toward_a_neighbour`` would give if each point's offset from its nearest
    mode kept its length but pointed in a uniformly random direction: the chance level."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if len(x) == 0:
        return float("nan")
    means = mixture.means
    nearest = torch.cdist(x, means).argmin(1)
    radius = (x - means[nearest]).norm(dim=1, keepdim=True)
    gen = torch.Generator().manual_seed(seed)
    hits = []
    for _ in range(draws):
        direction = torch.nn.functional.normalize(torch.randn(x.shape, generator=gen, dtype=torch.float64), dim=1)
        moved = means[nearest] + radius * direction
        hits.append(toward_a_neighbour(moved, mixture, half_angle_deg))
    return float(np.mean(hits))


def detection_by_window(x0_trajectory: torch.Tensor, labels: np.ndarray, windows, keep_in_support: float) -> list[dict]:
    """Hal as a detector of ``BETWEEN`` against ``IN_SUPPORT`` samples (the other bands left
    out) for each window length: AUROC and the removed fraction at the operating point."""
    labels = np.asarray(labels)
    scored = (labels == IN_SUPPORT) | (labels == BETWEEN)
    hallucinated = labels[scored] == BETWEEN
    rows = []
    for k in windows:
        hal = trajectory_variance(x0_trajectory, k)[scored]
        op = operating_point(hal, hallucinated, keep_in_support)
        area = auroc(hal, hallucinated)
        se = auroc_standard_error(area, op["n_hallucinated"], op["n_in_support"]) if op["n_hallucinated"] else np.nan
        rows.append({"window": int(k), "AUROC": area, "AUROC_se": se,
                     "removed": op["removed_hallucinations"], "kept": op["kept_in_support"],
                     "n_hallucinated": op["n_hallucinated"], "n_in_support": op["n_in_support"]})
    return rows


def choose_window(rows: list[dict]) -> int:
    """The window that removes the most hallucinations at the operating point (ties: higher
    AUROC, then the shorter window)."""
    if not rows:
        raise ValueError("no windows to choose from")
    best = max(rows, key=lambda r: (np.nan_to_num(r["removed"], nan=-1), np.nan_to_num(r["AUROC"], nan=-1),
                                    -r["window"]))
    return best["window"]
