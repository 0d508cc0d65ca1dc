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
# # 02 · Data curation cannot be compute agnostic
#
# Sachin Goyal, Pratyush Maini, Zachary C. Lipton, Aditi Raghunathan and
# J. Zico Kolter. "Scaling Laws for Data Filtering -- Data Curation cannot be
# Compute Agnostic". CVPR 2024.
# [arXiv:2404.07177](https://arxiv.org/abs/2404.07177)
# {cite:p}`goyal2024qqt`.
#
# Web-scale training sets are filtered: LAION {cite:p}`schuhmann2022laion5b`
# kept about 10% of what it crawled. But the best filter depends on how long
# you will train. A small, clean pool is best for a short run; repeated many
# times, its samples lose their value, and a larger pool of lower quality wins.
# The paper calls this the **quality-quantity trade-off (QQT)** and writes
# scaling laws that (i) give each quality bucket its own *utility*, (ii) let
# utility decay with repetition, and (iii) predict a *mixture* of buckets
# without training on it. With them it picks the best pool for each compute
# budget on DataComp {cite:p}`gadre2023datacomp`.
#
# This chapter derives the laws, reproduces the paper's predictions from the
# released parameters to two decimals, and then builds the same situation at
# small scale, for real: a synthetic web pool of uneven quality, filtered by a
# noisy quality score, with dozens of small students trained on buckets and
# mixtures, the laws fitted to them, and the mixtures predicted before they
# are trained.

# %% tags=["parameters"]
# "cpu": the default, runs on 2 CPU cores; "full": a larger study on a GPU
preset = "cpu"
overrides = {}  # e.g. {"seeds": 8}
seed = 0
device = "auto"  # "auto" | "cpu" | "cuda"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from reprobook.chapters import get_chapter
from reprobook.claims import INCONCLUSIVE, Claims, paired_verdict, verdict
from reprobook.common import (
    Table,
    progress,
    resolve_device,
    seed_everything,
    set_plot_style,
)
from reprobook.qqt import experiments as ex
from reprobook.qqt.fit import FitPoints, fit_pools
from reprobook.qqt.laws import decayed_utilities

# a bad preset or parameter: a clear error, now
cfg = get_chapter("qqt").config(preset, overrides, namespace=globals())
device = resolve_device(device, "torch")  # the GPU path runs on torch
seed_everything(seed)
torch.set_num_threads(2)
set_plot_style()
claims = Claims("qqt", preset)
print(f"preset={preset}, seed={seed}")

# %% [markdown]
# ## The laws
#
# **One pool, seen once.** Error (one minus accuracy, as a fraction) falls as
# a power of the samples seen $n$,
#
# $$ y(n) = \Big(\frac{a\,n}{10^5}\Big)^{b} + d, \qquad b < 0 . $$
#
# Away from the floor $d$, $\frac{dy}{dn} = b\,\frac{y}{n}$: the exponent $b$
# is the pool's **utility**, the relative error reduction per relative
# increase in data. A more negative $b$ is a more useful pool.
#
# **Repetition.** On the $k$-th pass over the same samples ($k = 0$ is the
# first) the utility decays with half-life $\tau$ passes,
#
# $$ b_k = b \; 2^{-k/\tau} . $$
#
# **One pool of $N$ samples, repeated.** Integrate $\frac{dy}{dn} = b_k
# \frac{y}{n}$ epoch by epoch: within epoch $k$ the error shrinks by the
# factor $\big(\frac{n_{\text{end}}}{n_{\text{start}}}\big)^{b_k}$, so with
# $K = \lfloor n/N \rfloor$
#
# $$ y(n) = \Big[\Big(\frac{a\,\min(n, N)}{10^5}\Big)^{b_0} + d\Big]
#    \prod_{k=1}^{K} \Big(\frac{\min((k+1)N,\, n)}{kN}\Big)^{b_k} . $$
#
# We keep two details of the authors' code, since their released numbers
# depend on them: $a$ sits inside the power, with $n$ in units of $10^5$
# samples, and the floor $d$ is multiplied by the later epochs' ratios too.
#
# **Mixtures.** Mixing $p$ pools of equal size $N$ uniformly gives one pool of
# $pN$ samples. At combined epoch $k$ each pool contributes its own decayed
# utility, and the mixture's utility is their mean,
#
# $$ b^{\text{mix}}_k = \frac1p \sum_{i=1}^{p} b_i\, 2^{-k/\tau_i'} , $$
#
# with one $a$ shared by all pools. The authors' script uses $\tau_i' = p\,\tau_i$
# (`tau_scaling="pool"`): one combined epoch shows each pool's samples once,
# but per sample seen a pool in a mixture of $p$ is repeated $p$ times less
# often. We implement both choices and show the difference.
#
# **The "effective data" alternative.** Instead of decaying the utility,
# discount the repeated samples: $n_{\text{eff}} = \sum_k (\text{samples in
# epoch } k)\, 2^{-k/\tau}$ and $y = (a\, n_{\text{eff}}/10^5)^{b} + d$; in a
# mixture each epoch's utility is the decay-weighted mean of the pools'.
#
# The law is one function of (samples seen, $a$, the $b$ list, the $\tau$
# list, $d$, pool size, form, $\tau$ scaling):
#
# ```{literalinclude} ../../src/reprobook/qqt/laws.py
# :pyobject: predicted_error
# ```
#
# ## The released parameters, reproduced
#
# The authors released their fitted parameters for DataComp medium: four
# buckets of 12.8M samples ranked by T-MARS {cite:p}`maini2024tmars` score
# (top 0-10%, 10-20%, 20-30%, 30-40%), ImageNet zero-shot accuracy, both
# forms. (T-MARS scores an image-caption pair by its CLIP similarity after
# masking the text that appears in the image, so that images which merely
# spell out their caption rank low.) Their table predicts the accuracy of
# the top-$k$ mixtures at four budgets. Ours, from the same parameters:

