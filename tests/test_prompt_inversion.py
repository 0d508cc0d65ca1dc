"""Chapter 08's own parts: KID against a brute-force MMD, the chapter's world (held-out
combinations never trained on, alt-text noise), the reader's size mapping, agreement rules, the
captioner, and the config's errors."""

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from reprobook.presets import ConfigError
from reprobook.prompt_inversion import data as d
from reprobook.prompt_inversion import experiments as ex
from reprobook.prompt_inversion.captioner import Captioner
from reprobook.prompt_inversion.config import PRESETS, Config
from reprobook.prompt_inversion.metrics import kernel_inception_distance, mmd2_unbiased

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mmd2_matches_the_double_sum():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(1.0, size=(5, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(7), 2)) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(5), 2)) / (5 * 4)
    xy = sum(k(a, b) for a in x for b in y) / 35
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_separates_distributions_and_is_unbiased_near_zero():
    rng = np.random.default_rng(1)
    same = [kernel_inception_distance(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), subsets=10, seed=s)[0]
            for s in range(20)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same)) + 1e-3  # unbiased: mean ~ 0
    far = kernel_inception_distance(rng.normal(size=(40, 8)), rng.normal(2.0, size=(40, 8)), subsets=10)[0]
    assert far > 10 * max(abs(v) for v in same)
    with pytest.raises(ValueError, match="same d"):
        kernel_inception_distance(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        kernel_inception_distance(np.full((3, 2), np.nan), np.ones((3, 2)))


def test_heldout_combinations_never_reach_training():
    cfg = Config()
    held = d.heldout_combos(cfg, 0)
    assert len(held) == cfg.n_heldout_combos and len(set(held)) == len(held)
    scenes = d.training_scenes(cfg, 2000, np.random.default_rng(0), held)
    seen = {(sh, c, si, p) for sh, c, si, p in zip(*(ex.scene_truth(scenes)[k] for k in d.VARYING))}
    assert not seen & set(held)
    assert len(seen) == len(d.combos(cfg)) - len(held)  # every other combination is drawn
    assert set(scenes.n_objects) == {1} and set(scenes.background) == {0}


def test_noisy_captions_carry_doc_words_at_the_rate():
    cfg = Config()
    rng = np.random.default_rng(0)
    scenes = d.training_scenes(cfg, 2000, rng, [])
    words = d.distractor_words()
    clean = d.noisy_captions(scenes, np.random.default_rng(5), replace(cfg, distractor_rate=0.0), words)
    noisy = d.noisy_captions(scenes, np.random.default_rng(5), cfg, words)
    rate = np.mean([a != b for a, b in zip(clean, noisy)])
    assert abs(rate - cfg.distractor_rate) < 0.04
    assert all(n.startswith(c) for c, n in zip(clean, noisy))


def test_reader_maps_sizes_to_the_chapters_and_unreadable_never_agrees():
    cfg = Config()
    scenes = d.training_scenes(cfg, 300, np.random.default_rng(2), [])
    truth = ex.scene_truth(scenes)
    acc = ex.attribute_accuracy(cfg, d.images(cfg, scenes), truth)
    assert min(acc.values()) > 0.98
    blank = np.zeros((2, 3, cfg.image_size, cfg.image_size))
    read = ex.read_varying(cfg, blank)
    assert set(read["shape"]) == {"?"}
    targets = ex.Targets(None, [], blank, [0, 1], read)
    assert not any(v.any() for v in ex.agreement(read, targets, np.array([0, 1])).values())


def test_captioner_learns_and_writes_the_template():
    cfg = Config()
    rng = np.random.default_rng(3)
    scenes = d.training_scenes(cfg, 600, rng, [])
    cap = Captioner(cfg.image_size, ex.world_values(cfg), seed=0)
    losses = cap.train(d.images(cfg, scenes), scenes, steps=120)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    test = d.training_scenes(cfg, 200, rng, [])
    pred = cap.predict(d.images(cfg, test))
    truth = ex.scene_truth(test)
    assert np.mean([np.mean(np.array(pred[k]) == np.array(truth[k])) for k in d.VARYING]) > 0.8
    text = cap(d.images(cfg, test[:3]), np.random.default_rng(0))
    from reprobook.world import parse_caption

    for t in text:
        p = parse_caption(t)
        assert p["colour"] in cfg.colours and p["shape"] in cfg.shapes
    short = Captioner(cfg.image_size, ex.world_values(cfg), mention=("shape", "colour"))
    assert all(" on the " not in t and " in the " not in t for t in short(d.images(cfg, test[:5]),
                                                                        np.random.default_rng(0)))
    with pytest.raises(ValueError, match="mention"):
        Captioner(cfg.image_size, ex.world_values(cfg), mention=("size",))


def test_config_errors():
    with pytest.raises(ConfigError, match="n_free"):
        Config(n_free=(0,)).validate()
    with pytest.raises(ConfigError, match="n_free"):
        Config(n_free=(39,)).validate()
    with pytest.raises(ConfigError, match="guidance"):
        Config(guidance=-1.0).validate()
    with pytest.raises(ConfigError, match="conditioning"):
        Config(conditioning="pooling").validate()
    with pytest.raises(ConfigError, match="shapes"):
        Config(shapes=("hexagon",)).validate()
    with pytest.raises(ConfigError) as err:  # every missing path named at once, before any work
        Config(**PRESETS["full"]).validate()
    for key in ("sd_path", "proxy_checkpoint", "heldout_checkpoint", "prompt_file"):
        assert key in str(err.value)
    Config().validate()
    Config(**PRESETS["long"]).validate()
