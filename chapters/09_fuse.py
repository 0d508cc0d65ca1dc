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
# # 09 · FUSE: gradients across tokenizers
#
# Joshua Nathaniel Williams and J. Zico Kolter. "FUSE-ing Language Models:
# Zero-Shot Adapter Discovery for Prompt Optimization Across Tokenizers".
# arXiv preprint, 2024.
# [arXiv:2408.04816](https://arxiv.org/abs/2408.04816). Reference code:
# [jnwilliams/FUSE_prompt_inversion](https://github.com/jnwilliams/FUSE_prompt_inversion).
#
# The optimizers of chapter 08, [Prompt inversion: discrete optimizers vs a
# captioner](08_prompt_inversion.ipynb), GCG {cite:p}`zou2023gcg` and
# AutoDAN {cite:p}`zhu2023autodan` among them, need a gradient with respect
# to the one-hot encoding of the prompt's tokens. When the loss is computed
# by a *different* model, one with its own tokenizer, that gradient does not
# exist: the map from model A's tokens to model B's is decode-then-re-encode,
# a string operation. FUSE {cite:p}`williams2024fuse` builds a cheap linear
# adapter between the two embedding spaces, on a third-order tensor
# representation of words, and uses it only for the backward pass. The
# paper's finding: the adapter's gradient guides discrete search (prompt
# inversion and captioning with GPT-2 and CLIP), most clearly on SPICE
# {cite:p}`anderson2016spice`.
#
# Here A is SmolLM2-135M-Instruct (byte-level BPE, 49,152 tokens, $d_A =
# 576$) and B is all-MiniLM-L6-v2 (uncased WordPiece, 30,522 tokens, $d_B =
# 384$), a sentence-transformers model {cite:p}`reimers2019sbert`, both real
# pretrained models shipped offline; images come from the shapes world of
# chapter 07, [CLIP finetuned on pairwise differences
# (PC-CLIP)](07_pcclip.ipynb).

# %% tags=["parameters"]
# preset "cpu": about 5 minutes on 2 CPU cores; "long": ~90 min;
# "full": GPT-2-medium + CLIP, GPU
preset = "cpu"
overrides = {}  # e.g. {"n_prompts": 32, "gcg_steps": 40}
seed = 0
# device "auto" | "cpu" | "cuda" (the models here are small: the CPU path is
# the tested one)
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
from reprobook.fuse import experiments as ex
from reprobook.fuse.objective import CrossTokenizerObjective, EncoderSimilarity
from reprobook.fuse.tensor import (
    fit_adapter,
    reference_transpose,
    t_product,
    t_transpose,
)

# the book never downloads: weights come from disk
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# bad preset or parameter: a clear error, now
cfg = get_chapter("fuse").config(preset, overrides, namespace=globals())
# its paths were checked above (one error naming every missing one)
if preset == "full":
    raise NotImplementedError(
        "the full preset's GPT-2-medium + CLIP ViT-B/32 run is not built yet "
        "(see the end of this chapter); the cpu preset runs here"
    )
device = resolve_device(device, "torch")
seed_everything(seed)
torch.set_num_threads(2)
set_plot_style()
claims = Claims("fuse", preset)
chapter_start = time.perf_counter()

