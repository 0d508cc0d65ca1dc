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
# # 01 · DirectLiNGAM at scale
#
# Victor Akinwande and J. Zico Kolter. "AcceleratedLiNGAM: Learning Causal
# DAGs at the Speed of GPUs". arXiv preprint, 2024.
# [arXiv:2403.03772](https://arxiv.org/abs/2403.03772)
# {cite:p}`akinwande2024acceleratedlingam`.
#
# Causal discovery by search over graphs is slow. The paper's answer is not a
# new estimator but a faster implementation of an old one: **DirectLiNGAM**
# {cite:p}`shimizu2011directlingam` finds a causal order one variable at a
# time, and almost all of its time goes into one sub-procedure, scoring every
# ordered pair of the remaining variables. The paper moves that sub-procedure
# to GPU kernels and reports **up to a 32-fold speed-up** over the `lingam`
# package {cite:p}`ikeuchi2023lingam`, then applies DirectLiNGAM to gene
# expression with genetic interventions and VarLiNGAM
# {cite:p}`hyvarinen2010varlingam` to U.S. stock data.
#
# This chapter derives the method, implements the ordering step twice (as
# whole-array operations with one code path for NumPy and CuPy, and as one
# fused compiled kernel per device: numba on the CPU, CUDA on the GPU), and
# checks five things:
#
# 1. our estimator gives *exactly* the `lingam` package's answer;
# 2. it recovers known graphs;
# 3. how much faster it is than the package, on one CPU thread and on two
#    cores, for the ordering and for the whole fit (the paper's 32x needed a
#    GPU);
# 4. the rest of the package's interface gives the package's answers too:
#    the bootstrap (edge probabilities), total effects, prior knowledge;
# 5. the two applications: VarLiNGAM on real macro-economic series, and
#    predicting the effect of gene knockouts from observational data, where
#    the paper reports results competitive with continuous-optimisation
#    methods: we compare with NOTEARS {cite:p}`zheng2018notears`, on data
#    that are exactly LiNGAM and on data that break its assumptions.

# %% tags=["parameters"]
preset = "cpu"  # "cpu": the default, runs on 2 CPU cores; "full": paper scale on a GPU
overrides = {}  # e.g. {"acc_dims": [10, 100]}
seed = 0
device = "auto"  # "auto" | "cpu" | "cuda"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reprobook.chapters import get_chapter
from reprobook.claims import INCONCLUSIVE, Claims, paired_verdict, verdict
from reprobook.common import (
    REPO_ROOT,
    Table,
    resolve_device,
    seed_everything,
    set_plot_style,
)
from reprobook.lingam import DirectLiNGAM, entropy, pairwise_scores
from reprobook.lingam import experiments as ex

# a bad preset or parameter: a clear error, now
cfg = get_chapter("lingam").config(preset, overrides, namespace=globals())
device = resolve_device(device, "cupy")  # the GPU path runs on cupy
seed_everything(seed)
set_plot_style()
claims = Claims("lingam", preset)
print(f"preset={preset}, seed={seed}")

