"""Reading a scene's attributes back from its pixels alone: an independent check that an image
shows what its scene record (and so its caption) says, and a judge for generated images."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .render import coverage_patches
from .scenes import BACKGROUND_RGB, BACKGROUNDS, COLOUR_RGB, COLOURS, MEAN_X, RADIUS_EDGES, SHAPES

#: Area / circumradius^2 of each shape: circle pi, regular k-gon (k/2) sin(2 pi / k).
AREA_FACTOR = {"circle": np.pi, "square": 2.0, "triangle": 1.5 * np.sin(2 * np.pi / 3),
               "pentagon": 2.5 * np.sin(2 * np.pi / 5)}
_BG = np.array([BACKGROUND_RGB[b] for b in BACKGROUNDS])
_FG = np.array([COLOUR_RGB[c] for c in COLOURS])
_CORE = 0.35  # coverage that seeds a component: high enough that objects GAP apart stay apart (measured)
_MIN_AREA = 0.5  # px^2: smaller components are noise, not objects


def read_attributes(images: np.ndarray) -> dict[str, np.ndarray]:
    """Attributes of ``(n, 3, H, W)`` images in [0, 1] as index arrays into ``VALUES`` (``count``
    index = objects - 1), -1 where unreadable (no object, or more than five: then only
    background and colour are read).

    background: the palette colour nearest the median border pixel. colour: the palette colour
    that best explains object pixels as a blend of it and the background; that blend's weight is
    each pixel's coverage. count: 8-connected components of coverage > 0.35 (scipy.ndimage.label),
    every covered pixel joined to its nearest component. shape: the shape whose rendered template
    (at the component's centroid, with the radius its area implies) best fits the coverage, summed
    over the scene's objects. size: the radius bin of the mean radius implied by area and shape.
    position: the bin of the mean component centroid x.

    Measured on 3000 random scenes at 32x32: background, colour, count, shape and position 100%
    (also for five huge or five tiny objects); size 98.7%, every miss a radius within 0.03 px of
    a bin edge. At 24x24: size 97%, shape and count 99%.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must have shape (n, 3, S, S), got {images.shape}")
    n, _, size, _ = images.shape
    out = {name: np.full(n, -1, dtype=np.int64)
           for name in ("background", "colour", "count", "shape", "size", "position")}
    for i in range(n):
        img = images[i].reshape(3, -1)
        border = np.concatenate([images[i, :, 0], images[i, :, -1], images[i, :, :, 0], images[i, :, :, -1]], axis=1)
        bg = int(np.argmin(((_BG - np.median(border, axis=1)) ** 2).sum(1)))
        diff = img - _BG[bg][:, None]
        obj = np.abs(diff).max(0) > 0.05
        out["background"][i] = bg
        if not obj.any():
            continue
        d = _FG - _BG[bg]  # (colours, 3): the blend direction of each colour
        a = np.clip(d @ diff[:, obj] / (d * d).sum(1, keepdims=True), 0, 1)  # (colours, pixels)
        resid = ((diff[None, :, obj] - a[:, None] * d[:, :, None]) ** 2).sum((1, 2))
        c = int(np.argmin(resid))
        out["colour"][i] = c
        alpha = np.clip(d[c] @ diff / (d[c] @ d[c]), 0, 1).reshape(size, size)
        cores, k = ndimage.label(alpha > _CORE, structure=np.ones((3, 3)))
        if k == 0:
            continue
        nearest = ndimage.distance_transform_edt(cores == 0, return_indices=True)[1]
        labels = cores[nearest[0], nearest[1]]  # every pixel joins its nearest core
        idx = np.arange(1, k + 1)
        area = ndimage.sum_labels(alpha, labels, idx)
        yy, xx = np.mgrid[:size, :size] + 0.5  # pixel centres
        cx = ndimage.sum_labels(alpha * xx, labels, idx) / area
        cy = ndimage.sum_labels(alpha * yy, labels, idx) / area
        keep = area >= _MIN_AREA
        area, cx, cy, idx = area[keep], cx[keep], cy[keep], idx[keep]
        if not 1 <= len(idx) <= 5:
            continue
        out["count"][i] = len(idx) - 1
        errors = [_template_error(kind, alpha, labels, idx, cx, cy, np.sqrt(area / AREA_FACTOR[kind]))
                  for kind in SHAPES]
        shape = int(np.argmin(errors))
        out["shape"][i] = shape
        radius = np.sqrt(area / AREA_FACTOR[SHAPES[shape]]).mean() / size
        out["size"][i] = np.clip(np.searchsorted(RADIUS_EDGES, radius, side="right") - 1, 0, len(RADIUS_EDGES) - 2)
        x_mean = cx.mean() / size
        out["position"][i] = np.searchsorted([(MEAN_X[0][1] + MEAN_X[1][0]) / 2, (MEAN_X[1][1] + MEAN_X[2][0]) / 2],
                                             x_mean)
    return out


def _template_error(kind, alpha, labels, idx, cx, cy, r) -> float:
    """Squared error between each component's coverage and the rendered ``kind`` at its centroid."""
    patches, x0, y0 = coverage_patches(kind, cx, cy, r)
    p, size = patches.shape[1], alpha.shape[0]
    own = np.pad(alpha, p), np.pad(labels, p)  # padded, so every patch lies inside
    err = 0.0
    for j, lab in enumerate(idx):
        rows, cols = slice(y0[j] + p, y0[j] + 2 * p), slice(x0[j] + p, x0[j] + 2 * p)
        observed = np.where(own[1][rows, cols] == lab, own[0][rows, cols], 0)
        err += float(((observed - patches[j]) ** 2).sum())
    return err