# %% [markdown]
# ## The problem
#
# A prompt is a row of A's token ids $p$. The objective mixes A's own loss
# with losses of other models $B_i$ that read the prompt's *text*:
#
# $$L(p) = a_0\, L_A(\text{prefix} + p) + \sum_i a_i\, L_{B_i}\big(T_i(p)\big),$$
#
# $T_i$ = decode with A, re-encode with $B_i$. $T_i$ is exact and cheap, but
# not differentiable, and GCG and AutoDAN need $\partial L / \partial X_A$,
# $X_A$ the one-hot matrix of $p$. B gives its own gradient
# $\partial L_B / \partial X_B$ with respect to the embeddings of *its*
# tokens; what is missing is a map from B's token space back to A's.
#
# ## Words as tubes
#
# The unit the two tokenizers agree on is the word. A word $w$ of $k$
# sub-tokens becomes a *tube* $X_A(w) \in \mathbb{R}^{1 \times d_A \times
# k}$: slice $j$ is the embedding of its $j$-th token, zero past its length.
# $N$ words stack to $\mathbb{R}^{N \times d_A \times k}$, and likewise
# $X_B$. FUSE looks for an adapter $G \in \mathbb{R}^{d_A \times d_B \times
# k}$ with $X_B \approx X_A * G$, where $*$ is the **t-product** of
# {cite:t}`kilmer2011factorization`:
#
# $$(X * G)_{:,:,n} = \sum_{j=0}^{k-1} X_{:,:,j}\; G_{:,:,(n - j) \bmod k}.$$
#
# Each output token mixes every input token through a matrix that depends
# only on their *offset*: a circular convolution over token positions.
# "Un" + "happy" and "unhappy" spread a word's meaning over different
# numbers of tokens; the convolution lets any slice feed any other.
#
# **Why the DFT.** Written as a matrix, the t-product is the block-circulant
# matrix $\operatorname{bcirc}(X)$ (blocks $X_{:,:,(n-j) \bmod k}$) times
# $G$'s slices stacked. The discrete Fourier transform along the tube axis
# diagonalizes every circulant, so with $\hat X = \mathrm{DFT}_3(X)$,
#
# $$\widehat{(X * G)}_{:,:,f} = \hat X_{:,:,f}\; \hat G_{:,:,f}, \qquad f = 0, \dots, k - 1:$$
#
# $k$ independent matrix products. By Parseval, $\lVert X * G - Y
# \rVert_F^2 = \tfrac1k \sum_f \lVert \hat X_f \hat G_f - \hat Y_f \rVert_F^2$,
# and a ridge $\lambda N \lVert G \rVert_F^2$ splits the same way, so the
# least squares is $k$ independent complex ridge regressions:
#
# $$\hat G_f = \big(\hat X_f^H \hat X_f + \lambda N I\big)^{-1} \hat X_f^H \hat Y_f .$$
#
# For real tubes, frequencies $f$ and $k - f$ are complex conjugates, so
# $\lfloor k/2 \rfloor + 1$ solves suffice (`rfft`). We solve them in
# float64, in real form ($\hat X^H \hat X = A + iB$ becomes the symmetric
# positive definite $\begin{pmatrix} A & -B \\ B & A\end{pmatrix}$), with
# $\lambda$ chosen on validation words; the reference takes a
# pseudo-inverse of every one of the $k$ slices, $\lambda = 0$.
#
# ```{literalinclude} ../../src/reprobook/fuse/tensor.py
# :pyobject: solve_ridge
# ```
#
# ## The backward pass: the t-transpose
#
# Let $Y = X_A * G$. For a loss of $Y$, $\partial L / \partial X_A =
# (\partial L / \partial Y) * G^{\top}$, where $G^\top$ is the adjoint of
# "$X \mapsto X * G$". In the Fourier domain the adjoint of multiplying by
# $\hat G_f$ is multiplying by $\hat G_f^H$; back in the token domain that is
# the **t-transpose**: every slice transposed, and slices $2, \dots, k$ in
# *reverse* order (conjugation in frequency is time reversal mod $k$).
#
# ```{literalinclude} ../../src/reprobook/fuse/tensor.py
# :pyobject: t_transpose
# ```
#
# Per word of the prompt: pad B's gradient rows to $k = \max(n_A, n_B)$,
# multiply by $G_k^\top$, keep A's $n_A$ rows, and finally
# $\partial L / \partial X_A[i, v] = \langle \partial L / \partial
# e_A(p_i),\, E_A[v] \rangle$, the one-hot gradient GCG reads. This is the
# only approximation: **the forward stays exact** (decode, re-encode, B's own
# loss), so every move of the search is decided on true losses; the adapter
# only proposes. (And $X_A * G$ is never fed to B.) With A = B, $G^{(1)} =
# I$ and this is GCG's exact gradient (a test checks it).
#
# ```{literalinclude} ../../src/reprobook/fuse/adapter.py
# :pyobject: Adapter.backward
# ```
#
# Words are aligned by character offsets, never by counts: A's tokens by the
# lengths of their decoded texts, B's by its tokenizer's offset mapping
# (BERT lower-cases and splits punctuation off). A word is a
# whitespace-delimited stretch of the decoded text; a token belongs to the
# word holding its first non-space character.

