"""The objective interface of reprobook.discrete on a CLIP text-image objective: ids path ==
embeddings path, one-hot gradients against finite differences, GCG against brute force, PEZ's
projection and bookkeeping, AutoDAN (w = 0, B = |V|) against greedy exhaustive appending, and
the bigram prior against counting by hand."""

import math

import numpy as np
import pytest
import torch

from reprobook.discrete import (BigramPrior, ClipImageObjective, PromptProblem, autodan_append, clip_allowed_mask, gcg,
                                pez, project_to_vocabulary, random_search)
from reprobook.models.clip import ClipTokenizer, tiny_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LETTERS = "abcdefgh"  # the printable part of the tiny vocabulary: ids 3..10


def _tokenizer(context=8):
    return ClipTokenizer(encode=lambda s: [LETTERS.index(c) + 3 for c in s], context_length=context, bos_id=0,
                         eos_id=1, pad_id=2, decode=lambda ids: "".join(LETTERS[i - 3] for i in ids if i >= 3))


@pytest.fixture(scope="module")
def clip():
    model = tiny_clip(_tokenizer(), len(LETTERS) + 3, embed_dim=16, width=32, layers=2, heads=2, image_size=8, seed=0)
    model.model.double()
    model.mean, model.std = model.mean.double(), model.std.double()
    return model


@pytest.fixture(scope="module")
def objective(clip):
    image = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return ClipImageObjective(clip, image)


def test_allowed_mask_excludes_specials(clip):
    mask = clip_allowed_mask(clip)
    assert mask.tolist() == [False] * 3 + [True] * len(LETTERS)


def test_ids_path_equals_embeddings_path(objective):
    free = torch.tensor([[3, 4, 5], [10, 9, 8], [7, 7, 7]])
    by_ids, success = objective.evaluate(free)
    by_embeds = objective.loss_from_embeds(objective.embedding_weight[free])
    torch.testing.assert_close(by_ids, by_embeds.detach(), rtol=0, atol=1e-12)
    assert not success.any()
    # and both equal 1 - mean cosine computed from the text, through the public API
    texts = ["abc", "hgf", "eee"]
    torch.testing.assert_close(1 - objective.similarity_of_texts(texts), by_ids, rtol=0, atol=1e-12)


def test_one_hot_gradient_matches_finite_differences(objective):
    free = torch.tensor([4, 8, 6])
    grad, loss = objective.one_hot_gradient(free)
    x = torch.nn.functional.one_hot(free, objective.vocab_size).double()
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        direction = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        eps = 1e-6
        plus = objective.loss_from_embeds(((x + eps * direction) @ objective.embedding_weight)[None])
        minus = objective.loss_from_embeds(((x - eps * direction) @ objective.embedding_weight)[None])
        fd = float((plus - minus).detach()[0]) / (2 * eps)
        assert math.isclose(fd, float((grad * direction).sum()), rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(loss, float(objective.evaluate(free[None])[0][0]), abs_tol=1e-12)


def brute_force(objective, n):
    grid = torch.cartesian_prod(*[objective.allowed_ids] * n).view(-1, n)
    return grid, objective.evaluate(grid)[0]


def test_gcg_with_full_top_k_finds_the_best_single_token(objective):
    grid, loss = brute_force(objective, 1)
    res = gcg(objective, torch.tensor([3]), 1, top_k=len(LETTERS), batch_size=400)
    assert res.free.tolist() == grid[loss.argmin()].tolist()
    assert math.isclose(res.loss, float(loss.min()), abs_tol=1e-12)


def test_gcg_ends_at_a_single_swap_local_minimum(objective):
    grid, loss = brute_force(objective, 2)
    res = gcg(objective, torch.tensor([3, 3]), 6, top_k=len(LETTERS), batch_size=500)
    table = {tuple(g.tolist()): float(l) for g, l in zip(grid, loss)}
    a, b = res.free.tolist()
    neighbours = [table[(a, v)] for v in range(3, 11)] + [table[(v, b)] for v in range(3, 11)]
    assert res.loss <= min(neighbours) + 1e-12
    assert math.isclose(res.loss, table[(a, b)], abs_tol=1e-12)
    assert res.candidates == 1 + 6 * 500


def test_random_search_runs_on_the_objective(objective):
    res = random_search(objective, torch.tensor([3, 3, 3]), 5, batch_size=16)
    assert res.loss <= float(objective.evaluate(torch.tensor([[3, 3, 3]]))[0][0])
    assert math.isclose(res.loss, float(objective.evaluate(res.free[None])[0][0]), abs_tol=1e-12)


def test_projection_is_nearest_by_cosine():
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1], [10.0, 9.0]])
    soft = torch.tensor([[0.5, 0.45], [-3.0, 0.0], [0.0, 0.2]])
    assert project_to_vocabulary(soft, weight, torch.arange(4)).tolist() == [3, 2, 1]
    assert project_to_vocabulary(soft, weight, torch.tensor([0, 1])).tolist() == [0, 1, 1]


