"""Greedy coordinate gradient (GCG) and random search over free token ids.

Both move one token at a time: each step proposes ``batch_size`` candidates,
each differing from the current prompt at one uniformly chosen position,
evaluates them all in batched forwards and moves to the best one. They
differ only in where the replacement token comes from: GCG takes it from the
``top_k`` tokens with the most negative gradient of the loss w.r.t. the
one-hot encoding at that position; random search from all allowed tokens.

As in the reference GCG, the move goes to the best candidate even when it
is worse than the current prompt; the best prompt seen so far is kept
separately and returned. The search stops as soon as a candidate (or the
current prompt) matches the target exactly under greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..common import progress
from .objective import Objective


@dataclass
class SearchResult:
    free: torch.Tensor  # the best free-token ids seen (exact match if success)
    loss: float  # its loss
    success: bool  # exact greedy match of the target
    steps: int  # optimization steps taken
    candidates: int  # candidates evaluated
    losses: list[float] = field(default_factory=list)  # loss of the current prompt after each step


def random_free_tokens(problem: Objective, n_free: int, generator: torch.Generator) -> torch.Tensor:
    """``n_free`` ids drawn uniformly from the allowed tokens."""
    idx = torch.randint(len(problem.allowed_ids), (n_free,), generator=generator)
    return problem.allowed_ids.cpu()[idx].to(problem.device)


def gcg_proposals(grad: torch.Tensor, allowed: torch.Tensor, top_k: int) -> torch.Tensor:
    """Per position, the ``top_k`` allowed ids with the most negative gradient ``[n, k]``."""
    scores = (-grad).masked_fill(~allowed, float("-inf"))
    k = min(top_k, int(allowed.sum()))
    return scores.topk(k, dim=1).indices


def sample_candidates(current: torch.Tensor, proposals: torch.Tensor | None, allowed_ids: torch.Tensor,
                      batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` copies of ``current``, each with one uniformly chosen
    position replaced: by a uniform pick from that position's ``proposals``
    (GCG) or, when ``proposals`` is None, from all allowed ids (random search)."""
    n = current.numel()
    positions = torch.randint(n, (batch_size,), generator=generator)
    if proposals is None:
        new = allowed_ids.cpu()[torch.randint(len(allowed_ids), (batch_size,), generator=generator)]
    else:
        picks = torch.randint(proposals.shape[1], (batch_size,), generator=generator)
        new = proposals.cpu()[positions, picks]
    candidates = current.cpu().repeat(batch_size, 1)
    candidates[torch.arange(batch_size), positions] = new
    return candidates.to(current.device)


def _search(problem: Objective, init: torch.Tensor, num_steps: int, batch_size: int, top_k: int | None,
            generator: torch.Generator, eval_batch_size: int, show_progress: bool, desc: str) -> SearchResult:
    init = torch.as_tensor(init, dtype=torch.long, device=problem.device)
    problem.check_length(init.numel())
    if num_steps < 0 or batch_size < 1:
        raise ValueError(f"need num_steps >= 0 and batch_size >= 1, got {num_steps} and {batch_size}")
    if not problem.allowed[init].all():
        raise ValueError("the initial free tokens include ids that are not allowed")
    loss, exact = problem.evaluate(init[None], eval_batch_size)
    current, best, best_loss = init, init, float(loss[0])
    losses, evaluated = [], 1
    if bool(exact[0]):
        return SearchResult(init, best_loss, True, 0, evaluated, losses)
    for step in progress(range(1, num_steps + 1), desc=desc, disable=not show_progress):
        proposals = None
        if top_k is not None:
            grad, _ = problem.one_hot_gradient(current)
            proposals = gcg_proposals(grad, problem.allowed, top_k)
        candidates = sample_candidates(current, proposals, problem.allowed_ids, batch_size, generator)
        cand_loss, cand_exact = problem.evaluate(candidates, eval_batch_size)
        evaluated += len(candidates)
        if cand_exact.any():  # an exact match is a success whatever its loss
            i = int(cand_exact.nonzero()[0, 0])
            losses.append(float(cand_loss[i]))
            return SearchResult(candidates[i], float(cand_loss[i]), True, step, evaluated, losses)
        i = int(cand_loss.argmin())
        current = candidates[i]
        losses.append(float(cand_loss[i]))
        if losses[-1] < best_loss:
            best, best_loss = current, losses[-1]
    return SearchResult(best, best_loss, False, num_steps, evaluated, losses)


def gcg(problem: Objective, init: torch.Tensor, num_steps: int, *, top_k: int = 250, batch_size: int = 100,
        generator: torch.Generator | None = None, eval_batch_size: int = 512,
        show_progress: bool = False) -> SearchResult:
    """Greedy coordinate gradient from the free ids ``init`` (reference defaults: top-k 250, batch 100)."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    generator = generator or torch.Generator().manual_seed(0)
    return _search(problem, init, num_steps, batch_size, top_k, generator, eval_batch_size, show_progress, "GCG")


def random_search(problem: Objective, init: torch.Tensor, num_steps: int, *, batch_size: int = 100,
                  generator: torch.Generator | None = None, eval_batch_size: int = 512,
                  show_progress: bool = False) -> SearchResult:
    """The ablation: the same loop with uniform replacement tokens instead of the gradient's top-k."""
    generator = generator or torch.Generator().manual_seed(0)
    return _search(problem, init, num_steps, batch_size, None, generator, eval_batch_size, show_progress,
                   "random search")


def greedy_reproduces(model, prompt_ids: torch.Tensor, target: torch.Tensor) -> bool:
    """Independent check of a success: ``model.generate`` with greedy decoding
    from ``prompt_ids`` produces exactly the ``target`` ids next (no EOS needed)."""
    device = next(model.parameters()).device
    prompt_ids = torch.as_tensor(prompt_ids, dtype=torch.long, device=device)[None]
    target = torch.as_tensor(target, dtype=torch.long, device=device)
    with torch.no_grad():
        out = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), max_new_tokens=target.numel(),
                             do_sample=False, num_beams=1,
                             pad_token_id=getattr(model.config, "eos_token_id", None) or 0)
    return out[0, prompt_ids.shape[1]:].tolist() == target.tolist()
