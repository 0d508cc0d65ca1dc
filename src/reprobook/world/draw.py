"""Polygon geometry and PIL drawing on a supersampled canvas (used by chapter 03's shapes)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4  # draw at 4x and average down: anti-aliased edges


def polygon_vertices(sides: int, cx: float, cy: float, r: float,
                     start_angle: float | None = None) -> list[tuple[float, float]]:
    """The ``sides`` vertices of a regular polygon with circumradius ``r`` around ``(cx, cy)``,
    in image coordinates (y down). ``start_angle=None`` stands it upright: a vertex up, except
    a square, which is axis-aligned."""
    if sides < 3:
        raise ValueError(f"a polygon needs at least 3 sides, got {sides}")
    if start_angle is None:
        start_angle = -math.pi / 2 if sides != 4 else -math.pi / 4
    return [(cx + r * math.cos(start_angle + 2 * math.pi * i / sides),
             cy + r * math.sin(start_angle + 2 * math.pi * i / sides)) for i in range(sides)]


def draw_supersampled(height: int, width: int, polygons: Iterable[Sequence[tuple[float, float]]] = (),
                      ellipses: Iterable[tuple[float, float, float]] = (),
                      supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Coverage in [0, 1], float32 ``(height, width)``, of filled ``polygons`` (vertex lists in
    pixels) and discs ``ellipses`` (``(cx, cy, r)`` in pixels): drawn with PIL at
    ``supersample`` times the size, then averaged down."""
    s = supersample
    canvas = Image.new("L", (width * s, height * s), 0)
    draw = ImageDraw.Draw(canvas)
    for vertices in polygons:
        draw.polygon([(x * s, y * s) for x, y in vertices], fill=255)
    for cx, cy, r in ellipses:
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=255)
    return np.asarray(canvas, dtype=np.float32).reshape(height, s, width, s).mean(axis=(1, 3)) / 255
