"""Rendering scenes to RGB images: exact anti-aliasing by 4x4 subpixel point sampling, vectorized
over the batch (numpy, no PIL: one pass per shape kind and size bin instead of one per image)."""

from __future__ import annotations

import numpy as np

from .draw import polygon_vertices
from .scenes import BACKGROUND_RGB, BACKGROUNDS, COLOUR_RGB, COLOURS, SHAPES, Scenes

SUBSAMPLES = 4  # per pixel and axis: coverage in steps of 1/16
_SIDES = {"circle": 0, "square": 4, "triangle": 3, "pentagon": 5}
_CHUNK = 1024  # scenes per pass: bounds the temporary arrays to ~100 MB


def _half_planes(sides: int) -> tuple[np.ndarray, np.ndarray]:
    """Outward unit normals ``(sides, 2)`` and offsets of the upright polygon with circumradius 1:
    a point p is inside iff ``normals @ p <= offsets`` everywhere."""
    v = np.array(polygon_vertices(sides, 0.0, 0.0, 1.0))
    edge = np.roll(v, -1, axis=0) - v
    normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    offset = (normal * v).sum(1)
    return normal * np.sign(offset)[:, None], np.abs(offset)


_PLANES = {kind: _half_planes(k) for kind, k in _SIDES.items() if k}


def coverage_patches(kind: str, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, subsamples: int = SUBSAMPLES):
    """Coverage of ``len(cx)`` objects of one shape ``kind`` (centres and circumradii in pixels),
    each on its own ``(P, P)`` pixel patch. Returns the ``(m, P, P)`` float32 patches and the
    patches' top-left pixel ``(x0, y0)``.

    The ``subsamples**2`` samples per pixel form an N-rooks pattern (every one at its own x and
    its own y), so the axis-aligned edges of squares and triangles are resolved to 1/16 pixel,
    not 1/4: the covered area, hence the size read back from it, is accurate to ~1%."""
    cx, cy, r = (np.asarray(a, dtype=np.float64) for a in (cx, cy, r))
    m, p = len(cx), int(np.ceil(2 * r.max(initial=0))) + 2
    x0, y0 = np.floor(cx - r).astype(int), np.floor(cy - r).astype(int)
    t = np.arange(p * subsamples)
    coarse, fine = t / subsamples, (t % subsamples + 0.5) / subsamples**2  # sample = coarse + other axis' fine
    inv = 1 / r[:, None]
    gx = (((x0 - cx)[:, None] + coarse) * inv).astype(np.float32)[:, None, :]  # (m, 1, cols)
    gy = (((y0 - cy)[:, None] + coarse) * inv).astype(np.float32)[:, :, None]  # (m, rows, 1)
    fx, fy = (fine * inv).astype(np.float32)[:, :, None], (fine * inv).astype(np.float32)[:, None, :]
    if kind == "circle":
        dx, dy = gx + fx, gy + fy
        inside = dx * dx + dy * dy <= 1
    else:
        normals, offsets = _PLANES[kind]
        inside = np.ones((m, p * subsamples, p * subsamples), bool)
        for (nx, ny), h in zip(normals.astype(np.float32), offsets.astype(np.float32)):
            inside &= (nx * gx + ny * fy) + (ny * gy + nx * fx) <= h  # n . (x, y), separably
    cov = inside.reshape(m, p, subsamples, p, subsamples).sum(axis=(2, 4), dtype=np.float32)
    return cov / subsamples**2, x0, y0


def coverage(scenes: Scenes, image_size: int = 32) -> np.ndarray:
    """``(n, H, W)`` float32: the fraction of each pixel covered by the scene's objects."""
    n, s = len(scenes), image_size
    out = np.zeros(n * s * s, dtype=np.float64)
    k = scenes.n_objects
    scene = np.repeat(np.arange(n), k)
    slot = np.concatenate([np.arange(c) for c in k]) if n else np.zeros(0, int)
    cx, cy = (scenes.centers[scene, slot, d] * s for d in (0, 1))
    r = scenes.radius[scene] * s
    kind, size = scenes.shape[scene], scenes.size[scene]
    for g in np.unique(kind * 100 + size):  # similar radii per group: small patches for small objects
        sel = np.flatnonzero(kind * 100 + size == g)
        patch, x0, y0 = coverage_patches(SHAPES[g // 100], cx[sel], cy[sel], r[sel])
        p = patch.shape[1]
        rows, cols = y0[:, None, None] + np.arange(p)[:, None], x0[:, None, None] + np.arange(p)
        flat = (scene[sel, None, None] * s + rows) * s + cols
        inside = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
        out += np.bincount(flat[inside], weights=patch[inside], minlength=n * s * s)
    return np.minimum(out, 1).astype(np.float32).reshape(n, s, s)  # objects never overlap; min guards rounding


def render(scenes: Scenes, image_size: int = 32) -> np.ndarray:
    """``(n, 3, H, W)`` float32 images in [0, 1]: the background colour, with the objects drawn
    anti-aliased in their colour. Deterministic. Measured on one core: ~16,000 32x32 images/s
    (5000 random scenes in 0.32 s)."""
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    parts = []
    for start in range(0, max(len(scenes), 1), _CHUNK):
        sub = scenes[start:start + _CHUNK]
        alpha = coverage(sub, image_size)[:, None]
        bg = np.array([BACKGROUND_RGB[b] for b in BACKGROUNDS], np.float32)[sub.background][:, :, None, None]
        fg = np.array([COLOUR_RGB[c] for c in COLOURS], np.float32)[sub.colour][:, :, None, None]
        parts.append(bg + (fg - bg) * alpha)
    return np.concatenate(parts)
