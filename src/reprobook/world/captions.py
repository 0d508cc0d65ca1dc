"""Captions of scenes, comparative captions of pairs, and the parser that inverts captions.

Two phrasings share the value words (colours, shapes, numbers, background colours) but nothing
else: "train" captions ("three small red circles on the left on a black background") never use a
word of ``HELDOUT_WORDS``, and "heldout" captions ("a photo of exactly three little red circles
towards the left with a black backdrop") use them for every other slot, so a model trained on one
can be tested on the other.
"""

from __future__ import annotations

import re

import numpy as np

from .render import render
from .scenes import ATTRIBUTES, BACKGROUNDS, COLOURS, COUNTS, ORDERED, SHAPES, SIZES, VALUES, Scenes, sample_scenes

PHRASINGS = ("train", "heldout")
NUMBERS = ("one", "two", "three", "four", "five")
_PLURAL = {s: s + "s" for s in SHAPES}
_VOCAB = {
    "train": {
        "prefix": ("", "an image of ", "a picture of "),
        "count": "",
        "noun": "shapes",
        "size": {"tiny": ("tiny",), "small": ("small",), "medium": ("medium", "medium-sized"),
                 "large": ("large", "big"), "huge": ("huge", "giant")},
        "position": {"left": ("on the left", "on the left side"), "middle": ("in the middle", "in the centre"),
                     "right": ("on the right", "on the right side")},
        "background": ("on a {} background", "against a {} background"),
        "gray": "gray",
        "compare": {"size": ("smaller {n}", "bigger {n}"), "count": ("fewer {n}", "more {n}"),
                    "position": ("further left", "further right"), "background": ("darker", "lighter")},
        "verb": "has", "where": "where", "bg": "background",
    },
    "heldout": {
        "prefix": ("a photo of ", "a drawing of "),
        "count": "exactly ",
        "noun": "objects",
        "size": {"tiny": ("minuscule",), "small": ("little",), "medium": ("mid-sized",),
                 "large": ("sizeable",), "huge": ("enormous", "gigantic")},
        "position": {"left": ("towards the left",), "middle": ("at the center", "centrally placed"),
                     "right": ("towards the right",)},
        "background": ("with a {} backdrop", "on a {} backdrop"),
        "gray": "grey",
        "compare": {"size": ("tinier {n}", "larger {n}"), "count": ("a lower number of {n}", "a greater number of {n}"),
                    "position": ("closer to the left", "closer to the right"), "background": ("dimmer", "brighter")},
        "verb": "shows", "where": "whereas", "bg": "backdrop",
    },
}
#: Words of "heldout" captions and comparatives that "train" never uses.
HELDOUT_WORDS = ("photo", "drawing", "exactly", "objects", "minuscule", "little", "mid-sized", "sizeable", "enormous",
                 "gigantic", "towards", "center", "centrally", "placed", "backdrop", "grey", "tinier", "larger",
                 "lower", "greater", "number", "closer", "to", "dimmer", "brighter", "shows", "whereas")
#: Comparative words of the pair captions; single "train" captions use each of them too (in clauses
#: like "more than two shapes"), so a text encoder pretrained on them has seen every one.
COMPARATIVE_WORDS = ("bigger", "smaller", "more", "fewer", "further left", "further right", "darker", "lighter",
                     "than")
# The single-image comparative clauses of "train" captions; the parser skips them.
_EXTRA = re.compile(r"(more|fewer) than (one|two|three|four|five) shapes?|(bigger|smaller) than (\w+) ones"
                    r"|further (left|right) than the centre|a background (darker|lighter) than (black|gray|white)")


def _phrasing(phrasing: str) -> dict:
    if phrasing not in _VOCAB:
        raise ValueError(f"unknown phrasing {phrasing!r}; valid: {', '.join(PHRASINGS)}")
    return _VOCAB[phrasing]


def _pick(options, u: float):
    return options[int(u * len(options))]


