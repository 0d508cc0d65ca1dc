"""Small causal language models trained from scratch on offline text.

A byte-level BPE tokenizer trained with Hugging Face ``tokenizers`` and a
``LlamaForCausalLM`` (SmolLM2's architecture) or ``PhiForCausalLM``
(Phi-1.5's) scaled down, so everything
that works on the tiny model (prompt optimizers, distillation) runs
unchanged on the real one.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Sequence

import torch

from ..common import progress

EOS = "<|endoftext|>"


def import_transformers():
    """transformers, imported without the "IProgress not found" warning that
    its ``tqdm.auto`` import gives in a notebook without ipywidgets' frontend
    (our own progress bars already choose text bars there)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        importlib.import_module("tqdm.auto")  # where the warning comes from; imported once, cached after
        return importlib.import_module("transformers")


def train_bpe_tokenizer(texts: Sequence[str], vocab_size: int = 1024, *, bos_token: str = EOS,
                        pad_token: str = EOS):
    """A byte-level BPE tokenizer (GPT-2 style pre-tokenization) trained on ``texts``,
    as a transformers ``PreTrainedTokenizerFast`` with ``<|endoftext|>`` as EOS.

    BOS and PAD are EOS by default (a causal LM needs no others); a text
    encoder that pools at the first EOS (CLIP's ``pool_type="eos"``) needs
    them distinct: pass other strings and they become special tokens too."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    PreTrainedTokenizerFast = import_transformers().PreTrainedTokenizerFast

    if vocab_size < 257:
        raise ValueError(f"vocab_size must be > 256 (the byte alphabet plus merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys([EOS, bos_token, pad_token]))  # EOS first: id 0, as before
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=bos_token, pad_token=pad_token)


def tiny_llama(vocab_size: int, *, d_model: int = 128, n_layers: int = 4, n_heads: int = 4, context: int = 128,
               seed: int = 0):
    """A small ``LlamaForCausalLM`` (tied embeddings, SwiGLU MLP of width 8/3 d)."""
    transformers = import_transformers()
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    cfg = transformers.LlamaConfig(
        vocab_size=vocab_size, hidden_size=d_model, intermediate_size=int(8 * d_model / 3),
        num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
        max_position_embeddings=context, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transformers.LlamaForCausalLM(cfg)


def tiny_phi(vocab_size: int, *, d_model: int = 128, n_layers: int = 4, n_heads: int = 4, context: int = 128,
             seed: int = 0):
    """A small ``PhiForCausalLM`` (Phi-1.5's architecture: parallel attention +
    MLP block, LayerNorm, partial rotary embeddings, GELU MLP of width 4 d)."""
    transformers = import_transformers()
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    cfg = transformers.PhiConfig(
        vocab_size=vocab_size, hidden_size=d_model, intermediate_size=4 * d_model, num_hidden_layers=n_layers,
        num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=context,
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transformers.PhiForCausalLM(cfg)


def pack_documents(documents: Sequence[list[int]], context: int, eos_id: int) -> torch.Tensor:
    """Documents joined with EOS and cut into rows of ``context + 1`` ids (inputs and next-token labels)."""
    stream = [t for doc in documents for t in (*doc, eos_id)]
    n_rows = len(stream) // (context + 1)
    if n_rows == 0:
        raise ValueError(f"the documents hold {len(stream)} tokens, fewer than one row of {context + 1}")
    return torch.tensor(stream[: n_rows * (context + 1)]).view(n_rows, context + 1)


def next_token_loss(model, rows: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of id rows ``[B, L]`` (inputs ``rows[:, :-1]``, labels ``rows[:, 1:]``)."""
    logits = model(input_ids=rows[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())


def train_causal_lm(model, rows: torch.Tensor, *, epochs: int, batch_size: int, lr: float, warmup: int = 50,
                    generator: torch.Generator | None = None, desc: str = "training") -> list[float]:
    """Next-token training of ``model`` on ``rows`` (from :func:`pack_documents`)
    for whole epochs, rows reshuffled each epoch (so every row is seen exactly
    ``epochs`` times), AdamW with linear warmup and cosine decay. Returns the
    loss per step."""
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    generator = generator or torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    model.train()
    losses = []
    bar = progress(total=total, desc=desc)
    for _ in range(epochs):
        for idx in torch.randperm(len(rows), generator=generator).split(batch_size):
            loss = next_token_loss(model, rows[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update()
    bar.close()
    model.eval()
    return losses
