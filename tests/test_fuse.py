"""FUSE: the t-product against the block-circulant matrix, the Fourier least squares against a
direct least squares, the adjoint against autograd, A = B against the exact one-hot gradient, the
reference code's defects shown, the alignment by offsets, the objectives, and the bad inputs."""

import numpy as np
import pytest
import torch

from reprobook.fuse.adapter import Adapter, ReferenceAdapter, fit_grid, matrix_adapter, random_adapter, split_words
from reprobook.fuse.experiments import attribute_f1, read_caption, token_mask
from reprobook.fuse.objective import (
    CrossTokenizerObjective,
    EncoderSimilarity,
    LanguageModelProposals,
    PromptNLL,
    WeightedSum,
)
from reprobook.fuse.tensor import (
    block_circulant,
    fit_adapter,
    fold,
    reference_fit,
    reference_transpose,
    t_product,
    t_transpose,
    unfold,
)
from reprobook.fuse.words import Alignment, WordTokens, align
from reprobook.presets import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_t_product_is_the_block_circulant_product(k):
    a, b = _randn(5, 3, k), _randn(3, 2, k, seed=1)
    expected = fold(block_circulant(a) @ unfold(b), k)
    assert torch.allclose(t_product(a, b), expected, atol=1e-12)
    # and the definition as a sum over slices, written out once more
    direct = torch.stack([sum(a[:, :, j] @ b[:, :, (n - j) % k] for j in range(k)) for n in range(k)], dim=2)
    assert torch.allclose(t_product(a, b), direct, atol=1e-12)


@pytest.mark.parametrize("k,lam", [(1, 0.0), (3, 0.0), (4, 0.0), (4, 1e-2), (5, 0.3)])
def test_fourier_least_squares_is_the_direct_least_squares(k, lam):
    n, d_a, d_b = 30, 4, 3
    x, y = _randn(n, d_a, k), _randn(n, d_b, k, seed=1)
    g = fit_adapter(x, y, lam)
    # min ||bcirc(X) unfold(G) - unfold(Y)||^2 + lam N ||G||^2, solved as one stacked system by numpy
    a = np.vstack([block_circulant(x).numpy(), np.sqrt(lam * n) * np.eye(d_a * k)])
    rhs = np.vstack([unfold(y).numpy(), np.zeros((d_a * k, d_b))])
    direct = fold(torch.from_numpy(np.linalg.lstsq(a, rhs, rcond=None)[0]), k)
    assert torch.allclose(g, direct, atol=1e-10)


def test_reference_fit_gives_the_same_g_at_lam_zero():
    x, y = _randn(40, 5, 4), _randn(40, 3, 4, seed=1)
    assert torch.allclose(reference_fit(x, y), fit_adapter(x, y, 0.0), atol=1e-10)