# %%
tables = {}
for form in ("utility", "effective_data"):
    t = ex.released_table(form)
    tables[form] = t
    wide = t.pivot(index="pool", columns="samples seen", values="ours")[
        ["32M", "64M", "128M", "640M"]
    ]
    print(
        f"{form} form: predicted ImageNet accuracy (%), ours; "
        "matches the paper to 2 decimals in "
        f"{int(t['match (2 dp)'].sum())}/{len(t)} cells"
    )
    display(Table(wide.round(2).reset_index(), floatfmt="{:.2f}"))
n_match = sum(int(t["match (2 dp)"].sum()) for t in tables.values())
n_cells = sum(len(t) for t in tables.values())
claims.add(
    "Released-parameter predictions reproduced",
    "table of top-k accuracies (2 forms x 4 pools x 4 budgets)",
    f"{n_match}/{n_cells} cells equal to 2 decimals",
    n_match == n_cells,
)

# %% [markdown]
# All 32 numbers agree to two decimals. (With the parameters rounded to four
# digits, as they are quoted in papers, two cells of the effective-data table
# move by 0.01; we use the released values at full precision, which are
# points of the authors' search grid.)
#
# What $\tau$ scaling does: the same table with $\tau_i' = \tau_i$ (no scaling)
# for the utility form. Mixtures then lose their utility as fast as a single
# bucket does, and the looser pools look much worse at large budgets:

# %%
no_scaling = ex.released_table("utility", tau_scaling="none")
wide = no_scaling.pivot(index="pool", columns="samples seen", values="ours")[
    ["32M", "64M", "128M", "640M"]
]
display(Table(wide.round(2).reset_index(), floatfmt="{:.2f}"))

# %% [markdown]
# ### Utility decays with repetition
#
# The released half-lives say how fast each bucket wears out. The top bucket
# starts most useful ($b_0 = -0.16$) and keeps most of it ($\tau \approx 6.7$
# passes); the 30-40% bucket starts least useful and halves in about 2.3
# passes:

# %%
law = ex.RELEASED["utility"]
K = 20
b_k = decayed_utilities(law.b, law.tau, K)
fig, ax = plt.subplots(layout="constrained")
for name, row, tau in zip(law.names, b_k, law.tau):
    ax.plot(np.arange(K + 1), -row, marker=".", label=f"{name} (tau = {tau:.2f})")
ax.set_xlabel("pass over the pool, k")
ax.set_ylabel(r"utility $|b_k| = |b|\,2^{-k/\tau}$")
ax.set_title("Released utilities decay with repetition")
ax.legend()
plt.show()

# %% [markdown]
# ### The best pool depends on compute
#
# Predicted accuracy of each top-$k$ mixture as compute grows, and the best
# one at each budget: the frontier of the paper.

# %%
budgets = np.geomspace(1e7, 1e10, 121)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True, layout="constrained")
summary = []
for ax, form in zip(axes, ("utility", "effective_data")):
    f, changes = ex.best_pool_transitions(
        ex.RELEASED[form], budgets, ex.RELEASED_BUCKET, form
    )
    for k, name in enumerate(ex.POOL_NAMES):
        ax.plot(budgets, 100 * f["accuracy"][:, k], label=name)
    ax.plot(
        budgets,
        100 * f["accuracy"].max(axis=1),
        "k:",
        lw=2,
        label="best pool (frontier)",
    )
    ax.set_xscale("log")
    ax.set_xlabel("samples seen (compute)")
    ax.set_title(f"{form.replace('_', ' ')} form")
    for n, old, new in changes:
        summary.append(
            {
                "form": form,
                "budget": f"{n:.2e}",
                "best pool before": ex.POOL_NAMES[old - 1],
                "best pool after": ex.POOL_NAMES[new - 1],
            }
        )
