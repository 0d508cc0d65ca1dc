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
# # 10 · PRISM: black-box prompt engineering by in-context refinement
#
# Yutong He, Alexander Robey, Naoki Murata, Yiding Jiang, Joshua
# Nathaniel Williams, George J. Pappas, Hamed Hassani, Yuki Mitsufuji,
# Ruslan Salakhutdinov and J. Zico Kolter. "Automated Black-box Prompt
# Engineering for Personalized Text-to-Image Generation". arXiv preprint,
# 2024.
# [arXiv:2403.19103](https://arxiv.org/abs/2403.19103). Reference code:
# [KellyYutongHe/prism_demo](https://github.com/KellyYutongHe/prism_demo).
#
# Chapters 08, [Prompt inversion: discrete optimizers vs a
# captioner](08_prompt_inversion.ipynb), and 09, [FUSE: gradients across
# tokenizers](09_fuse.ipynb), searched for prompts with gradients. PRISM
# {cite:p}`he2024prism` needs none: an LLM, the *engineer*, writes a prompt
# for a set of reference images, the text-to-image model draws it, a
# *judge* scores the drawing against the reference, and the (drawing,
# reference, score) goes back into the engineer's context as the next turn,
# the loop PAIR {cite:p}`chao2023pair` runs against language models. The
# paper's claims: the prompts found are readable, transfer across
# generators (SD, SDXL-Turbo {cite:p}`sauer2023add`, DALL-E, Midjourney),
# beat GPT-4V's zero-shot prompts, and more streams help steadily while
# more iterations do not help monotonically.
#
# Here the engineer is SmolLM2-135M-Instruct (a real pretrained chat model,
# offline), text only: images reach it as a captioner writes them, so "the
# VLM" is a captioner plus an LLM. The generator is a one-step model on the
# shapes world of chapter 07, [CLIP finetuned on pairwise differences
# (PC-CLIP)](07_pcclip.ipynb), the judge that world's attribute reader.

# %% tags=["parameters"]
# preset "cpu": about 5 minutes on 2 CPU cores; "long": the paper's N and K;
# "full": VLM + SDXL-Turbo
preset = "cpu"
overrides = {}  # e.g. {"n_streams": 8, "seeds": [0, 1, 2]}
seed = 0
# device "auto" | "cpu" | "cuda" (the models are small: the CPU path is the
# tested one)
device = "auto"

# %% tags=["hide-input"]
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from reprobook.chapters import get_chapter
from reprobook.claims import Claims, paired_verdict
from reprobook.common import (
    REPO_ROOT,
    Table,
    load_results,
    resolve_device,
    seed_everything,
    set_plot_style,
)
from reprobook.models.minilm import load_minilm
from reprobook.models.pretrained import load_causal_lm
from reprobook.prism import Engineer, Task, extract_prompt, prism
from reprobook.prism import experiments as ex
from reprobook.t2i import RendererGenerator, train_one_step_generator

# the book never downloads: weights come from disk
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# bad preset or parameter: a clear error, now
cfg = get_chapter("prism").config(preset, overrides, namespace=globals())
# its paths were checked above (one error naming every missing one)
if preset == "full":
    raise NotImplementedError(
        "the full preset's VLM engineer + SDXL-Turbo run is not built yet "
        "(see the end of this chapter); the cpu preset runs here"
    )
device = resolve_device(device, "torch")
if device != "cpu":
    raise NotImplementedError(
        "this chapter's models run on the CPU (SmolLM2-135M and MiniLM are "
        "small); the GPU check is benchmarks/prism_gpu.py. Set device='cpu'."
    )
seed_everything(seed)
torch.set_num_threads(2)
set_plot_style()
claims = Claims("prism", preset)
chapter_start = time.perf_counter()