# %% [markdown]
# ## The model
#
# A linear non-Gaussian acyclic model (LiNGAM) writes each variable as a
# linear function of its causes plus independent noise,
#
# $$ x = B x + e, $$
#
# where $B_{ij}$ is the direct effect of $x_j$ on $x_i$, $B$ can be permuted
# to strictly lower-triangular form (the graph is a DAG), and the noise terms
# $e_i$ are mutually independent and **non-Gaussian**. Non-Gaussianity is
# what makes the direction identifiable: if $x_2 = b x_1 + e_2$, regressing
# $x_2$ on $x_1$ leaves a residual independent of $x_1$, while regressing
# $x_1$ on $x_2$ leaves one that is uncorrelated with $x_2$ but, unless
# everything is Gaussian, *not independent* of it (Darmois–Skitovich).
#
# ## DirectLiNGAM: one exogenous variable at a time
#
# An exogenous variable (no parents) is the one whose regression residuals are
# most independent of it. DirectLiNGAM {cite:p}`shimizu2011directlingam` finds
# it, appends it to the causal order, removes its effect from every other
# variable by regression, and repeats on what is left.
#
# **Measuring independence by likelihood ratios.** For standardized $x_i,
# x_j$ (mean 0, population variance 1) let
# $r_{i|j} = x_i - \frac{\operatorname{cov}(x_i,x_j)}{\operatorname{var}(x_j)}\,x_j$
# be the residual of $x_i$ regressed on $x_j$.
# {cite:t}`hyvarinen2013pairwise` show that the log-likelihood ratio between
# the models $x_i \to x_j$ and $x_j \to x_i$ is, up to the factor $n$, a
# difference of entropies,
#
# $$ D_{ij} = \big[H(x_j) + H(\tilde r_{i|j})\big] - \big[H(x_i) + H(\tilde r_{j|i})\big],
#    \qquad \tilde r = r / \operatorname{std}(r), $$
#
# positive when the data favour $x_i \to x_j$. The entropies are estimated
# with the maximum-entropy approximation {cite:p}`hyvarinen1998entropy`, for a
# standardized $u$,
#
# $$ H(u) \approx \tfrac{1+\log 2\pi}{2}
#    - k_1 \big(\mathbb E[\log\cosh u] - \gamma\big)^2
#    - k_2 \big(\mathbb E[u\, e^{-u^2/2}]\big)^2, $$
#
# with $k_1 = 79.047$, $k_2 = 7.4129$, $\gamma = 0.37457$: a Gaussian has the
# largest entropy, and each non-Gaussian feature the two expectations pick
# up lowers it. A variable $x_i$ is then scored by how strongly *any* pair
# contradicts "$x_i$ comes first":
#
# $$ M_i = -\sum_{j \ne i} \min(0, D_{ij})^2, \qquad m = \arg\max_i M_i . $$
#
# After choosing $m$, every other remaining column is replaced by its
# residual on the (unstandardized) $x_m$, and the step repeats.
#
# ## Where the time goes, and how we vectorize it
#
# A step with $k$ remaining variables scores $k(k-1)$ ordered pairs, each an
# $O(n)$ pass over the samples, so the whole order costs about $d^3/3$ pair
# evaluations. The `lingam` package loops over ordered pairs in Python and
# computes four entropies per pair. Two observations cut that work:
#
# * $D_{ji} = -D_{ij}$ and $H(x_i)$ does not depend on $j$: a step needs each
#   marginal entropy **once** and each residual entropy
#   $E_{ij} = H(\tilde r_{i|j})$ **once**, and then
#   $D = H_{\cdot}^{\top}\mathbf 1 + E - \mathbf 1 H_{\cdot} - E^{\top}$ in one array expression;
# * all $E_{ij}$ of a step are the same computation on different columns, so
#   a block of them is a few whole-array passes: build the residuals
#   $R_{ij\cdot} = s_i - c_{ij} s_j$ by broadcasting, take their standard
#   deviations, and reduce $\log\cosh$ and $u e^{-u^2/2}$ along the samples.
#
# Blocks are sized to stay in cache on a CPU (and to fill the device on a
# GPU), a large step is split over worker processes, and the same function
# runs on CuPy by passing `xp=cupy`. Everything is float64; $\log\cosh u$ is
# evaluated as $|u| + \operatorname{log1p}(e^{-2|u|}) - \log 2$, which cannot
# overflow. The block kernel:
#
# ```{literalinclude} ../../src/reprobook/lingam/ordering.py
# :pyobject: residual_entropies
# ```
#
# and the step that assembles $D$ and $M$ from it:
#
# ```{literalinclude} ../../src/reprobook/lingam/ordering.py
# :pyobject: pairwise_scores
# ```
#
# ### One fused kernel per step
#
# The block kernel makes about ten passes over a (pairs $\times n$) buffer,
# one per array operation, and on this machine (NumPy's exp and log1p are
# AVX-512 loops) it runs at about 5 ns per sample-pair per core. A step is
# simpler than that: each ordered pair needs its two rows read **twice** and
# one number written,
#
# 1. the mean and variance of $r = s_i - c_{ij} s_j$ (float64 sums);
# 2. with $u = r/\operatorname{std}(r)$, the three means
#    $\mathbb E|u|$, $\mathbb E\,\operatorname{log1p}(e^{-2|u|})$ and
#    $\mathbb E\,u e^{-u^2/2}$ of the entropy approximation.
#
# On the CPU this is a numba kernel with a parallel loop over pairs (threads,
# no temporaries of size $n \times$ pairs). One catch: a compiled loop that
# calls the C library's `exp` stays scalar, and is *slower* than NumPy's
# vectorized loops (in a prototype, not part of the benchmark). So the kernel evaluates its two functions with
# polynomials the compiler can vectorize: $e^{x} = 2^k e^{r}$ with
# $|r| \le \tfrac12\ln 2$ and $e^{r}$ a degree-10 polynomial, $2^k$ written
# into the exponent bits; and
# $\operatorname{log1p}(y) = 2\operatorname{artanh}\frac{y}{2+y}$ with
# $\operatorname{artanh}(s)/s$ a degree-10 polynomial in $s^2 \le 1/9$. The
# coefficients interpolate at Chebyshev nodes, computed in 50-digit
# arithmetic (the tests re-derive them); the errors are 3 ulp and
# $5\times 10^{-16}$ against NumPy. The loop may reorder its sums and fuse
# multiply-adds (the only fast-math flags it has), and its scores stay within
# $10^{-13}$ of the block kernel's. With $c_{ii} = 0$ the diagonal "residual"
# is $s_i$ itself, so the same call also gives the marginal entropies.
#
# ```{literalinclude} ../../src/reprobook/lingam/fused.py
# :pyobject: _build_cpu_kernel
# ```
#
# On the GPU the same two passes are a CuPy `RawKernel` with one block per
# pair, its threads striding over the samples and reducing in shared memory,
# in float64 with CUDA's double-precision `exp` and `log1p` (the reference
# CUDA code accumulates float32 entropies with atomics, a known defect). The
# block kernel stays, as `backend="vectorized"`: it is the reference both
# fused kernels are tested against.
#
# The adjacency matrix is then estimated as the package does it: regress each
# variable on its predecessors in the order with the adaptive lasso
# {cite:p}`zou2006adaptive` (scikit-learn's `LassoLarsIC` with BIC on
# OLS-weighted predictors), and refit the surviving coefficients by OLS.
#
# ### A worked step
#
# Three variables, $x_0 \to x_1 \to x_2$ with uniform noise. The first step's
# $D$ matrix says which direction each pair prefers, and $M$ picks $x_0$:

# %%
rng = np.random.default_rng(seed)
e = rng.uniform(-1, 1, (2000, 3))
x0 = e[:, 0]
x1 = 0.8 * x0 + e[:, 1]
x2 = -0.7 * x1 + e[:, 2]
X_small = np.column_stack([x2, x0, x1])  # shuffled columns: the truth is 1 -> 2 -> 0
labels = ["x2", "x0", "x1"]
M, D = pairwise_scores(np.ascontiguousarray(X_small.T), return_D=True)
step = pd.DataFrame(D, columns=[f"D[i, {c}]" for c in labels]).assign(M=M)
display(Table(step.assign(i=labels).set_index("i").reset_index(), floatfmt="{:.4f}"))
S_small = (X_small - X_small.mean(0)) / X_small.std(0)
print(
    "H(x) of the standardized columns:",
    {c: round(float(h), 4) for c, h in zip(labels, entropy(S_small.T))},
)
print("first pick:", labels[int(np.argmax(M))])
print(
    "causal order found:",
    [labels[i] for i in DirectLiNGAM().fit(X_small).causal_order_],
)

# %% [markdown]
# ## Experiment 1: exactly the `lingam` package's answer
#
# A faster implementation is only useful if it is the same estimator. On
# random LiNGAMs with sub-Gaussian (uniform), super-Gaussian (Laplace) and
# heavy-tailed (Student-t, 5 d.o.f.) noise, for several $d$, $n$ and seeds,
# we compare with `lingam.DirectLiNGAM` (version pinned in
# `requirements.txt`): the causal order, every step's score vector $M$
# (against a replay of the package's own pair loop), and the adjacency matrix.