axes[0].set_ylabel("predicted ImageNet accuracy (%)")
axes[0].legend(loc="lower right")
fig.suptitle("Top-k mixtures, released parameters: the best filter loosens")
plt.show()
transitions = pd.DataFrame(summary)
display(Table(transitions))

# %%
util_changes = transitions[transitions.form == "utility"]
order_of_best = [util_changes["best pool before"].iloc[0]] + util_changes[
    "best pool after"
].tolist()
first_change = float(util_changes.budget.iloc[0])
claims.add(
    "The best pool loosens as compute grows (released parameters)",
    "top 10% at low compute, top 20% at ~1e8 samples, top 30% past ~1e9",
    " -> ".join(order_of_best) + f"; first switch at {first_change:.1e} samples",
    order_of_best[:3] == ["top 10%", "top 20%", "top 30%"] and 3e7 < first_change < 3e8,
)

# %% [markdown]
# ## Our own small study
#
# CLIP {cite:p}`radford2021clip` on DataComp is far beyond two CPU cores, so
# we build the same situation small and fit the laws to real training runs.
#
# * **A web pool.** Inputs from a fixed generator (16-dimensional Gaussian),
#   labels from a fixed random teacher network (10 classes). Every sample has
#   a latent quality $q \sim \text{Beta}(1, 2)$; with probability $1 - q$ its
#   label is replaced by a random one (a mis-paired caption).
# * **A noisy quality score.** A curator cannot see $q$; it sees a few noisy
#   features of it (caption length, resolution, ...: here $q$ plus Gaussian
#   noise) and trains a small regressor on a hand-rated clean set. The score
#   ranks the pool into buckets of 10% each, as the paper ranks DataComp by
#   T-MARS.
# * **Students.** One small MLP architecture, one constant learning rate and
#   weight decay, batch 32; with a constant schedule, a run evaluated at
#   checkpoints is the same as separate runs of those lengths. All students
#   (pools x seeds) train at once with `torch.func.vmap`, each with its own
#   stream of passes over its pool. Seed $s$ starts from the same weights on
#   every pool, so two pools are compared seed by seed, and every verdict
#   below uses the standard error over the `seeds` pairs. Error is measured
#   on clean test data.
# * **A fresh-data control.** Students that see new samples of the top
#   bucket's quality, never repeated. A curve can flatten because samples are
#   repeated or because the student cannot do better; only this control tells
#   the two apart.
# * **Protocol.** Train on each bucket, on a validation pool (a random 25%
#   of the top 40%) and on the fresh data; fit both forms of the law to the
#   buckets, with shared $a$, $d$; **predict** the top-20%, -30% and -40%
#   mixtures; only then train them and compare.
#
# The fit searches the authors' grid ($b \in [-0.5, -0.005]$,
# $\tau \in [1, 10]$, with an outer grid over $a$ and $d$); what we add is a
# Nelder-Mead refinement {cite:p}`nelder1965simplex` of the best grid point.

# %%
study = ex.run_study(cfg, seed, device, progress=progress)
N = study.bucket_size
web = study.web
buckets = pd.DataFrame(
    {
        "bucket": [f"top {10 * i}-{10 * (i + 1)}%" for i in range(cfg.n_buckets)],
        "mean latent quality": [web.quality[b].mean() for b in web.buckets],
        "corrupted labels": [web.corruption_rate(b) for b in web.buckets],
    }
)
in_pool = np.arange(cfg.pool_size)
print(
    f"pool of {cfg.pool_size} samples, buckets of {N}; "
    "corrupted labels in the whole pool: "
    f"{web.corruption_rate(in_pool):.3f}; score-quality correlation: "
    f"{np.corrcoef(web.score[in_pool], web.quality[in_pool])[0, 1]:.3f}"
)
display(Table(buckets, floatfmt="{:.3f}"))

# %% [markdown]
# The score sorts the pool well but not perfectly: every bucket is a blend,
# with fewer corrupted labels the higher it ranks. The bucket students'
# error curves and the fitted utility-form laws (dashed; fitted on points
# from `fit_from_passes` passes on, right of the grey line):

# %%
passes = study.checkpoints / N
fine = np.geomspace(cfg.fit_from_passes, passes[-1], 200)  # in passes
fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
colors = plt.cm.viridis(np.linspace(0, 0.85, cfg.n_buckets))
for i in range(cfg.n_buckets):
    errs = study.bucket_errors[i]
    ax.errorbar(
        passes,
        errs.mean(axis=0),
        yerr=errs.std(axis=0),
        fmt="o",
        ms=4,
        color=colors[i],
        label=f"bucket {i} (top {10 * i}-{10 * (i + 1)}%)",
    )
    law_curve = [study.fit.law.error(p * N, [i], N) for p in fine]
    ax.plot(fine, law_curve, "--", color=colors[i])