# %% [markdown]
# ## The objective, and why the loop moves a distribution
#
# References $x_1, \dots, x_M$ show what we want (an object in $M$ photos,
# or one scene). A black-box generator $G$ draws $\hat x \sim p_G(\cdot
# \mid y)$ from a prompt $y$, and a judge $D(\hat x, x) \in [0, 10]$ scores
# a drawing against a reference. The prompt we want is
#
# $$y^\star = \arg\max_y \; \sum_{i=1}^{M} \mathbb{E}_{\hat x \sim p_G(\cdot \mid y)}\, D(\hat x, x_i).$$
#
# Without gradients, PRISM searches by *sampling*: the engineer $F$ is a
# distribution $y \sim p_F(y \mid c)$ over prompts given its context $c$,
# and the loop changes $c$, so it moves the whole distribution, not one
# prompt. $N$ streams run for $K$ iterations each. In iteration $k$ a
# stream's engineer answers, $G$ draws one image $\hat x$, $D$ scores it,
# and the turn $(\hat x, x, D(\hat x, x))$ is appended to the stream's
# context (the system prompt and the last 3 exchanges are kept).
#
# **The winner's curse.** Every loop score $s_j + \varepsilon_j$ is one
# noisy draw ($\hat x$ is random). Picking the maximum picks noise too:
# $\mathbb{E}\max_j (s_j + \varepsilon_j) \ge \max_j s_j$. So the top $C$
# prompts of all $N K$ are scored again on *fresh* draws, unbiased for
# those few, and the winner is the best re-score (ties: the shortest
# prompt, the paper's proxy for likelihood).
#
# **The ablation built in.** With $K = 1$ the loop is $N K$ independent
# samples from the engineer's first context, best-of-$NK$, with the same
# re-evaluation and the same $N K + C M$ generator calls. PRISM minus
# best-of-$NK$ is exactly what the in-context feedback adds.
#
# The loop (`reprobook.prism.loop.prism`) runs every task's streams in one
# batch per iteration. Three of the reference code's pitfalls are fixed
# there: its demo's defaults ($N = 5, K = 2$) are not the paper's; it
# reseeds the global RNG with `random.seed(10 k)` every iteration (every run
# and seed then picks the same references and prefixes; here each draw's
# seed is the run's seed and its place in the run); and its inversion
# script judges with a prefix but re-evaluates without one, drawing the
# reference shown and the reference judged separately (here the stream's
# reference is the one shown and the one judged). The engineer's JSON is
# parsed with a JSON decoder, not by slicing from the first `{` to the
# first `}`, so quotes and braces in a prompt survive:

# %%
for answer in [
    'a small "red" circle on the left"}',
    'a {red} circle, flat"}',
    'P"}',
    "a red circle on a white",
]:
    print(f"{answer!r:42} -> {extract_prompt(answer)}")

# %% [markdown]
# ## The stand-ins
#
# | paper | here |
# |---|---|
# | engineer $F$: GPT-4V, temperature 1, top-p 0.9 | SmolLM2-135M-Instruct, same sampling, our system prompt (its template would inject a default one), JSON prefill `{"prompt": "` as PAIR does |
# | $F$ sees the images | $F$ reads captions: the world's reader written out with the world's caption template (an exact captioner at 32 px) |
# | $G$: SDXL-Turbo, one step | G1: frozen all-MiniLM-L6-v2 sentence embedding → an MLP over the scene's attributes → one draw by the seed's noise → render |
# | transfer to SD 2.1, DALL-E, Midjourney | G3: the world's own parser and renderer (knows only the world's words) |
# | judge $D$: GPT-4V, 0-10 | 10 × the share of attributes the reader finds equal (objects: shape, colour, size; scenes: all six) |
# | DreamBooth subjects, DiffusionDB images | 2 concepts (one object in $M = 4$ renders, position and background varied) + 2 scenes ($M = 1$) |
#
# Our judge is far less noisy than GPT-4V's, and our engineer far weaker.
# G1's latent is the scene record: its pixels are clean renders, and what
# the prompt leaves open (a background not named) the noise decides as the
# learned conditional distribution says. It is trained in about 35 s on
# MiniLM embeddings of world captions that leave out size, position or
# background at random. First its fidelity to a prompt, between a ceiling
# (the world's true captions) and a floor (sentences from Python's docs):