# %%
agree = ex.agreement(cfg, seed, device)
summary = (
    agree.groupby(["noise", "d"])
    .agg(
        cases=("same_order", "size"),
        same_order=("same_order", "sum"),
        max_score_gap=("max_score_gap", "max"),
        max_adjacency_gap=("max_adjacency_gap", "max"),
    )
    .reset_index()
)
display(Table(summary, floatfmt="{:.1e}"))
n_same, n_cases = int(agree.same_order.sum()), len(agree)
score_gap, adj_gap = agree.max_score_gap.max(), agree.max_adjacency_gap.max()
print(
    f"same causal order in {n_same}/{n_cases} cases; "
    f"max |M_ours - M_lingam| = {score_gap:.1e}; "
    f"max |B_ours - B_lingam| = {adj_gap:.1e}"
)
claims.add(
    "Same causal order, scores and adjacency as lingam.DirectLiNGAM",
    "the GPU code returns the CPU package's order",
    f"{n_same}/{n_cases} orders equal; "
    f"max |dM| = {score_gap:.0e}; max |dB| = {adj_gap:.0e}",
    n_same == n_cases and score_gap < 1e-10 and adj_gap < 1e-10,
)

# %% [markdown]
# The scores differ only in the last bits (our sums run in a different
# order, and we use the overflow-free $\log\cosh$), far below the $10^{-10}$
# we require, and no order flips.
#
# ## Experiment 2: recovering known graphs
#
# Random DAGs with $d$ variables and about `expected_degree` parents per
# node, edge weights $\pm[0.5, 1.5]$ (rows rescaled so that the incoming
# weights sum to at most 2 in absolute value, which keeps variances bounded
# in large graphs), Laplace noise with scales in $[0.5, 1.5]$. We report the
# structural Hamming distance (SHD: additions + deletions + reversals), the
# precision, recall and F1 of directed edges, and the fraction of true edges
# whose cause precedes its effect in the estimated order.
#
# Each pair ($d$, seed) has **one** graph for every $n$, and the data for a
# smaller $n$ are the first $n$ rows of one sample of the largest $n$, so the
# trend in $n$ is not mixed with how hard the graphs happen to be. Means are
# over `acc_seeds` graphs, with their standard errors (SE). The rule, fixed
# before the run: the graph counts as recovered at the largest $n$ when, for
# every $d$, the mean F1 minus 2 SE is at least 0.95; NO when for some $d$
# the mean F1 plus 2 SE is below 0.95; otherwise inconclusive.

# %%
acc = ex.accuracy(cfg, seed, device)
cols = ["edges", "shd", "precision", "recall", "f1", "order_consistency"]
grouped = acc.groupby(["d", "n"])
acc_mean = grouped[cols].mean().reset_index()
acc_se = grouped[cols].sem().reset_index()
acc_shown = acc_mean.copy()
for c in ("shd", "f1"):
    acc_shown[c] = [f"{m:.3f} ± {e:.3f}" for m, e in zip(acc_mean[c], acc_se[c])]
acc_shown = acc_shown.rename(columns={"shd": "shd ± se", "f1": "f1 ± se"})
display(Table(acc_shown, floatfmt="{:.3f}"))

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for d, grp in acc_mean.groupby("d"):
    err = acc_se.loc[grp.index]
    axes[0].errorbar(grp.n, grp.f1, err.f1, marker="o", capsize=3, label=f"d = {d}")
    axes[1].errorbar(grp.n, grp.shd, err.shd, marker="o", capsize=3, label=f"d = {d}")
ns = sorted(acc_mean.n.unique())
for ax, label in zip(axes, ["edge F1", "SHD"]):
    ax.set_xscale("log")
    ax.set_xticks([], minor=True)  # label only the sample sizes run
    ax.set_xticks(ns, labels=[f"{n:g}" for n in ns])
    ax.set_xlabel("samples n (same graphs at every n)")
    ax.set_ylabel(f"{label} (mean ± SE over {cfg.acc_seeds} graphs)")
axes[0].set_ylim(0, 1.02)
axes[0].legend(title="variables", loc="lower right")
fig.suptitle(f"Structure recovery on random LiNGAMs ({cfg.acc_noise} noise)")
plt.show()

n_max, n_min = max(cfg.acc_ns), min(cfg.acc_ns)
per_d = []
for d, grp in acc[acc.n == n_max].groupby("d"):
    mean, se, ok = paired_verdict(grp.f1 - 0.95, 0.0, z=2)
    per_d.append((d, mean + 0.95, se, ok))
lows = [(m - 2 * e, d) for d, m, e, _ in per_d]
oks = [ok for *_, ok in per_d]
recovered = (
    True if all(ok is True for ok in oks)
    else False if any(ok is False for ok in oks)
    else INCONCLUSIVE
)
paired = acc.pivot_table(index=["d", "seed"], columns="n", values="f1")
gain = paired[n_max] - paired[n_min]
print(
    f"at n = {n_max}: mean F1 from {min(m for _, m, _, _ in per_d):.3f} to "
    f"{max(m for _, m, _, _ in per_d):.3f} over d; lowest mean - 2 SE "
    f"{min(lows)[0]:.3f} (d = {min(lows)[1]})"
)
print(
    f"F1 gain from n = {n_min} to {n_max} on the same graphs: "
    f"{gain.mean():.3f} ± {gain.sem():.3f} (mean ± SE over {len(gain)} graphs); "
    f"up on {int((gain > 0).sum())}, unchanged on {int((gain == 0).sum())}, "
    f"down on {int((gain < 0).sum())}"
)
claims.add(
    "Recovers the graph given enough samples",
    "DirectLiNGAM is consistent (Shimizu et al. 2011)",
    f"mean F1 >= {min(m for _, m, _, _ in per_d):.3f} for every d <= "
    f"{max(cfg.acc_dims)} at n = {n_max}; lowest mean - 2 SE {min(lows)[0]:.3f}",
    recovered,
    note=f"rule: mean F1 - 2 SE >= 0.95 for every d ({cfg.acc_seeds} graphs each)",
)

