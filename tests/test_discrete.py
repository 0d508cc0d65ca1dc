"""reprobook.discrete against brute force, finite differences, the model's own
full forward pass and transformers' generate."""

import math

import pytest
import torch

from reprobook.discrete import (PromptProblem, allowed_token_mask, gcg, gcg_proposals, greedy_reproduces,
                                mean_cross_entropy, mini_prompt, random_free_tokens, random_search,
                                sample_candidates)
from reprobook.discrete import miniprompt as miniprompt_module
from reprobook.models import tiny_llama, train_causal_lm

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = 24
PROMPT = [3, 7]  # the planted prompt
TARGET = [11, 5, 19, 2]  # what it is trained to elicit


@pytest.fixture(scope="module")
def memorizer():
    """A tiny Llama trained on one document, PROMPT + TARGET, among random filler:
    it reproduces TARGET after PROMPT."""
    gen = torch.Generator().manual_seed(0)
    filler = torch.randint(12, VOCAB, (64, 7), generator=gen)
    rows = torch.cat([torch.tensor([PROMPT + TARGET + [0]]).repeat(64, 1), filler])
    model = tiny_llama(VOCAB, d_model=32, n_layers=2, n_heads=2, context=16, seed=0)
    train_causal_lm(model, rows, epochs=30, batch_size=32, lr=3e-3, warmup=5, generator=gen)
    assert greedy_reproduces(model, PROMPT, TARGET)
    return model


def brute_force(problem, n_free):
    """Loss and exact match of every prompt of n_free allowed tokens."""
    ids = problem.allowed_ids
    grid = torch.cartesian_prod(*[ids] * n_free).view(-1, n_free)
    loss, exact = problem.evaluate(grid)
    return grid, loss, exact


def test_target_logits_equal_the_full_forward_slice(memorizer):
    problem = PromptProblem(memorizer, TARGET, before=[1], after=[4, 6])
    free = torch.tensor([[3, 7], [9, 9]])
    seqs = problem.sequences(free)
    assert seqs[0].tolist() == [1, 3, 7, 4, 6] + TARGET
    with torch.no_grad():
        ours = problem.target_logits(input_ids=seqs)
        full = memorizer(input_ids=seqs).logits[:, -len(TARGET) - 1:-1]
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-5)


def test_target_logits_on_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=30, n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()
    problem = PromptProblem(model, [4, 5, 6])
    seqs = problem.sequences(torch.tensor([[1, 2], [7, 8]]))
    with torch.no_grad():
        torch.testing.assert_close(problem.target_logits(input_ids=seqs),
                                   model(input_ids=seqs).logits[:, -4:-1], rtol=1e-5, atol=1e-5)


def test_mean_cross_entropy_by_hand():
    logits = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 4, 2])
    expect = [-sum(torch.log_softmax(logits[b, i], -1)[target[i]] for i in range(3)) / 3 for b in range(2)]
    torch.testing.assert_close(mean_cross_entropy(logits, target), torch.stack(expect))