# %%
load_start = time.perf_counter()
g1, g1_losses = train_one_step_generator(
    cfg.generator_captions, cfg.image_size, steps=cfg.generator_steps, seed=seed
)
g3 = RendererGenerator(cfg.image_size)
lm, tokenizer = load_causal_lm("smollm2")
load_minilm()
engineer = Engineer(
    lm,
    tokenizer,
    ex.SYSTEM_PROMPT,
    temperature=cfg.temperature,
    top_p=cfg.top_p,
    max_new_tokens=cfg.max_new_tokens,
    retries=cfg.retries,
)
captioner = ex.WorldCaptioner()
load_seconds = time.perf_counter() - load_start
g1_fidelity = ex.generator_fidelity(g1, 60, seed, cfg.image_size)
print(
    f"G1 trained on {cfg.generator_captions:,} captions, "
    f"{cfg.generator_steps} steps: cross-entropy "
    f"{g1_losses[0]:.2f} -> {np.mean(g1_losses[-50:]):.2f} (sum over 6 attributes)"
)
print(
    "share of attributes the reader finds as the prompt says (60 prompts, 1-3 objects):"
)
display(Table(g1_fidelity.reset_index(), floatfmt="{:.2f}"))

# %% [markdown]
# ## The tasks, and what the engineer is told
#
# Each seed draws its own 2 concepts and 2 scenes. Our system prompt keeps
# the reference's SETTING / FORMAT / EXAMPLES in about 180 tokens; its
# examples are objects *not* in the world (stars, hexagons, hearts) and
# there is no placeholder letter to copy (in a pilot of the spec, 3 of 8
# SmolLM2 streams answered with the instructions' placeholder "P").

# %%
print(ex.SYSTEM_PROMPT)
print(f"\n({len(tokenizer.encode(ex.SYSTEM_PROMPT))} SmolLM2 tokens)")
tasks_by_seed = {
    s: ex.make_tasks(
        cfg.n_concepts, cfg.n_scenes, cfg.references_per_concept, cfg.image_size, s
    )
    for s in cfg.seeds
}
show = tasks_by_seed[cfg.seeds[0]]
# one row per concept (its M references); the scenes' references share rows
ncols = max(2, max(len(t.references) for t in show))
ref_rows = [[(t.name, r) for r in t.references] for t in show if t.kind == "object"]
scene_refs = [(t.name, r) for t in show if t.kind != "object" for r in t.references]
ref_rows += [scene_refs[i : i + ncols] for i in range(0, len(scene_refs), ncols)]
fig, axes = plt.subplots(
    len(ref_rows),
    ncols,
    figsize=(1.7 * ncols, 1.9 * len(ref_rows)),
    squeeze=False,
    layout="constrained",
)
for ax_row, refs in zip(axes, ref_rows):
    for j, ax in enumerate(ax_row):
        ax.axis("off")
        if j < len(refs):
            name, ref = refs[j]
            ax.imshow(ref.permute(1, 2, 0).numpy())
            if j == 0 or refs[j - 1][0] != name:
                ax.set_title(name, fontsize=10, loc="left")
fig.suptitle(f"seed {cfg.seeds[0]}: the references")
plt.show()

# %% [markdown]
# ## PRISM and best-of-$NK$ at equal budget
#
# Per task: $N = 4$ streams × $K = 3$ iterations, then the top $C = 3$
# re-evaluated (objects: one fresh draw per reference inside a random
# generic prefix such as "a photo of {}"; scenes: the mean of the loop
# score and 2 fresh draws). Best-of-12 is the same call with $K = 1$. The
# paper runs $N = 10, K = 4$ (personalization) and $N = 6, K = 5$
# (inversion): the `long` preset.

# %%
llm_start = time.perf_counter()
prism_runs, bestof_runs = {}, {}
for s in cfg.seeds:
    prism_runs[s] = prism(
        tasks_by_seed[s],
        engineer,
        g1,
        ex.attribute_judge,
        captioner,
        n_streams=cfg.n_streams,
        n_iterations=cfg.n_iterations,
        top_c=cfg.top_c,
        seed=s,
        keep=cfg.keep,
    )
    bestof_runs[s] = prism(
        tasks_by_seed[s],
        engineer,
        g1,
        ex.attribute_judge,
        captioner,
        n_streams=cfg.n_streams * cfg.n_iterations,
        n_iterations=1,
        top_c=cfg.top_c,
        seed=s,
        keep=cfg.keep,
    )
    ex.check_equal_budget(prism_runs[s], bestof_runs[s])