# %% [markdown]
# ### The reference code's backward, checked
#
# The official code's backward has three defects, shown on small tensors
# here (and in `tests/test_fuse.py`): (1) it transposes with
# `permute(1, 0, 2)`, slices transposed but not reversed, which is not the
# adjoint once $k \ge 3$; (2) it splits B's gradient by A's word lengths
# with `tensor_split(g_, ...)` but never advances `g_`, so every word
# receives the gradient rows of the *first* word; (3) its grid is keyed by
# $n_B$ at fit time (A truncated or padded to $n_B$) but indexed by $n_A$ in
# the backward. Words over $K$ get `torch.randn`.

# %%
gen = torch.Generator().manual_seed(seed)
rows = []
for k in (1, 2, 3, 4):
    x = torch.randn(5, 6, k, generator=gen, dtype=torch.float64)
    g = torch.randn(6, 4, k, generator=gen, dtype=torch.float64)
    c = torch.randn(5, 4, k, generator=gen, dtype=torch.float64)
    forward = float((t_product(x, g) * c).sum())  # <X * G, C>
    rows.append(
        {
            "k": k,
            "<X*G, C>": forward,
            "<X, C*G^T> (t-transpose)": float((x * t_product(c, t_transpose(g))).sum()),
            "<X, C*permute(G)> (reference)": float(
                (x * t_product(c, reference_transpose(g))).sum()
            ),
        }
    )
display(Table(pd.DataFrame(rows), floatfmt="{:.6f}"))

# %% [markdown]
# The adjoint identity $\langle X * G, C\rangle = \langle X, C * G^\top
# \rangle$ holds for the t-transpose at every $k$ and for the plain permute
# only at $k \le 2$.

# %% [markdown]
# ## The models and the fitting words

# %%
start = time.perf_counter()
models = ex.load_models(cfg)
load_seconds = time.perf_counter() - start
print(
    f"A: SmolLM2-135M-Instruct, {models.emb_a.shape[0]:,} tokens, "
    f"d_A = {models.emb_a.shape[1]}; "
    f"B: all-MiniLM-L6-v2, {models.emb_b.shape[0]:,} tokens, "
    f"d_B = {models.emb_b.shape[1]}"
)
example = " an image of three unhappy circles, quickly"
ids_a = models.tokenizer_a.encode(example, add_special_tokens=False)
print("A:", [models.token_texts[i] for i in ids_a])
print(
    "B:",
    models.tokenizer_b.convert_ids_to_tokens(
        models.tokenizer_b.encode(example, add_special_tokens=False)
    ),
)

# %% [markdown]
# ### Experiment 1: fitting the adapter
#
# The fitting words: lower-cased alphabetic words of at least two letters
# from Python's documentation, MiniLM's whole-word vocabulary entries and
# SmolLM2's word tokens (" word"). A tokenizes each with the leading space a
# prompt's words have. 10% of the words are held out for reporting, 10%
# choose $\lambda$, at most 8192 words per $k$ are fitted (the paper's
# figure), $K = 4$. Beside FUSE: a **$K = 1$ matrix** $M$ (fitted on token
# pairs at equal positions, applied token by token: the adapter without the
# tensor structure) and a **random $G$** of the same norm. Reported per $k$:
# relative held-out error $\lVert X_A * G - X_B \rVert_F / \lVert X_B
# \rVert_F$ and top-1 recovery of B's tokens (nearest B embedding, by
# cosine, to each predicted slice, on up to 400 held-out words per $k$;
# chance $1/30{,}522 \approx 3 \cdot 10^{-5}$).

# %%
fit = ex.fit_study(models, cfg, seed)
table = fit.table
print(
    f"{table.attrs['words']:,} words; {table.attrs['words over K']:,} "
    f"are longer than K = {cfg.K} tokens "
    f"(they get no gradient)"
)
display(Table(table, floatfmt="{:.3g}"))

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), layout="constrained")
names = ["FUSE", "K = 1 matrix", "random G"]
width = 0.27
for i, name in enumerate(names):
    axes[0].bar(table["k"] + (i - 1) * width, table[f"error {name}"], width, label=name)
    axes[1].bar(
        table["k"] + (i - 1) * width, table[f"recovery {name}"], width, label=name
    )
