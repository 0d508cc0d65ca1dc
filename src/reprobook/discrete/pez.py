"""PEZ (Wen et al., 2023, "Hard prompts made easy"): gradient descent on a *soft* prompt whose
loss and gradient are taken at its projection onto the vocabulary.

Each step projects the soft prompt ``P`` to the nearest allowed token embeddings by cosine,
``P' = Proj(P)``, evaluates the loss at ``P'``, and applies the gradient at ``P'`` to ``P``
(AdamW, the reference lr 0.1 and weight decay 0.1). The soft prompt can drift anywhere; only
projected, real token prompts are ever scored, and the best one seen, re-scored from its ids,
is returned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common import progress
from .objective import Objective
from .search import SearchResult


def project_to_vocabulary(soft: torch.Tensor, weight: torch.Tensor, allowed_ids: torch.Tensor) -> torch.Tensor:
    """The allowed id whose embedding has the highest cosine with each row of ``soft`` ``[n, d]``."""
    sims = F.normalize(soft, dim=-1) @ F.normalize(weight[allowed_ids], dim=-1).T
    return allowed_ids[sims.argmax(dim=1)]


def pez(objective: Objective, init: torch.Tensor, num_steps: int, *, lr: float = 0.1, weight_decay: float = 0.1,
        show_progress: bool = False) -> SearchResult:
    """PEZ from the free ids ``init`` (the soft prompt starts at their embeddings)."""
    init = torch.as_tensor(init, dtype=torch.long, device=objective.device)
    objective.check_length(init.numel())
    if num_steps < 0 or lr <= 0 or weight_decay < 0:
        raise ValueError(f"need num_steps >= 0, lr > 0 and weight_decay >= 0; got {num_steps}, {lr}, {weight_decay}")
    if not objective.allowed[init].all():
        raise ValueError("the initial free tokens include ids that are not allowed")
    weight = objective.embedding_weight.detach()
    soft = weight[init].clone().requires_grad_(True)
    opt = torch.optim.AdamW([soft], lr=lr, weight_decay=weight_decay)
    best = init
    best_loss = float(objective.evaluate(init[None])[0][0])
    losses, evaluated = [], 1
    for _ in progress(range(num_steps), desc="PEZ", disable=not show_progress):
        ids = project_to_vocabulary(soft.detach(), weight, objective.allowed_ids)
        projected = weight[ids].clone().requires_grad_(True)
        loss = objective.loss_from_embeds(projected[None])[0]
        (grad,) = torch.autograd.grad(loss, projected)
        opt.zero_grad(set_to_none=True)
        soft.grad = grad.to(soft.dtype)
        opt.step()
        ids = project_to_vocabulary(soft.detach(), weight, objective.allowed_ids)
        current = float(objective.evaluate(ids[None])[0][0])  # re-scored from ids, not from embeddings
        evaluated += 2
        losses.append(current)
        if current < best_loss:
            best, best_loss = ids, current
    return SearchResult(best, best_loss, False, num_steps, evaluated, losses)