llm_seconds = time.perf_counter() - llm_start
log = engineer.log
total = sum(log.statuses.values())
print(
    f"engineer: {log.rows} sampled answers in {log.calls} batched calls; "
    + ", ".join(f"{k} {v} ({v / total:.0%})" for k, v in log.statuses.most_common())
)
print(
    f"failure rate {log.failure_rate:.0%} (resampled up to {cfg.retries} times); "
    "streams left without a prompt: "
    f"{sum(r.failures for runs in prism_runs.values() for r in runs)} (PRISM), "
    f"{sum(r.failures for runs in bestof_runs.values() for r in runs)} (best-of)"
)
for r in prism_runs[cfg.seeds[0]]:
    print(
        f"{r.task.name}: PRISM's winner {r.prompt!r} (re-scored {r.best.reeval:.1f}; "
        f"{r.generator_calls} generator calls)"
    )

# %% [markdown]
# One stream's conversation, as the engineer saw it last (our system
# prompt is prepended to it on every call):

# %%
for turn in prism_runs[cfg.seeds[0]][0].history[0]:
    print(f"[{turn['role']}] {turn['content']}")

# %% [markdown]
# Score against iteration for every stream (seed 0's tasks). If the
# feedback helped, streams would climb; single draws are noisy (one
# image), so a flat or falling line is not by itself a failure of the
# feedback:

# %%
trace = ex.loop_trace(prism_runs[cfg.seeds[0]])
# one panel per task, two per row, the streams' legend below
names = list(dict.fromkeys(trace["task"]))
nrows = -(-len(names) // 2)
fig, axes = plt.subplots(
    nrows, 2, figsize=(8, 2.9 * nrows), sharey=True, squeeze=False, layout="constrained"
)
for ax, name in zip(axes.ravel(), names):
    sub = trace[trace["task"] == name]
    for s, g in sub.groupby("stream"):
        ax.plot(
            g["iteration"] + 1,
            g["score"],
            marker="o",
            ms=4,
            lw=1,
            alpha=0.8,
            label=f"stream {s + 1}",
        )
    ax.set(
        title=name,
        xlabel="iteration",
        xticks=range(1, cfg.n_iterations + 1),
        ylim=(-0.5, 10.5),
    )
for ax in axes.ravel()[len(names) :]:
    ax.axis("off")
for ax in axes[:, 0]:
    ax.set_ylabel("judge score (0-10)")
handles, labels = axes[0, 0].get_legend_handles_labels()
fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5))
plt.show()
by_iteration = pd.concat([ex.loop_trace(prism_runs[s]) for s in cfg.seeds]).groupby(
    "iteration"
)["score"]
print(
    "mean loop score by iteration, all seeds and tasks: "
    + ", ".join(f"k={k + 1}: {v:.2f}" for k, v in by_iteration.mean().items())
)

# %% [markdown]
# ## Baselines, and evaluation on fresh draws
#
# Every method's final prompt is evaluated on fresh draws with seeds shared
# by all methods (paired comparisons). Objects are drawn inside 6 templates
# ("{} on the left", "{} on a white background", ...; DreamBooth's
# {cite:p}`ruiz2023dreambooth` "{} at the top" in this world's terms), 4
# draws each: *object fidelity* is 10 × the share of shape, colour and size
# kept, *context fidelity* 10 × the share of templates whose position or
# background appears. Scenes are
# drawn 16 times from the prompt alone, judged on all six attributes.
#
# The baselines at PRISM's generator calls per task: **zero-shot**
# (best-of's first sample, 1 call), **the captioner's caption** of the
# first reference (BLIP-2's analogue; 0 calls), and white-box optimizers
# over 8 MiniLM word-piece tokens with G1's cross-entropy of the
# references' attributes as the loss (G1's training loss, as the denoising
# loss is Textual Inversion's {cite:p}`gal2023textualinversion`): **random
# search**, **GCG** {cite:p}`zou2023gcg` and **PEZ** {cite:p}`wen2023pez`
# (chapter 08's `reprobook.discrete`), each at PRISM's calls as loss
# evaluations, and GCG at 15 × 32 = 481 as well (the budget shown);
# **Textual Inversion's analogue** optimizes G1's 384-d condition itself
# (PRISM's calls as gradient steps, and 200). Transfer: the same prompts
# on G3, the world's renderer. Readability: bits per word under a word
# trigram (nltk's add-one `Laplace`) fitted on 2,000 held-out captions of
# both phrasings, and nats per token under SmolLM2 (the proposer itself:
# biased towards PRISM's prompts).