axes[0].set(
    xlabel="tube length k (tokens per word)",
    ylabel="held-out relative error",
    title="Fit",
)
axes[1].set(
    xlabel="tube length k (tokens per word)",
    ylabel="top-1 B-token recovery",
    title="Recovery",
)
axes[0].axhline(1.0, color="gray", lw=0.8, ls=":")
for ax in axes:
    ax.set_xticks(table["k"])
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3)
plt.show()

# %% [markdown]
# ## Experiment 2: does the gradient inform?
#
# $L = 1 - \cos(\mathrm{MiniLM}(\text{text}), \mathrm{MiniLM}(\text{caption}))$
# for a world caption, on prompts of six random A word tokens. Two tests
# against independent truths:
#
# **(a) exact.** Where a word is one token on both sides, swapping it for
# another such word changes exactly one B token, so B's own one-hot gradient
# at the matching B id is the exact linear prediction. We compare FUSE's
# $\partial L / \partial X_A[i, v]$ with it over every such word $v$: rank
# correlation and the overlap of the 256 most negative.
#
# **(b) finite differences.** For 4 positions of each prompt, 48 random
# candidate tokens: the true change $L(p') - L(p)$ (exact forwards) against
# the predicted $g[i, v'] - g[i, v]$, Spearman per (prompt, position), with a
# 95% t-interval over them. Beside FUSE: the $K = 1$ matrix, random $G$, the
# reference backward (its grid, its split, its transpose), and a
# **ceiling**: B's own linearization, where B's tokenization of the
# candidate keeps its length (so that it exists), with FUSE on the same
# candidates. And for search: the best true change among the 8 tokens FUSE
# ranks first vs among 8 random tokens.

# %%
start = time.perf_counter()
grad = ex.gradient_study(models, fit, cfg, seed)
gradient_seconds = time.perf_counter() - start
variants = list(fit.adapters)
exact = (
    grad["exact"]
    .groupby("variant", sort=False)[["spearman", "top-256 overlap"]]
    .mean()
    .reindex(variants)
)
print(
    f"(a) {len(grad['exact']) // len(variants)} positions whose word is one token "
    f"on both sides, {grad['single-token words']:,} candidate words; "
    f"chance overlap {256 / grad['single-token words']:.3f}"
)
display(Table(exact.reset_index(), floatfmt="{:.3f}"))
fd = grad["finite differences"]
summary = ex.summarize_spearman(
    fd, variants + ["ceiling", "FUSE where the ceiling exists"]
)
print("(b) Spearman of predicted vs true loss change, per (prompt, position)")
display(Table(summary, floatfmt="{:.3f}"))

# %%
by_shape = fd[fd["variant"].isin(["FUSE", "K = 1 matrix", "random G"])].pivot_table(
    index=["n_A", "n_B"], columns="variant", values="spearman", aggfunc="mean"
)
by_shape["groups"] = fd[fd["variant"] == "FUSE"].groupby(["n_A", "n_B"]).size()
print("(b) by the swapped word's shape (n_A, n_B): mean Spearman")
display(Table(by_shape.reset_index(), floatfmt="{:.3f}"))
best = grad["best of"]
mean, lo, hi = ex.mean_interval(best["best of random"] - best["best of top predicted"])
print(
    f"best loss change among FUSE's top {cfg.top}: "
    f"{best['best of top predicted'].mean():+.4f}, among "
    f"{cfg.top} random: {best['best of random'].mean():+.4f} "
    f"(difference {mean:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}])"
)


# %%
def spearman_differences(a: str, b: str) -> np.ndarray:
    wide = fd.pivot_table(
        index=["prompt", "position"], columns="variant", values="spearman"
    )
    return (wide[a] - wide[b]).dropna().to_numpy()


