"""The shared world: scenes, rendering, captions, comparatives, the pixel reader, chapter 03's shapes."""

import hashlib
import re
import time

import numpy as np
import pytest

from reprobook.hallucination.shapes import render_shapes
from reprobook.world import (ATTRIBUTES, COMPARATIVE_WORDS, GAP, HELD_OUT_PAIRS, HELDOUT_WORDS, MEAN_X, ORDERED,
                             POSITIONS, RADIUS_EDGES, VALUES, Scenes, attribute_prompt, caption, comparative,
                             comparative_single, make_pairs, parse_caption, read_attributes, render, render_caption,
                             sample_scenes, vary)


def _tokens(text):
    return set(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text))


def _same(a: Scenes, b: Scenes) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in (*ATTRIBUTES, "radius", "centers"))


@pytest.mark.parametrize("args, digest", [
    ((64, 32, 32, 0), "217c55fbb374b4097340d6f1c6469808299cbdf79fdc4f6bc45f94fbf3e05eed"),
    ((16, 48, 40, 3), "f7c71ac35a862919eefc1d07cbfcd1bba8c3928de73d84c20e04038995117f85"),
])
def test_chapter_03_shapes_are_bit_identical_after_moving_the_drawing_here(args, digest):
    # Digests recorded before the polygon/supersampling helpers moved into reprobook.world.draw.
    n, h, w, seed = args
    images, _ = render_shapes(n, h, w, np.random.default_rng(seed))
    assert hashlib.sha256(images.tobytes()).hexdigest() == digest


def test_same_seed_same_scenes_and_images_different_seed_different():
    a, b, c = (sample_scenes(200, np.random.default_rng(s)) for s in (5, 5, 6))
    assert _same(a, b) and not _same(a, c)
    assert np.array_equal(render(a), render(b)) and not np.array_equal(render(a), render(c))
    assert caption(a, np.random.default_rng(1)) == caption(b, np.random.default_rng(1))


def test_exclude_only_and_fixed_attributes_are_respected():
    rng = np.random.default_rng(0)
    s = sample_scenes(3000, rng, exclude=HELD_OUT_PAIRS)
    pairs = {(s.attributes(i)["colour"], s.attributes(i)["shape"]) for i in range(len(s))}
    assert not pairs & set(HELD_OUT_PAIRS) and len(pairs) == 24 - len(HELD_OUT_PAIRS)
    s = sample_scenes(500, rng, only=HELD_OUT_PAIRS)
    assert {(s.attributes(i)["colour"], s.attributes(i)["shape"]) for i in range(len(s))} == set(HELD_OUT_PAIRS)
    s = sample_scenes(500, rng, count=3, colour="red", background="white", exclude=HELD_OUT_PAIRS)
    assert (s.n_objects == 3).all() and all(s.attributes(i)["colour"] == "red" for i in range(len(s)))
    assert (s.shape != VALUES["shape"].index("circle")).all() and (s.background == 2).all()
    s = sample_scenes(3, rng, size=["tiny", None, "huge"])
    assert s.size[0] == 0 and s.size[2] == 4
    assert len(s[1]) == 1 and len(s[np.array([0, 2])]) == 2 and len(Scenes.concat([s, s[1:]])) == 5