def _extras(a: dict, u: np.ndarray) -> list[str]:
    """Every single-image comparative clause true of scene ``a`` (one random bound each)."""
    k, size, bg = a["count"], SIZES.index(a["size"]), BACKGROUNDS.index(a["background"])
    out = []
    if k > 1:
        j = 1 + int(u[0] * (k - 1))
        out.append(f"more than {NUMBERS[j - 1]} shape{'s' if j > 1 else ''}")
    if k < 5:
        out.append(f"fewer than {NUMBERS[k + int(u[0] * (5 - k))]} shapes")
    if size > 0:
        out.append(f"bigger than {SIZES[int(u[1] * size)]} ones")
    if size < len(SIZES) - 1:
        out.append(f"smaller than {SIZES[size + 1 + int(u[1] * (len(SIZES) - 1 - size))]} ones")
    if a["position"] != "middle":
        out.append(f"further {a['position']} than the centre")
    if bg > 0:
        out.append(f"a background lighter than {BACKGROUNDS[int(u[2] * bg)]}")
    if bg < len(BACKGROUNDS) - 1:
        out.append(f"a background darker than {BACKGROUNDS[bg + 1 + int(u[2] * (len(BACKGROUNDS) - 1 - bg))]}")
    return out


def caption(scenes: Scenes, rng: np.random.Generator, *, phrasing: str = "train") -> list[str]:
    """One caption per scene naming every attribute, with words and templates drawn by ``rng``:
    "three small red circles on the left on a black background", "a picture of 3 tiny blue
    squares, in the middle, against a white background, more than two shapes"."""
    v = _phrasing(phrasing)
    u = rng.random((len(scenes), 10))
    out = []
    for i in range(len(scenes)):
        a = scenes.attributes(i)
        k = a["count"]
        number = NUMBERS[k - 1] if u[i, 0] < 0.6 else str(k)
        sep = ", " if u[i, 1] < 0.5 else " "
        bg = v["gray"] if a["background"] == "gray" else a["background"]
        text = (f"{_pick(v['prefix'], u[i, 2])}{v['count']}{number} {_pick(v['size'][a['size']], u[i, 3])} "
                f"{a['colour']} {a['shape'] if k == 1 else _PLURAL[a['shape']]}{sep}"
                f"{_pick(v['position'][a['position']], u[i, 4])}{sep}{_pick(v['background'], u[i, 5]).format(bg)}")
        if phrasing == "train" and u[i, 6] < 0.5:
            text += ", " + _pick(_extras(a, u[i, 7:]), u[i, 6] * 2)
        out.append(text)
    return out


def attribute_prompt(attribute: str, value, phrasing: str = "train") -> str:
    """The zero-shot class prompt for one attribute value: ("count", 3) -> "an image of three
    shapes", ("colour", "red") -> "an image of red shapes", ("shape", "circle") -> "an image of circles"."""
    v = _phrasing(phrasing)
    if attribute not in VALUES:
        raise ValueError(f"unknown attribute {attribute!r}; valid attributes: {', '.join(ATTRIBUTES)}")
    if value not in VALUES[attribute]:
        raise ValueError(f"unknown {attribute} {value!r}; valid: {', '.join(map(str, VALUES[attribute]))}")
    head, noun = ("an image of " if phrasing == "train" else "a photo of "), v["noun"]
    if attribute == "count":
        return f"{head}{v['count']}{NUMBERS[value - 1]} {noun[:-1] if value == 1 else noun}"
    if attribute in ("colour", "size"):
        word = value if attribute == "colour" else v["size"][value][0]
        return f"{head}{word} {noun}"
    if attribute == "shape":
        return f"{head}{_PLURAL[value]}"
    if attribute == "position":
        return f"{head}{noun} {v['position'][value][0]}"
    return f"{head}{noun} {v['background'][0].format(v['gray'] if value == 'gray' else value)}"


def comparative_single(attribute: str, value, phrasing: str = "train") -> str:
    """One comparative clause, "first" versus "second". ``value``: +1 / -1 for the ordered
    attributes (+1: the first has the later value: bigger, more, further right, lighter), or
    ``(first_value, second_value)`` names for colour and shape."""
    v = _phrasing(phrasing)
    noun, has = v["noun"], v["verb"]
    if attribute in ORDERED:
        if value not in (1, -1):
            raise ValueError(f"{attribute} comparisons take a direction +1 or -1, got {value!r}")
        word = v["compare"][attribute][value > 0].format(n=noun)
        if attribute == "position":
            return f"the {noun} in the first are {word} than in the second"
        if attribute == "background":
            return f"the first has a {word} {v['bg']} than the second"
        return f"the first has {word} than the second"
    if attribute not in ("colour", "shape"):
        raise ValueError(f"unknown attribute {attribute!r}; valid attributes: {', '.join(ATTRIBUTES)}")
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(x in VALUES[attribute] for x in value)
            and value[0] != value[1]):
        raise ValueError(f"{attribute} comparisons take two different values from {', '.join(VALUES[attribute])}, "
                         f"got {value!r}")
    if attribute == "colour":
        return f"the first {has} {value[0]} {noun} {v['where']} the second {has} {value[1]} ones"
    return f"the first {has} {_PLURAL[value[0]]} {v['where']} the second {has} {_PLURAL[value[1]]}"


