"""What a discrete prompt optimizer works on: a causal LM, a fixed template
around some free (optimized) token positions, a target, and a token-level loss.

The sequence fed to the model is ``before + free + after + target``. The
template pieces are token ids (tokenize each piece separately and
concatenate ids: tokenizing a joined string can merge across the seams and
changes the leading-space variant of the first target token). Only the
logits that predict the target are ever computed over the vocabulary: the
model's body runs on the whole sequence, its output layer only on the
target slice, because full-vocabulary logits at every position of every
candidate are what blows up memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .objective import Objective

#: A token-level loss: logits over the target slice ``[B, T, V]`` and the target ids ``[T]`` -> ``[B]``.
TokenLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the target tokens, one value per row (the GCG / ACR loss)."""
    b, t, v = logits.shape
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half -> float32, float64 kept
    ce = F.cross_entropy(logits.reshape(b * t, v), target.repeat(b), reduction="none")
    return ce.view(b, t).mean(dim=1)


def _as_ids(name: str, ids, device) -> torch.Tensor:
    t = torch.as_tensor(ids if ids is not None else [], dtype=torch.long, device=device)
    if t.dim() != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got shape {tuple(t.shape)}")
    return t


def context_length(model) -> int | None:
    """The model's maximum sequence length, when its config states one."""
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@dataclass
class PromptProblem(Objective):
    """One optimization problem: ``model`` must produce ``target`` after ``before + free + after``;
    an :class:`~reprobook.discrete.objective.Objective` whose success is an exact greedy match.

    ``allowed`` is a boolean mask over the vocabulary of the ids a free token
    may take (see :func:`allowed_token_mask`); ``loss`` is any token-level loss
    (default: mean cross-entropy). Inputs are checked here, once.
    """

    model: torch.nn.Module
    target: torch.Tensor
    before: torch.Tensor | None = None
    after: torch.Tensor | None = None
    allowed: torch.Tensor | None = None
    loss: TokenLoss = mean_cross_entropy

    def __post_init__(self):
        self.device = next(self.model.parameters()).device
        self.embedding = self.model.get_input_embeddings()
        self.target = _as_ids("target", self.target, self.device)
        self.before = _as_ids("before", self.before, self.device)
        self.after = _as_ids("after", self.after, self.device)
        if self.target.numel() == 0:
            raise ValueError("the target is empty: give at least one target token id")
        for name, ids in (("target", self.target), ("before", self.before), ("after", self.after)):
            if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
                raise ValueError(f"{name} has token ids outside the model's vocabulary [0, {self.vocab_size})")
        self.set_allowed(self.allowed)

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.embedding.weight

    def check_length(self, n_free: int) -> None:
        """A clear error when ``n_free`` free tokens plus the template and target exceed the context."""
        if n_free < 1:
            raise ValueError(f"need at least one free token, got {n_free}")
        total = self.before.numel() + n_free + self.after.numel() + self.target.numel()
        limit = context_length(self.model)
        if limit is not None and total > limit:
            raise ValueError(
                f"template ({self.before.numel() + self.after.numel()} ids) + {n_free} free tokens + target "
                f"({self.target.numel()} ids) = {total} tokens, longer than the model's context of {limit}")

    def max_free(self) -> int | None:
        return self.free_room()

    def free_room(self) -> int | None:
        """How many free tokens fit in the model's context with the template and target (None: no limit)."""
        limit = context_length(self.model)
        return None if limit is None else limit - self.before.numel() - self.after.numel() - self.target.numel()

    def sequences(self, free: torch.Tensor) -> torch.Tensor:
        """Full id sequences ``[B, L]`` for free-token rows ``[B, n]``."""
        b = free.shape[0]
        parts = [self.before.expand(b, -1), free, self.after.expand(b, -1), self.target.expand(b, -1)]
        return torch.cat(parts, dim=1)

    def target_logits(self, inputs_embeds: torch.Tensor | None = None, input_ids: torch.Tensor | None = None):
        """Logits ``[B, T, V]`` at the positions that predict the target: the
        body on the whole sequence, the output layer on the target slice only."""
        body = self.model.base_model
        kwargs = {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": input_ids}
        hidden = body(**kwargs, use_cache=False).last_hidden_state
        t = self.target.numel()
        sliced = hidden[:, -t - 1:-1]
        return self.model.get_output_embeddings()(sliced)

    def evaluate(self, free: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss ``[B]`` and exact greedy match ``[B]`` (argmax over the target
        slice equals the target at every position) of free-token rows, in
        forward batches of at most ``batch_size``."""
        losses, exact = [], []
        with torch.no_grad():
            for chunk in free.split(batch_size):
                logits = self.target_logits(input_ids=self.sequences(chunk))
                losses.append(self.loss(logits, self.target))
                exact.append((logits.argmax(-1) == self.target).all(dim=1))
        return torch.cat(losses), torch.cat(exact)

    def loss_from_embeds(self, free_embeds: torch.Tensor) -> torch.Tensor:
        """Loss ``[B]`` of free tokens given as embeddings ``[B, n, d]``: the template's and the
        target's embeddings around them, the same body and output slice as ``evaluate``."""
        b = free_embeds.shape[0]
        parts = [self.embedding(ids).expand(b, -1, -1) for ids in (self.before, self.after, self.target)]
        embeds = torch.cat([parts[0], free_embeds, parts[1], parts[2]], dim=1)
        return self.loss(self.target_logits(inputs_embeds=embeds), self.target)


def allowed_token_mask(tokenizer, vocab_size: int | None = None, *, ascii_only: bool = True,
                       exclude_special: bool = True) -> torch.Tensor:
    """Which ids a free token may take. Special tokens (BOS/EOS, chat markers)
    are excluded by default: a prompt made of them is not a text prompt. With
    ``ascii_only`` (the reference GCG's filter) tokens that decode to non-ASCII
    or non-printable text are excluded too. Ids past the tokenizer's
    vocabulary (embedding padding) are never allowed."""
    vocab_size = vocab_size or len(tokenizer)
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    n = min(vocab_size, len(tokenizer))
    mask[:n] = True
    if exclude_special:
        for i in tokenizer.all_special_ids:
            if i < vocab_size:
                mask[i] = False
    if ascii_only:
        for i in range(n):
            if mask[i]:
                text = tokenizer.decode([i])
                if not text or not (text.isascii() and text.isprintable()):
                    mask[i] = False
    return mask
