"""reprobook.acr: config errors, the corpus and canaries, the string sets, the
summaries against hand computation, and the canary study end to end at toy size."""

import numpy as np
import pandas as pd
import pytest
import torch

from reprobook.acr import experiments as ex
from reprobook.acr.corpus import Canary, common_words, make_canaries, plant
from reprobook.acr.strings import CATEGORIES, random_token_strings, study_strings
from reprobook.chapters import get_chapter
from reprobook.models.corpus import python_docs_paragraphs
from reprobook.presets import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("overrides, message", [
    ({"copies": []}, "copies"),
    ({"d_model": 30, "n_heads": 4}, "divisible"),
    ({"cap_factor": 0.5}, "cap_factor"),
    ({"real_mode": "json"}, "real_mode must be one of plain, chat"),
    ({"unlearn_checkpoints": [5, 1]}, "increasing"),
    ({"top_k": 0}, "top_k"),
    ({"unlearn_on": "prefix"}, "unlearn_on"),
    ({"screen_fraction": 1.0}, "screen_fraction"),
])
def test_bad_parameters_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        get_chapter("acr").config("cpu", overrides)


def test_presets_resolve():
    chapter = get_chapter("acr")
    assert not chapter.config("cpu").study
    assert chapter.config("long").study and chapter.config("long").real_model == "smollm2"
    assert chapter.config("full").study_cap_factor == 5.0


def test_canaries_are_planted_exactly_k_times():
    paragraphs = python_docs_paragraphs()
    assert len(paragraphs) > 1000 and all(len(p) >= 40 for p in paragraphs)
    words = common_words(paragraphs, 100)
    assert len(words) == 100 and "the" in words
    rng = np.random.default_rng(0)
    canaries = make_canaries(words, (1, 4), per_count=2, n_heldout=3, n_words=5, rng=rng)
    assert [c.copies for c in canaries] == [1, 1, 4, 4, 0, 0, 0]
    more = make_canaries(words, (1, 4), per_count=2, n_heldout=1, n_words=5, rng=rng, per_top=3)
    assert [c.copies for c in more] == [1, 1, 4, 4, 4, 0]
    assert len({c.text for c in canaries}) == 7 and all(len(c.text.split()) == 5 for c in canaries)
    docs = plant(paragraphs[:50], canaries, rng)
    assert len(docs) == 50 + 10
    for c in canaries:
        assert docs.count(c.text) == c.copies
    with pytest.raises(ValueError):
        make_canaries(words[:3], (1,), 1, 0, 5, rng)


def test_string_sets():
    allowed = torch.zeros(100, dtype=torch.bool)
    allowed[10:20] = True
    a = random_token_strings(allowed, 3, 7, seed=1)
    assert a == random_token_strings(allowed, 3, 7, seed=1) and a != random_token_strings(allowed, 3, 7, seed=2)
    assert all(len(s) == 7 and all(10 <= t < 20 for t in s) for s in a)

    class Tok:
        def encode(self, text, add_special_tokens=True):
            assert not add_special_tokens
            return [ord(c) % 100 for c in text]

    pairs = study_strings(Tok(), allowed, 2, seed=0)
    assert [c for c, _ in pairs] == [c for c in CATEGORIES for _ in range(2)]
    with pytest.raises(ValueError, match="only"):
        study_strings(Tok(), allowed, 50, seed=0)


def test_summary_by_hand():
    rows = [dict(setting="plain", category="q", completes=True, acr=2.0, success=True, memorized=True),
            dict(setting="plain", category="q", completes=False, acr=1.0, success=False, memorized=False),
            dict(setting="plain", category="r", completes=False, acr=1.0, success=False, memorized=False)]
    s = ex.summarize_study(rows)
    q = s[s.category == "q"].iloc[0]
    assert q.strings == 2 and q.completes == 0.5 and q["mean ACR (all, failures at cap)"] == 1.5
    assert q["mean ACR (successes)"] == 2.0 and q["memorized %"] == 50
    assert np.isnan(s[s.category == "r"].iloc[0]["mean ACR (successes)"])


