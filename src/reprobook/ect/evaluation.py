"""How chapter 04 scores samples: exact metrics on the 2D toy, and on digits a
Fréchet distance in the features of a classifier trained here (standing in for FID)
plus a nearest-neighbour memorization rate.

2D toy (samples vs a known :class:`~reprobook.diffusion.GaussianMixture`):
:func:`sliced_wasserstein`, :func:`mmd_rbf` (both against fresh data),
:func:`negative_log_likelihood` and :func:`off_support_fraction` (both against
the true density).

Digits: :func:`load_digits_images`, :class:`DigitClassifier` /
:func:`train_digit_classifier`, :func:`frechet_distance` and
:func:`memorization_rate`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..common import progress

DIGITS_SIZES = (8, 16)
N_DIGIT_CLASSES = 10


# ----------------------------------------------------------------------------- digits data


def load_digits_images(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 1,797 handwritten digits (offline) as images in [-1, 1].

    Returns ``(images, labels)``: float32 ``(n, 1, size, size)`` and int64 ``(n,)``.
    The raw 8x8 pixels take the values 0..16; ``size=16`` upsamples them
    bilinearly (``align_corners=False``), which keeps the range [-1, 1] because
    every output pixel is a convex combination of input pixels.
    """
    if isinstance(size, bool) or size not in DIGITS_SIZES:
        raise ValueError(f"size must be one of {DIGITS_SIZES} (8: native, 16: bilinear 2x upsampling), got {size!r}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.as_tensor(digits.images, dtype=torch.float32)  # (n, 8, 8), values 0..16
    images = (pixels / 16.0 * 2.0 - 1.0)[:, None]
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images.contiguous(), torch.as_tensor(digits.target, dtype=torch.int64)


# ----------------------------------------------------------------------------- classifier


class DigitClassifier(nn.Module):
    """A small CNN for ``(n, 1, s, s)`` digits in [-1, 1], ``s`` in (8, 16).

    Three 3x3 convolutions (the last two with stride 2), an average down to a
    2x2 grid and one hidden layer, whose ``feature_dim`` activations are the
    features for the Fréchet distance. No max-pooling: its backward pass
    scatters gradients by index, which is what threatens bitwise reproducibility.
    """

    def __init__(self, feature_dim: int = 64, width: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),  # 8 -> 4, 16 -> 8
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),  # 4 -> 2, 8 -> 4
        )
        self.hidden = nn.Sequential(nn.Linear(2 * width * 4, feature_dim), nn.SiLU())
        self.head = nn.Linear(feature_dim, N_DIGIT_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations, ``(n, feature_dim)``; ``x`` moves to the model's device."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3] or x.shape[2] not in DIGITS_SIZES:
            raise ValueError(f"expected images of shape (n, 1, s, s) with s in {DIGITS_SIZES}, got {tuple(x.shape)}")
        param = next(self.parameters())
        h = self.conv(x.to(device=param.device, dtype=param.dtype))  # (n, c, s/4, s/4)
        # Average down to a 2x2 grid (a no-op for 8x8 inputs) with a reshape, not a pooling
        # kernel, so that both sizes share the layers and the backward pass stays deterministic.
        n, c, side, _ = h.shape
        h = h.reshape(n, c, 2, side // 2, 2, side // 2).mean(dim=(3, 5))
        return self.hidden(h.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, ``(n, 10)``."""
        return self.head(self.features(x))


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # Written with a one-hot product rather than F.cross_entropy so that the
    # backward pass has no index-based scatter (bitwise reproducibility).
    one_hot = F.one_hot(labels, N_DIGIT_CLASSES).to(logits.dtype)
    return -(one_hot * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@torch.no_grad()
def _accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        correct += int((logits.argmax(dim=1) == labels[start:start + batch_size]).sum())
    return correct / len(images)


def train_digit_classifier(images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 15, batch_size: int = 64,
                           lr: float = 1e-3, seed: int = 0, desc: str = "digit classifier",
                           test_fraction: float = 0.25) -> tuple[DigitClassifier, float]:
    """Train a :class:`DigitClassifier` with Adam on a stratified split of ``(images, labels)``.

    Returns the model (in eval mode, on ``images``' device) and its accuracy on
    the held-out ``test_fraction`` of the data. The split, initialization and
    shuffling depend only on ``seed`` (the global torch RNG is left untouched);
    on the CPU with a fixed thread count, training is bitwise reproducible.
    """
    from sklearn.model_selection import train_test_split

    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"need images (n, 1, s, s) and n labels, got {tuple(images.shape)} and {tuple(labels.shape)}")
    if epochs < 1 or batch_size < 1 or lr <= 0 or not 0 < test_fraction < 1:
        raise ValueError("need epochs >= 1, batch_size >= 1, lr > 0 and 0 < test_fraction < 1")
    device = images.device
    labels = torch.as_tensor(labels, dtype=torch.int64, device=device)
    train_idx, test_idx = train_test_split(np.arange(len(images)), test_size=test_fraction,
                                           stratify=labels.cpu().numpy(), random_state=seed)
    train_idx = torch.as_tensor(train_idx, device=device)
    test_idx = torch.as_tensor(test_idx, device=device)
    x_train, y_train = images[train_idx].float(), labels[train_idx]

    with torch.random.fork_rng(devices=[]):  # seeded initialization without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = DigitClassifier().to(device)
    shuffle = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in progress(range(epochs), desc=desc):
        order = torch.randperm(len(x_train), generator=shuffle).to(device)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            loss = _cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    return model, _accuracy(model, images[test_idx].float(), labels[test_idx])


# ----------------------------------------------------------------------------- Fréchet distance


def _float64_matrix(a, name: str) -> np.ndarray:
    """A 2D float64 NumPy array from a NumPy array or a (possibly CUDA) tensor."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {a.shape}")
    return a


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues -> 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh((cov + cov.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance_gaussians(mu1, cov1, mu2, cov2) -> float:
    """Fréchet (squared 2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):

        ||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^{1/2}).

    ``tr (C1 C2)^{1/2}`` is computed in float64 as the sum of the square roots of
    the eigenvalues of the symmetric PSD matrix ``C1^{1/2} C2 C1^{1/2}`` (similar
    to ``C1 C2``, so it has the same eigenvalues): no complex ``sqrtm`` and no
    imaginary parts to drop. Round-off below zero is clipped to 0.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    cov1 = np.atleast_2d(np.asarray(cov1, dtype=np.float64))
    cov2 = np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"need two means of shape (d,) and covariances (d, d), got {mu1.shape}, {cov1.shape}, "
                         f"{mu2.shape}, {cov2.shape}")
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    distance = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    return max(distance, 0.0)


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted (mean, unbiased covariance) to two
    feature sets ``(n_a, d)`` and ``(n_b, d)`` (tensors or arrays). FID is this
    formula in Inception features; here it is used in a digit classifier's features."""
    a = _float64_matrix(feats_a, "feats_a")
    b = _float64_matrix(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least 2 samples in each feature set to fit a covariance")
    return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


# ----------------------------------------------------------------------------- memorization


def memorization_rate(samples: torch.Tensor, train: torch.Tensor, ratio: float = 1 / 3,
                      chunk_size: int = 1024) -> tuple[float, torch.Tensor]:
    """Fraction of ``samples`` that are near-copies of a training example, and the
    nearest-neighbour distances.

    A sample counts as memorized when its nearest training example is much
    closer than the second nearest, ``d1 < ratio * d2`` (L2 in pixel space; the
    ratio test used by Yoon et al. 2023 and Gu et al. 2023, in the spirit of
    Carlini et al. 2023). Rows are flattened; exact duplicate training rows are
    merged first, otherwise a copy of a duplicated image would have d1 = d2 = 0
    and escape the test. Distances are computed in float64 with ``torch.cdist``
    on chunks of ``chunk_size`` samples (memory ``chunk_size x n_train``).

    Returns ``(rate, d1)`` with ``d1`` a float64 tensor of shape ``(n_samples,)``.
    """
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    samples = samples.detach().flatten(1).double()
    train = torch.unique(train.detach().flatten(1).to(samples.device).double(), dim=0)
    if samples.shape[1] != train.shape[1]:
        raise ValueError(f"samples and training rows differ in size: {samples.shape[1]} vs {train.shape[1]}")
    if len(train) < 2:
        raise ValueError("need at least 2 distinct training examples for the nearest / second-nearest ratio")
    if len(samples) == 0:
        raise ValueError("no samples")
    nearest, second = [], []
    for start in range(0, len(samples), chunk_size):
        distances = torch.cdist(samples[start:start + chunk_size], train)
        two = distances.topk(2, dim=1, largest=False).values  # sorted ascending
        nearest.append(two[:, 0])
        second.append(two[:, 1])
    d1, d2 = torch.cat(nearest), torch.cat(second)
    return float((d1 < ratio * d2).double().mean()), d1.cpu()


# ----------------------------------------------------------------------------- 2D toy metrics


def _float64_rows(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu().double()
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {tuple(x.shape)}")
    return x


def sliced_wasserstein(x, y, n_projections: int = 256, seed: int = 0, p: int = 1) -> float:
    """Sliced Wasserstein distance between two equal-sized samples ``(n, d)``.

    Both are projected on ``n_projections`` random unit directions (seeded); in
    1D the optimal coupling of two equal-sized samples pairs the sorted values.
    ``p=1``: the mean over directions of W1; ``p=2``: the square root of the mean
    of W2^2. In 1D (directions +-1) ``p=1`` is the exact W1 of the two empirical
    distributions.
    """
    x, y = _float64_rows(x, "x"), _float64_rows(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"sliced_wasserstein needs equal sample counts and dimensions, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)} (subsample the larger one)")
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    directions = torch.randn(n_projections, x.shape[1], generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    # (n_projections, n): one projection per row, sorted along the contiguous axis (faster)
    gaps = ((directions @ x.T).sort(dim=1).values - (directions @ y.T).sort(dim=1).values).abs()
    if p == 1:
        return float(gaps.mean())
    return float(gaps.pow(2).mean().sqrt())


def mmd_rbf(x, y, bandwidths: Sequence[float] = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)) -> float:
    """Unbiased estimate of MMD^2 between samples ``x (m, d)`` and ``y (n, d)`` with the
    kernel ``sum_h exp(-||a - b||^2 / (2 h^2))`` over ``bandwidths``.

    The defaults span the toy's mode width (0.04) to its overall scale (~1). Being
    unbiased, the estimate can be slightly negative when the distributions agree.
    """
    x, y = _float64_rows(x, "x"), _float64_rows(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError("need at least 2 samples on each side for the unbiased estimate")
    bandwidths = [float(h) for h in bandwidths]
    if not bandwidths or min(bandwidths) <= 0:
        raise ValueError(f"bandwidths must be positive, got {bandwidths}")

    def mean_kernel(a: torch.Tensor, b: torch.Tensor, same: bool) -> float:
        squared = torch.cdist(a, b).pow(2)
        kernel = sum(torch.exp(-squared / (2 * h * h)) for h in bandwidths)
        if same:  # drop the diagonal k(a_i, a_i) terms: that makes the estimate unbiased
            n = len(a)
            return float((kernel.sum() - kernel.diagonal().sum()) / (n * (n - 1)))
        return float(kernel.mean())

    return mean_kernel(x, x, True) + mean_kernel(y, y, True) - 2 * mean_kernel(x, y, False)


def _check_against_mixture(x, mixture) -> torch.Tensor:
    x = _float64_rows(x, "x")
    if x.shape[1] != mixture.dim:
        raise ValueError(f"samples have dimension {x.shape[1]}, the mixture {mixture.dim}")
    return x


def negative_log_likelihood(x, mixture) -> float:
    """Mean of ``-log p(x)`` over the rows of ``x`` under the true mixture density (nats)."""
    x = _check_against_mixture(x, mixture)
    return float(-mixture.log_prob(x).mean())


def off_support_fraction(x, mixture, n_sigmas: float = 4.0) -> float:
    """Fraction of rows of ``x`` farther than ``n_sigmas * std_k`` (Euclidean) from every
    mode ``mu_k``. For a 2D isotropic Gaussian, P(||x - mu|| > 4 sigma) = exp(-8) ~ 3e-4,
    so true samples are almost never off support at the default."""
    if n_sigmas <= 0:
        raise ValueError(f"n_sigmas must be positive, got {n_sigmas}")
    x = _check_against_mixture(x, mixture)
    return float((mixture.distance_in_stds(x) > n_sigmas).double().mean())


__all__ = [
    "DigitClassifier", "frechet_distance", "frechet_distance_gaussians", "load_digits_images", "memorization_rate",
    "mmd_rbf", "negative_log_likelihood", "off_support_fraction", "sliced_wasserstein", "train_digit_classifier",
]
