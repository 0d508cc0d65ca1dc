"""AutoDAN as prompt inversion's reference code runs it (Zhu et al., 2023, "AutoDAN:
interpretable gradient-based adversarial attacks"; the left-to-right variant, not the genetic
AutoDAN of Liu et al.): the prompt grows one token at a time.

To append token ``n + 1`` to the prefix ``x_{1..n}``, a placeholder is appended and every
allowed token ``v`` is scored by

    s(v) = -dL/dx_v + w log p_prior(v | x_{1..n}),

the first term the one-hot gradient at the new position (GCG's linear model: which token would
lower the loss most), the second the prior's readability. The top ``B`` tokens by ``s`` are then
evaluated exactly and the one with the lowest loss is appended (with ``beam > 1`` the ``beam``
best prompts over all beams' candidates are kept). With ``w = 0`` and ``B`` the whole allowed
vocabulary this is greedy exhaustive appending. The reference adds the prior's raw logits; their
top-B equals that of the log-probabilities, which differ per step by a constant.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..common import progress
from .objective import Objective
from .search import SearchResult

#: A prior over the next token: prefix ids ``[n]`` -> log-probabilities (or logits) ``[V]``.
Prior = Callable[[torch.Tensor], torch.Tensor]


def autodan_append(objective: Objective, n_free: int, *, batch_size: int = 256, weight: float = 1.0,
                   prior: Prior | None = None, beam: int = 1, prefix: torch.Tensor | None = None,
                   placeholder: int | None = None, show_progress: bool = False) -> SearchResult:
    """Grow a prompt to ``n_free`` tokens (after ``prefix``, if given) by AutoDAN's append step.
    ``placeholder``: the id at the new position while its gradient is taken (default: the first
    allowed id; the reference uses vocabulary id 0)."""
    objective.check_length(n_free)
    if batch_size < 1 or beam < 1 or weight < 0:
        raise ValueError(f"need batch_size >= 1, beam >= 1 and weight >= 0; got {batch_size}, {beam}, {weight}")
    if weight > 0 and prior is None:
        raise ValueError("weight > 0 needs a prior (a function of the prefix ids giving next-token log-probs)")
    device = objective.device
    prefix = torch.zeros(0, dtype=torch.long, device=device) if prefix is None else \
        torch.as_tensor(prefix, dtype=torch.long, device=device)
    if prefix.numel() >= n_free:
        raise ValueError(f"the prefix ({prefix.numel()} ids) leaves nothing to append up to n_free={n_free}")
    placeholder = int(objective.allowed_ids[0]) if placeholder is None else placeholder
    k = min(batch_size, len(objective.allowed_ids))
    beams, beam_losses = [prefix], [float("inf")]
    losses, evaluated = [], 0
    for _ in progress(range(n_free - prefix.numel()), desc="AutoDAN", disable=not show_progress):
        candidates = []
        for current in beams:
            extended = torch.cat([current, torch.tensor([placeholder], device=device)])
            grad, _ = objective.one_hot_gradient(extended)
            score = -grad[-1]
            if weight > 0:
                score = score + weight * prior(current).to(score)
            top = score.masked_fill(~objective.allowed, float("-inf")).topk(k).indices
            candidates.append(torch.cat([current.expand(k, -1), top[:, None]], dim=1))
        candidates = torch.cat(candidates)
        cand_loss, _ = objective.evaluate(candidates)
        evaluated += len(candidates)
        order = cand_loss.argsort()[:beam]
        beams, beam_losses = [candidates[i] for i in order], [float(cand_loss[i]) for i in order]
        losses.append(beam_losses[0])
    return SearchResult(beams[0], beam_losses[0], False, n_free - prefix.numel(), evaluated, losses)
