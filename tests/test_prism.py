"""Chapter 10 (PRISM): the loop's bookkeeping against fakes whose answers are known, the JSON
extraction, the generators, the white-box objective against finite differences and an input_ids
forward, the readability models against hand counts, and the errors of bad input."""

import math
import random
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reprobook.chapters import get_chapter
from reprobook.presets import ConfigError
from reprobook.prism import Candidate, Engineer, Task, extract_prompt, prism, reevaluate
from reprobook.prism import experiments as ex
from reprobook.t2i import (
    RendererGenerator,
    parse_known_words,
    train_one_step_generator,
    training_captions,
)
from reprobook.world import (
    COLOURS,
    SHAPES,
    VALUES,
    read_attributes,
    render,
    sample_scenes,
)

SIZE = 32


@pytest.fixture(scope="module")
def g1():
    generator, _ = train_one_step_generator(600, SIZE, steps=60, show_progress=False)
    return generator


def _object_task(seed=0, m=3, colour="red", shape="square", size="large"):
    rng = np.random.default_rng(seed)
    refs = render(sample_scenes(m, rng, count=1, colour=colour, shape=shape, size=size), SIZE)
    return Task("concept", "object", torch.from_numpy(refs.astype(np.float32)), ex.OBJECT_ATTRIBUTES)


class ScriptedEngineer:
    """Answers the i-th prompt it is asked for with ``answers[i % len]``; records what it saw."""

    def __init__(self, answers):
        self.answers, self.seen, self.asked = answers, [], 0

    def propose(self, conversations, seed):
        self.seen.append([list(c) for c in conversations])
        out = []
        for _ in conversations:
            out.append(self.answers[self.asked % len(self.answers)])
            self.asked += 1
        return out


class CountingGenerator:
    def __init__(self):
        self.inner, self.calls, self.texts = RendererGenerator(SIZE), 0, []

    def generate(self, prompts, seeds):
        self.calls += len(prompts)
        self.texts += list(prompts)
        return self.inner.generate(prompts, seeds)


def test_extract_prompt_survives_quotes_and_braces_and_rejects_non_prompts():
    assert extract_prompt('a "red" circle"}') == ('a "red" circle', "ok")
    assert extract_prompt('a {red} circle, flat"}') == ("a {red} circle, flat", "ok")
    assert extract_prompt('a red circle.", "junk": 1}') == ("a red circle.", "ok")
    assert extract_prompt('{"prompt": "two blue squares"} and more') == ("two blue squares", "ok")
    assert extract_prompt('P"}') == (None, "placeholder")
    assert extract_prompt('circle"}') == (None, "one word")
    assert extract_prompt('"}') == (None, "empty")
    assert extract_prompt("a red circle on a") == (None, "over-length")  # no closing quote: cut by max tokens
    assert extract_prompt(" ".join(["red"] * 50) + '"}', max_words=40) == (None, "over-length")


def test_engineer_retries_only_failed_rows_and_counts_every_status():
    class Tok:
        chat_template = "x"
        pad_token_id, eos_token_id = 0, 0

    class Model(torch.nn.Module):
        pass

    script = [['a red circle"}', 'P"}', 'circle"}'], ['huh', 'two green squares"}'], ['still"}']]

    class Scripted(Engineer):
        def sample_raw(self, conversations, seed):
            self.calls_seen = getattr(self, "calls_seen", []) + [len(conversations)]
            return script[len(self.calls_seen) - 1][: len(conversations)]

    eng = Scripted(Model(), Tok(), "system", retries=2)
    out = eng.propose([[{"role": "user", "content": str(i)}] for i in range(3)], seed=0)
    assert out == ["a red circle", None, "two green squares"]
    assert eng.calls_seen == [3, 2, 1]  # only the failed rows are resampled, at most `retries` times
    assert eng.log.statuses == Counter({"ok": 2, "placeholder": 1, "one word": 2, "over-length": 1})
    with pytest.raises(ValueError, match="system prompt"):
        Engineer(Model(), Tok(), "  ")


