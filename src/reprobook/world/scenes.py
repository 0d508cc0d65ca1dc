"""Scenes: one kind of shape, in one colour and size, ``count`` times, placed left / middle / right
on a plain background. A batch of scenes is a ``Scenes`` of numpy arrays; every random choice is
made here (rendering is deterministic), so a scene record is the ground truth for its image."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields, replace

import numpy as np

SHAPES = ("circle", "square", "triangle", "pentagon")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
COLOUR_RGB = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.7, 0.1), "blue": (0.15, 0.25, 0.95),
              "yellow": (0.95, 0.9, 0.1), "purple": (0.6, 0.15, 0.75), "orange": (1.0, 0.55, 0.05)}
BACKGROUNDS = ("black", "gray", "white")  # in order of lightness: comparatives say darker / lighter
BACKGROUND_RGB = {"black": (0.0, 0.0, 0.0), "gray": (0.5, 0.5, 0.5), "white": (1.0, 1.0, 1.0)}
SIZES = ("tiny", "small", "medium", "large", "huge")
#: Size bin k holds circumradii in [RADIUS_EDGES[k], RADIUS_EDGES[k+1]), as fractions of the width.
#: Equal widths (0.48 px at 32x32) so a pixel-level reader is equally accurate in every bin.
RADIUS_EDGES = (0.045, 0.06, 0.075, 0.09, 0.105, 0.12)
COUNTS = (1, 2, 3, 4, 5)
POSITIONS = ("left", "middle", "right")
ATTRIBUTES = ("shape", "colour", "size", "count", "position", "background")
VALUES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "count": COUNTS, "position": POSITIONS,
          "background": BACKGROUNDS}
ORDERED = ("size", "count", "position", "background")  # index order = value order
#: (colour, shape) combinations held out of training by default.
HELD_OUT_PAIRS = (("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "pentagon"))

MAX_OBJECTS = max(COUNTS)
GAP = 0.05  # min distance between circumcircles (1.6 px at 32x32): objects stay separate components
#: Per position: the range of every object's x-centre, and of the group's mean x (fractions of the
#: width). Disjoint mean ranges order left < middle < right with a margin; ``None`` = ``r`` or ``1 - r``.
_OBJECT_X = ((None, 0.5), (0.25, 0.75), (0.5, None))
MEAN_X = ((0.0, 0.36), (0.43, 0.57), (0.64, 1.0))
_CANDIDATES = 16  # positions proposed per object and round
_MAX_ROUNDS = 200  # layout restarts before giving up


@dataclass(frozen=True, eq=False)
class Scenes:
    """A batch of scenes. The attribute fields are int indices into ``VALUES[name]`` (``count``
    too: index 2 is three objects, see ``n_objects``); ``radius`` is the circumradius as a fraction
    of the width; ``centers`` ``(n, 5, 2)`` holds (x, y) fractions, NaN beyond the count."""

    shape: np.ndarray
    colour: np.ndarray
    size: np.ndarray
    count: np.ndarray
    position: np.ndarray
    background: np.ndarray
    radius: np.ndarray
    centers: np.ndarray

    def __post_init__(self):
        n = len(np.asarray(self.shape))
        for name in ATTRIBUTES:
            a = np.asarray(getattr(self, name), dtype=np.int64)
            if a.shape != (n,) or (n and (a.min() < 0 or a.max() >= len(VALUES[name]))):
                raise ValueError(f"Scenes.{name} must be {n} indices in [0, {len(VALUES[name])}), got {a}")
            object.__setattr__(self, name, a)
        object.__setattr__(self, "radius", np.asarray(self.radius, dtype=np.float64))
        object.__setattr__(self, "centers", np.asarray(self.centers, dtype=np.float64))
        if self.radius.shape != (n,) or self.centers.shape != (n, MAX_OBJECTS, 2):
            raise ValueError(f"Scenes of {n}: radius must have shape ({n},) and centers ({n}, {MAX_OBJECTS}, 2), "
                             f"got {self.radius.shape} and {self.centers.shape}")

    def __len__(self) -> int:
        return len(self.shape)

    def __getitem__(self, idx) -> Scenes:
        idx = [idx] if np.isscalar(idx) else idx  # an int keeps the batch dimension
        return Scenes(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @property
    def n_objects(self) -> np.ndarray:
        return np.asarray(COUNTS)[self.count]

    @property
    def x_mean(self) -> np.ndarray:
        """The mean x-centre of each scene's objects, as a fraction of the width."""
        return np.nanmean(self.centers[:, :, 0], axis=1)

    def attributes(self, i: int) -> dict:
        """Scene ``i`` by value names, e.g. ``{"shape": "circle", "count": 3, ...}``."""
        return {name: VALUES[name][getattr(self, name)[i]] for name in ATTRIBUTES}

    @staticmethod
    def concat(parts) -> Scenes:
        return Scenes(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Scenes)})