fuse_row = summary.set_index("variant").loc["FUSE"]
verdict = (
    True
    if fuse_row["95% CI low"] > 0
    else (False if fuse_row["95% CI high"] < 0 else "inconclusive")
)
claims.add(
    "the FUSE gradient informs: Spearman > 0",
    "the adapter's gradient guides search (qualitative)",
    f"mean Spearman {fuse_row['mean Spearman']:.3f}, "
    f"95% CI [{fuse_row['95% CI low']:.3f}, "
    f"{fuse_row['95% CI high']:.3f}] over {int(fuse_row['groups'])} (prompt, position)",
    verdict,
    "rule: CI above 0",
)
m, se, verdict = paired_verdict(spearman_differences("FUSE", "random G"))
claims.add(
    "FUSE's gradient above random G",
    "(implied: the adapter carries information)",
    f"Spearman difference {m:+.3f} +- {2 * se:.3f} (2 se)",
    verdict,
    "paired over (prompt, position)",
)
m, se, verdict = paired_verdict(spearman_differences("FUSE", "K = 1 matrix"))
claims.add(
    "the tensor adapter beats a K = 1 matrix",
    "the third-order representation (the method's premise)",
    f"Spearman difference {m:+.3f} +- {2 * se:.3f} (2 se)",
    verdict,
    "paired over (prompt, position); it may not hold",
)
ceiling = summary.set_index("variant")
share = (
    ceiling.loc["FUSE where the ceiling exists", "mean Spearman"]
    / ceiling.loc["ceiling", "mean Spearman"]
)
print(f"FUSE reaches {share:.0%} of the ceiling's Spearman where the ceiling exists")

# %%
example = grad["example"]
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), sharey=True, layout="constrained")
for ax, name in zip(axes, ["FUSE", "random G"]):
    ax.scatter(example[name], example["true"], s=12)
    ax.set(xlabel=f"predicted change ({name})", title=name)
axes[0].set_ylabel("true loss change")
fig.suptitle(
    f"{cfg.candidates} swaps at position {example['position']} "
    f"of {example['prompt']!r}",
    fontsize=11,
)
plt.show()
m, se, verdict = paired_verdict(best["best of random"] - best["best of top predicted"])
claims.add(
    f"FUSE's top-{cfg.top} swaps beat {cfg.top} random swaps",
    "the gradient proposes good candidates",
    f"best change {best['best of top predicted'].mean():+.4f} "
    f"vs {best['best of random'].mean():+.4f}; "
    f"difference {m:+.4f} +- {2 * se:.4f} (2 se)",
    verdict,
    "paired over (prompt, position)",
)

# %% [markdown]
# ## Experiment 3: search for a hidden caption
#
# The target is a hidden world caption; the loss is the MiniLM distance of
# experiment 2; the prompt is 6 free A word tokens. GCG (the code of chapter
# 05, [Memorization as adversarial compression](05_acr.ipynb), unchanged, 20
# steps of 48 candidates from the top 128) with FUSE's
# gradient, against random search, GCG whose proposals are SmolLM2's own
# next-token log-probabilities (no adapter: fluent tokens, blind to the
# loss) and GCG with random $G$; equal evaluations (961 each), the same start
# and candidate seed per (target, seed), 3 targets × 2 seeds.

# %%
start = time.perf_counter()
search = ex.search_study(models, fit, cfg, seed)
search_seconds = time.perf_counter() - start
summary3 = (
    search.groupby("method", sort=False)["best loss"]
    .agg(["mean", "std", "min", "max"])
    .reset_index()
)
display(Table(summary3, floatfmt="{:.3f}"))
wide = search.pivot_table(
    index=["target", "seed"], columns="method", values="best loss"
)
for other in ("random search", "SmolLM2 proposals", "random G"):
    m, se, verdict = paired_verdict(wide[other] - wide["FUSE"])
    claims.add(
        f"FUSE-guided GCG beats {other}",
        "FUSE's gradient guides search (paper: prompt inversion)",
        f"best loss {wide['FUSE'].mean():.3f} vs {wide[other].mean():.3f}; "
        f"difference {m:+.3f} +- "
        f"{2 * se:.3f} (2 se), {len(wide)} (target, seed)",
        verdict,
        "equal evaluations; paired",
    )

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
for method in ex.SEARCH_METHODS:
    curves = np.array(search[search["method"] == method]["best so far"].tolist())
    ax.plot(
        np.arange(1, curves.shape[1] + 1) * cfg.gcg_batch, curves.mean(0), label=method
    )
ax.set(
    xlabel="candidates evaluated",
    ylabel="best loss so far (1 - cos)",
    title="Search for a hidden caption",
)
ax.legend(fontsize=9)
plt.show()
for _, row in search[search["seed"] == 0].iterrows():
    if row["target"] == 0:
        print(f"{row['method']:>18}: {row['best loss']:.3f} {row['prompt']!r}")
print(f"target 0: {search['caption'][0]!r}")