# %%
eval_start = time.perf_counter()
trigram = ex.train_trigram(cfg.readability_captions, seed)
tables, whitebox = [], {}
for s in cfg.seeds:
    table, whitebox[s] = ex.compare(
        tasks_by_seed[s],
        prism_runs[s],
        bestof_runs[s],
        g1,
        g3,
        captioner,
        cfg,
        s,
        lm=(lm, tokenizer),
        trigram=trigram,
    )
    tables.append(table)
results = pd.concat(tables, ignore_index=True)
eval_seconds = time.perf_counter() - eval_start
order = list(dict.fromkeys(results["method"]))
metrics = [
    "G1 fidelity",
    "G1 context",
    "G3 fidelity",
    "G3 context",
    "trigram bits/word",
    "SmolLM2 nats/token",
    "words",
    "calls",
]
summary = results.groupby("method")[metrics].mean().reindex(order)
summary["G1 fidelity, objects"] = (
    results[results["kind"] == "object"].groupby("method")["G1 fidelity"].mean()
)
summary["G1 fidelity, scenes"] = (
    results[results["kind"] == "scene"].groupby("method")["G1 fidelity"].mean()
)
print(
    f"means over {len(cfg.seeds)} seeds x {cfg.n_concepts + cfg.n_scenes} tasks "
    "(fidelity and context 0-10; "
    "NaN: cannot be measured, e.g. a vector has no words and no template)"
)
display(Table(summary.reset_index(), floatfmt="{:.2f}"))

# %% [markdown]
# How to read the table. *Context* matters for objects only: a prompt that
# names the reference's own position or background (the captioner's caption
# always does) fights the template's, and on G3, which takes the first
# value a prompt names, it loses to it. Off-topic prompts leave the context
# free, so a high context score alone is no merit: read it next to object
# fidelity. Textual Inversion's vector has no words: it cannot be read,
# templated or carried to G3 (NaN), by construction, not by measurement.
#
# The prompts themselves (seed 0):

# %%
with pd.option_context("display.max_colwidth", 90, "display.width", 140):
    print(
        results[results["seed"] == cfg.seeds[0]]
        .pivot(index="method", columns="task", values="prompt")
        .reindex(order)
        .to_string()
    )

# %% [markdown]
# The references of one concept and one scene, each method's prompt, and
# four G1 drawings of it (objects inside "a picture of {}"):

# %%
shown_methods = [
    "PRISM",
    "best-of-N K",
    "zero-shot",
    "captioner",
    "GCG 15x32",
    "random search",
]
for task in [t for t in show if t.kind == "object"][:1] + [
    t for t in show if t.kind == "scene"
][:1]:
    ex.plot_prompts(
        task, results[results["seed"] == cfg.seeds[0]], g1, shown_methods, cfg.seeds[0]
    )
    plt.show()

# %% [markdown]
# ## The claims
#
# Each claim's rule was fixed before the run: a paired difference over
# (seed, task), mean ± 2 standard errors, against margin 0 unless said;
# "inconclusive" when the interval straddles it. With 8 pairs, only
# large effects can be decided.

# %%
wide = results.pivot_table(
    index=["seed", "task"], columns="method", values="G1 fidelity"
)
drop = results.assign(drop=results["G1 fidelity"] - results["G3 fidelity"]).pivot_table(
    index=["seed", "task"], columns="method", values="drop"
)
bits = results.pivot_table(
    index=["seed", "task"], columns="method", values="trigram bits/word"
)