ax.axvline(cfg.fit_from_passes, color="grey", lw=1)
ax.set_xscale("log")
ax.xaxis.set_major_formatter("{x:g}")
ax.set_xlabel("passes over one bucket (samples seen / bucket size)")
ax.set_ylabel("test error")
ax.set_title(f"Students on each bucket ({cfg.seeds} seeds, mean ± sd), fitted laws")
ax.legend()
plt.show()
fit_rows = []
for form, fit in study.fits.items():
    for i, name in enumerate(fit.law.names):
        fit_rows.append(
            {
                "form": form.replace("_", " "),
                "bucket": name,
                "b (utility)": fit.law.b[i],
                "tau (half-life)": fit.law.tau[i],
                "fit RMSE": fit.per_pool_rmse[i],
            }
        )
    print(
        f"{form.replace('_', ' ')} form: shared a = {fit.law.a:.1f}, "
        f"d = {fit.law.d:.3f}; fit RMSE = {fit.rmse:.4f}"
    )
display(Table(pd.DataFrame(fit_rows), floatfmt="{:.3f}"))

# %% [markdown]
# Our $b$ are three to four times the paper's and our $a$ is some $10^4$
# times larger. Neither is a discrepancy: $a$ only places the curve on the
# sample axis ($a\,n/10^5$ is the amount of data in the law's units), and our
# students reach a given error after thousands of samples where CLIP needs
# hundreds of millions; $b$ measures how fast error falls per doubling of
# data on *this* task, for *this* model. Only the ordering of the buckets and
# the half-lives can be compared with the paper.
#
# **Are the utilities ordered by quality?** The rule, fixed before the run:
# refit each bucket seed by seed (with $a$, $d$ held at the joint fit, so
# every $b$ is on one scale), and call the ordering established when every
# step from one bucket to the next raises $b$ by more than two standard
# errors over seeds; "no" if some step lowers it by more than two.

# %%
per_seed_b = ex.per_seed_utilities(study)  # (seeds, buckets + validation pool)
steps = np.diff(per_seed_b[:, : cfg.n_buckets], axis=1)  # b_{i+1} - b_i, per seed
step_stats = [paired_verdict(steps[:, i]) for i in range(steps.shape[1])]
display(
    Table(
        pd.DataFrame(
            {
                "step": [f"bucket {i} -> {i + 1}" for i in range(steps.shape[1])],
                "mean change of b": [m for m, _, _ in step_stats],
                "se": [se for _, se, _ in step_stats],
                "verdict": [verdict(v) for _, _, v in step_stats],
            }
        ),
        floatfmt="{:.3f}",
    )
)
b_fit = np.array(study.fit.law.b)
step_verdicts = [v for _, _, v in step_stats]
ordered = (
    True
    if all(v is True for v in step_verdicts)
    else False
    if any(v is False for v in step_verdicts)
    else INCONCLUSIVE
)
claims.add(
    "Utilities ordered by quality",
    "b = -0.16, -0.125, -0.10, -0.085 (top 10% ... 30-40%)",
    "b = "
    + ", ".join(f"{v:.3f}" for v in b_fit)
    + "; smallest step {:+.3f} ± {:.3f}".format(*min(step_stats)[:2]),
    ordered,
    note="every step between adjacent buckets > 2 se over seeds (a, d held fixed)",
)

# %% [markdown]
# ### Repetition, against fresh data
#
# Every bucket curve flattens, and the law fits that with half-lives of a
# few passes. But a finite $\tau$ is no evidence of repetition on its own:
# a student that has learnt all it can flattens too. The fresh-data students
# see as many samples as the top bucket's students, of the same quality,
# never repeated; the gap between the two curves is what repetition costs.
# The rule, fixed before the run: repetition costs utility when the repeated
# top bucket's error exceeds the fresh data's at the largest budget by more
# than two standard errors (seed-paired differences).
#
# Two further numbers. A **half-life against fresh data**: the $\tau$ for
# which the repeated curve at $n$ equals the fresh curve at the discounted
# count $n_{\text{eff}}(n) = \sum_k (\text{samples in epoch } k)\,2^{-k/\tau}$
# (the effective-data idea, with the fresh curve in place of a power law, so
# the student's limits are in both sides). And the law's $\tau$ fitted to the
# fresh curve *as if* it were a repeated bucket.

# %%
top_repeated = 100 * study.bucket_errors[0]
fresh = 100 * study.fresh_errors
gap = top_repeated - fresh  # seed-paired; positive: repetition hurts
gap_mean = gap.mean(axis=0)
gap_se = gap.std(axis=0, ddof=1) / np.sqrt(cfg.seeds)
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for curve, label, color in (
    (top_repeated, "top bucket, repeated", "C0"),
    (fresh, "fresh samples of its quality", "C1"),
):
    se = curve.std(axis=0, ddof=1) / np.sqrt(cfg.seeds)
    axes[0].errorbar(passes, curve.mean(axis=0), yerr=2 * se, fmt="o-", ms=4,
                     color=color, label=label)