def test_a_equal_b_fits_the_identity():
    x = _randn(50, 6, 3)
    g = fit_adapter(x, x, 0.0)
    identity = torch.zeros(6, 6, 3, dtype=torch.float64)
    identity[:, :, 0] = torch.eye(6, dtype=torch.float64)
    assert torch.allclose(g, identity, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_backward_is_autograd_through_the_t_product(k):
    x = _randn(7, 5, k).requires_grad_(True)
    g, upstream = _randn(5, 3, k, seed=1), _randn(7, 3, k, seed=2)
    (t_product(x, g) * upstream).sum().backward()
    assert torch.allclose(t_product(upstream, t_transpose(g)), x.grad, atol=1e-10)


def test_the_reference_transpose_is_not_the_adjoint_for_k_of_3_and_more():
    for k in (1, 2, 3, 4):
        x, g, c = _randn(4, 5, k), _randn(5, 3, k, seed=1), _randn(4, 3, k, seed=2)
        lhs = (t_product(x, g) * c).sum()
        ours = (x * t_product(c, t_transpose(g))).sum()
        theirs = (x * t_product(c, reference_transpose(g))).sum()
        assert torch.isclose(lhs, ours, atol=1e-10)
        assert torch.isclose(lhs, theirs, atol=1e-10) == (k <= 2)


def _grid(d_a, d_b, K, seed=0):
    return {k: _randn(d_a, d_b, k, seed=seed + k) for k in range(1, K + 1)}


def test_adapter_backward_per_word_is_autograd_of_the_padded_tubes():
    # words (n_A, n_B): (2, 3), (1, 1), (3, 1); A rows 0-1 | 2 | 3-5, B rows 0-2 | 3 | 4
    words = [([0, 1], [0, 1, 2]), ([2], [3]), ([3, 4, 5], [4])]
    alignment = Alignment("", words, 6, 5)
    adapter = Adapter(_grid(4, 3, 3))
    x_a = _randn(6, 4, seed=7).requires_grad_(True)
    grad_b = _randn(5, 3, seed=8)
    loss = 0
    for a, b in words:  # the forward the backward linearizes: pad A's rows to k, t-product, keep n_B slices
        k = max(len(a), len(b))
        tube = torch.zeros(1, 4, k, dtype=torch.float64)
        tube[0, :, : len(a)] = x_a[a].T
        y = t_product(tube, adapter.grid[k])[0, :, : len(b)].T
        loss = loss + (y * grad_b[b]).sum()
    loss.backward()
    ours, skipped = adapter.backward(grad_b, alignment)
    assert skipped == 0
    assert torch.allclose(ours, x_a.grad, atol=1e-10)


def test_words_over_k_get_zero_gradient_and_are_counted():
    alignment = Alignment("", [([0], [0]), ([1, 2, 3], [1])], 4, 2)
    out, skipped = Adapter(_grid(4, 3, 2)).backward(_randn(2, 3), alignment)
    assert skipped == 1 and out[1:].abs().sum() == 0 and out[0].abs().sum() > 0


def test_the_reference_split_hands_every_word_the_first_words_rows():
    grid = _grid(4, 3, 2)
    alignment = Alignment("", [([0], [0]), ([1], [1])], 2, 2)
    grad_b = _randn(2, 3, seed=3)
    theirs, _ = ReferenceAdapter(grid).backward(grad_b, alignment)
    ours, _ = Adapter(grid).backward(grad_b, alignment)
    assert torch.allclose(theirs[0], ours[0], atol=1e-12)  # k = 1: the same
    assert torch.allclose(theirs[1], theirs[0], atol=1e-12)  # the second word got the first word's gradient
    assert not torch.allclose(theirs[1], ours[1])


def test_random_adapter_keeps_the_norm_and_the_matrix_adapter_maps_slice_by_slice():
    words = WordTokens([f"w{i}" for i in range(60)], [[i % 7] if i % 2 else [i % 7, 7] for i in range(60)],
                       [[i % 5] for i in range(60)])
    emb_a, emb_b = _randn(8, 3).float(), _randn(5, 2, seed=1).float()
    fuse, table = fit_grid(words, emb_a, emb_b, split_words(60, 0), K=2, lambdas=(1e-3,))
    rand = random_adapter(fuse, 0)
    assert all(torch.isclose(rand.grid[k].norm(), fuse.grid[k].norm()) for k in (1, 2))
    matrix = matrix_adapter(words, emb_a, emb_b, np.arange(60), 2, 1e-3)
    assert (matrix.grid[2][:, :, 1] == 0).all() and torch.equal(matrix.grid[2][:, :, 0], matrix.grid[1][:, :, 0])
    assert list(table["k"]) == [1, 2]


def test_alignment_by_character_offsets():
    a_texts = [" an", " im", "age", " of", " three", ",", " circles"]
    text = "".join(a_texts)
    # B: BERT-like, punctuation split, one word split in two
    offsets = [(1, 3), (4, 9), (10, 12), (13, 18), (18, 19), (20, 24), (24, 27)]
    al = align(a_texts, offsets, text)
    assert al.words == [([0], [0]), ([1, 2], [1]), ([3], [2]), ([4, 5], [3, 4]), ([6], [5, 6])]
    with pytest.raises(ValueError, match="do not survive decode"):
        align([" a", "b"], [(1, 3)], " a b")


def test_fit_rejects_bad_input():
    x, y = _randn(3, 5, 2), _randn(3, 2, 2)
    with pytest.raises(ValueError, match="fewer than d_A"):
        fit_adapter(x, y, 0.0)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        fit_adapter(x, y, -1.0)
    with pytest.raises(ValueError, match="same words"):
        fit_adapter(x, _randn(4, 2, 2), 0.1)
    words = WordTokens(["a", "b"], [[0], [1]], [[0], [1]])
    with pytest.raises(ValueError, match="K .* must be >= 1"):
        fit_grid(words, _randn(2, 3).float(), _randn(2, 3).float(), split_words(2, 0), K=0)


# ---------------------------------------------------------------------------------------------------------------
# A = B on a tiny word-level encoder: FUSE with G = I is GCG's exact one-hot gradient


WORDS = ["red", "blue", "circle", "square", "left", "right", "big", "small", "three", "two"]


@pytest.fixture(scope="module")
def tiny_encoder():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                  unk_token="[UNK]")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32)).double().eval().requires_grad_(False)
    return model, tok


