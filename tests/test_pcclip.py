"""PC-CLIP's core against hand computations and direct formulas; the tiny CLIP's
tokenizer, pooling and input checks; what finetuning moves."""

import math

import numpy as np
import pytest
import torch

from reprobook.chapters import get_chapter
from reprobook.models.clip import tiny_clip, train_clip_tokenizer
from reprobook.pcclip import (FinetuneData, comparative_prompting, difference_correct, direction_distance,
                              edit_embedding, finetune_text_tower, image_differences, nearest, pcclip_loss,
                              pcclip_mse_loss, weight_average)
from reprobook.presets import ConfigError

TEXTS = ["three small red circles on the left", "one huge blue square on a white background",
         "the first has bigger shapes than the second", "more than two shapes, fewer than four"] * 20


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def clip():
    tok = train_clip_tokenizer(TEXTS, 300, 24)
    return tiny_clip(tok, 300, embed_dim=16, width=32, layers=2, heads=2, image_size=16, seed=0)


def test_pcclip_loss_is_the_symmetric_cross_entropy_computed_by_hand():
    rng = np.random.default_rng(0)
    t, u1, u2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5)) * 3, rng.normal(size=(6, 5)) * 0.2
    d = unit(unit(u1) - unit(u2))  # normalize each image embedding first, then the difference
    s = unit(t) @ d.T / 0.5
    row = np.mean([math.log(np.exp(s[a]).sum()) - s[a, a] for a in range(6)])
    col = np.mean([math.log(np.exp(s[:, a]).sum()) - s[a, a] for a in range(6)])
    got = pcclip_loss(*(torch.tensor(x) for x in (t, u1, u2)), temperature=0.5)
    assert float(got) == pytest.approx(0.5 * (row + col), rel=1e-12)


def test_image_differences_normalize_before_subtracting():
    u1 = torch.tensor([[10.0, 0.0]], dtype=torch.float64)
    u2 = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    d = image_differences(u1, u2)
    assert torch.allclose(d, torch.tensor([[1.0, -1.0]], dtype=torch.float64) / math.sqrt(2))
    # the unnormalized difference (10, -1) would point elsewhere
    assert not torch.allclose(d, torch.nn.functional.normalize(u1 - u2, dim=-1))


def test_identical_images_in_a_pair_are_an_error():
    u = torch.randn(4, 8)
    u2 = u.clone()
    u2[:2] = torch.randn(2, 8)
    with pytest.raises(ValueError, match=r"pairs \[2, 3\].*identical"):
        image_differences(u, u2)
    with pytest.raises(ValueError, match="identical"):
        pcclip_loss(torch.randn(4, 8), u, u * 2.0)  # same direction: identical after normalization


def test_mse_variant_by_hand():
    rng = np.random.default_rng(1)
    t, u1, u2 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    expected = np.mean((unit(t) - (unit(u1) - unit(u2))) ** 2)
    assert float(pcclip_mse_loss(*(torch.tensor(x) for x in (t, u1, u2)))) == pytest.approx(expected, rel=1e-12)


def test_difference_accuracy_flips_with_the_order_of_the_pair():
    t, u1, u2 = torch.randn(50, 6), torch.randn(50, 6), torch.randn(50, 6)
    fwd, rev = difference_correct(t, u1, u2), difference_correct(t, u2, u1)
    assert (fwd != rev).all()
    cos = (unit(t.numpy()) * unit(unit(u1.numpy()) - unit(u2.numpy()))).sum(-1)
    assert (fwd == (cos > 0)).all()


def test_comparative_prompting_matches_the_direct_formula():
    rng = np.random.default_rng(2)
    t = rng.normal(size=(4, 5))
    c = {("a", "b"): rng.normal(size=5), ("c", "b"): rng.normal(size=5), ("b", "d"): rng.normal(size=5)}
    alpha = 0.7
    tn = unit(t)
    expected = tn.copy()
    tb = np.mean([tn[0] - unit(c[("a", "b")]), tn[2] - unit(c[("c", "b")])], axis=0)
    expected[1] = unit(alpha * tn[1] + (1 - alpha) * tb)
    expected[3] = unit(alpha * tn[3] + (1 - alpha) * (tn[1] - unit(c[("b", "d")])))
    got = comparative_prompting(torch.tensor(t), ["a", "b", "c", "d"], {k: torch.tensor(v) for k, v in c.items()},
                                alpha)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(got[[0, 2]].numpy(), tn[[0, 2]], atol=1e-12)  # no comparison into a, c: unchanged
    # alpha = 1 leaves every class as it was
    same = comparative_prompting(torch.tensor(t), ["a", "b", "c", "d"], {k: torch.tensor(v) for k, v in c.items()}, 1)
    np.testing.assert_allclose(same.numpy(), tn, atol=1e-12)