def _index(name: str, value) -> int:
    if name not in VALUES:
        raise ValueError(f"unknown attribute {name!r}; valid attributes: {', '.join(ATTRIBUTES)}")
    if value not in VALUES[name]:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(str, VALUES[name]))}")
    return VALUES[name].index(value)


def allowed_pairs(exclude: Collection = (), only: Collection | None = None) -> np.ndarray:
    """``(len(COLOURS), len(SHAPES))`` bool: which (colour, shape) combinations may be drawn."""
    allowed = np.ones((len(COLOURS), len(SHAPES)), bool)
    for pair in [*exclude, *(only or ())]:
        if isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"exclude / only take (colour, shape) pairs such as ('red', 'circle'), got {pair!r}")
    if only is not None:
        allowed[:] = False
        for colour, shape in only:
            allowed[_index("colour", colour), _index("shape", shape)] = True
    for colour, shape in exclude:
        allowed[_index("colour", colour), _index("shape", shape)] = False
    if not allowed.any():
        raise ValueError(f"exclude={exclude!r} and only={only!r} leave no (colour, shape) pair to draw")
    return allowed


def _choose(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column index per row, with probability proportional to the row's (0/1) weights."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return (cum <= u[:, None]).sum(axis=1)


def sample_scenes(n: int, rng: np.random.Generator, *, exclude: Collection = (), only: Collection | None = None,
                  **fixed) -> Scenes:
    """``n`` random scenes, every attribute uniform unless fixed. ``exclude``: (colour, shape) name
    pairs never drawn; ``only``: the only pairs drawn. ``fixed``: attribute name = value name
    (``count=3``, ``colour="red"``), or a sequence of ``n`` values with ``None`` where free."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    idx = {}
    for name in ATTRIBUTES:
        value = fixed.pop(name, None)
        values = [value] * n if value is None or isinstance(value, (str, int, np.integer)) else list(value)
        if len(values) != n:
            raise ValueError(f"{name}: need one value or {n}, got {len(values)}")
        idx[name] = np.array([-1 if v is None else _index(name, v) for v in values], dtype=np.int64)
    if fixed:
        raise ValueError(f"unknown attribute(s) {', '.join(fixed)}; valid attributes: {', '.join(ATTRIBUTES)}")
    c, s = idx["colour"], idx["shape"]
    colour_ok = (c < 0)[:, None] | (np.arange(len(COLOURS)) == c[:, None])
    shape_ok = (s < 0)[:, None] | (np.arange(len(SHAPES)) == s[:, None])
    weights = allowed_pairs(exclude, only)[None] & colour_ok[:, :, None] & shape_ok[:, None, :]
    weights = weights.reshape(n, len(COLOURS) * len(SHAPES))
    if n and not weights.any(1).all():
        i = int(np.argmin(weights.any(1)))
        raise ValueError(f"scene {i}: no allowed (colour, shape) pair with colour={_name('colour', c[i])}, "
                         f"shape={_name('shape', s[i])} (exclude={exclude!r}, only={only!r})")
    pair = _choose(rng, weights)
    draw = {"colour": pair // len(SHAPES), "shape": pair % len(SHAPES)}
    for name in ("size", "count", "position", "background"):
        free = rng.integers(len(VALUES[name]), size=n)
        draw[name] = np.where(idx[name] >= 0, idx[name], free)
    radius = _radius(draw["size"], rng)
    return Scenes(**draw, radius=radius, centers=place(draw["count"], radius, draw["position"], rng))


def _name(name: str, i: int):
    return "free" if i < 0 else VALUES[name][i]


def _radius(size: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    edges = np.asarray(RADIUS_EDGES)
    return edges[size] + (edges[size + 1] - edges[size]) * rng.random(len(size))


def place(count: np.ndarray, radius: np.ndarray, position: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Object centres ``(n, 5, 2)`` (NaN-padded) for count indices, radii and position indices:
    inside the image, at least ``GAP`` apart, x-centres and their mean in the position's ranges.
    Rejection sampling, vectorized over scenes; a layout that keeps failing is a ValueError."""
    count, radius, position = (np.asarray(a) for a in (count, radius, position))
    centers = np.full((len(count), MAX_OBJECTS, 2), np.nan)
    todo = np.arange(len(count))
    for _ in range(_MAX_ROUNDS):
        if not len(todo):
            return centers
        layout, ok = _try_layout(np.asarray(COUNTS)[count[todo]], radius[todo], position[todo], rng)
        centers[todo[ok]] = layout[ok]
        todo = todo[~ok]
    i = todo[0]
    raise ValueError(f"could not place {COUNTS[count[i]]} objects of radius {radius[i]:.3f} "
                     f"({POSITIONS[position[i]]}) without overlap in {_MAX_ROUNDS} tries")


def _try_layout(k: np.ndarray, r: np.ndarray, position: np.ndarray, rng: np.random.Generator):
    """One layout attempt per scene: place objects one by one (first non-overlapping of a few
    candidates) in a strip as wide as the position allows, then shift the group horizontally into
    the position's ranges. Returns the centres and which scenes succeeded."""
    m = len(k)
    x_lo = np.array([lo if lo is not None else np.nan for lo, _ in _OBJECT_X])[position]
    x_hi = np.array([hi if hi is not None else np.nan for _, hi in _OBJECT_X])[position]
    x_lo, x_hi = np.where(np.isnan(x_lo), r, x_lo), np.where(np.isnan(x_hi), 1 - r, x_hi)
    pts = np.full((m, MAX_OBJECTS, 2), np.nan)
    ok = np.ones(m, bool)
    for j in range(MAX_OBJECTS):
        act = np.flatnonzero(ok & (k > j))
        cand = rng.random((len(act), _CANDIDATES, 2))
        cand[..., 0] *= (x_hi - x_lo)[act, None]
        cand[..., 1] = r[act, None] + cand[..., 1] * (1 - 2 * r[act, None])
        dist = np.linalg.norm(cand[:, :, None, :] - pts[act, None, :j, :], axis=-1)  # (a, candidates, j)
        free = (dist >= 2 * r[act, None, None] + GAP).all(axis=2)
        pts[act, j] = cand[np.arange(len(act)), free.argmax(axis=1)]
        ok[act[~free.any(axis=1)]] = False
    xs = pts[:, :, 0]
    mean_lo, mean_hi = np.asarray(MEAN_X)[position].T
    lo = np.maximum(x_lo - np.nanmin(xs, 1), mean_lo - np.nanmean(xs, 1))  # slot 0 is always placed
    hi = np.minimum(x_hi - np.nanmax(xs, 1), mean_hi - np.nanmean(xs, 1))
    ok &= lo <= hi
    pts[:, :, 0] += (lo + (hi - lo) * rng.random(m))[:, None]
    return pts, ok


def vary(scenes: Scenes, attribute: str, rng: np.random.Generator, direction: int | None = None, *,
         exclude: Collection = (), only: Collection | None = None) -> Scenes:
    """A copy of ``scenes`` where only ``attribute`` takes another value, uniform among the
    valid ones. ``direction=+1`` / ``-1`` (ordered attributes: size, count, position, background)
    draws only larger / smaller values, and a scene already at the end is a ValueError. A new
    (colour, shape) pair respects ``exclude`` / ``only``. Objects are re-placed (fresh layout) only
    when size, count or position change; a size change redraws the radius inside the new bin."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; valid attributes: {', '.join(ATTRIBUTES)}")
    if direction not in (None, 1, -1) or (direction is not None and attribute not in ORDERED):
        raise ValueError(f"direction must be None, or +1 / -1 for the ordered attributes {', '.join(ORDERED)}; "
                         f"got {direction!r} for {attribute}")
    cur = getattr(scenes, attribute)
    values = np.arange(len(VALUES[attribute]))
    ok = values != cur[:, None]
    if direction is not None:
        ok &= (values - cur[:, None]) * direction > 0
    if attribute in ("colour", "shape"):
        allowed = allowed_pairs(exclude, only)
        ok &= allowed[:, scenes.shape].T if attribute == "colour" else allowed[scenes.colour]
    if len(scenes) and not ok.any(1).all():
        i = int(np.argmin(ok.any(1)))
        raise ValueError(f"cannot vary {attribute} of scene {i} ({scenes.attributes(i)}) with direction="
                         f"{direction} (exclude={exclude!r}, only={only!r}): no other valid value")
    new = replace(scenes, **{attribute: _choose(rng, ok)})
    if attribute in ("size", "count", "position"):
        radius = _radius(new.size, rng) if attribute == "size" else new.radius
        new = replace(new, radius=radius, centers=place(new.count, radius, new.position, rng))
    return new


def make_pairs(n: int, rng: np.random.Generator, n_differ: int | tuple[int, int] = (1, 3), *,
               exclude: Collection = (), only: Collection | None = None,
               attributes: tuple[str, ...] = ATTRIBUTES) -> tuple[Scenes, Scenes, list[tuple[str, ...]]]:
    """``n`` pairs ``(first, second, changed)``: ``second`` differs from ``first`` in exactly the
    attributes ``changed[i]`` (names in ``ATTRIBUTES`` order), a uniform number of them in the
    inclusive range ``n_differ``, drawn uniformly from ``attributes``. Both respect exclude/only."""
    lo, hi = (n_differ, n_differ) if isinstance(n_differ, (int, np.integer)) else n_differ
    bad = [a for a in attributes if a not in ATTRIBUTES]
    if bad or len(set(attributes)) != len(attributes):
        raise ValueError(f"attributes must be distinct names from {', '.join(ATTRIBUTES)}, got {attributes!r}")
    if not 1 <= lo <= hi <= len(attributes):
        raise ValueError(f"n_differ must be a range within 1..{len(attributes)} (the attributes), got {n_differ!r}")
    first = sample_scenes(n, rng, exclude=exclude, only=only)
    k = rng.integers(lo, hi + 1, size=n)
    rank = np.argsort(np.argsort(rng.random((n, len(attributes))), axis=1), axis=1)
    change = rank < k[:, None]  # a uniform k-subset per pair
    second = first
    for a in ATTRIBUTES:  # a fixed order, so vary(shape) then vary(colour) keeps the pair allowed
        if a in attributes and change[:, attributes.index(a)].any():
            rows = np.flatnonzero(change[:, attributes.index(a)])
            sub = vary(second[rows], a, rng, exclude=exclude, only=only)
            merged = {f.name: getattr(second, f.name).copy() for f in fields(Scenes)}
            for name in merged:
                merged[name][rows] = getattr(sub, name)
            second = Scenes(**merged)
    changed = [tuple(a for a in ATTRIBUTES if a in attributes and change[i, attributes.index(a)]) for i in range(n)]
    return first, second, changed