def _same_model_objective(tiny_encoder, target_seed=0):
    model, tok = tiny_encoder
    texts = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [" " + w for w in WORDS]
    emb = model.get_input_embeddings().weight.detach()
    b = EncoderSimilarity(model, tok, _randn(16, seed=target_seed))
    identity = torch.zeros(16, 16, 1, dtype=torch.float64)
    identity[:, :, 0] = torch.eye(16, dtype=torch.float64)
    allowed = torch.arange(len(texts)) >= 4
    return CrossTokenizerObjective(texts, emb, b, Adapter({1: identity}), allowed), b


def test_a_equal_b_gives_the_exact_one_hot_gradient(tiny_encoder):
    model, tok = tiny_encoder
    obj, b = _same_model_objective(tiny_encoder)
    free = torch.tensor([4, 9, 6, 12])
    grad, loss = obj.one_hot_gradient(free)
    emb = model.get_input_embeddings().weight
    one_hot = torch.nn.functional.one_hot(free, emb.shape[0]).double().requires_grad_(True)
    rows = torch.cat([emb[[tok.cls_token_id]], one_hot @ emb, emb[[tok.sep_token_id]]])[None]
    mask = torch.ones(1, rows.shape[1], dtype=torch.long)
    exact_loss = b._loss(model(inputs_embeds=rows, attention_mask=mask).last_hidden_state, mask)[0]
    (exact,) = torch.autograd.grad(exact_loss, one_hot)
    assert loss == pytest.approx(float(exact_loss.detach()), abs=1e-12)
    assert torch.allclose(grad.double(), exact, atol=1e-5)
    # and the exact forward: evaluate == the encoder on the decoded text
    assert float(obj.evaluate(free[None])[0][0]) == pytest.approx(float(exact_loss.detach()), abs=1e-6)


def test_cross_tokenizer_objective_bad_input(tiny_encoder):
    obj, b = _same_model_objective(tiny_encoder)
    with pytest.raises(ValueError, match="at least one free token"):
        obj.evaluate(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(NotImplementedError, match="never enter B"):
        obj.loss_from_embeds(torch.zeros(1, 2, 16))
    model, tok = tiny_encoder

    class Slow:
        is_fast = False
    with pytest.raises(ValueError, match="no offset mapping"):
        EncoderSimilarity(model, Slow(), _randn(16))
    with pytest.raises(ValueError, match="adapter maps"):
        CrossTokenizerObjective(obj.token_texts, obj.embedding_a, b, Adapter({1: _randn(3, 16, 1)}))


def test_weighted_sum_and_proposals(tiny_encoder):
    from reprobook.models import tiny_llama

    obj, _ = _same_model_objective(tiny_encoder)
    obj2, _ = _same_model_objective(tiny_encoder, target_seed=5)
    free = torch.tensor([[4, 5, 6], [7, 8, 9]])
    total = WeightedSum([(2.0, obj, True), (0.5, obj2, False)])
    assert torch.allclose(total.evaluate(free)[0], 2 * obj.evaluate(free)[0] + 0.5 * obj2.evaluate(free)[0])
    grad, loss = total.one_hot_gradient(free[0])
    assert torch.allclose(grad, 2 * obj.one_hot_gradient(free[0])[0])  # the second term is kept out
    assert loss == pytest.approx(float(total.evaluate(free[:1])[0][0]), abs=1e-6)
    with pytest.raises(ValueError, match="finite and >= 0"):
        WeightedSum([(-1.0, obj, True)])
    lm = tiny_llama(obj.vocab_size, d_model=16, n_layers=1, n_heads=2).eval()
    proposals = LanguageModelProposals(obj, lm, [0])
    g, _ = proposals.one_hot_gradient(free[0])
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([[0, 4, 5, 6]])).logits[0, :3]
    assert torch.allclose(g, -torch.log_softmax(logits, -1))


