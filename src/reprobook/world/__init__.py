"""A toy world of procedural scenes (a few coloured shapes on a plain background), their
captions, comparative captions of scene pairs, and a reader that recovers attributes from pixels.

Shared by the chapters that train or probe image-text models. Because every image comes from a
known scene record, every claim about an image (a caption, a model's answer, a generated image)
can be checked exactly against the true attributes: shape, colour, size, count, position, background.
"""

from .captions import (COMPARATIVE_WORDS, HELDOUT_WORDS, NUMBERS, PHRASINGS, attribute_prompt, caption, comparative,
                       comparative_single, parse_caption, render_caption)
from .draw import draw_supersampled, polygon_vertices
from .reader import read_attributes
from .render import coverage, render
from .scenes import (ATTRIBUTES, BACKGROUND_RGB, BACKGROUNDS, COLOUR_RGB, COLOURS, COUNTS, GAP, HELD_OUT_PAIRS, MEAN_X,
                     ORDERED, POSITIONS, RADIUS_EDGES, SHAPES, SIZES, VALUES, Scenes, allowed_pairs, make_pairs, place,
                     sample_scenes, vary)

__all__ = ["ATTRIBUTES", "BACKGROUND_RGB", "BACKGROUNDS", "COLOUR_RGB", "COLOURS", "COMPARATIVE_WORDS", "COUNTS", "GAP",
           "HELDOUT_WORDS", "HELD_OUT_PAIRS", "MEAN_X", "NUMBERS", "ORDERED", "PHRASINGS", "POSITIONS", "RADIUS_EDGES",
           "SHAPES", "SIZES", "VALUES", "Scenes", "allowed_pairs", "attribute_prompt", "caption", "comparative",
           "comparative_single", "coverage", "draw_supersampled", "make_pairs", "parse_caption", "place",
           "polygon_vertices", "read_attributes", "render", "render_caption", "sample_scenes", "vary"]