def pair(frame, a, b):
    return (frame[a] - frame[b]).dropna().to_numpy()


m, se, v = paired_verdict(pair(wide, "PRISM", "best-of-N K"))
claims.add(
    "in-context refinement beats best-of-N K at equal budget",
    "PRISM's iterations help (the K = 1 ablation; K not monotonic)",
    f"G1 fidelity {wide['PRISM'].mean():.2f} vs {wide['best-of-N K'].mean():.2f}: "
    f"{m:+.2f} +- {2 * se:.2f}",
    v,
    "135M engineer: it may not hold",
)
m, se, v = paired_verdict(pair(wide, "PRISM", "zero-shot"))
mb, seb, vb = paired_verdict(pair(wide, "best-of-N K", "zero-shot"))
claims.add(
    "PRISM beats the engineer's zero-shot prompt",
    "beats GPT-4V zero-shot",
    f"{wide['PRISM'].mean():.2f} vs {wide['zero-shot'].mean():.2f}: "
    f"{m:+.2f} +- {2 * se:.2f}",
    v,
    f"naive baseline: best-of-N K vs zero-shot {mb:+.2f} +- {2 * seb:.2f} "
    f"({'passes too' if vb is True else 'does not pass'})",
)
for other in ("GCG 15x32", "random search"):
    m, se, v = paired_verdict(pair(bits, other, "PRISM"), margin=1.0)
    claims.add(
        f"PRISM's prompts read better than {other}'s (trigram)",
        "far lower NLL than PEZ / GCG-style prompts (Mistral-7B)",
        f"{bits['PRISM'].mean():.1f} vs {bits[other].mean():.1f} bits/word: "
        f"{m:+.1f} +- {2 * se:.1f}",
        v,
        f"margin 1 bit/word; the captioner's {bits['captioner'].mean():.1f} passes too",
    )
m, se, v = paired_verdict(pair(drop, "GCG 15x32", "PRISM"))
claims.add(
    "PRISM's prompts transfer better: a smaller G1 -> G3 drop than GCG's",
    "best transfer across generators",
    f"drop {drop['PRISM'].mean():+.2f} (PRISM) "
    f"vs {drop['GCG 15x32'].mean():+.2f} (GCG 15x32): "
    f"{m:+.2f} +- {2 * se:.2f}",
    v,
    "G3 = the world's parser + renderer",
)
m, se, v = paired_verdict(pair(wide, "GCG 15x32", "PRISM"))
claims.add(
    "white-box search beats PRISM on the generator it optimizes",
    "Textual Inversion a little higher on SDXL-Turbo",
    f"G1 fidelity GCG 15x32 {wide['GCG 15x32'].mean():.2f} "
    f"vs PRISM {wide['PRISM'].mean():.2f}: "
    f"{m:+.2f} +- {2 * se:.2f}",
    v,
    f"GCG spends {1 + cfg.gcg_steps * cfg.gcg_batch} loss evaluations, "
    f"PRISM {results[results['method'] == 'PRISM']['calls'].mean():.0f} "
    "generator calls",
)

# %% [markdown]
# ## Speed: streams in a batch, and a shared system prompt
#
# `benchmarks/prism_speed.py` (SmolLM2, 24 new tokens per row): $N$
# streams in one left-padded batch against $N$ calls of one, and the
# system prompt's keys and values computed once and shared by 8 rows
# against a full prefill of each (the last position's logits are checked
# equal). The spec's goal is ≥ 3× at $N = 8$; measured alone on 2 cores:

