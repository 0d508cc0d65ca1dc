"""The interface every discrete prompt optimizer here works on.

An objective scores free tokens: a row of ``n`` ids (a prompt) maps to one
loss. Optimizers need four views of it, and nothing else:

* ``evaluate(free)``: exact losses of many candidate rows ``[B, n]`` (batched
  forwards, no gradient), and whether each row already *succeeds* (an exact
  target match for a language model; never, for a similarity);
* ``loss_from_embeds(free_embeds)``: the loss of rows given as embeddings
  ``[B, n, d]``, differentiable, so soft prompts (PEZ) and one-hot relaxations
  (GCG, AutoDAN) go through the same model code as ids;
* ``one_hot_gradient(free)``: the gradient of the loss w.r.t. the one-hot
  encoding ``X`` of the free tokens, ``dL/dX = dL/d(XE) E^T`` (GCG's linear
  model of a token swap);
* ``allowed``: the mask of ids a free token may take.

Chapter 05's causal-LM problem (:class:`~reprobook.discrete.problem.PromptProblem`)
and the CLIP text-image similarity (:class:`~reprobook.discrete.clip_objective.ClipImageObjective`)
are two implementations; GCG, random search, PEZ and AutoDAN run on either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Objective:
    """Base class: subclasses set ``device``, ``embedding_weight`` ``[V, d]`` and ``allowed`` (call
    :meth:`set_allowed`), and implement :meth:`loss_from_embeds`, :meth:`evaluate` and :meth:`max_free`."""

    device: torch.device
    embedding_weight: torch.Tensor
    allowed: torch.Tensor
    allowed_ids: torch.Tensor

    @property
    def vocab_size(self) -> int:
        return self.embedding_weight.shape[0]

    def set_allowed(self, allowed) -> None:
        """Check and store the allowed-token mask (None: every id)."""
        if allowed is None:
            allowed = torch.ones(self.vocab_size, dtype=torch.bool)
        allowed = torch.as_tensor(allowed, dtype=torch.bool, device=self.device)
        if allowed.shape != (self.vocab_size,) or not allowed.any():
            raise ValueError(f"allowed must be a boolean mask of length {self.vocab_size} with at least one True "
                             "(the vocabulary of free tokens is empty)")
        self.allowed = allowed
        self.allowed_ids = allowed.nonzero().squeeze(1)

    def max_free(self) -> int | None:
        """How many free tokens fit (None: no limit)."""
        raise NotImplementedError

    def check_length(self, n_free: int) -> None:
        """A clear error when ``n_free`` is below 1 or more free tokens than fit."""
        if n_free < 1:
            raise ValueError(f"need at least one free token, got {n_free}")
        room = self.max_free()
        if room is not None and n_free > room:
            raise ValueError(f"{n_free} free tokens do not fit: at most {room} fit in the model's context "
                             "with the template")

    def check_free(self, free: torch.Tensor) -> torch.Tensor:
        """``free`` as a long tensor ``[B, n]`` of allowed ids on the device, or a clear error."""
        free = torch.as_tensor(free, dtype=torch.long, device=self.device)
        if free.ndim != 2:
            raise ValueError(f"free tokens must have shape (batch, n_free), got {tuple(free.shape)}")
        self.check_length(free.shape[1])
        if free.numel() and (free.min() < 0 or free.max() >= self.vocab_size):
            raise ValueError(f"free tokens must be ids in [0, {self.vocab_size})")
        return free

    def loss_from_embeds(self, free_embeds: torch.Tensor) -> torch.Tensor:
        """Loss ``[B]`` of free tokens given as embeddings ``[B, n, d]`` (differentiable)."""
        raise NotImplementedError

    def evaluate(self, free: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact loss ``[B]`` and success ``[B]`` of id rows ``[B, n]``, in batches, no gradient."""
        raise NotImplementedError

    def one_hot_gradient(self, free: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``dL/dX`` ``[n, V]`` at the one-hot encoding ``X`` of ``free`` ``[n]``, and the loss."""
        weight = self.embedding_weight
        one_hot = F.one_hot(free, self.vocab_size).to(weight.dtype).requires_grad_(True)
        loss = self.loss_from_embeds((one_hot @ weight)[None])[0]
        (grad,) = torch.autograd.grad(loss, one_hot)
        return grad, float(loss.detach())
