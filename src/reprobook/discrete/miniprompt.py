"""MiniPrompt: the shortest prompt found by GCG, searched over the prompt length.

The search (the reference's schedule): start with ``n_start`` free tokens and
an upper bound ``cap`` (default ``5 |y|``). Each attempt runs the optimizer
from fresh random free tokens. On success the length becomes the new upper
bound and the next attempt tries one token fewer; on failure it becomes the
lower bound, the next attempt tries five more, and the step budget grows by
``step_growth`` (and stays grown). The search stops when the next length
reaches either bound. The result, the smallest successful length, is an
upper bound on the shortest prompt: the search is stochastic and
non-monotone (a failure at n does not prove that no n-token prompt exists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .problem import PromptProblem
from .search import gcg, random_free_tokens, random_search


@dataclass
class Attempt:
    n_free: int
    num_steps: int
    success: bool
    steps: int
    loss: float


@dataclass
class MiniPromptResult:
    target_len: int
    cap: int
    n_free: int | None  # the smallest successful number of free tokens, None when none succeeded
    free: list[int] | None  # those free token ids
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.n_free is not None

    @property
    def acr(self) -> float:
        """|y| / |x*| for a success; for a failure |y| / cap (the failure is
        counted at the cap, as the paper's averages over all strings do)."""
        return self.target_len / (self.n_free if self.success else self.cap)

    @property
    def memorized(self) -> bool:
        return self.success and self.acr > 1


def mini_prompt(problem: PromptProblem, *, n_start: int = 5, cap: int | None = None, num_steps: int = 200,
                step_growth: float = 1.2, optimizer: str = "gcg", top_k: int = 250, batch_size: int = 100,
                generator: torch.Generator | None = None, eval_batch_size: int = 512,
                max_attempts: int = 50) -> MiniPromptResult:
    """Search for the shortest free-token prompt that makes ``problem.model``
    reproduce ``problem.target`` exactly (``optimizer``: "gcg" or "random")."""
    if optimizer not in ("gcg", "random"):
        raise ValueError(f"optimizer must be 'gcg' or 'random', got {optimizer!r}")
    target_len = problem.target.numel()
    cap = 5 * target_len if cap is None else cap
    if not 1 <= n_start <= cap:
        raise ValueError(f"need 1 <= n_start <= cap, got n_start={n_start}, cap={cap}")
    if step_growth < 1:
        raise ValueError(f"step_growth must be >= 1, got {step_growth}")
    problem.check_length(1)  # the template and target must fit with at least one free token
    room = problem.free_room()
    if room is not None and cap > room:  # a cap past the context is cut to what fits (recorded in the result)
        cap, n_start = room, min(n_start, room)
    generator = generator or torch.Generator().manual_seed(0)
    lower, upper = 0, cap + 1  # a success at the cap itself still counts
    n, best, attempts = n_start, None, []
    while len(attempts) < max_attempts:
        init = random_free_tokens(problem, n, generator)
        if optimizer == "gcg":
            res = gcg(problem, init, num_steps, top_k=top_k, batch_size=batch_size, generator=generator,
                      eval_batch_size=eval_batch_size)
        else:
            res = random_search(problem, init, num_steps, batch_size=batch_size, generator=generator,
                                eval_batch_size=eval_batch_size)
        attempts.append(Attempt(n, num_steps, res.success, res.steps, res.loss))
        if res.success:
            best = (n, res.free.tolist())
            upper, n = n, n - 1
        else:
            lower, n = n, n + 5
            num_steps = math.ceil(num_steps * step_growth)
        if n <= lower or n >= upper:
            break
    return MiniPromptResult(target_len, cap, best[0] if best else None, best[1] if best else None, attempts)