def test_comparative_prompting_errors():
    t = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        comparative_prompting(t, ["a", "b"], {}, 1.5)
    with pytest.raises(ValueError, match="unknown class 'z'"):
        comparative_prompting(t, ["a", "b"], {("a", "z"): torch.randn(3)}, 0.9)
    with pytest.raises(ValueError, match="itself"):
        comparative_prompting(t, ["a", "b"], {("a", "a"): torch.randn(3)}, 0.9)


def test_direction_distance_closed_forms():
    ti, tj = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    along = torch.tensor([[1.0, -1.0]])
    assert float(direction_distance(ti, tj, along)) == pytest.approx(0, abs=1e-7)
    assert float(direction_distance(ti, tj, -along)) == pytest.approx(2, abs=1e-7)
    assert float(direction_distance(ti, tj, torch.tensor([[1.0, 1.0]]))) == pytest.approx(1, abs=1e-7)


def test_edit_and_nearest():
    u = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[0.0, 5.0]])
    np.testing.assert_allclose(edit_embedding(u, c, 1.0).numpy(), [[2 ** -0.5, 2 ** -0.5]], atol=1e-7)
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.9], [0.0, 1.0]])
    assert nearest(edit_embedding(u, c, 1.0), gallery).tolist() == [1]
    assert nearest(u, gallery, exclude=torch.tensor([0])).tolist() == [1]


def test_weight_average():
    a, b = {"w": torch.ones(2)}, {"w": torch.zeros(2)}
    assert torch.allclose(weight_average(a, b, 0.25)["w"], torch.full((2,), 0.25))
    with pytest.raises(ValueError):
        weight_average(a, {"v": torch.zeros(2)}, 0.5)


def test_tokenizer_has_distinct_specials_and_never_truncates(clip):
    tok = clip.tokenizer
    assert len({tok.bos_id, tok.eos_id, tok.pad_id}) == 3
    ids = tok(["three small red circles"])
    assert ids.shape == (1, 24) and ids[0, 0] == tok.bos_id
    n = tok.n_tokens("three small red circles")
    assert ids[0, n - 1] == tok.eos_id and (ids[0, n:] == tok.pad_id).all()
    with pytest.raises(ValueError, match="over the context of 24"):
        tok(["three small red circles " * 10])


def test_text_embedding_pools_at_eos_so_padding_is_ignored(clip):
    ids = clip.tokenizer(["one huge blue square"])
    n = clip.tokenizer.n_tokens("one huge blue square")
    other = ids.clone()
    other[0, n:] = clip.tokenizer.bos_id  # change everything after EOS
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_ids(ids), clip.encode_ids(other))
        changed = ids.clone()
        changed[0, 1] = clip.tokenizer.pad_id  # change a token before EOS: the embedding moves
        assert not torch.allclose(clip.encode_ids(ids), clip.encode_ids(changed))


def test_image_checks(clip):
    good = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
    assert clip.encode_images(good).shape == (2, 16)
    for bad, match in [(good[:, :2], "shape"), ((good * 255).astype(np.uint8), "floats"),
                       (good * 2, r"\[0, 1\]"), (good[0], "shape")]:
        with pytest.raises(ValueError, match=match):
            clip.encode_images(bad)


def test_pcclip_finetuning_moves_only_the_text_transformer_and_lowers_the_loss(clip, one_torch_thread):
    p = 32
    u1 = torch.randn(p, 16)
    words = ["bigger", "smaller", "more", "fewer"]
    fwd = [f"the first has {words[i % 4]} shapes" for i in range(p)]
    rev = [f"the first has {words[(i % 4) ^ 1]} shapes" for i in range(p)]
    # make the target learnable: the image difference depends on the word
    dirs = torch.randn(4, 16)
    u2 = u1 - dirs[torch.arange(p) % 4]
    caps = [TEXTS[i % 4] for i in range(2 * p)]
    data = FinetuneData(u1, u2, fwd, rev, caps, [[c] for c in caps])
    before = {k: v.clone() for k, v in clip.model.state_dict().items()}
    losses = finetune_text_tower(clip, "PC-CLIP", data, steps=60, batch=16, lr=3e-3, lr_decay=1.0)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1
    after = clip.model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("transformer.") for k in moved), sorted(moved)[:5]
    assert not any(p.requires_grad for p in clip.model.parameters())
    with pytest.raises(ValueError, match="unknown arm"):
        finetune_text_tower(clip, "LoRA", data, steps=1, batch=4, lr=1e-3)
    clip.model.load_state_dict(before)