def test_loop_costs_history_and_that_the_reference_shown_is_the_one_judged():
    task = _object_task()
    judged = []

    def judge(images, references, attributes):
        judged.append(references.clone())
        return ex.attribute_judge(images, references, attributes)

    shown = []

    def describe(images, rng):
        shown.append(images.clone())
        return [f"image {float(images.sum()):.3f}"]

    engineer = ScriptedEngineer(["a large red square", "a small blue circle", "a red square on the left"])
    generator = CountingGenerator()
    n, k, c, keep = 3, 4, 2, 2
    (run,) = prism([task], engineer, generator, judge, describe, n_streams=n, n_iterations=k, top_c=c, seed=3,
                   keep=keep, show_progress=False)
    assert len(run.candidates) == n * k and run.engineer_rows == n * k
    assert generator.calls == run.generator_calls == n * k + c * len(task.references)  # re-eval: one per reference
    # every conversation: at most `keep` exchanges plus the new user turn, ending with a user turn
    for batch in engineer.seen:
        for conv in batch:
            assert conv[-1]["role"] == "user" and len(conv) <= 2 * keep + 1
    # the first turn of each stream shows its reference; the loop judges against that same image
    first_shown = shown[:n]
    loop_judged = torch.cat(judged[:k])
    for cand, ref in zip(run.candidates, loop_judged):
        assert torch.equal(ref, task.references[cand.reference])
    for s in range(n):
        refs = {cand.reference for cand in run.candidates if cand.stream == s}
        assert len(refs) == 1 and torch.equal(first_shown[s][0], task.references[refs.pop()])
    # objects are drawn inside a generic prefix
    assert all(any(t == p.format(a) for p in ex_prefixes() for a in engineer.answers) for t in generator.texts)


def ex_prefixes():
    from reprobook.prism.loop import GENERIC_PREFIXES

    return GENERIC_PREFIXES


def test_best_of_is_k_one_and_runs_are_seeded_without_touching_global_state():
    task = _object_task()
    answers = ["a large red square", "a big red square", "red square", "a large green square"]
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state().clone())

    def run(seed, n, k):
        return prism([task], ScriptedEngineer(answers), CountingGenerator(), ex.attribute_judge,
                     lambda im, rng: ["x"] * len(im), n_streams=n, n_iterations=k, top_c=2, seed=seed,
                     show_progress=False)[0]

    a, b, c = run(0, 2, 3), run(0, 2, 3), run(1, 2, 3)
    assert [x.score for x in a.candidates] == [x.score for x in b.candidates] and a.prompt == b.prompt
    assert [x.reference for x in a.candidates] != [x.reference for x in c.candidates] or \
        [x.score for x in a.candidates] != [x.score for x in c.candidates]
    best_of = run(0, 6, 1)
    assert best_of.engineer_rows == a.engineer_rows == 6
    ex.check_equal_budget([a], [best_of])
    with pytest.raises(ValueError, match="unequal budgets"):
        ex.check_equal_budget([a], [run(0, 2, 1)])
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.random.get_rng_state(), state[2])


def test_reevaluation_beats_the_winners_curse_and_ties_go_to_the_shortest():
    task = _object_task(m=2)
    # loop scores: the lucky prompt has the top single draw but a wrong colour
    cands = [Candidate(0, 0, 0, "a large blue square", 10.0, 0), Candidate(0, 1, 0, "a large red square", 9.0, 0),
             Candidate(0, 2, 0, "one large red square here", 9.0, 0), Candidate(0, 3, 0, "a tiny red square", 1.0, 0)]
    gen = CountingGenerator()
    best, calls = reevaluate(task, cands, gen, ex.attribute_judge, 3, np.random.default_rng(0))
    assert calls == gen.calls == 3 * 2
    assert best.prompt == "a large red square"  # re-scored 10 like the longer one: the shorter wins
    assert cands[0].reeval < 10 and cands[3].reeval is None  # only the top 3 are re-scored


def test_loop_rejects_bad_input():
    task = _object_task()
    args = dict(engineer=ScriptedEngineer(["a red square"]), generator=CountingGenerator(),
                judge=ex.attribute_judge, describe=lambda im, rng: ["x"] * len(im), seed=0, show_progress=False)
    for kw, match in [(dict(n_streams=0, n_iterations=1, top_c=1), "n_streams"),
                      (dict(n_streams=1, n_iterations=0, top_c=1), "n_iterations"),
                      (dict(n_streams=1, n_iterations=1, top_c=0), "top_c"),
                      (dict(n_streams=1, n_iterations=2, top_c=3), "cannot exceed")]:
        with pytest.raises(ValueError, match=match):
            prism([task], **args, **kw)
    with pytest.raises(ValueError, match="no tasks"):
        prism([], **args, n_streams=1, n_iterations=1, top_c=1)
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        prism([task], **{**args, "judge": lambda i, r, a: np.full(len(i), 10.5)}, n_streams=1, n_iterations=1,
              top_c=1)
    refs = task.references
    for bad, match in [(refs[:0], "no references"), (refs[:, 0], "shape"), (refs * 255, r"\[0, 1\]"),
                       (refs.to(torch.uint8), r"\[0, 1\]")]:
        with pytest.raises(ValueError, match=match):
            Task("bad", "object", bad, ex.OBJECT_ATTRIBUTES)
    with pytest.raises(ValueError, match="one reference"):
        Task("bad", "scene", refs, ex.OBJECT_ATTRIBUTES)
    with pytest.raises(ValueError, match="unknown task kind"):
        Task("bad", "video", refs, ex.OBJECT_ATTRIBUTES)