def test_one_hot_gradient_matches_finite_differences():
    # GPT-2 in float64 end to end (Llama's RMSNorm computes in float32 whatever the dtype, too noisy for FD)
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                       attn_pdrop=0, embd_pdrop=0, resid_pdrop=0)).double().eval()
    problem = PromptProblem(model, TARGET, before=[1], after=[2])
    free = torch.tensor([8, 13, 21])
    grad, loss = problem.one_hot_gradient(free)
    weight = problem.embedding.weight

    def loss_at(one_hot):
        embeds = torch.cat([problem.embedding(problem.before), one_hot @ weight, problem.embedding(problem.after),
                            problem.embedding(problem.target)])[None]
        with torch.no_grad():
            return float(problem.loss(problem.target_logits(inputs_embeds=embeds), problem.target)[0])

    base = torch.nn.functional.one_hot(free, VOCAB).double()
    assert loss == pytest.approx(loss_at(base), rel=1e-10)
    eps = 1e-6
    for j, v in [(0, 8), (0, 2), (1, 17), (2, 21), (2, 0)]:
        step = torch.zeros_like(base)
        step[j, v] = eps
        fd = (loss_at(base + step) - loss_at(base - step)) / (2 * eps)
        assert grad[j, v].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_gcg_finds_the_brute_force_optimum(memorizer):
    allowed = torch.zeros(VOCAB, dtype=torch.bool)
    allowed[1:12] = True  # 11 tokens, 121 two-token prompts
    problem = PromptProblem(memorizer, TARGET, allowed=allowed)
    grid, loss, exact = brute_force(problem, 2)
    assert exact.any(), "the planted prompt must be an exact match"
    winners = {tuple(g) for g in grid[exact].tolist()}
    for s in range(3):
        gen = torch.Generator().manual_seed(s)
        res = gcg(problem, random_free_tokens(problem, 2, gen), 20, top_k=11, batch_size=16, generator=gen)
        assert res.success and tuple(res.free.tolist()) in winners
        assert greedy_reproduces(memorizer, res.free, TARGET)


def test_gcg_keeps_the_best_prompt_and_random_search_runs(memorizer):
    problem = PromptProblem(memorizer, [20, 21, 22, 23, 20, 21])  # never seen: no exact match expected
    gen = torch.Generator().manual_seed(0)
    init = random_free_tokens(problem, 3, gen)
    init_loss = float(problem.evaluate(init[None])[0][0])
    for res in (gcg(problem, init, 8, top_k=5, batch_size=8, generator=gen),
                random_search(problem, init, 8, batch_size=8, generator=gen)):
        assert not res.success and res.steps == 8 and res.candidates == 1 + 8 * 8
        assert res.loss == pytest.approx(min([init_loss, *res.losses]))
        assert float(problem.evaluate(res.free[None])[0][0]) == pytest.approx(res.loss, rel=1e-5)


def test_exact_match_agrees_with_generate(memorizer):
    problem = PromptProblem(memorizer, TARGET)
    gen = torch.Generator().manual_seed(2)
    prompts = torch.cat([torch.tensor([PROMPT]), torch.randint(VOCAB, (15, 2), generator=gen)])
    _, exact = problem.evaluate(prompts)
    assert exact[0]
    assert exact.tolist() == [greedy_reproduces(memorizer, p, TARGET) for p in prompts]


def test_candidates_swap_exactly_one_position_from_the_proposals():
    gen = torch.Generator().manual_seed(0)
    current = torch.tensor([1, 2, 3, 4])
    proposals = torch.tensor([[10, 11], [12, 13], [14, 15], [16, 17]])
    cands = sample_candidates(current, proposals, torch.arange(20), 200, gen)
    diff = cands != current
    assert (diff.sum(1) <= 1).all() and diff.any()
    for row, d in zip(cands, diff):
        if d.any():
            j = int(d.nonzero()[0, 0])
            assert int(row[j]) in proposals[j].tolist()
    allowed_ids = torch.tensor([5, 6])
    rand = sample_candidates(current, None, allowed_ids, 100, gen)
    changed = rand[rand != current]
    assert set(changed.tolist()) <= {5, 6}


def test_proposals_never_include_disallowed_tokens():
    grad = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    allowed = torch.tensor([True, False] * 5)
    props = gcg_proposals(grad, allowed, top_k=4)
    assert props.shape == (3, 4) and (props % 2 == 0).all()
    for j in range(3):  # the most negative gradients among the allowed ids
        expect = sorted(range(0, 10, 2), key=lambda v: float(grad[j, v]))[:4]
        assert sorted(props[j].tolist()) == sorted(expect)