def test_config_errors():
    chapter = get_chapter("pcclip")
    with pytest.raises(ConfigError, match="prompt_alpha must lie in"):
        chapter.config("cpu", {"prompt_alpha": 1.5})
    with pytest.raises(ConfigError, match="clip_checkpoint"):
        chapter.config("cpu", {"clip_model": "ViT-L-14"})
    with pytest.raises(ConfigError, match="'/no/such.bin' is not a file"):
        chapter.config("full", {"clip_checkpoint": "/no/such.bin"})
    with pytest.raises(ConfigError, match="valid parameters"):
        chapter.config("cpu", {"no_such": 1})
    with pytest.raises(ConfigError, match="multiple of 8"):
        chapter.config("cpu", {"image_size": 30})


def test_missing_open_clip_checkpoint_is_one_clear_error(tmp_path):
    from reprobook.models import ModelUnavailable
    from reprobook.models.clip import load_open_clip

    with pytest.raises(ModelUnavailable, match="not on this machine"):
        load_open_clip("ViT-L-14", tmp_path / "missing.bin")
    with pytest.raises(ModelUnavailable, match="not on this machine"):
        load_open_clip("ViT-L-14", None)


def test_reference_filter_for_llm_comparatives():
    from reprobook.pcclip.long import clean_comparative, first_sentence

    long_enough = "The first picture has three red squares while the second has five of them."
    assert clean_comparative(long_enough) == long_enough
    assert clean_comparative("#1: " + long_enough + "\n\nQ: what else?") == long_enough  # cut and stripped
    assert clean_comparative(long_enough + " I hope this helps!") == long_enough
    assert clean_comparative("The first   picture\thas\nmore shapes than the second one, clearly so.") == (
        "The first picture has more shapes than the second one, clearly so.")
    assert clean_comparative("**" + long_enough) is None  # markup: dropped
    assert clean_comparative(long_enough.replace("red", "rød")) is None  # non-ASCII: dropped
    assert clean_comparative("The first is bigger.") is None  # shorter than 60 characters
    assert clean_comparative("The first is bigger.", min_chars=10) == "The first is bigger."
    assert first_sentence("The first is bigger. The second is red.") == "The first is bigger."
    assert first_sentence(None) is None and first_sentence("no stop") == "no stop"


def test_difference_accuracy_equals_a_pair_by_pair_loop():
    from reprobook.pcclip import experiments as ex
    from reprobook.world import comparative, sample_scenes

    rng = np.random.default_rng(0)
    scenes = sample_scenes(12, rng)
    u = torch.randn(12, 8, dtype=torch.float64)
    vectors = {}

    def embed(texts):  # any fixed text -> vector map will do
        return torch.stack([vectors.setdefault(t, torch.randn(8, dtype=torch.float64)) for t in texts])

    ev = ex.EvalSet(scenes, u)
    got = ex.difference_accuracy(None, ev, embed=embed)
    for attribute in ex.DIFF_ATTRIBUTES:
        hits = []
        for i in range(12):
            for j in range(i + 1, 12):
                if getattr(scenes, attribute)[i] == getattr(scenes, attribute)[j]:
                    continue
                t = embed(comparative(scenes[[i]], scenes[[j]], (attribute,)))[0]
                d = unit(unit(u[i].numpy()) - unit(u[j].numpy()))
                hits.append(float(t.numpy() @ d) > 0)
        assert got[attribute] == pytest.approx(np.mean(hits), abs=1e-12)


def test_paired_verdict_and_confused_pairs():
    from reprobook.claims import paired_verdict
    from reprobook.pcclip.experiments import most_confused_pairs

    assert paired_verdict([0.10, 0.12, 0.11, 0.09])[2] is True
    assert paired_verdict([-0.10, -0.12, -0.11, -0.09])[2] is False
    assert paired_verdict([0.10, -0.12, 0.11, -0.09])[2] == "inconclusive"
    assert paired_verdict([0.5])[2] == "inconclusive"  # one replicate: no interval
    m = np.array([[5, 3, 0], [1, 5, 4], [0, 0, 5]])
    assert most_confused_pairs(m, 2) == [(0, 1), (1, 2)]


def test_edit_gallery_targets_are_the_query_with_a_larger_value(clip):
    from reprobook.pcclip import experiments as ex
    from reprobook.pcclip.config import Config

    cfg = Config(image_size=16)
    eg = ex.edit_gallery(clip, cfg, 0, "val", "size", 30)
    m = len(eg.queries)
    assert len(eg.gallery) == 5 * m and eg.u_gallery.shape[0] == 5 * m
    target = eg.gallery[eg.target]
    assert (target.size > eg.queries.size).all()
    for a in ("shape", "colour", "count", "position", "background"):
        assert (getattr(target, a) == getattr(eg.queries, a)).all()