def test_prompt_nll_against_cross_entropy_and_finite_differences():
    from reprobook.models import tiny_llama

    lm = tiny_llama(12, d_model=16, n_layers=1, n_heads=2).double().eval().requires_grad_(False)
    nll = PromptNLL(lm, [0, 3])
    free = torch.tensor([5, 7, 2])
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([[0, 3, 5, 7, 2]])).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[1:4], free)
    assert float(nll.evaluate(free[None])[0][0]) == pytest.approx(float(expected), abs=1e-10)
    grad, _ = nll.one_hot_gradient(free)
    # d/dt of the loss along a move of the one-hot at position 1 from id 7 to id 4, by finite differences
    weight = lm.get_input_embeddings().weight
    direction = torch.zeros(3, 12, dtype=torch.float64)
    direction[1, 4], direction[1, 7] = 1, -1

    def at(t):
        x = torch.nn.functional.one_hot(free, 12).double() + t * direction
        embeds = torch.cat([weight[[0, 3]], x @ weight])[None]
        with torch.no_grad():
            return float(nll._nll(lm(inputs_embeds=embeds).logits, x[None])[0])
    fd = (at(1e-3) - at(-1e-3)) / 2e-3  # Llama's RMSNorm computes in float32: a small step would be noise
    assert float((grad * direction).sum()) == pytest.approx(fd, rel=1e-4)
    with pytest.raises(ValueError, match="at least one id"):
        PromptNLL(lm, [])


def test_token_masks_and_the_caption_reader():
    texts = [" red", "red", " a", " x1", "  ", "\u00e9", " big!"]
    assert token_mask(texts, "words").tolist() == [True, False, False, False, False, False, False]
    assert token_mask(texts, "ascii").tolist() == [True, True, True, True, False, False, True]
    with pytest.raises(ValueError, match="token set"):
        token_mask(texts, "bytes")
    assert read_caption("An image of three red circles on the left zzz") == {
        ("count", 3), ("colour", "red"), ("shape", "circle"), ("position", "left")}
    truth = {"shape": "circle", "colour": "red", "size": "small", "count": 3, "position": "left",
             "background": "black"}
    assert attribute_f1("three red circles", truth) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert attribute_f1("blue squares", truth) == 0.0


def test_config_errors():
    from reprobook.chapters import get_chapter

    chapter = get_chapter("fuse")
    with pytest.raises(ConfigError, match="unknown model_a"):
        chapter.config("cpu", {"model_a": "gpt5"})
    with pytest.raises(ConfigError, match="K"):
        chapter.config("cpu", {"K": 0})
    with pytest.raises(ConfigError, match="lambdas"):
        chapter.config("cpu", {"lambdas": (-1.0,)})
    every_path = "model_a_path .*clip_checkpoint .*sentiment_path .*wikitext_path .*coco_path"
    with pytest.raises(ConfigError, match=every_path):
        chapter.config("full")


def test_recovery_counts_nearest_b_tokens():
    from reprobook.fuse.adapter import recovery

    emb = _randn(20, 6).float()
    x = torch.zeros(3, 6, 2, dtype=torch.float64)
    ids = [[3], [5, 7], [11, 2]]
    for w, row in enumerate(ids):
        for j, i in enumerate(row):
            x[w, :, j] = emb[i].double()
    identity = torch.zeros(6, 6, 2, dtype=torch.float64)
    identity[:, :, 0] = torch.eye(6, dtype=torch.float64)
    assert recovery(identity, x, ids, emb) == (5, 5)
    shifted = torch.zeros(6, 6, 2, dtype=torch.float64)
    shifted[:, :, 1] = torch.eye(6, dtype=torch.float64)  # slice j -> slice j + 1: every token lands elsewhere
    hits, total = recovery(shifted, x, ids, emb)
    assert total == 5 and hits < 5


def test_ids_that_do_not_survive_decode_are_an_error(tiny_encoder):
    obj, b = _same_model_objective(tiny_encoder)
    # ids 4 and 5 stand for two halves of one character: A's decode joins them, their texts do not
    joined = CrossTokenizerObjective(obj.token_texts, obj.embedding_a, b, obj.adapter, obj.allowed,
                                     decode=lambda ids: "red" if ids == [4, 5] else "".join(obj.token_texts[i]
                                                                                             for i in ids))
    with pytest.raises(ValueError, match="do not survive decode"):
        joined.one_hot_gradient(torch.tensor([4, 5]))
    joined.one_hot_gradient(torch.tensor([5, 4]))  # these do
