"""The adapter: one ``G_k (d_A, d_B, k)`` per tube length ``k = 1..K``, fitted on words, and the
backward pass it gives, ``dL/dX_A = dL/dX_B * G_k^T`` (t-transpose) per word.

Besides FUSE's own (:func:`fit_grid`): a random ``G`` of the same norm, a single matrix applied
token by token (the ``K = 1`` matrix, no tensor structure), and the reference code's backward
with its defects (:class:`ReferenceAdapter`), for the chapter's comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .tensor import fit_adapter, normal_equations, reference_transpose, solve_ridge, t_product, t_transpose
from .words import Alignment, WordTokens

LAMBDAS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class Adapter:
    """``grid[k]``: ``G_k``, float64. Words longer than ``K`` get a zero gradient (counted)."""

    grid: dict[int, torch.Tensor]
    name: str = "FUSE"
    lam: dict[int, float] = field(default_factory=dict)

    @property
    def K(self) -> int:
        return max(self.grid)

    def backward(self, grad_b: torch.Tensor, alignment: Alignment) -> tuple[torch.Tensor, int]:
        """``dL/dX_A (n_A, d_A)`` from ``dL/dX_B (n_B, d_B)`` of one prompt, and how many words got
        no gradient (longer than ``K``, or with no B token). Words of equal ``k`` go in one t-product."""
        d_a = self.grid[1].shape[0]
        grad_b = grad_b.double()
        out = torch.zeros(alignment.n_a, d_a, dtype=torch.float64)
        by_k: dict[int, list[tuple[list[int], list[int]]]] = {}
        skipped = 0
        for a, b in alignment.words:
            k = max(len(a), len(b))
            if not b or k > self.K:
                skipped += 1
                continue
            by_k.setdefault(k, []).append((a, b))
        for k, words in by_k.items():
            tubes = torch.zeros(len(words), grad_b.shape[1], k, dtype=torch.float64)
            for i, (_, b) in enumerate(words):
                tubes[i, :, : len(b)] = grad_b[b].T
            back = t_product(tubes, t_transpose(self.grid[k]))  # (words, d_A, k)
            for i, (a, _) in enumerate(words):
                out[a] = back[i, :, : len(a)].T  # keep the word's n_A rows
        return out, skipped


def heldout_error(g: torch.Tensor, x_a: torch.Tensor, x_b: torch.Tensor) -> float:
    """``||x_a * G - x_b||_F / ||x_b||_F``."""
    return float((t_product(x_a, g) - x_b).norm() / x_b.norm())


def recovery(g: torch.Tensor, x_a: torch.Tensor, ids_b: list[list[int]], emb_b: torch.Tensor) -> tuple[int, int]:
    """B tokens whose nearest B embedding (cosine) to the predicted slice is the true id: (hits, tokens)."""
    pred = t_product(x_a, g).float()  # (n, d_B, k)
    lengths = torch.tensor([len(ids) for ids in ids_b])
    keep = torch.arange(pred.shape[2])[None, :] < lengths[:, None]  # (n, k): the word's own B slices
    slices = pred.permute(0, 2, 1)[keep]  # (tokens, d_B)
    truth = torch.tensor([i for ids in ids_b for i in ids])
    unit = F.normalize(emb_b.float(), dim=1)
    nearest = torch.cat([(F.normalize(chunk, dim=1) @ unit.T).argmax(1) for chunk in slices.split(2048)])
    return int((nearest == truth).sum()), len(truth)


def split_words(n: int, seed: int, heldout: float = 0.1, validation: float = 0.1) -> dict[str, np.ndarray]:
    """Indices of train / validation (for the ridge) / held-out (for reporting) words."""
    perm = np.random.default_rng(seed).permutation(n)
    n_held, n_val = int(round(heldout * n)), int(round(validation * n))
    return {"heldout": perm[:n_held], "validation": perm[n_held:n_held + n_val], "train": perm[n_held + n_val:]}


def fit_grid(words: WordTokens, emb_a: torch.Tensor, emb_b: torch.Tensor, split: dict[str, np.ndarray], K: int = 4,
             lambdas=LAMBDAS, max_words: int | None = None) -> tuple[Adapter, pd.DataFrame]:
    """FUSE's adapter: per ``k``, words with ``max(n_A, n_B) = k``; ``lam`` chosen on the validation
    words, then ``G_k`` refitted on train + validation. Returns it and one row per ``k``."""
    if K < 1:
        raise ValueError(f"K (the longest word the adapter maps) must be >= 1, got {K}")
    if any(lam < 0 for lam in lambdas) or not lambdas:
        raise ValueError(f"lambdas must be ridge penalties >= 0, got {lambdas!r}")
    ks = words.k
    grid, chosen, rows = {}, {}, []
    for k in range(1, K + 1):
        part = {name: idx[ks[idx] == k] for name, idx in split.items()}
        if max_words is not None:
            part["train"] = part["train"][:max_words]
        fit_idx = np.concatenate([part["train"], part["validation"]])
        x_tr, y_tr = words.tubes(part["train"], emb_a, emb_b, k)
        x_va, y_va = words.tubes(part["validation"], emb_a, emb_b, k)
        errors = {}
        equations = normal_equations(x_tr, y_tr)  # once per k; each lam is one more solve
        for lam in lambdas:
            if lam == 0 and len(part["train"]) < emb_a.shape[1]:
                continue  # underdetermined: it would interpolate
            errors[lam] = heldout_error(solve_ridge(equations, lam), x_va, y_va) if len(x_va) else np.nan
        if not errors:
            raise ValueError(f"k={k}: {len(part['train'])} training words, fewer than d_A={emb_a.shape[1]}, and no "
                             "lam > 0 to regularize: give positive lambdas or more words")
        lam = min(errors, key=lambda v: (np.nan_to_num(errors[v], nan=np.inf), v))
        x_fit, y_fit = words.tubes(fit_idx, emb_a, emb_b, k)
        grid[k], chosen[k] = fit_adapter(x_fit, y_fit, lam), lam
        rows.append({"k": k, "fitted words": len(fit_idx), "held-out words": len(part["heldout"]), "lam": lam})
    return Adapter(grid, "FUSE", chosen), pd.DataFrame(rows)


def random_adapter(like: Adapter, seed: int) -> Adapter:
    """Gaussian ``G_k`` with the Frobenius norm of ``like``'s: the gradient's shape without its content."""
    gen = torch.Generator().manual_seed(seed)
    grid = {}
    for k, g in like.grid.items():
        r = torch.randn(g.shape, generator=gen, dtype=torch.float64)
        grid[k] = r * g.norm() / r.norm()
    return Adapter(grid, "random G")


def matrix_adapter(words: WordTokens, emb_a: torch.Tensor, emb_b: torch.Tensor, train: np.ndarray, K: int,
                   lam: float) -> Adapter:
    """One matrix ``M (d_A, d_B)`` fitted on token pairs at equal positions of all training words up
    to ``K`` (rows where A has a token), applied token by token: ``G_k = [M, 0, ..., 0]``, whose
    t-product maps slice ``j`` to slice ``j``. The ``K = 1`` matrix of the spec."""
    idx = train[words.k[train] <= K]
    x_a, x_b = words.tubes(idx, emb_a, emb_b, K)
    rows_a = x_a.permute(0, 2, 1).reshape(-1, x_a.shape[1])
    rows_b = x_b.permute(0, 2, 1).reshape(-1, x_b.shape[1])
    keep = rows_a.abs().sum(1) > 0
    m = fit_adapter(rows_a[keep, :, None], rows_b[keep, :, None], lam)[:, :, 0]
    grid = {}
    for k in range(1, K + 1):
        g = torch.zeros(*m.shape, k, dtype=torch.float64)
        g[:, :, 0] = m
        grid[k] = g
    return Adapter(grid, "K = 1 matrix", {1: lam})


class ReferenceAdapter(Adapter):
    """The reference code's backward, defects kept: the grid is keyed by ``n_B`` at fit (A padded
    or truncated to ``n_B`` tokens, the fit a pseudo-inverse) but indexed by ``n_A`` here; the
    transpose is a plain permute (not the adjoint for ``k >= 3``); the split of B's gradient by A
    lengths never advances, so every word gets B's first rows; words over ``K`` get ``randn``."""

    def __init__(self, grid: dict[int, torch.Tensor], seed: int = 0):
        super().__init__(grid, "reference backward")
        self.gen = torch.Generator().manual_seed(seed)

    def backward(self, grad_b: torch.Tensor, alignment: Alignment) -> tuple[torch.Tensor, int]:
        d_a, d_b = self.grid[1].shape[:2]
        grad_b = grad_b.double()
        out = torch.zeros(alignment.n_a, d_a, dtype=torch.float64)
        skipped = 0
        for a, _ in alignment.words:
            n_a = len(a)
            word_grad = torch.zeros(1, d_b, n_a, dtype=torch.float64)
            first = grad_b[:n_a]  # tensor_split(g_, (n_a,)) of a g_ that is never advanced
            word_grad[0, :, : len(first)] = first.T
            if n_a > self.K:
                g = torch.randn(d_a, d_b, n_a, generator=self.gen, dtype=torch.float64)
                skipped += 1
            else:
                g = self.grid[n_a]
            out[a] = t_product(word_grad, reference_transpose(g))[0].T
        return out, skipped