def test_allowed_mask_excludes_special_and_non_ascii_tokens():
    from reprobook.models import train_bpe_tokenizer

    tok = train_bpe_tokenizer(["héllo wörld, plain text here"] * 20 + ["more ascii words"] * 20, vocab_size=300)
    mask = allowed_token_mask(tok)
    assert not mask[tok.eos_token_id]
    for i in range(len(tok)):
        text = tok.decode([i])
        if mask[i]:
            assert text.isascii() and text.isprintable()
    assert allowed_token_mask(tok, ascii_only=False).sum() > mask.sum()


class FakeSearch:
    """Stands in for GCG in MiniPrompt: succeeds iff the prompt has at least ``threshold`` tokens."""

    def __init__(self, threshold):
        self.threshold, self.calls = threshold, []

    def __call__(self, problem, init, num_steps, **kwargs):
        self.calls.append((init.numel(), num_steps))
        from reprobook.discrete import SearchResult

        ok = init.numel() >= self.threshold
        return SearchResult(init, 0.0 if ok else 1.0, ok, 1 if ok else num_steps, 1)


@pytest.mark.parametrize("threshold, calls, found", [
    (3, [(5, 10), (4, 10), (3, 10), (2, 10)], 3),  # successes step down, a failure ends it (2 + 5 >= 3)
    (8, [(5, 10), (10, 12), (9, 12), (8, 12), (7, 12)], 8),  # a failure jumps up 5 and grows the steps 1.2x
    (99, [(5, 10), (10, 12), (15, 15), (20, 18)], None),  # never: stops when n + 5 passes the cap
])
def test_miniprompt_follows_the_reference_schedule(monkeypatch, threshold, calls, found):
    fake = FakeSearch(threshold)
    monkeypatch.setattr(miniprompt_module, "gcg", fake)
    problem = PromptProblem(tiny_llama(VOCAB, d_model=16, n_layers=1, n_heads=2, context=64), TARGET)
    res = mini_prompt(problem, n_start=5, cap=20, num_steps=10)
    assert fake.calls == calls
    assert res.n_free == found
    assert res.acr == pytest.approx(len(TARGET) / (found or 20))
    assert res.memorized == (found is not None and len(TARGET) / found > 1)


def test_miniprompt_on_the_memorizer(memorizer):
    allowed = torch.zeros(VOCAB, dtype=torch.bool)
    allowed[1:12] = True
    res = mini_prompt(PromptProblem(memorizer, TARGET, allowed=allowed), n_start=2, cap=4, num_steps=30,
                      top_k=11, batch_size=16)
    assert res.success and res.n_free <= 2 and res.acr >= 2 and res.memorized
    assert greedy_reproduces(memorizer, res.free, TARGET)


def test_bad_input_is_a_clear_error(memorizer):
    with pytest.raises(ValueError, match="target is empty"):
        PromptProblem(memorizer, [])
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        PromptProblem(memorizer, [VOCAB + 3])
    with pytest.raises(ValueError, match="longer than the model's context of 16"):
        gcg(PromptProblem(memorizer, [1] * 30), torch.tensor([1, 2, 3]), 1)
    with pytest.raises(ValueError, match="at least one True"):
        PromptProblem(memorizer, [1], allowed=torch.zeros(VOCAB, dtype=torch.bool))
    with pytest.raises(ValueError, match="not allowed"):
        allowed = torch.ones(VOCAB, dtype=torch.bool)
        allowed[3] = False
        gcg(PromptProblem(memorizer, [1], allowed=allowed), torch.tensor([3]), 1)
    res = mini_prompt(PromptProblem(memorizer, TARGET), n_start=5, num_steps=1)  # 5|y| = 20 > the 12 that fit
    assert res.cap == 16 - len(TARGET)
    with pytest.raises(ValueError, match="longer than the model's context"):
        mini_prompt(PromptProblem(memorizer, [1] * 16))
    with pytest.raises(ValueError, match="optimizer must be"):
        mini_prompt(PromptProblem(memorizer, [1]), optimizer="beam")
    with pytest.raises(ValueError, match="n_start <= cap"):
        mini_prompt(PromptProblem(memorizer, [1, 2]), n_start=5, cap=3)
