"""The PRISM loop (He et al., 2024): N streams x K iterations of in-context refinement, then the
top C prompts re-evaluated on fresh draws.

A stream picks a reference (and keeps it), the engineer F answers with a prompt, the black-box generator G draws
one image from it, the judge D scores the image against *that* reference (0-10), and
(output, reference, score) becomes the stream's next user turn; the history keeps our system
prompt and the last ``keep`` exchanges. Best-of-N K independent samples is the same code with
K = 1 (and N K streams): comparing the two isolates what the in-context feedback adds.

The engineer sees images only as the captioner writes them (``describe``): "VLM = captioner + LLM".
Every random choice (the reference a stream shows, the generic prefix around an object prompt,
the generator's seeds, the engineer's sampling) comes from the run's seed and the draw's place in
the run, never from a global state reseeded per iteration (the reference's ``random.seed(10 k)``
made every run pick the same references and prefixes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..common import progress

TASK_KINDS = ("object", "scene")
#: Generic contexts an object prompt is drawn in, during the loop and its re-evaluation.
GENERIC_PREFIXES = ("{}", "a picture of {}", "an image of {}", "a photo of {}", "a drawing of {}")


@dataclass
class Task:
    """``kind`` "object" (personalization: M renders of one object; the prompt is drawn inside a
    generic prefix) or "scene" (inversion: M = 1, the prompt alone); ``references`` float
    ``(M, 3, S, S)`` in [0, 1]; ``attributes``: what the judge compares."""

    name: str
    kind: str
    references: torch.Tensor
    attributes: tuple[str, ...]

    def __post_init__(self):
        if self.kind not in TASK_KINDS:
            raise ValueError(f"unknown task kind {self.kind!r}; valid: {', '.join(TASK_KINDS)}")
        refs = torch.as_tensor(self.references)
        if refs.ndim != 4 or refs.shape[1] != 3 or refs.shape[2] != refs.shape[3]:
            raise ValueError(f"task {self.name!r}: references must have shape (M, 3, S, S), got {tuple(refs.shape)}")
        if len(refs) == 0:
            raise ValueError(f"task {self.name!r} has no references")
        if not refs.is_floating_point() or not torch.isfinite(refs).all() or refs.min() < 0 or refs.max() > 1:
            raise ValueError(f"task {self.name!r}: references must be float images in [0, 1] "
                             "(convert uint8 with images / 255)")
        if self.kind == "scene" and len(refs) != 1:
            raise ValueError(f"task {self.name!r}: a scene (inversion) task has one reference, got {len(refs)}")
        if not self.attributes:
            raise ValueError(f"task {self.name!r}: the judge needs at least one attribute to compare")
        self.references = refs.float()


@dataclass
class Candidate:
    task: int
    stream: int
    iteration: int
    prompt: str
    score: float  # the loop's single noisy draw
    reference: int
    reeval: float | None = None  # mean over fresh draws (top C only)


@dataclass
class Run:
    """One method's run on one task: every candidate, the winner, and what it cost."""

    task: Task
    candidates: list[Candidate]
    best: Candidate | None
    generator_calls: int
    engineer_rows: int
    failures: int  # streams whose engineer gave no valid prompt after every retry
    history: list = field(default_factory=list)  # the last conversation of each stream

    @property
    def prompt(self) -> str | None:
        return None if self.best is None else self.best.prompt


def _check_score(score: float) -> float:
    if not np.isfinite(score) or not 0 <= score <= 10:
        raise ValueError(f"the judge must score in [0, 10], got {score}")
    return float(score)


def first_turn(task: Task, caption: str) -> str:
    what = "the object in this image (only the object)" if task.kind == "object" else "this whole image"
    return f"Reference image: {caption}\nWrite a text-to-image prompt that reproduces {what}."


def feedback_turn(task: Task, output_caption: str, reference_caption: str, score: float) -> str:
    return (f"The generator drew: {output_caption}\nReference image: {reference_caption}\n"
            f"Score: {score:.1f}/10. Write an improved prompt.")


def _shortest_best(items, key) -> int:
    """Index of the highest ``key``; ties go to the shortest prompt (the likelihood proxy)."""
    return max(range(len(items)), key=lambda i: (key(items[i]), -len(items[i].prompt)))


