"""Chapter 10's experiments: the tasks, the judge, what the engineer sees, the white-box baselines
through the one-step generator, and the evaluation on fresh draws (fidelity, transfer, readability)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..discrete import Objective, gcg, pez, random_search
from ..discrete.search import random_free_tokens
from ..t2i import OneStepGenerator
from ..world import ATTRIBUTES, VALUES, caption, read_attributes, render, sample_scenes
from .loop import Task

OBJECT_ATTRIBUTES = ("shape", "colour", "size")
#: The contexts an object prompt is evaluated in (DreamBooth's "{} at the top"-style templates, in
#: the world's terms): each fixes one context attribute, checked on the image.
TEMPLATES = (("{} on the left", "position", "left"), ("{} in the middle", "position", "middle"),
             ("{} on the right", "position", "right"), ("{} on a black background", "background", "black"),
             ("{} on a white background", "background", "white"), ("{} on a gray background", "background", "gray"))
EVAL_SEED_BASE = 50_000  # fresh draws for evaluation, shared by every method (paired comparisons)

SYSTEM_PROMPT = """SETTING: You are a prompt engineer for a text-to-image generator. You are shown a \
description of a reference image. Write a prompt that makes the generator draw the same picture. After \
each try you see a description of what the generator drew and a score from 0 to 10 for how well it \
matches the reference; use it to write a better prompt.

FORMAT: Answer with one JSON object with a single field "prompt", whose value is the prompt text, and \
nothing else. A prompt is a short phrase of plain words, at most 15 words.