def test_canary_study_and_unlearning_end_to_end(monkeypatch):
    cfg = get_chapter("acr").config("cpu", dict(vocab_size=300, d_model=32, n_layers=1, n_heads=2, context=48,
                                                 epochs=1, batch_size=32, copies=[2], canaries_per_count=1,
                                                 top_canaries=1,
                                                 n_heldout=1, n_random=1, num_steps=2, top_k=8, search_batch=8,
                                                 unlearn_checkpoints=[0, 1]))
    tiny = ex.train_tiny(cfg, seed=0)
    assert [c.copies for c in tiny.canaries] == [2, 0] and len(tiny.random_ids) == 1
    assert not tiny.allowed[tiny.eos_id]
    study = ex.canary_study(tiny, cfg, seed=0)
    assert list(study.kind) == ["planted x2", "held out", "random tokens"]
    for _, row in study.iterrows():
        assert row.cap == row.target_len  # cap_factor 1
        assert row.acr == pytest.approx(row.target_len / (row.free_tokens if row.success else row.cap))
        assert row.verified in (None, True) or pd.isna(row.verified)
    unlearn = ex.unlearning_study(tiny, cfg, [0], seed=0)
    assert list(unlearn.step) == [0, 1]
    before = unlearn.retain_loss.iloc[0]
    assert unlearn.retain_loss.iloc[1] != before  # the ascent step changed the model ...
    assert ex.unlearning_study(tiny, cfg, [0], seed=0).retain_loss.iloc[0] == before  # ... a copy of it

    # the long preset's code path (screen, both filters), on the tiny model in place of SmolLM2
    monkeypatch.setattr(ex, "load_causal_lm", lambda name, device="cpu": (tiny.model, tiny.tokenizer))
    study_cfg = get_chapter("acr").config("cpu", dict(study_per_category=1, study_steps=1, real_batch=4,
                                                       real_top_k=4, n_start=1))
    out = ex.category_study(study_cfg, seed=0)
    rows = pd.DataFrame(out["rows"])
    assert len(out["screen"]) == len(ex.screen_items())
    assert list(rows["free tokens from"]) == ["ASCII filter"] * 4 + ["whole vocabulary"] * 4
    assert list(rows.category[:4]) == list(CATEGORIES)
    summary = ex.summarize_study(out["rows"])
    assert len(summary) == 8 and "free tokens from" in summary


def test_wilson_and_newcombe_against_closed_forms_and_published_values():
    from reprobook.acr.rates import rate_difference, wilson

    z = 1.959963984540054
    for n in (3, 8, 22):  # Wilson at 0 successes: [0, z^2 / (n + z^2)]
        assert wilson(0, n) == pytest.approx((0.0, z * z / (n + z * z)), abs=1e-12)
        assert wilson(n, n) == pytest.approx((n / (n + z * z), 1.0), abs=1e-12)
    # Newcombe (1998), Table II example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339.
    d, lo, hi = rate_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and (lo, hi) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    with pytest.raises(ValueError):
        wilson(4, 3)
    with pytest.raises(ValueError):
        rate_difference(1, 0, 0, 3)


def test_verdict_rules():
    from reprobook.acr.rates import greater_verdict, none_verdict, some_verdict
    from reprobook.claims import INCONCLUSIVE

    assert greater_verdict(8, 8, 0, 8, 0.25)[3] is True
    assert greater_verdict(0, 30, 0, 30, 0.25)[3] is False  # a difference of 0.25 is ruled out
    assert greater_verdict(1, 3, 0, 3, 0.25)[3] == INCONCLUSIVE
    assert some_verdict(1, 2, 0.15)[2] is True
    assert some_verdict(0, 2, 0.15)[2] == INCONCLUSIVE  # 0 of 2 cannot rule out 15%
    assert some_verdict(0, 30, 0.15)[2] is False
    assert none_verdict(1, 6, 8, 8)[0] is False
    assert none_verdict(0, 6, 8, 8)[0] is True  # none, and the positive control was found
    assert none_verdict(0, 4, 0, 2)[0] == INCONCLUSIVE  # none anywhere: the search may be blind


def test_first_forgotten_by_hand():
    rows = [dict(step=s, canary=c, completes=comp, memorized=mem, acr=a) for s, c, comp, mem, a in [
        (0, 1, True, True, 3.0), (1, 1, True, True, 3.0), (2, 1, False, True, 2.0),
        (0, 2, True, True, 2.0), (1, 2, False, False, 1.0), (2, 2, False, False, 1.0),
        (0, 3, True, False, 1.0), (1, 3, False, False, 1.0),  # not compressible at step 0: left out
        (0, 4, True, True, 2.0), (1, 4, True, True, 2.0)]]  # still completed: left out
    gap = ex.first_forgotten(pd.DataFrame(rows))
    assert gap.values.tolist() == [[1, 2, True, 2.0], [2, 1, False, 1.0]]


def test_screen_and_preferred_strings():
    class Tok:
        def encode(self, text, add_special_tokens=True):
            return [ord(c) % 50 for c in text]

    calls = []

    def fake_completes(model, prompt, ids, k):
        calls.append(k)
        return len(ids) == 4

    orig = ex.completes
    ex.completes = fake_completes
    try:
        s = ex.screen(None, Tok(), [("q", "abcd"), ("q", "ab"), ("n", "abcdefghij")], 0.5)
    finally:
        ex.completes = orig
    assert list(s.completes) == [True, False, False] and calls == [2, 1, 5]
    allowed = torch.ones(50, dtype=torch.bool)
    from reprobook.acr.strings import FAMOUS_QUOTES

    pairs = study_strings(Tok(), allowed, 2, seed=0, prefer=[FAMOUS_QUOTES[5]])
    assert pairs[0][1] == Tok().encode(FAMOUS_QUOTES[5]) and pairs[1][1] == Tok().encode(FAMOUS_QUOTES[0])