def comparative(first: Scenes, second: Scenes, attributes, rng: np.random.Generator | None = None, *,
                phrasing: str = "train") -> list[str]:
    """How each ``first`` scene differs from its ``second``, over ``attributes[i]`` (1-3 names per
    pair, as from ``make_pairs``; a single tuple applies to every pair): the clauses of
    ``comparative_single`` joined by ", and ", shuffled when ``rng`` is given."""
    if len(first) != len(second):
        raise ValueError(f"first and second must be as long, got {len(first)} and {len(second)}")
    if isinstance(attributes, str) or (len(attributes) and isinstance(attributes[0], str)):
        attributes = [tuple([attributes] if isinstance(attributes, str) else attributes)] * len(first)
    if len(attributes) != len(first):
        raise ValueError(f"need one tuple of attribute names per pair ({len(first)}), got {len(attributes)}")
    out = []
    for i, names in enumerate(attributes):
        a, b = first.attributes(i), second.attributes(i)
        if a == b:
            raise ValueError(f"pair {i}: first and second are identical scenes (same attributes {a}): "
                             "nothing to compare")
        if not 1 <= len(names) <= len(ATTRIBUTES):
            raise ValueError(f"pair {i}: name 1 to {len(ATTRIBUTES)} attributes, got {names!r}")
        clauses = []
        for name in names:
            if name not in ATTRIBUTES:
                raise ValueError(f"pair {i}: unknown attribute {name!r}; valid attributes: {', '.join(ATTRIBUTES)}")
            if a[name] == b[name]:
                raise ValueError(f"pair {i}: the pair does not differ in {name}: both have {a[name]!r}")
            ia, ib = getattr(first, name)[i], getattr(second, name)[i]
            value = (1 if ia > ib else -1) if name in ORDERED else (a[name], b[name])
            clauses.append(comparative_single(name, value, phrasing))
        if rng is not None:
            clauses = [clauses[j] for j in rng.permutation(len(clauses))]
        out.append(", and ".join(clauses))
    return out


_WORDS = {**{w: ("count", k) for w, k in zip(NUMBERS, COUNTS)}, **{str(k): ("count", k) for k in COUNTS},
          **{c: ("colour", c) for c in COLOURS}, **{s: ("shape", s) for s in SHAPES},
          **{p: ("shape", s) for s, p in _PLURAL.items()}, **{b: ("background", b) for b in BACKGROUNDS},
          "grey": ("background", "gray"), "left": ("position", "left"), "right": ("position", "right"),
          "middle": ("position", "middle"), "centre": ("position", "middle"), "center": ("position", "middle"),
          "centrally": ("position", "middle"),
          **{w: ("size", s) for v in _VOCAB.values() for s, ws in v["size"].items() for w in ws}}
_FILLER = {"a", "an", "of", "the", "on", "in", "at", "with", "against", "side", "background", "backdrop", "image",
           "picture", "photo", "drawing", "exactly", "towards", "placed", "shape", "shapes", "object", "objects"}


def parse_caption(text: str) -> dict:
    """The attributes a caption states, ``{name: value}`` (e.g. ``{"count": 3, "colour": "red"}``),
    for captions and prompts of either phrasing. Comparative clauses ("more than two shapes") are
    skipped. A word it does not know, or two values for one attribute, is a ValueError."""
    rest = _EXTRA.sub(" ", text.lower())
    out: dict = {}
    for word in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*|[^\sa-z0-9,;.]", rest):
        if word in _FILLER:
            continue
        if word not in _WORDS:
            raise ValueError(f"cannot parse {word!r} in caption {text!r}")
        name, value = _WORDS[word]
        if out.setdefault(name, value) != value:
            raise ValueError(f"caption {text!r} names two values of {name}: {out[name]!r} and {value!r}")
    return out


def render_caption(texts: list[str], rng: np.random.Generator, image_size: int = 32) -> np.ndarray:
    """Images of captions: parse each, draw a scene with the stated attributes fixed (the rest
    random), render. ``(len(texts), 3, H, W)``."""
    parsed = [parse_caption(t) for t in texts]
    fixed = {name: [p.get(name) for p in parsed] for name in ATTRIBUTES}
    return render(sample_scenes(len(texts), rng, **fixed), image_size)