def prism(tasks: Sequence[Task], engineer, generator, judge: Callable, describe: Callable, *, n_streams: int,
          n_iterations: int, top_c: int, seed: int, keep: int = 3, show_progress: bool = True) -> list[Run]:
    """PRISM on every task at once (all tasks' streams share each engineer batch). ``generator``:
    ``generate(prompts, seeds) -> images``; ``judge(images, references, attributes) -> scores`` in [0, 10],
    row by row; ``describe(images, rng) -> captions`` (what F sees). Returns one :class:`Run` per task.
    Costs per task: N K engineer rows, N K + (C M objects | 2 C scenes) generator calls."""
    if not tasks:
        raise ValueError("no tasks (no references to engineer prompts for)")
    for name, value in (("n_streams", n_streams), ("n_iterations", n_iterations), ("top_c", top_c),
                        ("keep", keep)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if top_c > n_streams * n_iterations:
        raise ValueError(f"top_c ({top_c}) cannot exceed the N K = {n_streams * n_iterations} prompts a run makes")
    rngs = [np.random.default_rng([seed, t, 0x9815]) for t in range(len(tasks))]
    rows = [(t, s) for t in range(len(tasks)) for s in range(n_streams)]
    history: dict[tuple[int, int], list[dict]] = {r: [] for r in rows}
    candidates: list[list[Candidate]] = [[] for _ in tasks]
    failures = [0] * len(tasks)
    calls = [0] * len(tasks)
    # each stream keeps the reference it drew: the one F is shown is the one D judges against
    refs = {(t, s): int(rngs[t].integers(len(tasks[t].references))) for t, s in rows}
    for k in progress(range(n_iterations), desc="PRISM iterations", disable=not show_progress, leave=False):
        conversations = []
        for t, s in rows:
            turns = history[(t, s)]
            if not turns:
                caption = describe(tasks[t].references[refs[(t, s)]][None], rngs[t])[0]
                turns.append({"role": "user", "content": first_turn(tasks[t], caption)})
            conversations.append(list(turns))
        prompts = engineer.propose(conversations, seed=int(np.random.default_rng([seed, k, 0xE4]).integers(2**31)))
        live = [(r, p) for r, p in zip(rows, prompts) if p is not None]
        for (t, s), p in zip(rows, prompts):
            failures[t] += p is None  # the unanswered turn stays: the next iteration asks again
        if not live:
            continue
        texts, seeds = [], []
        for (t, s), p in live:
            prefix = GENERIC_PREFIXES[int(rngs[t].integers(len(GENERIC_PREFIXES)))] if tasks[t].kind == "object" else "{}"
            texts.append(prefix.format(p))
            seeds.append(int(rngs[t].integers(2**31)))
            calls[t] += 1
        images = generator.generate(texts, seeds)
        references = torch.stack([tasks[t].references[refs[(t, s)]] for (t, s), _ in live])
        owner = np.array([t for (t, _), _ in live])
        scores = np.zeros(len(live))
        for t in np.unique(owner):  # each task's judge compares its own attributes
            rows_t = torch.as_tensor(owner == t)
            scores[owner == t] = judge(images[rows_t], references[rows_t], tasks[t].attributes)
        scores = [_check_score(x) for x in scores]
        for j, (((t, s), p), score) in enumerate(zip(live, scores)):
            candidates[t].append(Candidate(t, s, k, p, score, refs[(t, s)]))
            out_caption = describe(images[j][None], rngs[t])[0]
            ref_caption = describe(references[j][None], rngs[t])[0]
            turns = history[(t, s)]
            turns.append({"role": "assistant", "content": f'{{"prompt": "{p}"}}'})
            turns.append({"role": "user", "content": feedback_turn(tasks[t], out_caption, ref_caption, score)})
            # our system prompt is added by the engineer; keep the last `keep` exchanges and the new turn
            del turns[: max(0, len(turns) - (2 * keep + 1))]
    runs = []
    for t, task in enumerate(tasks):
        best, extra = reevaluate(task, candidates[t], generator, judge, top_c, rngs[t])
        runs.append(Run(task, candidates[t], best, calls[t] + extra, n_streams * n_iterations, failures[t],
                        [history[(t, s)] for s in range(n_streams)]))
    return runs


def reevaluate(task: Task, candidates: list[Candidate], generator, judge: Callable, top_c: int,
               rng: np.random.Generator) -> tuple[Candidate | None, int]:
    """The winner's curse: the loop's scores are single noisy draws, and the maximum of noisy scores
    is biased upward. The top ``top_c`` distinct prompts by loop score are re-scored on fresh draws
    (objects: one image per reference, inside a random generic prefix, mean over the M references;
    scenes: the mean of the loop score and two fresh draws); the winner is the best re-score, ties to
    the shortest prompt. Returns it and the generator calls spent."""
    if not candidates:
        return None, 0
    best_by_prompt: dict[str, Candidate] = {}
    for c in candidates:
        if c.prompt not in best_by_prompt or c.score > best_by_prompt[c.prompt].score:
            best_by_prompt[c.prompt] = c
    pool = list(best_by_prompt.values())
    top = []
    while pool and len(top) < top_c:
        top.append(pool.pop(_shortest_best(pool, lambda c: c.score)))
    texts, seeds, refs, owner = [], [], [], []
    m = len(task.references)
    for j, c in enumerate(top):
        draws = range(m) if task.kind == "object" else (0, 0)
        for ref in draws:
            prefix = GENERIC_PREFIXES[int(rng.integers(len(GENERIC_PREFIXES)))] if task.kind == "object" else "{}"
            texts.append(prefix.format(c.prompt))
            seeds.append(int(rng.integers(2**31)))
            refs.append(ref)
            owner.append(j)
    images = generator.generate(texts, seeds)
    scores = np.array([_check_score(x) for x in judge(images, task.references[refs], task.attributes)])
    owner = np.array(owner)
    for j, c in enumerate(top):
        fresh = scores[owner == j]
        c.reeval = float(fresh.mean()) if task.kind == "object" else float(np.mean([c.score, *fresh]))
    return top[_shortest_best(top, lambda c: c.reeval)], len(texts)