def test_attribute_judge_counts_agreeing_attributes():
    rng = np.random.default_rng(1)
    a = sample_scenes(1, rng, count=1, shape="circle", colour="red", size="huge", position="left", background="black")
    b = sample_scenes(1, rng, count=1, shape="circle", colour="blue", size="huge", position="left",
                      background="black")
    ia, ib = render(a, SIZE), render(b, SIZE)
    assert ex.attribute_judge(ia, ia, ex.OBJECT_ATTRIBUTES)[0] == 10
    assert ex.attribute_judge(ib, ia, ex.OBJECT_ATTRIBUTES)[0] == pytest.approx(10 * 2 / 3)
    with pytest.raises(ValueError, match="judge attributes"):
        ex.attribute_judge(ia, ia, ("smell",))


def test_renderer_generator_draws_the_words_it_knows():
    assert parse_known_words("Minimalist icon: a huge Red circle, left, on grey, red square") == {
        "size": "huge", "colour": "red", "shape": "circle", "position": "left", "background": "gray"}
    g3 = RendererGenerator(SIZE)
    images = g3.generate(["a huge red circle on the left on a white background"] * 4, [0, 1, 2, 3])
    read = read_attributes(images.numpy())
    assert (read["colour"] == COLOURS.index("red")).all() and (read["shape"] == SHAPES.index("circle")).all()
    assert (read["background"] == VALUES["background"].index("white")).all()
    assert torch.equal(g3.generate(["a red circle"], [5]), g3.generate(["x y", "a red circle"], [1, 5])[1:])
    with pytest.raises(ValueError, match="one seed per prompt"):
        g3.generate(["a"], [1, 2])
    with pytest.raises(ValueError, match="not one string"):
        g3.generate("a red circle", [1])


def test_training_captions_leave_out_attributes_and_say_the_rest():
    rng = np.random.default_rng(0)
    scenes = sample_scenes(300, rng)
    captions, said = training_captions(scenes, rng, {"size": 0.5, "position": 0.0, "background": 1.0})
    assert 0.35 < said["size"].mean() < 0.65 and said["position"].all() and not said["background"].any()
    for i, text in enumerate(captions[:50]):
        parsed = parse_known_words(text)
        assert parsed["colour"] == VALUES["colour"][scenes.colour[i]] and "background" not in parsed


def test_one_step_generator_is_seeded_per_row_and_reads_its_condition(g1):
    prompts = ["a huge red circle on the left on a white background", "a small blue square"]
    x = g1.generate(prompts, [3, 4])
    assert x.shape == (2, 3, SIZE, SIZE) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(g1.generate(prompts[1:], [4]), x[1:])  # the same image in any batch
    assert torch.equal(g1.generate_from_condition(g1.encode(prompts), [3, 4]), x)
    probs = g1.probabilities(prompts)
    for name in probs:
        assert np.allclose(probs[name].sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="conditions must have shape"):
        g1.generate_from_condition(torch.zeros(1, 5), [0])


def test_white_box_objective_matches_an_input_ids_forward_and_finite_differences(g1):
    task = _object_task()
    obj = ex.OneStepObjective(g1, task)
    free = ex.random_free_tokens(obj, 5, torch.Generator().manual_seed(0))
    loss, success = obj.evaluate(free[None])
    assert not success.any()
    # independent path: MiniLM on input ids, its sentence embedding, G1's cross-entropy by hand
    ids = torch.tensor([[obj.cls, *free.tolist(), obj.sep]])
    with torch.no_grad():
        emb = F.normalize(obj.model(input_ids=ids).last_hidden_state.mean(1), dim=-1)
        logits = g1.logits(emb)
    read = read_attributes(task.references.numpy())
    expected = sum(-F.log_softmax(logits[k], -1)[0, torch.as_tensor(read[k])].mean() for k in task.attributes)
    assert float(loss[0]) == pytest.approx(float(expected), rel=1e-4)
    # the one-hot gradient's directional derivative against central differences in embedding space
    grad, _ = obj.one_hot_gradient(free)
    w = obj.embedding_weight.detach().double()
    direction = torch.zeros_like(grad)
    direction[torch.arange(5), torch.randint(obj.vocab_size, (5,), generator=torch.Generator().manual_seed(1))] = 1
    direction[torch.arange(5), free] -= 1
    eps = 1e-2
    base = F.one_hot(free, obj.vocab_size).double()
    with torch.no_grad():
        plus = obj.loss_from_embeds(((base + eps * direction) @ w).float()[None])
        minus = obj.loss_from_embeds(((base - eps * direction) @ w).float()[None])
    assert float((grad * direction).sum()) == pytest.approx(float((plus - minus) / (2 * eps)), rel=0.05, abs=1e-3)
    text = obj.text(free)
    assert isinstance(text, str) and text


