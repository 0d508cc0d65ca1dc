"""Random linear non-Gaussian acyclic models (LiNGAMs) with known structure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import NOISES


@dataclass
class LinearSEM:
    """``x = B x + e``: ``B[i, j]`` is the effect of x_j on x_i; ``order`` a causal order."""

    B: np.ndarray
    order: np.ndarray
    noise: str
    noise_scale: np.ndarray
    #: variables whose noise is Gaussian instead of ``noise`` (None: none)
    gaussian: np.ndarray | None = None

    @property
    def d(self) -> int:
        return self.B.shape[0]

    def total_effects(self) -> np.ndarray:
        """``T = (I - B)^-1``: ``T[j, k]`` is the total effect of x_k on x_j."""
        return np.linalg.inv(np.eye(self.d) - self.B)

    def sample_noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        E = sample_noise(self.noise, (n, self.d), rng)
        if self.gaussian is not None and np.any(self.gaussian):
            E[:, self.gaussian] = rng.standard_normal((n, int(np.sum(self.gaussian))))
        return E * self.noise_scale

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` observational samples, shape (n, d)."""
        E = self.sample_noise(n, rng)
        return np.linalg.solve(np.eye(self.d) - self.B, E.T).T


def sample_noise(kind: str, shape, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance non-Gaussian noise."""
    if kind == "uniform":  # sub-Gaussian
        return rng.uniform(-np.sqrt(3), np.sqrt(3), shape)
    if kind == "laplace":  # super-Gaussian
        return rng.laplace(0.0, 1 / np.sqrt(2), shape)
    if kind == "student_t":  # heavy tails, df = 5 (variance 5/3)
        return rng.standard_t(5, shape) / np.sqrt(5 / 3)
    if kind == "exponential":  # skewed, like expression counts
        return rng.exponential(1.0, shape) - 1.0
    raise ValueError(f"unknown noise {kind!r}; valid noises: {', '.join(NOISES)}")


def random_sem(
    d: int,
    rng: np.random.Generator,
    *,
    expected_degree: float = 2.0,
    noise: str = "laplace",
    weight_range: tuple[float, float] = (0.5, 1.5),
    max_parent_weight: float | None = None,
) -> LinearSEM:
    """A random DAG over ``d`` variables (each pair an edge with probability
    ``expected_degree / (d - 1)``, in a random order), weights uniform in
    ``+-weight_range``, noise scales uniform in [0.5, 1.5].

    ``max_parent_weight`` rescales each row so that the sum of absolute
    incoming weights is at most this value, keeping variances bounded in
    large graphs.
    """
    if d < 2:
        raise ValueError(f"d must be >= 2, got {d}")
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; valid noises: {', '.join(NOISES)}")
    p = min(1.0, expected_degree / (d - 1))
    lo, hi = weight_range
    W = rng.uniform(lo, hi, (d, d)) * rng.choice([-1.0, 1.0], (d, d))
    W *= np.tril(rng.random((d, d)) < p, k=-1)
    if max_parent_weight is not None:
        mass = np.abs(W).sum(axis=1)
        W *= np.minimum(1.0, max_parent_weight / np.maximum(mass, 1e-12))[:, None]
    order = rng.permutation(d)  # order[t] is the variable at position t
    B = np.zeros((d, d))
    B[np.ix_(order, order)] = W
    scale = rng.uniform(0.5, 1.5, d)
    return LinearSEM(B=B, order=order, noise=noise, noise_scale=scale)


KNOCKOUT_SETTINGS = ("lingam", "gaussian", "confounded")


def knockout_network(
    d: int,
    rng: np.random.Generator,
    setting: str = "lingam",
    *,
    base_rng: np.random.Generator | None = None,
    expected_degree: float = 1.5,
    max_parent_weight: float = 1.5,
    gaussian_fraction: float = 0.5,
    latents: int = 3,
    latent_children: int = 4,
) -> tuple[LinearSEM, np.ndarray]:
    """A gene network of ``d`` observed genes with skewed (exponential) noise,
    and the indices of the observed variables in it.

    ``setting``:

    * ``"lingam"``: the network as drawn: exactly a LiNGAM;
    * ``"gaussian"``: a random ``gaussian_fraction`` of the genes get Gaussian
      noise of the same scale (LiNGAM cannot orient an edge between two of them);
    * ``"confounded"``: ``latents`` hidden variables (exponential noise, scale 1)
      are added as roots, each a cause of ``latent_children`` random genes with
      weights ``+-[0.5, 1.5]``; they are left out of the observed data.

    The network itself is drawn from ``base_rng`` (default ``rng``), so passing
    the same ``base_rng`` state gives the same genes and edges in every
    setting; the changes of a setting come from ``rng``.
    """
    if setting not in KNOCKOUT_SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; valid settings: {', '.join(KNOCKOUT_SETTINGS)}")
    sem = random_sem(
        d, rng if base_rng is None else base_rng, noise="exponential",
        expected_degree=expected_degree, max_parent_weight=max_parent_weight,
    )
    observed = np.arange(d)
    if setting == "gaussian":
        mask = np.zeros(d, dtype=bool)
        mask[rng.choice(d, round(gaussian_fraction * d), replace=False)] = True
        sem.gaussian = mask
    elif setting == "confounded":
        L = latents
        B = np.zeros((d + L, d + L))
        B[:d, :d] = sem.B
        for ell in range(L):
            kids = rng.choice(d, min(latent_children, d), replace=False)
            B[kids, d + ell] = rng.uniform(0.5, 1.5, len(kids)) * rng.choice([-1.0, 1.0], len(kids))
        order = np.concatenate([np.arange(d, d + L), sem.order])
        scale = np.concatenate([sem.noise_scale, np.ones(L)])
        sem = LinearSEM(B=B, order=order, noise="exponential", noise_scale=scale)
    return sem, observed