# %% [markdown]
# ## Experiment 4: captioning world images
#
# B is now a CLIP whose text tower is the frozen MiniLM plus a linear head,
# with a small CNN image tower trained here contrastively on world captions
# (a locked text tower, chapter 07's long variant). The caption objective is
#
# $$L(p) = \mathrm{NLL}_A(\text{"An image of"} + p) + a\,\big(1 - \cos(\text{CLIP}_B(p), \text{image})\big),$$
#
# $a$ set before the run so both terms spread alike over true captions
# scored against shuffled images. AutoDAN appends 8 word tokens (beam 2, 32
# candidates per beam): the NLL term enters through the prior ($+1 \times$
# SmolLM2's next-token log-probabilities, exactly that term's dependence on
# the appended token) and the exact re-ranking; the CLIP term's gradient
# comes through FUSE, or not at all ("logits only"). The caption is read by
# the world's caption parser into (attribute, value) tuples and scored by F1
# against the scene, SPICE's analogue (SPICE compares scene-graph tuples,
# not n-grams). CLIP-S: the cosine of the caption and the image under B.

# %%
start = time.perf_counter()
captioner = ex.train_caption_model(cfg, seed)
caption = ex.captioning_study(models, fit, captioner, cfg, seed)
caption_seconds = time.perf_counter() - start
print(
    f"MiniLM-tower CLIP: contrastive loss {np.mean(captioner.losses[:10]):.2f} -> "
    f"{np.mean(captioner.losses[-10:]):.2f}; weight a = {caption['weight']:.1f}"
)
cap = caption["rows"]
display(
    Table(
        cap[["image", "method", "caption", "attribute F1", "CLIP-S", "perplexity"]],
        floatfmt="{:.3f}",
    )
)

# %% [markdown]
# Before reading the verdict below, a check of the design rather than the
# method: AutoDAN's proposal score adds the gradient term to SmolLM2's
# log-probabilities, and if the log-probabilities spread far more across the
# vocabulary, the gradient cannot change which 32 tokens are proposed, and
# both arms search the same candidates. The spreads at the first step, and
# the share of first proposals the gradient changes:

# %%
display(Table(caption["diagnostics"], floatfmt="{:.3g}"))