def reference_grid(words: WordTokens, emb_a: torch.Tensor, emb_b: torch.Tensor, train: np.ndarray,
                   K: int) -> dict[int, torch.Tensor]:
    """The reference fit's grid: per ``k``, words with ``n_B = k``, A's ids padded or *truncated* to
    ``k``, ``G_k = pinv(X_A) * X_B``. Computed by our solver: at ``lam = 0`` where the words are
    at least ``d_A`` (the same ``G`` as the pseudo-inverse, see the tests), else at a vanishing ridge
    (``1e-9``, whose limit is the pseudo-inverse's minimum-norm solution); the reference's own
    SVD per slice is what ``benchmarks/fuse_speed.py`` times."""
    grid = {}
    for k in range(1, K + 1):
        idx = train[words.n_b[train] == k]
        cut = WordTokens([words.words[i] for i in idx], [words.ids_a[i][:k] for i in idx],
                         [words.ids_b[i] for i in idx])
        x_a, x_b = cut.tubes(np.arange(len(idx)), emb_a, emb_b, k)
        grid[k] = fit_adapter(x_a, x_b, 0.0 if len(idx) >= emb_a.shape[1] else 1e-9)
    return grid


__all__ = [
    "LAMBDAS",
    "Adapter",
    "ReferenceAdapter",
    "fit_grid",
    "heldout_error",
    "matrix_adapter",
    "random_adapter",
    "recovery",
    "reference_grid",
    "split_words",
]