axes[0].set_ylabel("test error (%)")
axes[0].legend()
axes[1].errorbar(passes, gap_mean, yerr=2 * gap_se, fmt="o-", ms=4, color="C3")
axes[1].axhline(0, color="grey", lw=1)
axes[1].set_ylabel("repeated minus fresh (points)")
for ax in axes:
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter("{x:g}")
    ax.set_xlabel("samples seen / bucket size")
fig.suptitle(f"What repetition costs ({cfg.seeds} seed pairs, mean ± 2 se)")
plt.show()

half_life = ex.repetition_half_life(study)
half_life_boot = ex.half_life_bootstrap(study)
lo, hi = np.percentile(half_life_boot, [2.5, 97.5])
fresh_as_repeated = fit_pools(
    [FitPoints("fresh", study.checkpoints[study.fit_mask],
               study.fresh_errors.mean(axis=0)[study.fit_mask])],
    N,
    fixed_a=study.fit.law.a,
    fixed_d=study.fit.law.d,
).law.tau[0]
gap_last, gap_last_se, repetition_hurts = paired_verdict(gap[:, -1])
print(
    f"repeated minus fresh at {passes[-1]:.0f} passes: "
    f"{gap_last:+.2f} ± {gap_last_se:.2f} points"
)
print(
    f"half-life against fresh data: {half_life:.1f} passes "
    f"(95% bootstrap interval over seeds {lo:.1f} to {hi:.1f}); "
    f"the law's tau for the fresh curve taken as a repeated bucket: "
    f"{fresh_as_repeated:.1f}"
)
tau_fit = np.array(study.fit.law.tau)
claims.add(
    "Utility decays with repetition (against fresh data)",
    "tau = 2.3 to 8.5 passes",
    f"repeated top bucket {gap_last:+.1f} ± {gap_last_se:.1f} points worse than "
    f"fresh data at {passes[-1]:.0f} passes; tau against fresh data "
    f"{half_life:.1f} ({lo:.1f}-{hi:.1f}); law fit tau = "
    + ", ".join(f"{v:.1f}" for v in tau_fit),
    repetition_hurts,
    note="gap > 2 se at the largest budget; a finite law tau alone is no evidence "
    f"(fresh data fitted as repeated: tau = {fresh_as_repeated:.1f})",
)

# %% [markdown]
# **The averaging rule on a held-out pool.** The validation pool is a random
# quarter of the top 40%: a blend of the four buckets. The rule says its
# utility is the mean of theirs (in the paper: $-0.12$ against a mean of
# $-0.1175$). To compare $b$ on one scale, the pool is fitted with the
# buckets' $a$ and $d$ held fixed, seed by seed. The rule, fixed before the
# run: it holds when the difference from the mean is within a quarter of the
# spread between the top and the fourth bucket's utility, with two standard
# errors to spare; beside it the naive guess that a blend is as useful as
# its best bucket.

# %%
blend = min(4, cfg.n_buckets)  # the validation pool blends the top four buckets
gap_to_mean = per_seed_b[:, -1] - per_seed_b[:, :blend].mean(axis=1)
gap_to_best = per_seed_b[:, -1] - per_seed_b[:, 0]
tolerance = abs(b_fit[blend - 1] - b_fit[0]) / 4
m, se, _ = paired_verdict(gap_to_mean)
m_best, se_best, _ = paired_verdict(gap_to_best)
averaging = (
    True
    if abs(m) + 2 * se < tolerance
    else False
    if abs(m) - 2 * se > tolerance
    else INCONCLUSIVE
)
print(
    f"validation pool (a, d of the buckets): b = {study.validation_fit.law.b[0]:.3f}, "
    f"tau = {study.validation_fit.law.tau[0]:.2f}; "
    f"mean of the bucket utilities: {b_fit[:blend].mean():.3f}"
)
print(
    f"seed by seed, validation b minus the buckets' mean: {m:+.4f} ± {se:.4f}; "
    f"minus the top bucket's: {m_best:+.4f} ± {se_best:.4f}; "
    f"tolerance {tolerance:.4f}"
)
claims.add(
    "A blend's utility is the mean of its buckets' (validation pool)",
    "b = -0.12 vs mean -0.1175",
    f"b - mean = {m:+.4f} ± {se:.4f} (tolerance {tolerance:.3f}); "
    f"naive 'as its best bucket': {m_best:+.3f}",
    averaging,
    note="|difference| + 2 se < a quarter of the bucket utilities' spread",
)

# %% [markdown]
# **Mixtures, predicted before they were trained.** Both forms of the law
# predict each top-$k$ mixture from the bucket fits alone. Beside them, two
# predictions that need no law: "a mixture behaves like its top bucket" and
# "like the mean of its buckets' curves" (both read off the measured bucket
# curves at equal samples seen). A law earns its keep only by beating them.
# The rule, fixed before the run: over the fitted range, the law's mean
# absolute error (accuracy points, against the mixtures' seed-mean curves)
# must be below each naive prediction's by more than two standard errors (a
# bootstrap over the mixture students' seeds); "no" if it is above either by
# more than two.

