"""The artificial shapes dataset: three vertical strips (triangles | squares | pentagons).

Each shape is present with probability 1/2, at a random height in its own strip,
so no training image has two shapes in one strip. A generated image with two
shapes in a strip, or two shapes merged into one tall blob, is a hallucination.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..world.draw import draw_supersampled, polygon_vertices

SHAPES = ("triangle", "square", "pentagon")
_SIDES = {"triangle": 3, "square": 4, "pentagon": 5}


def strip_bounds(width: int) -> list[tuple[int, int]]:
    """Column ranges ``[lo, hi)`` of the three strips."""
    edges = [round(k * width / 3) for k in range(4)]
    return list(zip(edges[:-1], edges[1:]))


def shape_radius(width: int) -> float:
    """Circumradius of every shape, in pixels: a shape fills about 70% of its strip's width."""
    return 0.35 * width / 3


def render_shapes(n: int, height: int, width: int, rng: np.random.Generator,
                  present: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images, shape ``(n, 1, height, width)``, white shapes on black, scaled to [-1, 1],
    and the ``(n, 3)`` presence flags. ``present`` fixes which shapes are drawn."""
    if n < 1 or height < 12 or width < 12:
        raise ValueError(f"need n >= 1 and images of at least 12x12, got n={n}, {height}x{width}")
    if present is None:
        present = rng.random((n, 3)) < 0.5
    r = shape_radius(width)
    images = np.empty((n, 1, height, width), dtype=np.float32)
    for i in range(n):
        polygons = []
        for j, (lo, hi) in enumerate(strip_bounds(width)):
            if not present[i, j]:
                continue
            slack = max(0.0, (hi - lo) / 2 - r - 0.5)
            cx = (lo + hi) / 2 + rng.uniform(-slack, slack)
            cy = rng.uniform(r + 0.5, height - r - 0.5)
            polygons.append(polygon_vertices(_SIDES[SHAPES[j]], cx, cy, r))  # upright; the square axis-aligned
        images[i, 0] = 2 * draw_supersampled(height, width, polygons) - 1
    return images, present


def count_shapes(images: np.ndarray, min_area_frac: float = 0.3, merge_height: float = 1.5,
                 max_area_frac: float = 3.0, merge_area_frac: float = 1.6):
    """Per image and strip: the number of shapes, whether one of them is a merged blob, and
    whether the strip holds a smear that is no shape at all.

    Pixels above 0 (mid-grey) are foreground; shapes are 8-connected components of at
    least ``min_area_frac`` of a shape's area (smaller ones are specks), where a shape's
    area is taken as that of the square, 2 r^2. A component taller than ``merge_height``
    shape diameters, or wider, or larger than ``merge_area_frac`` shapes, is two shapes merged
    (in any direction; the largest shape, the pentagon, is 1.2 squares); one larger than
    ``max_area_frac`` shapes (a grey
    background, a noise field) is a smear: the sample failed, it did not hallucinate.
    Returns ``counts``, ``merged`` and ``smeared``, each of shape (n, 3).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must have shape (n, 1, height, width), got {images.shape}")
    n, _, height, width = images.shape
    r = shape_radius(width)
    shape_area = 2 * r * r
    counts = np.zeros((n, 3), dtype=int)
    merged = np.zeros((n, 3), dtype=bool)
    smeared = np.zeros((n, 3), dtype=bool)
    structure = np.ones((3, 3), dtype=bool)
    for i in range(n):
        for j, (lo, hi) in enumerate(strip_bounds(width)):
            labels, k = ndimage.label(images[i, 0, :, lo:hi] > 0, structure=structure)
            if k == 0:
                continue
            areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, k + 1))
            boxes = ndimage.find_objects(labels)
            for area, box in zip(areas, boxes):
                if area < min_area_frac * shape_area:
                    continue
                if area > max_area_frac * shape_area:
                    smeared[i, j] = True
                    continue
                counts[i, j] += 1
                extent = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
                if extent > merge_height * 2 * r or area > merge_area_frac * shape_area:
                    merged[i, j] = True
    return counts, merged, smeared


def classify_samples(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hallucinated, failed)`` per image. Failed: some strip holds a smear (see
    ``count_shapes``). Hallucinated: not failed, and some strip holds two or more shapes or
    two shapes merged into one."""
    counts, merged, smeared = count_shapes(images)
    failed = smeared.any(1)
    return ~failed & ((counts >= 2).any(1) | merged.any(1)), failed


def is_hallucination(images: np.ndarray) -> np.ndarray:
    """True where a (non-failed) image has two or more shapes, or two merged, in a strip."""
    return classify_samples(images)[0]