# %%
speed_path = REPO_ROOT / "results" / "prism" / "speed.json"
if speed_path.is_file():
    speed = load_results(speed_path)["results"]
    display(
        Table(
            pd.DataFrame(speed["streams"])[
                [
                    "n",
                    "context_tokens",
                    "batched_tokens_per_s",
                    "one_by_one_tokens_per_s",
                    "ratio",
                ]
            ],
            floatfmt="{:.2f}",
        )
    )
    cache = speed["shared_system_cache"]
    print(
        f"shared system-prompt cache, {cache['rows']} rows: "
        f"full prefill {cache['full_prefill_s']:.2f} s, "
        f"cached {cache['cached_prefill_s']:.2f} s ({cache['ratio']:.1f}x; "
        f"{cache['ratio_with_prefix_forward']:.1f}x "
        "counting the system prompt's one forward; max logit difference "
        f"{cache['max_abs_logit_difference']:.1e})"
    )
    n8 = [row for row in speed["streams"] if row["n"] == 8]
    if n8:
        claims.add(
            "8 streams in one batch >= 3x the tokens/s of one by one",
            "(spec's engineering goal)",
            f"{n8[0]['ratio']:.2f}x on 2 CPU cores",
            n8[0]["ratio"] >= 3,
            "benchmarks/prism_speed.py",
            source=speed_path,
        )
else:
    print("No speed results yet: run `python benchmarks/prism_speed.py`.")

# %%
# NBVAL_IGNORE_OUTPUT
print(
    f"wall clock: models and G1 {load_seconds:.0f} s, "
    f"engineer loops {llm_seconds:.0f} s, baselines and evaluation "
    f"{eval_seconds:.0f} s, chapter {time.perf_counter() - chapter_start:.0f} s"
)

# %% [markdown]
# ## Bad input
#
# No references, images of the wrong shape or range, $N$, $K$ or $C$
# below 1, $C > NK$, budgets that differ, a judge scoring outside 0..10,
# an unknown generator or judge and a missing model each stop with an
# error that says what is valid.

# %%
ref = show[0].references


class OutOfRangeJudge:
    def __call__(self, images, references, attributes):
        return np.full(len(images), 11.0)


def run_prism(**kw):
    args = dict(
        tasks=show[:1],
        engineer=engineer,
        generator=g1,
        judge=ex.attribute_judge,
        describe=captioner,
        n_streams=1,
        n_iterations=1,
        top_c=1,
        seed=0,
        show_progress=False,
    )
    return prism(**{**args, **kw})


for label, make in [
    ("no references", lambda: Task("empty", "object", ref[:0], ex.OBJECT_ATTRIBUTES)),
    ("wrong shape", lambda: Task("flat", "object", ref[:, 0], ex.OBJECT_ATTRIBUTES)),
    ("wrong range", lambda: Task("uint8", "object", ref * 255, ex.OBJECT_ATTRIBUTES)),
    ("N < 1", lambda: run_prism(n_streams=0)),
    ("K < 1", lambda: run_prism(n_iterations=0)),
    ("C < 1", lambda: run_prism(top_c=0)),
    ("C > N K", lambda: run_prism(top_c=2)),
    (
        "unequal budgets",
        lambda: ex.check_equal_budget(
            prism_runs[cfg.seeds[0]][:1], [run_prism(n_streams=2, top_c=1)[0]]
        ),
    ),
    ("score outside 0..10", lambda: run_prism(judge=OutOfRangeJudge())),
    (
        "unknown generator",
        lambda: get_chapter("prism").config("cpu", {"generator": "dall-e-3"}),
    ),
    ("unknown judge", lambda: get_chapter("prism").config("cpu", {"judge": "gpt-4v"})),
    (
        "missing model",
        lambda: load_causal_lm("no-such-model"),
    ),  # a relative name: no checkout path in the output
]:
    try:
        make()
        print(f"{label}: no error (unexpected)")
    except (ValueError, OSError, RuntimeError) as err:
        print(f"{label}: {type(err).__name__}: {str(err)[:150]}")