# %% [markdown]
# Errors concentrate where they should: few samples and many variables. On
# the same graphs, F1 rises with $n$ on most of them (the counts printed
# above); the others were at about 0.95 or above already at the smallest $n$.
# At the largest $n$ the order is consistent with nearly every true edge; what
# remains are mostly spurious weak edges that the adaptive lasso keeps
# (precision below recall).
#
# ## Experiment 3: speed
#
# The claim of the paper is speed. `benchmarks/lingam_speed.py` times the
# package and ours on the same data in the same process, $n = 1000$, with the
# same number of repeats on both sides: the package's own `fit` (its ordering
# and its adjacency step timed separately, BLAS on one thread), and ours on
# one thread (`n_jobs=1`) and on all cores, with the fused kernel and with the
# block kernel it replaced. Timings are not measured inside this notebook, so
# that the book's outputs stay reproducible; the numbers below are loaded from
# `results/lingam/cpu_benchmark.json`. Before running it we fixed the goals
# at $d = 100$: the ordering at least 100x the package on one thread and 150x
# on two cores, the whole fit at least 30x.

# %%
bench = ex.load_benchmark(REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json")
cores = bench["cores"]
shown = {
    "d": "d",
    "peer_order_s": "lingam order (s)",
    "order_1t_s": "fused, 1 thread",
    "order_s": f"fused, {cores} cores",
    "vectorized_order_1t_s": "block, 1 thread",
    "vectorized_order_s": f"block, {cores} cores",
    "peer_fit_s": "lingam fit (s)",
    "fit_1t_s": "our fit, 1 thread",
    "fit_s": f"our fit, {cores} cores",
    "same_order": "same order",
}
display(Table(bench["table"][list(shown)].rename(columns=shown), floatfmt="{:.3g}"))
print(f"measured on: {bench['hardware']}")
r = bench["at_100"]
row_100 = bench["table"].set_index("d").loc[100]
goals = pd.DataFrame(
    {
        "at d = 100, n = 1000": [
            "ordering, 1 thread",
            f"ordering, {cores} cores",
            "whole fit, 1 thread",
            f"whole fit, {cores} cores",
            "baseline: block kernel, 1 thread",
            f"baseline: block kernel, {cores} cores",
        ],
        "x the package": [
            r["order_ratio_1t"],
            r["order_ratio"],
            r["fit_ratio_1t"],
            r["fit_ratio"],
            row_100.peer_order_s / row_100.vectorized_order_1t_s,
            row_100.peer_order_s / row_100.vectorized_order_s,
        ],
        "goal": [100, 150, 30, 30, np.nan, np.nan],
    }
)
goals["met"] = np.where(
    goals.goal.isna(),
    "",
    np.where(goals["x the package"] >= goals["goal"], "yes", "no"),
)
display(
    Table(
        goals.assign(goal=goals.goal.map(lambda g: "" if np.isnan(g) else f"{g:.0f}")),
        floatfmt="{:.0f}",
    )
)
sample_pairs = sum(k * k for k in range(2, 101)) * int(row_100.n)
ns_fused = row_100.order_1t_s / sample_pairs * 1e9
ns_block = row_100.vectorized_order_1t_s / sample_pairs * 1e9
ns_peer = row_100.peer_order_s / sample_pairs * 1e9
print(
    f"ordering at d = 100 on one thread: {ns_fused:.2f} ns per sample-pair "
    f"(block kernel {ns_block:.2f} ns, lingam {ns_peer:.0f} ns)"
)

fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
for who, col, style in [
    ("lingam package", "peer_order_s", "s--"),
    ("fused, 1 thread", "order_1t_s", "o-"),
    (f"fused, {cores} cores", "order_s", "o-"),
    (f"block kernel, {cores} cores", "vectorized_order_s", "^:"),
]:
    pts = bench["table"].dropna(subset=[col])
    ax.loglog(pts.d, pts[col], style, label=who)
ds = sorted(bench["table"].d.unique())
ax.set_xticks([], minor=True)
ax.set_xticks(ds, labels=[f"{d:g}" for d in ds])
ax.set_xlabel("variables d")
ax.set_ylabel("causal-ordering time (s)")
ax.set_title(f"DirectLiNGAM ordering time, n = {int(bench['table'].n.iloc[0])}")
ax.legend()
plt.show()
slopes = bench["slopes"]
print(
    f"log-log slopes for d >= 25: lingam package {slopes['peer_order_s']:.2f}, "
    f"ours (fused, 1 thread) {slopes['order_1t_s']:.2f}"
)
claims.add(
    "Ordering speed-up over the lingam package",
    "up to 32x (GPU vs CPU package)",
    f"{r['order_ratio']:.0f}x on {cores} cores, {r['order_ratio_1t']:.0f}x on 1 thread "
    "at d = 100, n = 1000",
    r["order_ratio"] >= 30,
    note="saved benchmark; the block kernel alone passes too (see the goals table)",
    source=REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json",
)
claims.add(
    "Fused kernel meets its ordering goals",
    "not reported (our goals: 100x on 1 thread, 150x on 2 cores)",
    f"{r['order_ratio_1t']:.0f}x on 1 thread, {r['order_ratio']:.0f}x on {cores} cores "
    "at d = 100",
    r["order_ratio_1t"] >= 100 and r["order_ratio"] >= 150,
    note="saved benchmark",
    source=REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json",
)
claims.add(
    "Whole fit (ordering + adjacency) speed-up",
    "not reported",
    f"{r['fit_ratio_1t']:.0f}x on 1 thread, {r['fit_ratio']:.0f}x on {cores} cores "
    "at d = 100 (goal 30x)",
    r["fit_ratio"] >= 30,
    note="saved benchmark",
    source=REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json",
)

# %% [markdown]
# The fused kernel does what the block kernel could not. At $d = 100$ it
# spends about 1.7 ns per sample-pair on one thread, against about 5 ns for
# the block kernel and about 140 ns for the package's Python loop (the line
# printed above). The ordering comes out at 84x the package on one thread and
# 146x on two cores. That is well past the paper's 32x (and past the 30x this
# chapter has asked of two cores since its first version), but the baseline
# passes that bar too: the block kernel alone gives 28x and 38x. Against the
# goals we set for the fused kernel before measuring it (100x and 150x) it
# falls short on both, and that claim is marked NO. The whole fit, at 39x
# and 66x, meets its 30x goal.
#
# Two things hold the ordering back. The kernel's inner loop is about sixty
# vector operations per sample-pair (two exponentials, a log1p, the sums),
# and 1.7 ns is close to what one core of this machine retires for them; more
# would need less accurate polynomials, which we did not want (3 ulp keeps
# the order identical to the package's). And part of each step is NumPy work
# outside the kernel (standardizing, the covariance matrix, residualizing)
# that stays on one core, which is why two cores give 1.7x rather than 2x.
# The package's own time moves by several percent between runs on this
# virtual machine, so the two-core figure sits at the edge of its goal; the
# one-thread figure does not.
#
# The package's curve has slope 3 on the log-log axes, the $d^3/3$ pair
# count. Ours is flatter between $d = 25$ and $100$ because fixed per-step
# costs still weigh there; it is the same $d^3$ asymptotically.
#
# At $d \ge 100$ the adjacency step (one `LassoLarsIC` per variable, as in
# the package) costs our fit more than the ordering. Its regressions are
# independent, so from 64 of them on they run in forked worker processes,
# and BLAS runs on one thread throughout: on these small matrices its own
# threads cost more than they give. Both are in the whole-fit ratios above.
#
# ## Experiment 3b: the bootstrap, and the rest of the package's interface
#
# A user of the `lingam` package calls more than `fit`. The most expensive of
# those calls is `bootstrap(X, n_sampling)`: it refits on `n_sampling`
# resamples of the rows and reports how often each edge appears, which is
# where a fast fit pays most. Ours returns the package's own
# `BootstrapResult` (so `get_probabilities`, `get_causal_direction_counts`,
# `get_paths` work unchanged), draws the same resamples (from NumPy's global
# random state, the package's convention), and computes the total effects in
# closed form, $T = (I - \hat B)^{-1}$, where the package enumerates every
# directed path (exponential in dense graphs).
#
# On a random graph of `boot_dims` variables, both estimators bootstrap the
# same resamples; the heatmaps show the true graph and our edge
# probabilities.

# %%
boot = ex.bootstrap_study(
    cfg.boot_dims, cfg.boot_samples, cfg.boot_resamples, seed, device, cfg.n_jobs
)
probs = boot["ours"].get_probabilities()
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
for ax, mat, title in [
    (axes[0], (boot["B_true"] != 0).astype(float), "true graph (1 = edge)"),
    (axes[1], probs, f"bootstrap, {cfg.boot_resamples} resamples"),
]:
    im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
    ax.set_xlabel("cause j")
    ax.set_ylabel("effect i")
    ax.set_title(title)
    ax.set_xticks(range(cfg.boot_dims))
    ax.set_yticks(range(cfg.boot_dims))
    ax.grid(False)
fig.colorbar(im, ax=axes, shrink=0.8, label="P(edge j -> i)")
plt.show()
true_edges = boot["B_true"] != 0
absent = ~true_edges & ~np.eye(cfg.boot_dims, dtype=bool)
p_true, p_absent = probs[true_edges], probs[absent]
print(
    f"true edges: probability {p_true.min():.2f} to {p_true.max():.2f} "
    f"(mean {p_true.mean():.2f}); absent edges: mean {p_absent.mean():.3f}, "
    f"largest {p_absent.max():.2f}"
)
p_gap, t_gap = boot["max_probability_gap"], boot["max_total_effect_gap"]
print(
    f"largest gap to lingam's bootstrap: probabilities {p_gap:.1e}, "
    f"total effects {t_gap:.1e}"
)
b = bench["bootstrap"]
print(
    f"saved benchmark, d = {b['d']}, n = {b['n']}, {b['n_sampling']} resamples: "
    f"lingam {b['peer_s']:.1f} s, "
    f"ours {b['ours_1t_s']:.2f} s on 1 thread ({b['ratio_1t']:.0f}x), "
    f"{b['ours_s']:.2f} s on {cores} cores "
    f"({b['ratio']:.0f}x); same result: {b['same_result']}"
)
claims.add(
    "Bootstrap equals lingam's on the same resamples",
    "not reported (the package's interface)",
    f"max gap {p_gap:.0e} (probabilities), {t_gap:.0e} "
    f"(total effects); {b['ratio']:.0f}x faster at d = {b['d']}",
    boot["max_probability_gap"] == 0 and boot["max_total_effect_gap"] < 1e-10,
    source=REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json",
)

# %% [markdown]
# The true edges appear in nearly every resample; the absent ones get small
# probabilities, a few of them sizeable (the range is printed above), which
# is what a bootstrap is for at $n = 200$. The probabilities are exactly the
# package's, and the total effects agree to rounding. In the saved benchmark
# ($d = 30$) our bootstrap is 15x the package's, less than the fit's ratio at
# $d = 100$: at $d = 30$ the adaptive lasso, not the ordering, is most of our
# fit's time, while the ordering is most of the package's.
#
# The other calls a user of the package makes are drop-in as well, each
# tested against the package on the same data (`tests/test_lingam_api.py`):
# `estimate_total_effect` (with the package's warning when the order
# contradicts the request), `get_error_independence_p_values`, prior
# knowledge applied strictly or softly, the kernel measure of the original
# DirectLiNGAM (written with the array module, so it also runs on a GPU),
# `VARLiNGAM(lingam_model=...)` with any of the package's models and its
# `bootstrap`, pandas DataFrames as input, and errors of the package's kinds
# (bad data raises `ValueError`, with a message that says what is wrong). Our
# classes subclass the package's, so `isinstance` checks in code written for
# it pass. One deliberate difference: our `VARLiNGAM` starts every fit from
# its constructor's settings, while the package's reuses the lag order and
# AR coefficients of its previous fit (a second `fit` on new data keeps the
# old VAR).
#
# ## Experiment 4: VarLiNGAM on U.S. macro-economic data
#
# The paper applies VarLiNGAM to stock prices, which are not available
# offline. The same model on statsmodels' quarterly U.S. macro data
# (1959–2009): log-differences ($\times 100$) of real GDP, consumption,
# investment, government spending and disposable income, and the T-bill
# rate, unemployment and inflation as levels. VarLiNGAM fits
# $x_t = \sum_{\tau \ge 1} M_\tau x_{t-\tau} + n_t$ (statsmodels, no intercept,
# lag order by BIC), runs DirectLiNGAM on the residuals $n_t$ to get the
# instantaneous effects $B_0$, and sets $B_\tau = (I - B_0) M_\tau$, pruned by
# the same adaptive lasso. The heatmaps show our $B_0, \dots, B_{\text{lags}}$
# (row = effect, column = cause; the colour scale is symmetric-logarithmic,
# so that one large coefficient does not wash out the rest, and every
# non-zero entry is printed).

# %%
names, var_ours, var_peer = ex.var_on_macrodata(cfg.var_max_lags, device)
lags = var_ours.adjacency_matrices_.shape[0] - 1
print(f"lag order chosen by BIC: {lags}")
print(
    "causal order of the instantaneous effects:",
    " -> ".join(names[i] for i in var_ours.causal_order_),
)
print(
    "same order as lingam.VARLiNGAM:",
    [int(v) for v in var_peer.causal_order_] == var_ours.causal_order_,
)
var_gap = float(
    np.abs(var_ours.adjacency_matrices_ - var_peer.adjacency_matrices_).max()
)
print(f"max |B_ours - B_lingam| over B_0..B_{lags}: {var_gap:.1e}")
fig = ex.plot_var_heatmaps(names, var_ours.adjacency_matrices_)
plt.show()
claims.add(
    "VarLiNGAM matches lingam.VARLiNGAM on real data",
    "VarLiNGAM on U.S. stock data (not offline; macrodata instead)",
    f"same order; max |dB| = {var_gap:.0e} over B_0..B_{lags}",
    [int(v) for v in var_peer.causal_order_] == var_ours.causal_order_
    and var_gap < 1e-10,
)

# %%
fig = ex.plot_var_graph(names, var_ours.adjacency_matrices_, threshold=0.05)
plt.show()

# %% [markdown]
# Read the graph with care: a linear, non-Gaussian, acyclic model of eight
# aggregate series is a strong assumption, and quarterly aggregation blurs
# instantaneous effects. What the experiment shows is that our estimator
# reproduces the package exactly on real data; the economics would need more
# than this model.
#
# ## Experiment 5: predicting knockouts, against NOTEARS
#
# The paper's gene-expression study (Perturb-seq with genetic interventions)
# is not available offline, so we simulate its structure: sparse networks of
# `genes` genes, observational samples to learn from, and a knock-down of
# each gene $k$ to $\mu_k - c\,\sigma_k$ ($c$ = `knockdown_sd`). In a linear
# SEM the mean shift of gene $j$ is the total effect times the shift,
#
# $$ \Delta_{jk} = [(I-B)^{-1}]_{jk}\,(c_k - \mu_k), $$
#
# computed exactly from the true SEM; a method predicts it with its estimate
# of $B$. We score each method by the RMSE of its predicted shifts over all
# ordered pairs $j \neq k$, against the exact $\Delta$ (the primary metric) and,
# as a check, against the mean shifts of simulated interventional samples
# (200 cells per knockdown, so that column carries sampling noise of its own).
#
# **The competitor.** The paper reports DirectLiNGAM *competitive* with
# specialised continuous-optimisation methods. The best known is NOTEARS
# {cite:p}`zheng2018notears`: least squares with an $\ell_1$ penalty,
# subject to the smooth acyclicity constraint
# $h(W) = \operatorname{tr}\, e^{W \circ W} - d = 0$ (zero exactly when $W$ has no
# directed cycle, because $\operatorname{tr}(W\circ W)^k$ sums the weights of
# closed walks of length $k$), solved by an augmented Lagrangian with L-BFGS-B
# inside. We wrote it (`reprobook.lingam.notears`, a hundred lines; the
# `gcastle` package's version swaps the exponential for a polynomial
# constraint) after the authors' reference code, with their $\lambda_1 = 0.1$
# (`notears_lambda`) and final threshold 0.3 on $|W|$ (`notears_threshold`).
# It differs from that code only in evaluating the loss through the Gram
# matrix $X^\top X / n$ (the tests check the two forms agree, and the
# gradients against finite differences), and it runs in about a second at
# $d = 30$. Like LiNGAM's adjacency step, we refit the kept edges by least
# squares, so neither method's effects are shrunk by its penalty.
#
# ```{literalinclude} ../../src/reprobook/lingam/notears.py
# :pyobject: notears_linear
# ```
#
# NOTEARS is not scale-invariant: on raw simulated data it can read the
# causal order off variances that grow along it {cite:p}`reisach2021beware`,
# which real units do not promise. We run it both ways, on the data as given
# ("NOTEARS") and on z-scored data with the weights mapped back to the data's
# units ("NOTEARS (standardized)"); predictions are always in the data's
# units. The claim compares LiNGAM with the raw-scale NOTEARS, the stronger
# of the two here. Two direction-blind baselines stay as context: the
# regression of $x_j$ on $x_k$ (what a correlation graph predicts: it moves
# ancestors as well as descendants) and "no change".
#
# **Three settings**, on the same `gene_seeds` networks (the same genes and
# edges in each setting, $d$ = `genes`, `gene_samples` cells):
#
# * `lingam`: skewed (exponential) noise, exactly a LiNGAM;
# * `gaussian`: a random half of the genes (`gene_gaussian_fraction`) have
#   Gaussian noise: an edge between two of them has no direction in the data;
# * `confounded`: `gene_latents` hidden variables each drive
#   `gene_latent_children` genes and are left out of the data, so the
#   observed noise terms are no longer independent. The exact effects still
#   come from the full SEM.
#
# **The rule**, fixed before the run. Per network, the log ratio
# $\log(\text{RMSE}_\text{LiNGAM} / \text{RMSE}_\text{NOTEARS})$; over networks,
# its mean and standard error. LiNGAM is *competitive* when its RMSE is at
# most $1 + m$ times NOTEARS's ($m$ = `competitive_margin`): **yes** when the
# upper end of the 2-SE interval of the geometric-mean ratio is below
# $1 + m$, **NO** when its lower end is above $1 + m$, **inconclusive**
# otherwise. One claim per setting.

# %%
ko = ex.knockout_study(cfg, seed, device)
methods = list(ex.KNOCKOUT_METHODS)
settings = list(cfg.gene_settings)
label = {
    "lingam": "exactly LiNGAM",
    "gaussian": f"{cfg.gene_gaussian_fraction:.0%} Gaussian noise",
    "confounded": "hidden confounders",
}
stats = ko.groupby(["setting", "method"])[["rmse_exact", "rmse_sampled", "edge_f1"]]
mean, se = stats.mean(), stats.sem()


def cell(col, setting, method, fmt="{:.3f}"):
    m, e = mean.loc[(setting, method), col], se.loc[(setting, method), col]
    return "–" if np.isnan(m) else f"{fmt.format(m)} ± {fmt.format(e)}"


rmse_table = pd.DataFrame(
    {"method": methods}
    | {label[s]: [cell("rmse_exact", s, m) for m in methods] for s in settings}
)
print(
    f"RMSE of predicted knockdown shifts vs the exact shifts, "
    f"mean ± SE over {cfg.gene_seeds} networks:"
)
display(Table(rmse_table))
n_int = max(200, cfg.gene_samples // 10)
print(f"RMSE against sampled interventional means ({n_int} cells per knockdown):")
display(
    Table(
        pd.DataFrame(
            {"method": methods}
            | {
                label[s]: [cell("rmse_sampled", s, m) for m in methods]
                for s in settings
            }
        )
    )
)
print("edge F1 of the estimated graphs:")
graph_methods = methods[:3]
display(
    Table(
        pd.DataFrame(
            {"method": graph_methods}
            | {
                label[s]: [cell("edge_f1", s, m, "{:.2f}") for m in graph_methods]
                for s in settings
            }
        )
    )
)

fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
width = 0.8 / len(methods)
for i, m in enumerate(methods):
    x = np.arange(len(settings)) + (i - (len(methods) - 1) / 2) * width
    ys = [mean.loc[(s, m), "rmse_exact"] for s in settings]
    es = [se.loc[(s, m), "rmse_exact"] for s in settings]
    ax.bar(x, ys, width, yerr=es, capsize=3, label=m)
ax.set_xticks(range(len(settings)), labels=[label[s] for s in settings])
ax.set_xlabel("setting (same networks)")
ax.set_ylabel("RMSE vs exact shifts (mean ± SE)")
ax.set_title(
    f"Knockdown effects: {cfg.genes} genes, {cfg.gene_samples} observational cells, "
    f"{cfg.gene_seeds} networks"
)
ax.legend(ncols=3, fontsize=9, loc="upper left")
ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
plt.show()

ver = ex.knockout_verdicts(ko, cfg.competitive_margin)
display(
    Table(
        ver.assign(setting=ver.setting.map(label), verdict=ver.holds.map(verdict))
        .drop(columns=["holds", "log_ratio", "se"])
        .rename(
            columns={
                "ratio": "RMSE ratio LiNGAM / NOTEARS",
                "lo": "- 2 SE",
                "hi": "+ 2 SE",
            }
        ),
        floatfmt="{:.3f}",
    )
)
limit = 1 + cfg.competitive_margin
for _, row in ver.iterrows():
    claims.add(
        f"DirectLiNGAM competitive with NOTEARS on knockouts ({label[row.setting]})",
        "competitive with continuous-optimisation methods (gene expression)",
        f"RMSE ratio LiNGAM / NOTEARS {row.ratio:.2f} "
        f"[{row.lo:.2f}, {row.hi:.2f}] over {row.networks} networks",
        row.holds,
        note=f"rule: yes if the 2-SE upper end < {limit:.2f}, NO if the lower end > "
        f"{limit:.2f}; geometric mean of per-network ratios, exact effects",
    )

well = ko[ko.setting == settings[0]].pivot(
    index="seed", columns="method", values="rmse_exact"
)
oks = [
    paired_verdict(well[b] - well["LiNGAM"], 0.0, z=2)[2]
    for b in ("regression", "no change")
]
beats = (
    True if all(ok is True for ok in oks)
    else False if any(ok is False for ok in oks)
    else INCONCLUSIVE
)
claims.add(
    f"LiNGAM predicts knockouts better than correlation ({label[settings[0]]})",
    "LiNGAM on gene expression with genetic interventions",
    f"RMSE {mean.loc[(settings[0], 'LiNGAM'), 'rmse_exact']:.3f} (LiNGAM) vs "
    f"{mean.loc[(settings[0], 'regression'), 'rmse_exact']:.3f} (regression), "
    f"{mean.loc[(settings[0], 'no change'), 'rmse_exact']:.3f} (no change)",
    beats,
    note="context, a weak baseline: direction-blind predictors; rule: both paired "
    "differences > 0 by 2 SE; simulated network, not Perturb-seq",
)

# %% [markdown]
# **Well specified, LiNGAM wins by far.** On data that are exactly LiNGAM,
# its error is more than ten times below NOTEARS's: least squares scores an
# edge and its reversal almost alike, and NOTEARS orients edges only through
# the variances, while LiNGAM reads the direction off the skewed noise. But
# this is the setting LiNGAM is built for, so on its own it shows little.
#
# **Half the noise Gaussian: no advantage left, and no decision.** LiNGAM's
# RMSE grows more than tenfold, to NOTEARS's level; the geometric-mean ratio
# is close to 1, but its 2-SE interval (about 0.6 to 1.7 over ten networks)
# straddles the 1.1 limit, so the claim is *inconclusive*: the per-network
# ratios scatter widely (on some networks NOTEARS is far better, on others
# LiNGAM). **Hidden confounders** hurt every method; LiNGAM
# stays ahead (ratio about 0.74, the whole interval below 1), so the claim
# holds there. Edge F1 and effect error need not agree: with confounders
# NOTEARS finds slightly more of the true edges, yet its effects are worse.
#
# Two more things the tables show. NOTEARS on z-scored data is far worse
# than on raw data in every setting, not much better than "no change": its
# raw-scale results lean on the variances growing along the causal order in
# this simulation {cite:p}`reisach2021beware`, which LiNGAM does not need. And
# regression does no better than "no change" anywhere, which is why beating
# those two is no evidence for LiNGAM. The sampled column ranks the methods
# the same way but sits on a floor of about 0.1 (the noise of 200-cell
# means), which is why the exact effects are the primary metric. All of this
# is one simulation, kinder than real data in being linear and acyclic; it
# shows the mechanism, not the size of the gain on Perturb-seq.
#
# ## On a GPU
#
# `DirectLiNGAM(device="cuda")` runs the same `pairwise_scores` on CuPy
# arrays: the fused CUDA kernel by default, the block kernel with
# `backend="vectorized"`. Their check, `benchmarks/lingam_gpu.py` (run with
# every chapter's by `make gpu-check`), compares the orders of the two GPU
# paths and of the CPU kernel at $d \le 200$, times the ordering at
# $d = 1000$, $n = 10000$ against our CPU kernel on the host's cores (that
# CPU time extrapolated from one timed step), and times
# $d \in \{100, 250, 500, 1000\}$, $n \in \{1000, 10000\}$, saving
# `results/lingam/gpu.json`:

# %%
gpu = ex.load_gpu_results(REPO_ROOT / "results" / "lingam" / "gpu.json")
if gpu is None:
    print(
        "No GPU check yet: `make gpu-check` (benchmarks/lingam_gpu.py) "
        "has not run on a GPU for this book."
    )
elif "fused_vs_vectorized_max_abs" not in gpu["checks"]:
    print(
        "results/lingam/gpu.json predates the fused CUDA kernel: "
        "rerun `make gpu-check` on a GPU."
    )
else:
    display(Table(gpu["checks"], floatfmt="{:.3g}"))
    display(Table(gpu["table"], floatfmt="{:.3g}"))
    head = gpu["headline"]
    print(
        f"d = {head['d']}, n = {head['n']}: {head['gpu_order_s']:.2f} s on the GPU, "
        f"{head['ratio_to_cpu']:.0f}x our CPU kernel "
        f"(extrapolated {head['cpu_order_extrapolated_s']:.0f} s)"
    )
    claims.add(
        "GPU path gives the CPU order",
        "GPU kernels reproduce the CPU package",
        f"{gpu['same']}/{gpu['cases']} orders equal (fused GPU, block GPU, CPU)",
        gpu["same"] == gpu["cases"],
        source=REPO_ROOT / "results" / "lingam" / "gpu.json",
    )

# %% [markdown]
# ## Claims
#
# Each claim of the paper we tested, the paper's figure next to ours, at the
# `cpu` preset (all claims of the book are collected in the scoreboard).

# %%
claims.report()

# %% [markdown]
# ## Summary
#
# - **Same estimator.** Our DirectLiNGAM returns the `lingam` package's causal
#   order in every case tested (72/72), with scores within $4\times10^{-15}$ of
#   the package's and identical adjacency matrices; the bootstrap, VarLiNGAM on
#   the macro-economic series and the rest of the package's interface agree as
#   well. It recovers random graphs: at $n = 4000$ the mean F1 over five graphs
#   is at least 0.986 for every $d \le 80$, and on the same graphs F1 rises by
#   0.14 on average from $n = 250$.
# - **Faster than the paper's figure, on a CPU.** At $d = 100$ the ordering
#   is 146x the package on two cores and 84x on one thread, past the paper's
#   32x, but the block kernel it replaced clears that bar too (38x), so the
#   paper's figure does not single out the fused kernel. The whole fit is 66x
#   and 39x.
# - **What did not hold: our own goals for the fused kernel** (100x on one
#   thread, 150x on two cores). Its inner loop is close to what a core
#   retires for two exponentials and a log1p per sample-pair, and the NumPy
#   work between kernel calls stays on one core.
# - **Against NOTEARS, on simulated knockouts.** Where the data are exactly
#   LiNGAM, its effect RMSE is less than a tenth of NOTEARS's; with hidden
#   confounders it is still lower (ratio 0.74, interval 0.61 to 0.89). With
#   half the noise Gaussian its advantage is gone and ten networks cannot
#   decide whether it stays within 10% of NOTEARS (ratio 1.01, interval 0.61
#   to 1.66): *inconclusive*. The paper's "competitive" holds in two of our
#   three settings and is undecided in the third.
# - **Stand-ins.** The paper's applications used stock prices and
#   Perturb-seq data, which are not available offline: macro-economic series
#   (where VarLiNGAM reproduces the package exactly) and simulated gene
#   networks take their place. The GPU path has not run on a GPU for this
#   book.
#
# ## Exercises
#
# Each run writes its notebook and `claims.json` under `--output` and takes
# a few minutes on two cores, like the chapter.
#
# 1. **Sub-Gaussian noise and few samples.** Rerun the structure recovery with
#    uniform noise and smaller samples:
#    `.venv/bin/reprobook run lingam -p acc_noise uniform -p acc_ns '[100, 250, 1000]' --output runs/lingam-ex1`.
#    In Experiment 2's table and figure, compare F1 and SHD at $n = 250$ with
#    the Laplace run above: which kind of non-Gaussianity is easier to use
#    with little data?
# 2. **More samples in the bootstrap.** Absent edges reach a bootstrap
#    probability of 0.43 at $n = 200$. Rerun with five times the samples,
#    `.venv/bin/reprobook run lingam -p boot_samples 1000 --output runs/lingam-ex2`,
#    and look at the printed range of the absent edges' probabilities and at
#    the right heatmap: do the spurious edges fade?
# 3. **Decide the inconclusive claim.** With half the noise Gaussian, ten
#    networks could not decide. Run thirty, in that setting alone,
#    `.venv/bin/reprobook run lingam -p gene_settings '["gaussian"]' -p gene_seeds 30 --output runs/lingam-ex3`:
#    does the interval of the RMSE ratio move below or above 1.1? Then make
#    the noise Gaussian for 90% of the genes (`-p gene_gaussian_fraction 0.9`):
#    where does LiNGAM stand against NOTEARS when almost nothing is
#    non-Gaussian?
