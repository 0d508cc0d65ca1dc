"""The tensor algebra of FUSE (Williams et al., 2024): words as tubes, the t-product, the adapter
fitted in the Fourier domain, and its adjoint.

A word of ``k`` sub-tokens is a *tube* ``X(w)`` of shape ``(1, d, k)``: slice ``j`` (the last axis)
is the embedding of its ``j``-th token, zero beyond the word's length. ``N`` words stack to
``(N, d, k)``. The t-product (Kilmer & Martin, 2011) of ``A (N, p, k)`` and ``B (p, q, k)`` is

    (A * B)[:, :, n] = sum_j A[:, :, j] @ B[:, :, (n - j) mod k],

a circular convolution over token positions, i.e. the block-circulant matrix of ``A`` times ``B``
unfolded. The DFT along the last axis diagonalizes every circulant, so in the Fourier domain the
t-product is ``k`` independent matrix products, and least squares over ``G`` is ``k`` independent
least squares; for real tensors the frequencies ``f`` and ``k - f`` are conjugate, so
``floor(k/2) + 1`` solves suffice (``rfft``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _check_tubes(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ValueError(f"{name} must be a 3-way tensor (rows, columns, tube length k), got "
                         f"{type(x).__name__ if not isinstance(x, torch.Tensor) else tuple(x.shape)}")


def t_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b`` for ``a (N, p, k)``, ``b (p, q, k)`` -> ``(N, q, k)``, through the FFT along the
    tube axis (differentiable; exact up to rounding)."""
    _check_tubes(a, "a")
    _check_tubes(b, "b")
    if a.shape[1] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"t-product needs a (N, p, k) and b (p, q, k), got {tuple(a.shape)} and {tuple(b.shape)}")
    k = a.shape[2]
    fa, fb = torch.fft.rfft(a, dim=2), torch.fft.rfft(b, dim=2)
    prod = torch.einsum("npf,pqf->nqf", fa, fb)
    return torch.fft.irfft(prod, n=k, dim=2)


def block_circulant(a: torch.Tensor) -> torch.Tensor:
    """``bcirc(a)``: the ``(N k, p k)`` matrix whose block ``(n, j)`` is ``a[:, :, (n - j) mod k]``;
    ``a * b = fold(bcirc(a) @ unfold(b))`` with ``unfold`` stacking ``b``'s slices vertically.
    The definition written out, for tests."""
    _check_tubes(a, "a")
    k = a.shape[2]
    return torch.cat([torch.cat([a[:, :, (n - j) % k] for j in range(k)], dim=1) for n in range(k)], dim=0)


def unfold(b: torch.Tensor) -> torch.Tensor:
    """``(p, q, k)`` -> ``(p k, q)``: the slices stacked vertically."""
    return torch.cat([b[:, :, j] for j in range(b.shape[2])], dim=0)