# %% [markdown]
# ## At larger scale
#
# **`long`** (`reprobook run prism --preset long`, saved to
# `results/prism/long.json` when run): the paper's $N = 10$, $K = 4$,
# $C = 5$ on 5 concepts + 5 scenes × 2 seeds against best-of-40. Not run
# for this version of the chapter; the spec's other long studies (the
# budget-40 sweep of $N \in \{40, 20, 10, 4, 2\}$, a tiny-CLIP judge
# against the attribute judge, the "improvement" field, chapter 08's
# diffusion generator as G2) are **not built yet**.
#
# **`full`**: an open VLM as engineer and judge, SDXL-Turbo as $G$ and
# SD 2.1 for transfer, from local paths; its configuration names every
# missing path in one error before any work, and the run itself is **not
# built yet**.
#
# ## On a GPU
#
# `make gpu-check` runs every chapter's GPU check; this chapter's,
# `benchmarks/prism_gpu.py`, runs the engineer's batched sampling on the
# device, checks its greedy answers equal the CPU's, and times $N$ streams
# at the paper's $N = 10$ (`results/prism/gpu.json`, shown when it exists):

# %%
from reprobook.gpucheck import show_gpu_check

gpu_check = show_gpu_check("prism")

# %% [markdown]
# ## What holds at this scale
#
# The table is computed from the runs above; **NO** and *inconclusive* are
# results, with the numbers that say why.

# %%
claims.report()

# %% [markdown]
# ## Summary
#
# PRISM's loop, its re-evaluation against the winner's curse and its
# best-of-$NK$ ablation are built as the paper defines them and run end to
# end with a real 135M chat model as the engineer, reading captions.
#
# - **What held:** PRISM's prompts beat the engineer's zero-shot prompt
#   (G1 fidelity 9.06 vs 2.89), read better than GCG's and random search's
#   word pieces (4.3 vs 6.8 bits per word) and lose nothing when carried to
#   G3, where GCG's lose about 5 points.
# - **What did not decide:** in-context refinement against best-of-$NK$ at
#   equal budget, the paper's $K$ ablation (+0.51 ± 1.42), and white-box
#   GCG against PRISM on the generator it optimizes (+0.16 ± 0.69); with 8
#   (seed, task) pairs only large effects can be decided. Batching 8 streams
#   gives 2.59x the tokens per second on 2 cores, short of the 3x goal
#   (**NO**).
# - **Why, and how to read the table.** The engineer is weak: a quarter of
#   its answers are unusable and many are off-topic, so its zero-shot
#   prompt is a low bar, and beating it says more about selection over
#   $NK$ samples (best-of-$NK$ clears it too) than about feedback; the mean
#   loop score barely moves with the iteration (4.43, 4.69, 4.58). The
#   captioner is exact and writes in the world's own grammar, which G1 was
#   trained on, so its caption is close to an oracle on object fidelity;
#   the paper's advantage over captioners is not tested here. The
#   readability and transfer claims compare natural-language prompts with
#   word pieces, which any caption-like text beats (the captioner's does
#   too): they say that a natural-language search space reads well and
#   transfers, not that PRISM's loop is needed for it.
#
# ## Exercises
#
# Each run writes its notebook and `claims.json` under `--output`; the cpu
# preset takes about 4 minutes on 2 CPU cores.
#
# 1. **More pairs for the ablation.** Four seeds instead of two give 16
#    (seed, task) pairs:
#
#    ```
#    .venv/bin/reprobook run prism -p seeds '[0, 1, 2, 3]' --output runs/prism-seeds
#    ```
#
#    Does "in-context refinement beats best-of-N K" become *yes* or **NO**?
#    About 7 minutes (the engineer loops run twice as often).
# 2. **Fewer streams, more turns.** The same budget, $NK = 12$, spent as 2
#    streams of 6 iterations:
#
#    ```
#    .venv/bin/reprobook run prism -p n_streams 2 -p n_iterations 6 --output runs/prism-deep
#    ```
#
#    Do the streams climb in the score-by-iteration figure when they get
#    more turns of feedback, and does PRISM now pull ahead of best-of-12?
#    About 5 minutes.
# 3. **A cooler engineer.** Sample the engineer at temperature 0.5
#    instead of 1:
#
#    ```
#    .venv/bin/reprobook run prism -p temperature 0.5 --output runs/prism-cool
#    ```
#
#    Watch the engineer's failure rate, the zero-shot row and the gap
#    between PRISM and best-of-$NK$: less diversity helps which of them?
#    About 4 minutes.