# %%
table, point, boot = ex.mixture_prediction_errors(study)
predictors = list(point)
fig, axes = plt.subplots(
    1, cfg.n_buckets - 1, figsize=(11, 4), sharey=True, layout="constrained"
)
styles = {
    "utility law": ("C0", "--"),
    "effective-data law": ("C2", "-."),
    "like its top bucket": ("grey", ":"),
    "mean of its buckets' curves": ("C5", ":"),
}
all_predictions = ex.mixture_predictors(study)
for ax, k in zip(axes, sorted(study.mixture_errors)):
    measured = 100 * study.mixture_errors[k]
    se = measured.std(axis=0, ddof=1) / np.sqrt(cfg.seeds)
    ax.errorbar(passes, measured.mean(axis=0), yerr=2 * se, fmt="ko", ms=4,
                label="measured (± 2 se)")
    shown = study.fit_mask
    for name, (color, ls) in styles.items():
        ax.plot(passes[shown], 100 * all_predictions[name][k][shown], ls,
                color=color, lw=2, label=name)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter("{x:g}")
    ax.set_xlabel("samples seen / bucket size")
    ax.set_title(f"top {10 * k}%")
axes[0].set_ylabel("test error (%)")
axes[0].legend(fontsize="small")
fig.suptitle("Mixtures: measured vs predicted before training")
plt.show()

wide = table.pivot(index="predictor", columns="mixture", values="mean |error|")
wide = wide.loc[predictors]
wide["all mixtures"] = [point[p] for p in predictors]
wide["± se"] = [boot[p].std() for p in predictors]
display(Table(wide.reset_index(), floatfmt="{:.2f}"))

# %%
naive = ["like its top bucket", "mean of its buckets' curves"]


def law_against_naive(law):
    """Verdict of the rule above, and the naive prediction's margin over the law."""
    margins = {n: (point[n] - point[law], (boot[n] - boot[law]).std()) for n in naive}
    if all(m - 2 * s > 0 for m, s in margins.values()):
        return True, margins
    if any(m + 2 * s < 0 for m, s in margins.values()):
        return False, margins
    return INCONCLUSIVE, margins


laws_and_forms = (("utility law", "utility"), ("effective-data law", "effective data"))
for law_name, form in laws_and_forms:
    holds, margins = law_against_naive(law_name)
    best_naive = min(naive, key=lambda n: point[n])
    claims.add(
        f"Mixture performance predicted without training on it ({form} form)",
        "top-k mixtures predicted from bucket fits (no error reported)",
        f"mean |error| {point[law_name]:.2f} ± {boot[law_name].std():.2f} points; "
        f"naive '{best_naive}' {point[best_naive]:.2f} ± "
        f"{boot[best_naive].std():.2f}",
        holds,
        note="must beat both naive predictions by > 2 se (bootstrap over seeds)",
    )

# %% [markdown]
# Where do the laws go wrong? Both agree with the mixtures up to a few
# passes and then keep improving while the measured mixtures flatten. The
# fresh-data control says why: the students' error cannot fall much below
# the floor of the fresh curve whatever the data, so part of every bucket's
# flattening is the student's limit, not repetition. The bucket fits book
# that limit as decay of utility (the effective-data form puts its floor $d$
# at zero), and a mixture, whose pools repeat less, inherits the decay
# without the floor. A diagnostic the paper could not run tests this
# reading: refit the effective-data form with its floor $d$ held at the
# fresh curve's (the base law fitted to the fresh data) and predict again.

# %%
fresh_fit, floored = ex.fresh_floor_law(study)
floored_error = []
for k in sorted(study.mixture_errors):
    pred = np.array(
        [floored.law.error(n, range(k), N, "effective_data") for n in study.checkpoints]
    )
    diff = pred - study.mixture_errors[k].mean(axis=0)
    floored_error.append(100 * np.abs(diff)[study.fit_mask].mean())
print(
    f"floor of the fresh-data curve: d = {fresh_fit.law.d:.3f}; "
    f"effective-data law refitted with that floor: bucket tau = "
    + ", ".join(f"{t:.1f}" for t in floored.law.tau)
)
print(
    "its mixture mean |error| (points): "
    + ", ".join(
        f"top {10 * k}% {e:.2f}"
        for k, e in zip(sorted(study.mixture_errors), floored_error)
    )
    + f"; all mixtures {np.mean(floored_error):.2f} "
    f"(naive best {min(point[n] for n in naive):.2f})"
)