# %%
ncols = min(cfg.n_images, 3)
nrows = -(-cfg.n_images // ncols)
fig, axes = plt.subplots(
    nrows,
    ncols,
    figsize=(2.6 * ncols, 2.8 * nrows),
    squeeze=False,
    layout="constrained",
)
for i, ax in enumerate(axes.ravel()):
    ax.axis("off")
    if i < cfg.n_images:
        ax.imshow(caption["images"][i].transpose(1, 2, 0))
        ax.set_title(f"image {i}", fontsize=11)
plt.show()
wide4 = cap.pivot_table(index="image", columns="method", values="attribute F1")
m, se, verdict = paired_verdict(wide4["FUSE + logits"] - wide4["logits only"])
claims.add(
    "FUSE + logits captions better than logits only (attribute F1)",
    "the FUSE gradient helps captioning, clearest on SPICE",
    f"F1 {wide4['FUSE + logits'].mean():.2f} vs {wide4['logits only'].mean():.2f} "
    f"over {len(wide4)} images",
    verdict,
    "paired over images; 2 images cannot decide unless every one agrees strongly",
)

# %% [markdown]
# ## Speed
#
# `benchmarks/fuse_speed.py` times our fit (batch tokenization, $\lfloor
# k/2 \rfloor + 1$ real-form ridge solves per $k$) against a port of the
# reference's (each word tokenized on its own; a pseudo-inverse, an SVD, of
# each of the $k$ complex slices; the outer-product t-product), on the same
# words; checks they give the same $G$ at $\lambda = 0$; and times the
# backward against B's forward + backward. The port is generous to the
# reference: it skips the dense block-circulant matrix and block DFT the
# original builds before its per-slice pseudo-inverses. (On a loaded machine
# the port's SVDs slow down far more than our matrix products; the spec's
# pilot, about 13x, was measured so. The figure below was measured alone.)

# %%
speed_path = REPO_ROOT / "results" / "fuse" / "speed.json"
if speed_path.is_file():
    speed = load_results(speed_path)["results"]
    print(
        f"fit of {sum(speed['words_per_k'].values()):,} words (k = 1..4): "
        f"ours {speed['our_fit_s']:.1f} s, "
        f"reference port {speed['reference_port_fit_s']:.1f} s: "
        f"{speed['speedup']:.1f}x (goal >= 10x)"
    )
    print(
        "relative difference of G at lam = 0: "
        + ", ".join(
            f"k={k}: {v:.1e}" for k, v in speed["g_relative_difference"].items()
        )
    )
    print(
        "backward (t-products + product by E_A^T): "
        f"{speed['fuse_backward_with_projection_ms']:.1f} ms = "
        f"{speed['backward_fraction_of_b']:.2f} x B's forward + backward "
        f"({speed['b_forward_backward_ms']:.1f} ms)"
    )
    claims.add(
        "the adapter is cheap: fit >= 10x the reference's",
        "a cheap adapter (grid in 15-20 CPU min)",
        f"{speed['speedup']:.1f}x on the same words, G equal to "
        f"{max(speed['g_relative_difference'].values()):.0e}",
        speed["speedup"] >= 10,
        "benchmarks/fuse_speed.py, 2 cores",
        source=speed_path,
    )
else:
    print("No speed results yet: run `python benchmarks/fuse_speed.py`.")

# %%
# NBVAL_IGNORE_OUTPUT
print(
    f"wall clock: models {load_seconds:.0f} s, fit {fit.seconds:.0f} s (the baselines "
    f"{fit.baseline_seconds:.0f} s more), gradient {gradient_seconds:.0f} s, "
    f"search {search_seconds:.0f} s, captioning {caption_seconds:.0f} s, "
    f"chapter {time.perf_counter() - chapter_start:.0f} s"
)

# %% [markdown]
# ## Bad input
#
# Ids whose texts do not survive decode/encode, an empty prompt, $K < 1$,
# $\lambda < 0$, fewer words than $d_A$ for a $k$ at $\lambda = 0$, a
# tokenizer without an offset mapping and an unknown model each stop with
# an error that says what is valid. Words over $K$ are not an error: they
# get a zero gradient and are counted.

# %%
target = torch.ones(models.emb_b.shape[1])
objective = CrossTokenizerObjective(
    models.token_texts,
    models.emb_a,
    ex.minilm_similarity(models, target),
    fit.adapters["FUSE"],
    decode=models.decode,
)
# a character A spells with byte tokens: alone each decodes to U+FFFD,
# together to the character
byte_pieces = next(
    ids
    for ch in map(chr, range(0x100, 0x3000))
    if len(ids := models.tokenizer_a.encode(ch, add_special_tokens=False)) > 1
    and "".join(models.token_texts[i] for i in ids) != ch
)


class SlowTokenizer:
    is_fast = False


for label, make in [
    (
        "ids not surviving decode/encode",
        lambda: objective.one_hot_gradient(torch.tensor(byte_pieces)),
    ),
    ("empty prompt", lambda: objective.evaluate(torch.zeros(1, 0, dtype=torch.long))),
    ("K < 1", lambda: get_chapter("fuse").config("cpu", {"K": 0})),
    ("lam < 0", lambda: fit_adapter(torch.zeros(3, 2, 1), torch.zeros(3, 2, 1), -1.0)),
    (
        "fewer words than d_A",
        lambda: fit_adapter(torch.randn(100, 576, 2), torch.randn(100, 384, 2), 0.0),
    ),
    (
        "no offset mapping",
        lambda: EncoderSimilarity(models.encoder, SlowTokenizer(), target),
    ),
    ("unknown model", lambda: get_chapter("fuse").config("cpu", {"model_a": "gpt-5"})),
]:
    try:
        make()
        print(f"{label}: no error (unexpected)")
    except ValueError as err:
        print(f"{label}: {type(err).__name__}: {str(err)[:160]}")
long_word = torch.tensor(
    models.tokenizer_a.encode(
        " antidisestablishmentarianism is long", add_special_tokens=False
    )
)
objective.skipped_words = 0
objective.one_hot_gradient(long_word)
print(
    f"a word of {len(models.tokenizer_a.encode(' antidisestablishmentarianism'))} "
    "A tokens: "
    f"{objective.skipped_words} word(s) got a zero gradient (counted, not an error)"
)

# %% [markdown]
# ## At larger scale
#
# **`long`** (`reprobook run fuse --preset long`, about 90 minutes, saved to
# `results/fuse/long.json` when run): experiment 2 on 100 prompts × 4
# positions × 96 candidates over any printable ASCII token; search on 6
# targets × 3 seeds, 60 steps; captioning of 12 images with beam 4, 12
# steps, 64 per beam. Not run for this version of the chapter; its
# BLEU-4 / CIDEr-D and sentiment parts are not built.
#
# **`full`**: the reference setting from local paths, GPT-2-medium as A,
# CLIP ViT-B/32 as B (weights 1 and 22), a RoBERTa sentiment model,
# wikitext-103 for the fitting words and COCO; AutoDAN beam 4, 16 steps, 256
# candidates. Its configuration checks every path and names all missing
# ones in one error before any work; the run itself (CLIP's BPE has no
# offset mapping to align with; COCO scoring with pycocoevalcap) is **not
# built yet**.
#
# ## On a GPU
#
# `make gpu-check` runs every chapter's GPU check. This chapter's,
# `benchmarks/fuse_gpu.py`, checks that the fit and the backward on the
# device equal the CPU's (float64) and times the fit at 8192 and 16,834
# words per $k$ (`results/fuse/gpu.json`, shown here when it exists):

# %%
from reprobook.gpucheck import show_gpu_check

gpu_check = show_gpu_check("fuse")

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
# What held:
#
# - **The adapter's gradient informs.** FUSE's predicted loss changes rank
#   the true ones with a mean Spearman of 0.304 (95% CI [0.260, 0.348]),
#   81% of the ceiling's where the ceiling exists, while random $G$ is at
#   zero; FUSE's top 8 swaps beat 8 random ones.
# - **It guides search.** At equal evaluations, GCG with FUSE's gradient
#   reaches a best loss of 0.298 against 0.449 for random search, 0.410 for
#   SmolLM2's own proposals and 0.442 for GCG with random $G$.
#
# What did not, and why:
#
# - **The tensor adapter does not beat a $K = 1$ matrix** (*inconclusive*,
#   +0.008 ± 0.026): 41 of the 64 swapped words are one token on both sides,
#   where the tensor adapter is a single matrix like the baseline; on the
#   words B splits into three tokens FUSE is ahead (0.220 vs 0.173), but
#   there are only 5 of them.
# - **Captioning is undecided** (*inconclusive*, F1 0.00 for both arms on
#   2 images): SmolLM2's log-probabilities spread 25-30 times more than the
#   gradient term, so the gradient changes only 3-6% of AutoDAN's first
#   proposals and both arms write the same captions.
# - **The fit is 2.0x the reference port's, not 10x** (**NO**): the port is
#   generous to the reference (it skips the dense block-circulant matrix),
#   and measured alone on 2 cores its SVDs are not slow enough; the spec's
#   pilot, about 13x, was measured on a loaded machine.
#
# ## Exercises
#
# Each run writes its notebook and `claims.json` under `--output`; the cpu
# preset takes about 4 minutes on 2 CPU cores.
#
# 1. **More prompts for the tensor claim.** Three times the (prompt,
#    position) groups:
#
#    ```
#    .venv/bin/reprobook run fuse -p n_prompts 48 --output runs/fuse-prompts
#    ```
#
#    Does "the tensor adapter beats a K = 1 matrix" decide, and how many
#    multi-token words does the by-shape table now hold? About 5 minutes.
# 2. **Any token, not only words.** Let the prompts and candidates be any
#    printable ASCII token, as the `long` preset does:
#
#    ```
#    .venv/bin/reprobook run fuse -p token_set ascii --output runs/fuse-ascii
#    ```
#
#    Word pieces and punctuation make words of several A tokens: does
#    FUSE's Spearman hold up, and does the tensor adapter now pull ahead of
#    the matrix? About 5 minutes.
# 3. **Fewer fitting words.** Fit the adapter on at most 1024 words per
#    tube length instead of 8192:
#
#    ```
#    .venv/bin/reprobook run fuse -p max_words_per_k 1024 --output runs/fuse-words
#    ```
#
#    Compare experiment 1's held-out error and recovery, and the $\lambda$
#    chosen for each $k$: how much data does the adapter need before its
#    gradient stops informing? About 4 minutes.
