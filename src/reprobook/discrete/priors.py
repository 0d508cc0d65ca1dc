"""Priors over the next token for AutoDAN: a smoothed bigram model of a corpus, and any causal LM."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


class BigramPrior:
    """``log p(v | previous token)`` from bigram counts with add-``alpha`` smoothing; the token
    before the first is ``start_id`` (e.g. BOS). Call it with prefix ids ``[n]``."""

    def __init__(self, sequences: Iterable[Sequence[int]], vocab_size: int, start_id: int, alpha: float = 0.1):
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0 (zero counts would give log 0), got {alpha}")
        counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
        n = 0
        for seq in sequences:
            ids = torch.as_tensor([start_id, *seq], dtype=torch.long)
            if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
                raise ValueError(f"token ids must lie in [0, {vocab_size})")
            counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1, dtype=torch.float64), accumulate=True)
            n += 1
        if n == 0:
            raise ValueError("no sequences to count bigrams from")
        self.start_id = start_id
        self.log_probs = ((counts + alpha) / (counts + alpha).sum(1, keepdim=True)).log().float()

    def __call__(self, prefix: torch.Tensor) -> torch.Tensor:
        previous = int(prefix[-1]) if len(prefix) else self.start_id
        return self.log_probs[previous].to(prefix.device if isinstance(prefix, torch.Tensor) else "cpu")


class CausalLMPrior:
    """``log p(v | start + prefix)`` from a causal LM whose vocabulary is the objective's."""

    def __init__(self, model, start_ids: Sequence[int]):
        self.model = model.eval()
        self.start = torch.as_tensor(list(start_ids), dtype=torch.long)
        if self.start.numel() == 0:
            raise ValueError("start_ids must hold at least one id (e.g. BOS): the first token needs a context")

    def __call__(self, prefix: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        ids = torch.cat([self.start.to(device), torch.as_tensor(prefix, device=device)])[None]
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, -1].float()
        return torch.log_softmax(logits, dim=-1)