def fold(m: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`unfold`."""
    return torch.stack(m.chunk(k, dim=0), dim=2)


def t_transpose(g: torch.Tensor) -> torch.Tensor:
    """The t-transpose ``(p, q, k)`` -> ``(q, p, k)``: every slice transposed, slices ``2..k``
    in reverse order. It is the adjoint of the t-product: ``<A * G, B> = <A, B * G^T>``, so
    ``dL/dA = dL/d(A * G) * G^T``."""
    _check_tubes(g, "g")
    gt = g.transpose(0, 1)
    return torch.cat([gt[:, :, :1], gt[:, :, 1:].flip(2)], dim=2)


def reference_transpose(g: torch.Tensor) -> torch.Tensor:
    """What the reference code's backward uses: ``g.permute(1, 0, 2)``, slices transposed but not
    reversed. Equal to :func:`t_transpose` for ``k <= 2`` only."""
    return g.permute(1, 0, 2)


@dataclass
class NormalEquations:
    """The normal equations of every rfft frequency, in real form: ``X^H X = A + iB`` and
    ``X^H Y = C + iD`` become ``[[A, -B], [B, A]] [Re G; Im G] = [C; D]`` (real arithmetic only:
    the same solution, and real LAPACK is what every BLAS does fast)."""

    gram: torch.Tensor  # (F, 2 d_A, 2 d_A)
    rhs: torch.Tensor  # (F, 2 d_A, d_B)
    n: int  # words
    k: int  # tube length


def normal_equations(x_a: torch.Tensor, x_b: torch.Tensor) -> NormalEquations:
    """Per Fourier slice of ``x_a (N, d_A, k)`` and ``x_b (N, d_B, k)``, float64."""
    _check_tubes(x_a, "x_a")
    _check_tubes(x_b, "x_b")
    if x_a.shape[0] != x_b.shape[0] or x_a.shape[2] != x_b.shape[2]:
        raise ValueError(f"x_a and x_b must hold the same words with the same tube length, got {tuple(x_a.shape)} "
                         f"and {tuple(x_b.shape)}")
    k = x_a.shape[2]
    fa = torch.fft.rfft(x_a.double(), dim=2)  # (N, d_A, F)
    fb = torch.fft.rfft(x_b.double(), dim=2)
    grams, rhss = [], []
    for f in range(fa.shape[2]):
        ar, br = fa[:, :, f].real, fb[:, :, f].real
        if f == 0 or 2 * f == k:  # a real frequency: B = D = 0
            a, c = ar.T @ ar, ar.T @ br
            b, d = torch.zeros_like(a), torch.zeros_like(c)
        else:
            ai, bi = fa[:, :, f].imag, fb[:, :, f].imag
            stacked = torch.cat([ar, ai])  # [ar; ai]^T [ar; ai] = ar^T ar + ai^T ai
            cross = ar.T @ ai
            a, b = stacked.T @ stacked, cross - cross.T
            c, d = stacked.T @ torch.cat([br, bi]), ar.T @ bi - ai.T @ br
        grams.append(torch.cat([torch.cat([a, -b], dim=1), torch.cat([b, a], dim=1)], dim=0))
        rhss.append(torch.cat([c, d], dim=0))
    gram, rhs = torch.stack(grams), torch.stack(rhss)
    return NormalEquations(gram, rhs, x_a.shape[0], k)


def solve_ridge(eq: NormalEquations, lam: float) -> torch.Tensor:
    """``G (d_A, d_B, k)`` from the normal equations with ridge ``lam N``."""
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0 (a ridge penalty), got {lam}")
    d_a = eq.gram.shape[1] // 2
    if lam == 0 and eq.n < d_a:
        raise ValueError(f"{eq.n} words for tube length k={eq.k} is fewer than d_A={d_a}: the unregularized least "
                         "squares is underdetermined and interpolates the training words; use lam > 0 or more words")
    eye = torch.eye(2 * d_a, dtype=eq.gram.dtype, device=eq.gram.device)
    # Cholesky: the system is symmetric positive definite (batched LU in this torch's MKL is not reliable)
    factor, info = torch.linalg.cholesky_ex(eq.gram + lam * eq.n * eye)
    if info.any():
        raise ValueError(f"k={eq.k}: the normal equations are singular at lam={lam} (the words' tubes are linearly "
                         "dependent); use lam > 0")
    g = torch.cholesky_solve(eq.rhs, factor)  # (F, 2 d_A, d_B)
    g = torch.complex(g[:, :d_a], g[:, d_a:])
    return torch.fft.irfft(g.permute(1, 2, 0), n=eq.k, dim=2)


def fit_adapter(x_a: torch.Tensor, x_b: torch.Tensor, lam: float = 0.0) -> torch.Tensor:
    """``G (d_A, d_B, k)`` minimizing ``||x_a * G - x_b||_F^2 + lam N ||G||_F^2`` for
    ``x_a (N, d_A, k)``, ``x_b (N, d_B, k)``, in float64: per Fourier slice ``f`` (``rfft``),
    ``G^(f) = (X^H X + lam N I)^-1 X^H Y``. By Parseval both terms split over frequencies with
    the same factor ``1/k``, so the slices are independent ridge problems."""
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0 (a ridge penalty), got {lam}")
    return solve_ridge(normal_equations(x_a, x_b), lam)


def reference_fit(x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """A port of the reference code's fit: the t-pseudo-inverse of ``x_a`` by a pseudo-inverse of
    every one of the ``k`` full-FFT slices (``torch.linalg.pinv``, an SVD each, no use of conjugate
    symmetry), back to the token domain, then ``pinv(x_a) * x_b`` by the reference's outer-product
    t-product (a ``(d_A, d_B, k, k)`` intermediate). Same ``G`` as :func:`fit_adapter` at ``lam = 0``
    where ``x_a``'s slices have full column rank; kept for the speed comparison and the reference
    backward's grid."""
    _check_tubes(x_a, "x_a")
    k = x_a.shape[2]
    fa = torch.fft.fft(x_a, dim=2)
    inv = torch.stack([torch.linalg.pinv(fa[:, :, f]) for f in range(k)], dim=2)  # (d_A, N, k)
    inv = torch.fft.ifft(inv, dim=2).real
    # The reference's t_prod_fast: every pair of slices, then sum the wrapped diagonals.
    outer = torch.einsum("imk,mjl->ijkl", inv, x_b.to(inv.dtype))
    out = torch.zeros(inv.shape[0], x_b.shape[1], k, dtype=inv.dtype, device=inv.device)
    for j in range(k):
        for m in range(k):
            out[:, :, (j + m) % k] += outer[:, :, j, m]
    return out


__all__ = [
    "NormalEquations",
    "block_circulant",
    "fit_adapter",
    "fold",
    "normal_equations",
    "reference_fit",
    "reference_transpose",
    "solve_ridge",
    "t_product",
    "t_transpose",
    "unfold",
]