# %% [markdown]
# ### Where a looser filter starts to win
#
# The paper's central claim: the top bucket is best at small budgets and a
# looser pool wins at large ones. We score each mixture against the top
# bucket seed by seed (top bucket's error minus the mixture's: positive
# means the looser pool is better). The rule, fixed before the run: the
# claim holds when, at the smallest budget, the top bucket beats every
# mixture by more than two standard errors, and at the largest budget some
# mixture beats it by more than two; "no" if at the largest budget every
# mixture is significantly worse, or at the smallest some mixture is
# significantly better. The law's predicted crossover is read off a fine grid
# of budgets; the measured one lies between the last checkpoint where the
# top bucket is significantly better and the first later one where the
# mixture is.

# %%
cross = ex.crossover_table(study)
fig, ax = plt.subplots(figsize=(8, 4.6), layout="constrained")
mix_colors = plt.cm.plasma(np.linspace(0, 0.8, cfg.n_buckets - 1))
for (k, rows), color in zip(cross.groupby("k"), mix_colors):
    ax.errorbar(rows.passes, rows.difference, yerr=2 * rows.se, fmt="o-", ms=4,
                color=color, capsize=2, label=f"top {10 * k}% (measured)")
    law = study.fit.law
    predicted_gap = [
        100 * (law.error(p * N, [0], N) - law.error(p * N, range(k), N)) for p in fine
    ]
    ax.plot(fine, predicted_gap, "--", color=color)
ax.plot([], [], "--", color="grey", label="utility law (predicted)")
ax.axhline(0, color="black", lw=1)
ax.set_xscale("log")
ax.xaxis.set_major_formatter("{x:g}")
ax.set_xlabel("samples seen / bucket size")
ax.set_ylabel("top bucket's error minus mixture's (points)")
ax.set_title(f"Looser pools against the top bucket ({cfg.seeds} seed pairs, ± 2 se)")
ax.legend(fontsize="small")
plt.show()

bracket_rows = []
law = study.fit.law
for k in sorted(study.mixture_errors):
    low, high = ex.measured_crossover(cross, k)
    predicted = {
        f: ex.predicted_crossover(study, k, f) for f in ("utility", "effective_data")
    }
    inside = {
        f: None if low is None or high is None or p is None else low <= p <= high
        for f, p in predicted.items()
    }
    bracket_rows.append(
        {
            "mixture": f"top {10 * k}%",
            "top bucket better until": low,
            "mixture better from": high,
            "utility law predicts": predicted["utility"],
            "effective-data law predicts": predicted["effective_data"],
            "utility inside": inside["utility"],
            "effective inside": inside["effective_data"],
            "advantage at the end, measured": cross[cross.k == k].difference.iloc[-1],
            "predicted (utility)": 100
            * (law.error(study.checkpoints[-1], [0], N)
               - law.error(study.checkpoints[-1], range(k), N)),
        }
    )
brackets = pd.DataFrame(bracket_rows)
display(Table(brackets, floatfmt="{:.2f}"))
print(
    "(passes over one bucket; a crossover lies between the two measured columns; "
    f"advantages in points at {passes[-1]:.0f} passes)"
)

# %% [markdown]
# The laws place every crossover inside its bracket, but the dashed curves
# show what they get wrong: past the crossover they predict the looser pools
# to pull far ahead (the last two columns), where the measured advantage
# stays a point or so. The brackets are wide, so the crossover test is a
# loose one.

# %%
first = cross[cross.passes == cross.passes.min()]
last = cross[cross.passes == cross.passes.max()]
if (first.sign == "top better").all() and (last.sign == "mixture better").any():
    changes_with_compute = True
elif (last.sign == "top better").all() or (first.sign == "mixture better").any():
    changes_with_compute = False
else:
    changes_with_compute = INCONCLUSIVE


def pm(rows):
    return ", ".join(f"{r.difference:+.1f} ± {r.se:.1f}" for r in rows.itertuples())


claims.add(
    "The best pool changes with compute (our runs)",
    "top 10% best at low compute, looser pools past ~1e8 samples",
    f"top minus mixtures (20/30/40%): {pm(first)} points at "
    f"{first.passes.iloc[0]:.2f} passes; {pm(last)} at {last.passes.iloc[0]:.0f}",
    changes_with_compute,
    note="top bucket better than every mixture at the smallest budget and some "
    "mixture better at the largest, each by > 2 se over seeds",
)
judged = brackets.dropna(subset=["top bucket better until", "mixture better from"])
if judged.empty:
    predicts_crossover = INCONCLUSIVE
else:
    predicts_crossover = bool(judged["utility inside"].astype(bool).all())
claims.add(
    "The laws predict where a looser pool starts to win (utility form)",
    "the frontier is computed from the laws",
    "predicted "
    + ", ".join(f"{v:.1f}" for v in brackets["utility law predicts"])
    + " passes; measured between "
    + ", ".join(
        f"{r['top bucket better until']:.1f}-{r['mixture better from']:.1f}"
        for _, r in judged.iterrows()
    ),
    predicts_crossover,
    note="every predicted crossover inside its measured bracket "
    "(brackets span a factor of about 4 in compute: a loose test)",
)