def test_pez_returns_its_best_projected_prompt_rescored(objective):
    init = torch.tensor([3, 4, 5])
    res = pez(objective, init, 30)
    assert objective.allowed[res.free].all()
    assert math.isclose(res.loss, float(objective.evaluate(res.free[None])[0][0]), abs_tol=1e-12)
    start = float(objective.evaluate(init[None])[0][0])
    assert res.loss == min([start, *res.losses])
    assert res.loss < start  # 30 steps on 8 tokens improve on a fixed start


def greedy_exhaustive(objective, n):
    prompt = []
    for _ in range(n):
        cands = torch.tensor([prompt + [v] for v in objective.allowed_ids.tolist()])
        loss = objective.evaluate(cands)[0]
        prompt = cands[loss.argmin()].tolist()
    return prompt, float(loss.min())


def test_autodan_without_prior_and_full_batch_is_greedy_exhaustive(objective):
    res = autodan_append(objective, 4, batch_size=len(LETTERS), weight=0.0)
    prompt, loss = greedy_exhaustive(objective, 4)
    assert res.free.tolist() == prompt
    assert math.isclose(res.loss, loss, abs_tol=1e-12)
    assert res.candidates == 4 * len(LETTERS)


def test_autodan_prior_picks_the_candidates(objective):
    # A prior that puts all mass on one token: with a huge weight, only that token is ever scored.
    favourite = 7
    prior = lambda prefix: torch.where(torch.arange(objective.vocab_size) == favourite, 0.0, -1e9)  # noqa: E731
    res = autodan_append(objective, 3, batch_size=1, weight=1e6, prior=prior)
    assert res.free.tolist() == [favourite] * 3
    wide = autodan_append(objective, 3, batch_size=2, weight=1.0, prior=prior, beam=2)
    assert wide.free.numel() == 3 and wide.candidates == 2 + 4 + 4


def test_autodan_on_a_language_model_problem_is_greedy_exhaustive_too():
    from reprobook.models import tiny_llama

    model = tiny_llama(16, d_model=16, n_layers=1, n_heads=2, context=12, seed=0)
    problem = PromptProblem(model, target=[5, 6])
    res = autodan_append(problem, 3, batch_size=16, weight=0.0)
    prompt, loss = greedy_exhaustive(problem, 3)
    assert res.free.tolist() == prompt
    assert math.isclose(res.loss, loss, rel_tol=1e-6)


def test_bigram_prior_counts():
    prior = BigramPrior([[1, 2, 2], [2, 1]], vocab_size=3, start_id=0, alpha=0.5)
    counts = np.array([[0, 1, 1], [0, 0, 1], [0, 1, 1]]) + 0.5
    expected = np.log(counts / counts.sum(1, keepdims=True))
    np.testing.assert_allclose(prior(torch.tensor([], dtype=torch.long)).numpy(), expected[0], rtol=1e-6)
    np.testing.assert_allclose(prior(torch.tensor([1, 2])).numpy(), expected[2], rtol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        BigramPrior([[1]], 3, 0, alpha=0)


def test_bad_input_errors(clip, objective):
    with pytest.raises(ValueError, match="at least one free token"):
        objective.check_length(0)
    with pytest.raises(ValueError, match="do not fit"):
        objective.evaluate(torch.full((1, 7), 3))
    with pytest.raises(ValueError, match="shape"):
        ClipImageObjective(clip, torch.rand(3, 8))
    with pytest.raises(ValueError, match="NaN"):
        ClipImageObjective(clip, torch.full((1, 3, 8, 8), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ClipImageObjective(clip, 2 * torch.ones(1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        ClipImageObjective(clip, torch.rand(1, 3, 8, 8, dtype=torch.float64), allowed=torch.zeros(11, dtype=bool))
    with pytest.raises(ValueError, match="prior"):
        autodan_append(objective, 2, weight=1.0)
    with pytest.raises(ValueError, match="not allowed"):
        pez(objective, torch.tensor([0, 3]), 2)