def test_objects_do_not_overlap_stay_inside_and_positions_order_by_mean_x():
    s = sample_scenes(3000, np.random.default_rng(1))
    r, c = s.radius[:, None], s.centers
    assert np.all(np.isnan(c[:, :, 0]) == (np.arange(5) >= s.n_objects[:, None]))
    lo, hi = np.asarray(RADIUS_EDGES)[s.size], np.asarray(RADIUS_EDGES)[s.size + 1]
    assert np.all((lo <= s.radius) & (s.radius < hi))
    valid = ~np.isnan(c[:, :, 0])
    assert np.all((c[valid] >= np.repeat(r, 5, 1)[valid, None]) & (c[valid] <= 1 - np.repeat(r, 5, 1)[valid, None]))
    d = np.linalg.norm(c[:, :, None] - c[:, None], axis=-1)
    off_diagonal = ~np.eye(5, dtype=bool) & valid[:, :, None] & valid[:, None, :]
    assert np.all(d[off_diagonal] >= np.broadcast_to(2 * r[:, :, None] + GAP, d.shape)[off_diagonal] - 1e-12)
    for p, (lo, hi) in enumerate(MEAN_X):
        xm = s.x_mean[s.position == p]
        assert lo <= xm.min() and xm.max() <= hi
    assert np.all(c[s.position == 0][:, :, 0][valid[s.position == 0]] <= 0.5)
    assert np.all(c[s.position == 2][:, :, 0][valid[s.position == 2]] >= 0.5)
    for p in POSITIONS:  # the most crowded scenes fit everywhere
        assert len(sample_scenes(200, np.random.default_rng(1), count=5, size="huge", position=p)) == 200
    assert len(sample_scenes(0, np.random.default_rng(1))) == 0