# %% [markdown]
# ### What training all students at once costs
#
# The study trains a few dozen students; `torch.func.vmap` turns them into one
# batched computation. `benchmarks/qqt_vmap.py` times it against the same
# students trained one by one with plain autograd (same initialization, data
# streams and updates: the tests check that both give the same errors), on
# this machine's 2 cores; the saved result:

# %%
from reprobook.common import REPO_ROOT, load_results

vmap_bench = load_results(REPO_ROOT / "results" / "qqt" / "vmap_benchmark.json")
bench_rows = pd.DataFrame(vmap_bench["results"]["rows"])
display(
    Table(
        bench_rows.rename(
            columns={
                "vmap_s": "vmap (s)",
                "one_by_one_s": "one by one (s)",
                "ratio": "speed-up",
            }
        ),
        floatfmt="{:.2f}",
    )
)
# phase 1: buckets, the validation pool and the fresh data; phase 2: the mixtures
n_students = (cfg.n_buckets + 2) * cfg.seeds
n_mixture_students = (cfg.n_buckets - 1) * cfg.seeds
print(
    f"this chapter trains {n_students} students, "
    f"then {n_mixture_students} mixture students"
)

# %% [markdown]
# ## On a GPU
#
# `make gpu-check` runs every chapter's GPU check in one command. This
# chapter's, `benchmarks/qqt_gpu.py`, first verifies that the students
# trained at once with `torch.func.vmap` give on the GPU the test errors
# they give on the CPU (and those of the students trained one by one), then
# times 64 to 1,024 students at once. It saves `results/qqt/gpu.json`, shown
# here when it exists:

# %%
from reprobook.gpucheck import show_gpu_check

gpu_check = show_gpu_check("qqt")

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
# - **The released laws reproduce exactly.** From the authors' parameters,
#   all 32 predicted accuracies match the paper to two decimals, and the best
#   pool loosens with compute as the paper says: top 10%, then top 20% (from
#   about $10^8$ samples), then top 30%.
# - **The trade-off itself reproduces at our scale.** Seed by seed, the top
#   bucket beats every looser pool at the smallest budget (by 2 to 4 points)
#   and every looser pool beats it at the largest (by about 1 to 1.5 points),
#   each well beyond two standard errors. Utilities are ordered by quality,
#   and a blend's utility is the mean of its buckets' (within 0.004 ± 0.004,
#   where "as good as its best bucket" misses by 0.07).
# - **Repetition costs utility, but a fitted half-life alone does not show
#   it.** Students on fresh data of the top bucket's quality end 1.9 ± 0.2
#   points better than students repeating the bucket 40 times (a half-life
#   of about 6 passes against fresh data). Yet the law fits a half-life of
#   4.1 passes to the fresh curve too, where nothing repeats: a finite
#   $\tau$ also absorbs the student's own limits.
# - **What did not hold: predicting mixtures.** Both forms of the law miss the
#   mixtures by about 3.7 points on average, more than twice the error of
#   the naive "a mixture is like its top bucket" (1.7) or "like the mean of
#   its buckets" (1.6); neither form is preferred by the held-out mixtures.
#   The laws read the students' capacity limit as decay of utility and
#   predict mixtures, which repeat less, to keep improving. Held at the
#   floor measured on fresh data, the effective-data form predicts the
#   mixtures to 1.3 points, better than both naive guesses: a diagnostic
#   the paper's setting could not run, not a test of the paper's method.
# - **The crossovers are predicted within loose brackets.** The utility form
#   puts the point where each mixture starts to win at 5 to 11 passes, inside
#   the measured brackets (2.5-10 and 4-16 passes); the effective-data form
#   predicts it too early for two of the three mixtures. But the size of the
#   win is overshot several-fold: 8 to 9 points predicted at 40 passes, 1 to 1.5
#   measured, the same overshoot as in the mixture predictions.
#
# ## Exercises
#
# The chapter runs in about a minute on two cores; each run below writes its
# notebook and `claims.json` under `--output`.
#
# 1. **A worse curator.** Make the quality score noisier,
#    `.venv/bin/reprobook run qqt -p metadata_noise 1.0 --output runs/qqt-ex1`.
#    In the bucket table the corrupted-label rates move closer together; do
#    the steps between adjacent utilities stay beyond two standard errors,
#    and where does each mixture start to beat the top bucket?
# 2. **A student that is not the limit.** Give the students four times the
#    width, `.venv/bin/reprobook run qqt -p hidden 256 --output runs/qqt-ex2`
#    (a few minutes). If the explanation above is right, the fresh-data floor
#    drops, the law's half-life for the fresh curve grows, and the laws'
#    mixture predictions move closer to the naive guesses. Do they?
# 3. **Train longer.** Extend the budgets to 100 passes,
#    `.venv/bin/reprobook run qqt -p max_passes 100 --output runs/qqt-ex3`
#    (a few minutes), and check the crossover figure: does every looser pool
#    keep its advantage, and does the law's prediction error keep growing?
