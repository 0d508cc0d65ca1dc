"""Objectives over model A's tokens that FUSE adds to ``reprobook.discrete``'s interface.

* :class:`CrossTokenizerObjective`: a loss computed by model B on the text of A's tokens. The
  forward is exact (decode with A, re-encode with B); the one-hot gradient over A's vocabulary
  comes through an :class:`~reprobook.fuse.adapter.Adapter`, the only approximation.
* :class:`PromptNLL`: A's own negative log-likelihood of the prompt after a prefix (fluency).
* :class:`WeightedSum`: ``L = sum_i a_i L_i`` over objectives on the same vocabulary; a term can be
  kept out of the gradient (the reference computes the NLL under ``no_grad``).
* :class:`LanguageModelProposals`: the baseline without an adapter: GCG's "gradient" replaced by
  A's next-token log-probabilities, so GCG proposes what A finds likely.

GCG, random search and AutoDAN run on these unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..discrete import Objective
from .adapter import Adapter
from .words import Alignment, align


class EncoderSimilarity:
    """Model B: ``1 - cos(head(pool(encoder(text))), target)`` for a BERT-like encoder with a fast
    tokenizer; pooling is sentence-transformers' mean over the attention mask ([CLS] and [SEP]
    included), L2-normalized; ``head`` (optional) maps the pooled vector into ``target``'s space."""

    def __init__(self, model, tokenizer, target: torch.Tensor, head: torch.nn.Module | None = None,
                 max_tokens: int = 128, name: str = "MiniLM"):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"{name}'s tokenizer has no offset mapping (not a fast tokenizer): words could not be "
                             "aligned by character offsets; load the fast tokenizer")
        target = torch.as_tensor(target, dtype=torch.float32).reshape(-1)
        if not torch.isfinite(target).all() or target.norm() == 0:
            raise ValueError("the target embedding must be finite and non-zero")
        self.model, self.tokenizer, self.head, self.name = model, tokenizer, head, name
        self.target = F.normalize(target, dim=0)
        self.max_tokens = max_tokens
        self.embedding_weight = model.get_input_embeddings().weight

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) + 2 > self.max_tokens:
            raise ValueError(f"the prompt is {len(enc['input_ids'])} {self.name} tokens, over {self.max_tokens - 2}")
        return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]

    def _loss(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
        if self.head is not None:
            pooled = self.head(pooled)
        return 1 - F.normalize(pooled, dim=-1) @ self.target.to(pooled.dtype)

    def loss_of_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                rows = [[self.tokenizer.cls_token_id, *ids, self.tokenizer.sep_token_id] for ids in
                        self.tokenizer(list(texts[i: i + batch_size]), add_special_tokens=False)["input_ids"]]
                width = max(len(r) for r in rows)
                if width > self.max_tokens:
                    raise ValueError(f"a prompt is over {self.max_tokens - 2} {self.name} tokens")
                ids = torch.full((len(rows), width), self.tokenizer.pad_token_id)
                mask = torch.zeros(len(rows), width, dtype=torch.long)
                for j, r in enumerate(rows):
                    ids[j, : len(r)], mask[j, : len(r)] = torch.tensor(r), 1
                out.append(self._loss(self.model(input_ids=ids, attention_mask=mask).last_hidden_state, mask))
        return torch.cat(out)

    def loss_and_grad(self, ids: list[int]) -> tuple[float, torch.Tensor]:
        """The loss of ``[CLS] ids [SEP]`` and its gradient w.r.t. the embeddings of ``ids`` ``(n_B, d_B)``."""
        full = torch.tensor([self.tokenizer.cls_token_id, *ids, self.tokenizer.sep_token_id])
        embeds = self.embedding_weight[full].detach().clone()[None].requires_grad_(True)
        mask = torch.ones(1, len(full), dtype=torch.long)
        with torch.enable_grad():
            loss = self._loss(self.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state, mask)[0]
            (grad,) = torch.autograd.grad(loss, embeds)
        return float(loss.detach()), grad[0, 1:-1]


class CrossTokenizerObjective(Objective):
    """``L_B(T(p))`` for A's ids ``p``, ``T`` = decode with A (``decode``), re-encode with B.
    ``token_texts``: A's tokens decoded one by one (they locate A's tokens in the text);
    ``adapter`` gives the one-hot gradient (``None``: evaluation only)."""

    def __init__(self, token_texts: Sequence[str], embedding_a: torch.Tensor, b: EncoderSimilarity,
                 adapter: Adapter | None, allowed=None, decode: Callable[[list[int]], str] | None = None):
        if len(token_texts) != embedding_a.shape[0]:
            raise ValueError(f"{len(token_texts)} token texts for an embedding of {embedding_a.shape[0]} rows")
        if adapter is not None and (adapter.grid[1].shape[:2] != (embedding_a.shape[1], b.embedding_weight.shape[1])):
            raise ValueError(f"the adapter maps {tuple(adapter.grid[1].shape[:2])}, the models have "
                             f"d_A={embedding_a.shape[1]}, d_B={b.embedding_weight.shape[1]}")
        self.token_texts, self.embedding_a, self.b, self.adapter = list(token_texts), embedding_a, b, adapter
        # A's own decode of a row (default: its tokens' texts concatenated); the alignment checks they agree
        self.decode = decode or (lambda ids: "".join(self.token_texts[i] for i in ids))
        self.device = torch.device("cpu")
        self.skipped_words = 0  # words over K (or without B tokens) that got no gradient
        self.set_allowed(allowed)

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.embedding_a

    def max_free(self) -> int:
        return self.b.max_tokens - 2  # every A token is at least one character, at most one B token... roughly

    def text(self, free) -> str:
        return self.decode([int(i) for i in free])

    def evaluate(self, free: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        free = self.check_free(free)
        loss = self.b.loss_of_texts([self.text(row) for row in free], batch_size)
        return loss, torch.zeros(len(loss), dtype=torch.bool)

    def loss_from_embeds(self, free_embeds: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("A's embeddings never enter B (they are not B's tokens); the gradient comes "
                                  "through the adapter: use one_hot_gradient")

    def b_side(self, free: torch.Tensor) -> tuple[float, list[int], torch.Tensor, Alignment]:
        """B's exact view of the prompt: loss, B ids, ``dL/dX_B``, and the word alignment."""
        free = self.check_free(torch.as_tensor(free)[None])[0]
        text = self.text(free)
        ids_b, offsets = self.b.encode(text)
        loss, grad_b = self.b.loss_and_grad(ids_b)
        return loss, ids_b, grad_b, align([self.token_texts[int(i)] for i in free], offsets, text)

    def one_hot_gradient(self, free: torch.Tensor, adapter: Adapter | None = None) -> tuple[torch.Tensor, float]:
        adapter = adapter or self.adapter
        if adapter is None:
            raise ValueError("this objective has no adapter: it cannot give a gradient over A's tokens")
        loss, _, grad_b, alignment = self.b_side(free)
        grad_a, skipped = adapter.backward(grad_b, alignment)
        self.skipped_words += skipped
        return grad_a.to(self.embedding_a.dtype) @ self.embedding_a.T, loss


class PromptNLL(Objective):
    """Mean negative log-likelihood of the free tokens under causal LM A after ``prefix_ids``."""

    def __init__(self, model, prefix_ids: Sequence[int], allowed=None):
        if len(prefix_ids) == 0:
            raise ValueError("prefix_ids must hold at least one id (e.g. BOS): the first free token needs a context")
        self.model = model
        self.device = next(model.parameters()).device
        self.prefix = torch.as_tensor(list(prefix_ids), dtype=torch.long, device=self.device)
        self.set_allowed(allowed)

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight

    def max_free(self) -> int:
        return self.model.config.max_position_embeddings - len(self.prefix)

    def _nll(self, logits: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        n = one_hot.shape[1]
        logits = logits[:, len(self.prefix) - 1: len(self.prefix) - 1 + n]
        logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        return -(logp * one_hot.to(logp.dtype)).sum(-1).mean(-1)

    def evaluate(self, free: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        free = self.check_free(free)
        out = []
        with torch.no_grad():
            for chunk in free.split(batch_size):
                ids = torch.cat([self.prefix.expand(len(chunk), -1), chunk], dim=1)
                out.append(self._nll(self.model(input_ids=ids).logits, F.one_hot(chunk, self.vocab_size).float()))
        loss = torch.cat(out)
        return loss, torch.zeros(len(loss), dtype=torch.bool)

    def one_hot_gradient(self, free: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Exact: the one-hot enters both as the input embedding and as the predicted token."""
        weight = self.embedding_weight
        one_hot = F.one_hot(free, self.vocab_size).to(weight.dtype).requires_grad_(True)
        with torch.enable_grad():
            embeds = torch.cat([weight[self.prefix], one_hot @ weight])[None]
            loss = self._nll(self.model(inputs_embeds=embeds).logits, one_hot[None].float())[0]
            (grad,) = torch.autograd.grad(loss, one_hot)
        return grad, float(loss.detach())


class WeightedSum(Objective):
    """``sum_i a_i L_i``; ``terms``: ``(weight, objective, in_gradient)``, all on one vocabulary. The
    allowed tokens are those every term allows."""

    def __init__(self, terms: Sequence[tuple[float, Objective, bool]]):
        if not terms:
            raise ValueError("a weighted sum needs at least one objective")
        sizes = {t[1].vocab_size for t in terms}
        if len(sizes) != 1:
            raise ValueError(f"the objectives have different vocabularies ({sorted(sizes)} ids)")
        for w, _, _ in terms:
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"weights must be finite and >= 0, got {w!r}")
        self.terms = list(terms)
        self.device = terms[0][1].device
        allowed = terms[0][1].allowed.cpu().clone()
        for _, obj, _ in terms[1:]:
            allowed &= obj.allowed.cpu()
        self.set_allowed(allowed)

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.terms[0][1].embedding_weight

    def max_free(self) -> int | None:
        rooms = [obj.max_free() for _, obj, _ in self.terms if obj.max_free() is not None]
        return min(rooms) if rooms else None

    def evaluate(self, free: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        free = self.check_free(free)
        total = sum(w * obj.evaluate(free, batch_size)[0].cpu() for w, obj, _ in self.terms)
        return total, torch.zeros(len(free), dtype=torch.bool)

    def one_hot_gradient(self, free: torch.Tensor) -> tuple[torch.Tensor, float]:
        grad = torch.zeros(len(free), self.vocab_size, dtype=self.embedding_weight.dtype)
        loss = 0.0
        for w, obj, in_gradient in self.terms:
            if in_gradient and w > 0:
                g, term_loss = obj.one_hot_gradient(free)
                grad += w * g.cpu().to(grad.dtype)
            else:
                term_loss = float(obj.evaluate(free[None])[0][0])
            loss += w * term_loss
        return grad, loss


class LanguageModelProposals(Objective):
    """``base``'s losses, but "gradient" ``-log p_A(v | start, p_<i)`` at every position ``i``: GCG
    then proposes the tokens A finds likely there, knowing nothing of the loss (no adapter)."""

    def __init__(self, base: Objective, model, start_ids: Sequence[int]):
        if len(start_ids) == 0:
            raise ValueError("start_ids must hold at least one id (e.g. BOS)")
        self.base, self.model = base, model
        self.device = base.device
        self.start = torch.as_tensor(list(start_ids), dtype=torch.long)
        self.set_allowed(base.allowed.cpu())

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.base.embedding_weight

    def max_free(self) -> int | None:
        return self.base.max_free()

    def evaluate(self, free: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.evaluate(free, batch_size)

    def one_hot_gradient(self, free: torch.Tensor) -> tuple[torch.Tensor, float]:
        ids = torch.cat([self.start, torch.as_tensor(free).cpu()])[None]
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, len(self.start) - 1: -1].float()
        return -torch.log_softmax(logits, dim=-1), float(self.base.evaluate(torch.as_tensor(free)[None])[0][0])


__all__ = ["CrossTokenizerObjective", "EncoderSimilarity", "LanguageModelProposals", "PromptNLL", "WeightedSum"]