EXAMPLES:
{"prompt": "a large pink star on a dark blue background"}
{"prompt": "two small brown hexagons near the top of a plain beige image"}
{"prompt": "one tiny white heart in the corner, flat illustration"}"""


class WorldCaptioner:
    """What the engineer sees of an image: the world's attribute reader, written out with the world's
    caption template (words drawn by ``rng``). The reader is 99-100% exact at 32 x 32, so this is
    a near-perfect BLIP-2; an unreadable image is said to be one."""

    def __call__(self, images, rng: np.random.Generator) -> list[str]:
        read = read_attributes(np.asarray(images))
        out = []
        for i in range(len(read["background"])):
            fixed = {name: VALUES[name][read[name][i]] for name in ATTRIBUTES if read[name][i] >= 0}
            if len(fixed) < len(ATTRIBUTES):
                colour = f" with {fixed['colour']} marks" if "colour" in fixed else ""
                out.append(f"an unclear image{colour} on a {fixed['background']} background")
            else:
                out.append(caption(sample_scenes(1, rng, **fixed), rng)[0])
        return out


def attribute_judge(images, references, attributes: Sequence[str]) -> np.ndarray:
    """D(x^, x): 10 x the share of ``attributes`` the reader finds equal in each pair of images (an
    unreadable attribute disagrees)."""
    bad = [a for a in attributes if a not in ATTRIBUTES]
    if bad or not attributes:
        raise ValueError(f"judge attributes must be among {', '.join(ATTRIBUTES)}, got {list(attributes)}")
    images, references = np.asarray(images), np.asarray(references)
    if images.shape != references.shape:
        raise ValueError(f"the judge compares image pairs: got {images.shape} and {references.shape}")
    a, b = read_attributes(images), read_attributes(references)
    return 10.0 * np.mean([(a[k] == b[k]) & (a[k] >= 0) for k in attributes], axis=0)


def make_tasks(n_concepts: int, n_scenes: int, m: int, image_size: int, seed: int) -> list[Task]:
    """Concepts: one object (shape, colour, size; one of it) in ``m`` renders whose position and
    background vary; scenes: one render, 1-3 objects, every attribute judged."""
    rng = np.random.default_rng([seed, 0x7A5C])
    tasks = []
    for i in range(n_concepts):
        concept = sample_scenes(1, rng, count=1)
        fixed = {k: VALUES[k][getattr(concept, k)[0]] for k in OBJECT_ATTRIBUTES}
        refs = render(sample_scenes(m, rng, count=1, **fixed), image_size)
        tasks.append(Task(f"concept {i + 1}", "object", torch.from_numpy(refs.astype(np.float32)), OBJECT_ATTRIBUTES))
    for i in range(n_scenes):
        scene = sample_scenes(1, rng, count=int(rng.integers(1, 4)))
        tasks.append(Task(f"scene {i + 1}", "scene", torch.from_numpy(render(scene, image_size).astype(np.float32)),
                          ATTRIBUTES))
    return tasks


def target_labels(task: Task) -> dict[str, torch.Tensor]:
    """The references' attributes as the reader reads them, ``{name: (1, M)}``: what a white-box
    optimizer is given (it sees the reference images, as Textual Inversion does)."""
    read = read_attributes(task.references.numpy())
    if any((read[k] < 0).any() for k in task.attributes):
        raise ValueError(f"task {task.name!r}: the reader cannot read every reference")
    return {k: torch.as_tensor(read[k])[None] for k in task.attributes}


class OneStepObjective(Objective):
    """White-box loss over MiniLM token ids: the one-step generator's cross-entropy of the task's
    reference attributes (its training loss, as the denoising loss is Textual Inversion's), for the
    prompt ``[CLS] free [SEP]``. Free tokens: WordPiece ids that are lowercase words or word pieces."""

    def __init__(self, generator: OneStepGenerator, task: Task):
        from ..models.minilm import load_minilm

        self.model, self.tokenizer = load_minilm()
        self.generator, self.task = generator, task
        self.targets = target_labels(task)
        self.device = torch.device("cpu")
        self.embedding_weight = self.model.get_input_embeddings().weight
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(self.vocab_size)))
        self.set_allowed([re.fullmatch(r"(##)?[a-z]+", t) is not None for t in vocab])
        self.cls, self.sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id

    def max_free(self) -> int:
        return 126

    def loss_from_embeds(self, free_embeds: torch.Tensor) -> torch.Tensor:
        b = len(free_embeds)
        ends = self.embedding_weight[[self.cls, self.sep]]
        embeds = torch.cat([ends[0].expand(b, 1, -1), free_embeds, ends[1].expand(b, 1, -1)], dim=1)
        hidden = self.model(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long))
        condition = F.normalize(hidden.last_hidden_state.mean(1), dim=-1)  # MiniLM's pooling, no padding here
        targets = {k: v.expand(b, -1) for k, v in self.targets.items()}
        return self.generator.nll(condition, targets, self.task.attributes)

    def evaluate(self, free: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        free = self.check_free(free)
        with torch.no_grad():
            loss = torch.cat([self.loss_from_embeds(self.embedding_weight[free[i: i + batch_size]])
                              for i in range(0, len(free), batch_size)])
        return loss, torch.zeros(len(free), dtype=torch.bool)

    def text(self, free: torch.Tensor) -> str:
        return self.tokenizer.decode(free.tolist())


def textual_inversion(generator: OneStepGenerator, task: Task, steps: int, lr: float = 0.05,
                      init_prompt: str = "a picture of an object") -> tuple[torch.Tensor, list[float]]:
    """Textual Inversion's analogue: the 384-d condition itself optimized (Adam on the same
    cross-entropy, kept on the unit sphere), from a generic prompt's embedding. It is a vector,
    not text: no other generator can read it."""
    targets = target_labels(task)
    v = generator.encode([init_prompt]).clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    losses = []
    for _ in range(steps):
        loss = generator.nll(F.normalize(v, dim=-1), targets, task.attributes)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return F.normalize(v.detach(), dim=-1), losses


@dataclass
class WhiteBox:
    method: str
    prompt: str | None  # decoded text (None for Textual Inversion's vector)
    condition: torch.Tensor | None
    loss: float
    evaluations: int  # generator evaluations (loss forwards) spent


def whitebox_runs(generator: OneStepGenerator, task: Task, calls: int, cfg, seed: int) -> list[WhiteBox]:
    """Random search, GCG and PEZ over ``cfg.n_free`` MiniLM tokens and Textual Inversion's analogue,
    at ``calls`` evaluations (PRISM's generator calls on this task), plus GCG at
    ``cfg.gcg_steps`` x ``cfg.gcg_batch`` and TI at ``cfg.ti_steps`` (their budgets shown)."""
    objective = OneStepObjective(generator, task)
    gen = torch.Generator().manual_seed(seed)
    init = random_free_tokens(objective, cfg.n_free, gen)
    batch = 8
    steps = max(1, (calls - 1) // batch)
    out = []
    for name, fn, kw, n_eval in (
            ("random search", random_search, dict(num_steps=steps, batch_size=batch), 1 + steps * batch),
            ("GCG", gcg, dict(num_steps=steps, batch_size=batch, top_k=cfg.gcg_top_k), 1 + steps * batch),
            (f"GCG {cfg.gcg_steps}x{cfg.gcg_batch}", gcg,
             dict(num_steps=cfg.gcg_steps, batch_size=cfg.gcg_batch, top_k=cfg.gcg_top_k),
             1 + cfg.gcg_steps * cfg.gcg_batch)):
        result = fn(objective, init, generator=torch.Generator().manual_seed(seed), **kw)
        out.append(WhiteBox(name, objective.text(result.free), None, result.loss, n_eval))
    result = pez(objective, init, max(1, calls // 2))
    out.append(WhiteBox("PEZ", objective.text(result.free), None, result.loss, result.candidates))
    for name, steps_ti in (("TI analogue", calls), (f"TI analogue {cfg.ti_steps}", cfg.ti_steps)):
        condition, losses = textual_inversion(generator, task, steps_ti)
        out.append(WhiteBox(name, None, condition, losses[-1], steps_ti))
    return out


def fidelity(task: Task, generator, prompt: str | None, draws: int, seed: int,
             condition: torch.Tensor | None = None) -> dict[str, float]:
    """On fresh draws (seeds shared by every method): objects inside each of :data:`TEMPLATES`
    (object fidelity: shape, colour, size as the concept's, x 10; context fidelity: the template's
    position or background, x 10); scenes alone (every attribute, x 10). A condition vector
    (Textual Inversion's) is drawn as is: a template cannot be added to it (NaN context)."""
    truth = read_attributes(task.references.numpy())
    rng = np.random.default_rng([seed, EVAL_SEED_BASE])
    if task.kind == "object":
        rows = [(tpl, name, value) for tpl, name, value in TEMPLATES for _ in range(draws)]
    else:
        rows = [("{}", None, None)] * draws
    seeds = [int(s) for s in rng.integers(2**31, size=len(rows))]
    if condition is not None:
        if not isinstance(generator, OneStepGenerator):
            return {"fidelity": math.nan, "context": math.nan}
        images = generator.generate_from_condition(condition.expand(len(rows), -1), seeds)
    else:
        images = generator.generate([tpl.format(prompt) for tpl, _, _ in rows], seeds)
    read = read_attributes(images.numpy())
    ref = {k: truth[k][0] for k in task.attributes}
    fid = 10 * np.mean([read[k] == ref[k] for k in task.attributes])
    if task.kind == "scene" or condition is not None:
        return {"fidelity": float(fid), "context": math.nan}
    context = np.mean([read[name][i] == VALUES[name].index(value) for i, (_, name, value) in enumerate(rows)])
    return {"fidelity": float(fid), "context": float(10 * context)}


# ----------------------------------------------------------------------------------------- readability

_WORDS = re.compile(r"[a-z]+|[0-9]+")


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def train_trigram(n_captions: int, seed: int):
    """A word trigram (nltk's add-one ``Laplace``) on held-out captions of fresh scenes, both of the
    world's phrasings: an independent judge of how caption-like a prompt's words are."""
    from nltk.lm import Laplace
    from nltk.lm.preprocessing import padded_everygram_pipeline

    rng = np.random.default_rng([seed, 0x3A3])
    scenes = sample_scenes(n_captions, rng)
    texts = caption(scenes[: n_captions // 2], rng) + caption(scenes[n_captions // 2:], rng, phrasing="heldout")
    train, vocab = padded_everygram_pipeline(3, [words(t) for t in texts])
    model = Laplace(3)
    model.fit(train, vocab)
    return model


def trigram_nll(model, text: str) -> float:
    """Bits per word under the trigram (sentence start padded, end symbol included)."""
    from nltk.lm.preprocessing import pad_both_ends
    from nltk.util import ngrams

    grams = list(ngrams(pad_both_ends(words(text), n=3), 3))
    if not grams:
        return math.nan
    return float(-np.mean([model.logscore(g[-1], g[:-1]) for g in grams]))


def lm_nll(model, tokenizer, text: str) -> float:
    """Nats per token of ``text`` under a causal LM, after its end-of-text token as a start."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    x = torch.tensor([[start, *ids]])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, :-1]
    return float(F.cross_entropy(logits.float(), x[0, 1:]))


# ----------------------------------------------------------------------------------------- summaries

def generator_fidelity(generator, n: int, seed: int, image_size: int) -> pd.DataFrame:
    """G's fidelity to its prompt before any search: the world's true captions (a ceiling) and random
    sentences from Python's docs (a floor), judged on every attribute, x 10."""
    from ..models.corpus import python_docs_paragraphs

    rng = np.random.default_rng([seed, 0xF1D])
    scenes = sample_scenes(n, rng, count=[int(c) for c in rng.integers(1, 4, size=n)])
    truth = {k: getattr(scenes, k) for k in ATTRIBUTES}
    docs = python_docs_paragraphs()
    random_text = [" ".join(docs[int(i)].split()[:12]) for i in rng.integers(len(docs), size=n)]
    rows = []
    for name, texts in (("true caption", caption(scenes, rng)), ("random text", random_text)):
        read = read_attributes(generator.generate(texts, list(range(n))).numpy())
        row = {"prompt": name}
        for k in ATTRIBUTES:
            row[k] = float(np.mean(read[k] == truth[k]))
        row["all (x10)"] = 10 * float(np.mean([row[k] for k in ATTRIBUTES]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("prompt")


# ----------------------------------------------------------------------------------------- the comparison

BLACK_BOX = ("PRISM", "best-of-N K", "zero-shot", "captioner")


def compare(tasks: Sequence[Task], prism_runs, bestof_runs, g1: OneStepGenerator, g3, describe, cfg,
            seed: int, lm=None, trigram=None) -> tuple[pd.DataFrame, dict]:
    """Every method's prompt per task, evaluated on fresh draws of G1 (the loop's generator) and G3
    (transfer), with readability. One row per (task, method); the white-box results are returned too.

    PRISM and best-of-N K spend the same generator calls (N K + re-evaluation); zero-shot is
    best-of-N K's first sample (one call); the captioner's caption of the first reference costs
    none; random search, GCG and PEZ get PRISM's calls as loss evaluations, GCG also its
    ``gcg_steps x gcg_batch`` budget (shown), Textual Inversion's analogue as many gradient steps."""
    rng = np.random.default_rng([seed, 0xCA7])
    rows, whitebox = [], {}
    for t, task in enumerate(tasks):
        run, best_of = prism_runs[t], bestof_runs[t]
        first = min(best_of.candidates, key=lambda c: (c.iteration, c.stream)) if best_of.candidates else None
        prompts = {"PRISM": (run.prompt, run.generator_calls), "best-of-N K": (best_of.prompt, best_of.generator_calls),
                   "zero-shot": (None if first is None else first.prompt, 1),
                   "captioner": (describe(task.references[:1], rng)[0], 0)}
        entries = [(m, p, None, calls) for m, (p, calls) in prompts.items()]
        whitebox[task.name] = whitebox_runs(g1, task, run.generator_calls, cfg, seed)
        entries += [(w.method, w.prompt, w.condition, w.evaluations) for w in whitebox[task.name]]
        for method, prompt, condition, calls in entries:
            row = {"seed": seed, "task": task.name, "kind": task.kind, "method": method, "prompt": prompt,
                   "calls": calls}
            if prompt is None and condition is None:
                rows.append(row)
                continue
            draws = cfg.draws_per_template if task.kind == "object" else cfg.scene_draws
            on_g1 = fidelity(task, g1, prompt, draws, seed, condition)
            on_g3 = fidelity(task, g3, prompt, draws, seed, condition)
            row.update({"G1 fidelity": on_g1["fidelity"], "G1 context": on_g1["context"],
                        "G3 fidelity": on_g3["fidelity"], "G3 context": on_g3["context"]})
            if prompt is not None:
                row["words"] = len(prompt.split())
                if trigram is not None:
                    row["trigram bits/word"] = trigram_nll(trigram, prompt)
                if lm is not None:
                    row["SmolLM2 nats/token"] = lm_nll(*lm, prompt)
            rows.append(row)
    return pd.DataFrame(rows), whitebox


def loop_trace(runs) -> pd.DataFrame:
    """Loop scores per (task, stream, iteration) of PRISM runs."""
    return pd.DataFrame([{"task": r.task.name, "stream": c.stream, "iteration": c.iteration, "score": c.score}
                         for r in runs for c in r.candidates])


def plot_prompts(task: Task, table: pd.DataFrame, g1: OneStepGenerator, methods: Sequence[str], seed: int,
                 draws: int = 4):
    """The task's references, then each method's prompt (wrapped) and ``draws`` of its G1 images."""
    import textwrap

    import matplotlib.pyplot as plt

    rows = table[(table["task"] == task.name) & table["method"].isin(methods)].set_index("method")
    methods = [m for m in methods if m in rows.index and isinstance(rows.loc[m, "prompt"], str)]
    n_refs = len(task.references)
    cols = max(n_refs, draws)
    fig, axes = plt.subplots(1 + len(methods), cols, figsize=(1.25 * cols + 2.6, 1.3 * (1 + len(methods))),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for j in range(n_refs):
        axes[0, j].imshow(task.references[j].permute(1, 2, 0).numpy())
    axes[0, 0].set_title("references", fontsize=8, loc="left")
    seeds = [EVAL_SEED_BASE + 7 * seed + j for j in range(draws)]
    for i, method in enumerate(methods, start=1):
        prompt = rows.loc[method, "prompt"]
        text = GENERIC_PROMPT.format(prompt) if task.kind == "object" else prompt
        images = g1.generate([text] * draws, seeds)
        for j in range(draws):
            axes[i, j].imshow(images[j].permute(1, 2, 0).numpy())
        axes[i, -1].text(1.08, 0.5, f"{method}:\n" + textwrap.fill(prompt, 34), transform=axes[i, -1].transAxes,
                         fontsize=7, va="center")
    return fig


GENERIC_PROMPT = "a picture of {}"


def check_equal_budget(runs_a, runs_b) -> None:
    """Two methods compared "at equal budget" must have asked the engineer for as many prompts per
    task (N K each); a clear error otherwise."""
    for a, b in zip(runs_a, runs_b, strict=True):
        if a.engineer_rows != b.engineer_rows:
            raise ValueError(f"unequal budgets on {a.task.name!r}: {a.engineer_rows} vs {b.engineer_rows} engineer "
                             "prompts; best-of-N K must sample N x K prompts (K = 1, N K streams)")