def test_render_is_fast_and_in_range():
    s = sample_scenes(3000, np.random.default_rng(2))
    render(s[:10])
    t = time.perf_counter()
    images = render(s)
    rate = len(s) / (time.perf_counter() - t)
    print(f"render: {rate:.0f} images/s at 32x32")
    assert images.shape == (3000, 3, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert rate >= 1000


@pytest.mark.parametrize("phrasing", ["train", "heldout"])
def test_captions_parse_back_to_every_attribute(phrasing):
    rng = np.random.default_rng(3)
    s = sample_scenes(3000, rng)
    texts = caption(s, rng, phrasing=phrasing)
    assert all(parse_caption(t) == s.attributes(i) for i, t in enumerate(texts))
    shared = {"a", "of", "the", "on", "at", "with", *map(str, VALUES["count"]), "one", "two", "three", "four", "five",
              "black", "white", "left", "right", *VALUES["colour"], *VALUES["shape"],
              *(x + "s" for x in VALUES["shape"])}  # value words both phrasings use
    words = set().union(*map(_tokens, texts))
    if phrasing == "train":
        assert not words & set(HELDOUT_WORDS)
    else:
        assert words <= shared | set(HELDOUT_WORDS), words - shared - set(HELDOUT_WORDS)
        assert all(len(_tokens(t) & set(HELDOUT_WORDS)) >= 4 for t in texts)  # prefix, count, size, position...
    for a in ATTRIBUTES:
        for v in VALUES[a]:
            assert parse_caption(attribute_prompt(a, v, phrasing)) == {a: v}


def test_every_comparative_word_appears_in_train_captions():
    s = sample_scenes(3000, np.random.default_rng(4))
    text = " | ".join(caption(s, np.random.default_rng(4)))
    for word in COMPARATIVE_WORDS:
        assert re.search(rf"\b{word}\b", text), word


def test_pairs_differ_in_exactly_the_changed_attributes_and_comparatives_say_how():
    rng = np.random.default_rng(5)
    first, second, changed = make_pairs(2000, rng, exclude=HELD_OUT_PAIRS)
    assert {len(c) for c in changed} == {1, 2, 3}
    for i, names in enumerate(changed):
        a, b = first.attributes(i), second.attributes(i)
        assert {k for k in ATTRIBUTES if a[k] != b[k]} == set(names)
        assert (b["colour"], b["shape"]) not in HELD_OUT_PAIRS
    words = {"size": ("bigger", "smaller"), "count": ("more", "fewer"), "position": ("further right", "further left"),
             "background": ("lighter", "darker")}
    for phrasing in ("train", "heldout"):
        texts = comparative(first, second, changed, rng, phrasing=phrasing)
        for i, (text, names) in enumerate(zip(texts, changed)):
            assert len(text.split(", and ")) == len(names)
            if phrasing == "heldout":
                assert _tokens(text) & set(HELDOUT_WORDS)
                continue
            for name, (up, down) in words.items():
                d = getattr(first, name)[i] - getattr(second, name)[i]
                assert (up in text) == (d > 0) and (down in text) == (d < 0), (text, name)
            a, b = first.attributes(i), second.attributes(i)
            assert (f"has {a['colour']} shapes where the second has {b['colour']} ones" in text) == ("colour" in names)
            assert (f"has {a['shape']}s where the second has {b['shape']}s" in text) == ("shape" in names)
    assert comparative_single("size", 1) == "the first has bigger shapes than the second"


def test_vary_with_a_direction_moves_that_way_and_only_that_attribute():
    rng = np.random.default_rng(6)
    s = sample_scenes(300, rng, size="small", count=2, position="middle", background="gray")
    for name in ORDERED:
        up = vary(s, name, rng, direction=1)
        assert np.all(getattr(up, name) > getattr(s, name))
        assert all(np.array_equal(getattr(up, k), getattr(s, k)) for k in ATTRIBUTES if k != name)
    assert np.array_equal(vary(s, "colour", rng).centers, s.centers, equal_nan=True)
    with pytest.raises(ValueError, match="cannot vary count"):
        vary(sample_scenes(5, rng, count=5), "count", rng, direction=1)


def test_the_reader_sees_in_the_pixels_what_the_scenes_say():
    s = sample_scenes(1000, np.random.default_rng(7))
    read = read_attributes(render(s))
    acc = {a: float(np.mean(read[a] == getattr(s, a))) for a in ATTRIBUTES}
    print("reader accuracy:", acc)
    assert acc["background"] == acc["colour"] == acc["count"] == 1.0
    assert acc["position"] >= 0.99 and acc["shape"] >= 0.95 and acc["size"] >= 0.95


def test_render_caption_draws_what_the_caption_says():
    texts = ["three tiny red circles on the left on a black background", "a photo of exactly 5 enormous blue squares"]
    read = read_attributes(render_caption(texts, np.random.default_rng(8)))
    assert [VALUES["count"][c] for c in read["count"]] == [3, 5]
    assert [VALUES["colour"][c] for c in read["colour"]] == ["red", "blue"]
    assert VALUES["position"][read["position"][0]] == "left" and VALUES["size"][read["size"][1]] == "huge"


def test_bad_input_is_a_clear_error():
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match="unknown count 6; valid: 1, 2, 3, 4, 5"):
        sample_scenes(3, rng, count=6)
    with pytest.raises(ValueError, match="unknown attribute"):
        sample_scenes(3, rng, texture="striped")
    with pytest.raises(ValueError, match="unknown colour 'pink'"):
        sample_scenes(3, rng, exclude=[("pink", "circle")])
    with pytest.raises(ValueError, match="no allowed"):
        sample_scenes(3, rng, colour="red", shape="circle", exclude=HELD_OUT_PAIRS)
    with pytest.raises(ValueError, match="could not place"):
        from reprobook.world import place
        place(np.array([4]), np.array([0.3]), np.array([0]), rng)  # five objects of a third of the width
    s = sample_scenes(2, rng, size="small")
    with pytest.raises(ValueError, match="unknown attribute 'texture'"):
        vary(s, "texture", rng)
    with pytest.raises(ValueError, match="unknown attribute 'texture'"):
        comparative(s, vary(s, "size", rng), [("texture",)] * 2)
    with pytest.raises(ValueError, match="identical scenes"):
        comparative(s, s, [("size",)] * 2)
    with pytest.raises(ValueError, match="does not differ in count"):
        comparative(s, vary(s, "size", rng), [("count",)] * 2)
    with pytest.raises(ValueError, match="cannot parse 'blobs'"):
        parse_caption("three red blobs")
    with pytest.raises(ValueError, match="two values of colour"):
        parse_caption("red, blue circles")
    with pytest.raises(ValueError, match="phrasing"):
        caption(s, rng, phrasing="poetic")
    with pytest.raises(ValueError, match="n_differ"):
        make_pairs(3, rng, n_differ=(0, 7))
    assert POSITIONS == ("left", "middle", "right")