def test_textual_inversion_lowers_the_loss(g1):
    task = _object_task(colour="green", shape="triangle", size="huge")
    condition, losses = ex.textual_inversion(g1, task, steps=30)
    assert losses[-1] < losses[0] and torch.allclose(condition.norm(dim=-1), torch.ones(1))


def test_trigram_nll_matches_add_one_counts_by_hand():
    model = ex.train_trigram(40, seed=0)
    text = "a red circle on the left"
    padded = ["<s>", "<s>", *ex.words(text), "</s>", "</s>"]  # nltk pads both ends with n - 1 symbols
    vocab = len(model.vocab)
    total = 0.0
    for i in range(2, len(padded)):
        context, word = tuple(padded[i - 2: i]), padded[i]
        count = model.counts[list(context)][word]
        context_total = model.counts[list(context)].N()
        total += -math.log2((count + 1) / (context_total + vocab))
    assert ex.trigram_nll(model, text) == pytest.approx(total / (len(padded) - 2), rel=1e-9)
    assert ex.trigram_nll(model, "zebra quantum") > ex.trigram_nll(model, text)


def test_lm_nll_is_the_mean_next_token_cross_entropy():
    from reprobook.models.tiny import tiny_llama

    model = tiny_llama(50, d_model=16, n_layers=1, n_heads=2).eval()

    class Tok:
        bos_token_id, eos_token_id = 1, 2

        def encode(self, text, add_special_tokens=False):
            return [3 + (ord(ch) % 40) for ch in text]

    text = "abc d"
    ids = [1, *Tok().encode(text)]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    expected = -np.mean([float(logp[i, ids[i + 1]]) for i in range(len(ids) - 1)])
    assert ex.lm_nll(model, Tok(), text) == pytest.approx(expected, rel=1e-5)


def test_config_errors_name_what_is_valid():
    chapter = get_chapter("prism")
    with pytest.raises(ConfigError, match="one-step, renderer"):
        chapter.config("cpu", {"generator": "dall-e-3"})
    with pytest.raises(ConfigError, match="unknown judge"):
        chapter.config("cpu", {"judge": "gpt-4v"})
    with pytest.raises(ConfigError, match="top_c"):
        chapter.config("cpu", {"top_c": 13})
    with pytest.raises(ConfigError, match="at least one task"):
        chapter.config("cpu", {"n_concepts": 0, "n_scenes": 0})
    with pytest.raises(ConfigError) as err:
        chapter.config("full")
    assert all(key in str(err.value) for key in ("engineer_path", "generator_path", "transfer_path"))
    cfg = chapter.config("long")
    assert (cfg.n_streams, cfg.n_iterations, cfg.top_c) == (10, 4, 5)  # the paper's, not the demo's 5 x 2


def test_shared_system_cache_samples_exactly_what_left_padding_samples():
    """SmolLM2 itself: the system turn's keys and values computed once and shared by every row, with
    the rows' padding in the middle, give the same sampled answers as plain left padding."""
    from reprobook.models.pretrained import load_causal_lm

    model, tok = load_causal_lm("smollm2")
    conversations = [[{"role": "user", "content": "Reference image: a red circle" + " on a white background" * i}]
                     for i in range(4)]
    answers = {}
    for share in (False, True):
        eng = Engineer(model, tok, ex.SYSTEM_PROMPT, max_new_tokens=12, share_system_cache=share)
        answers[share] = eng.sample_raw(conversations, seed=3)
        assert eng.log.rows == 4 and eng.log.calls == 1
    assert answers[True] == answers[False]
    assert all(t.startswith(eng._system_prefix(torch.device("cpu"))[0]) for t in map(eng.chat_text, conversations))
    assert "You are a prompt engineer" in eng.chat_text(conversations[0])  # ours, not the template's default
