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
# # 03 · Hallucinations in diffusion models through mode interpolation
#
# Sumukh K. Aithal, Pratyush Maini, Zachary C. Lipton and J. Zico Kolter.
# "Understanding Hallucinations in Diffusion Models through Mode
# Interpolation". NeurIPS 2024.
# [arXiv:2406.09358](https://arxiv.org/abs/2406.09358)
# {cite:p}`aithal2024hallucinations`. Reference code:
# [locuslab/diffusion-model-hallucination](https://github.com/locuslab/diffusion-model-hallucination).
#
# A diffusion model trained on a few well-separated clusters puts some of its
# samples *between* them, where the training data has no mass at all. The
# paper calls this **mode interpolation** and argues that it is unavoidable:
# near the end of sampling the exact denoiser jumps from one mode to the next,
# and a neural network, being smooth, must pass through the gap. It then shows
# that the model "knows" when this happens (its prediction of the clean sample
# keeps moving during the last steps) and that a filter on that movement
# removes most hallucinations and slows the collapse of models trained on
# their own samples {cite:p}`shumailov2024collapse`.
#
# This chapter derives DDPM {cite:p}`ho2020ddpm` and the exact denoiser of a
# Gaussian mixture, then runs the six experiments of the paper at laptop scale:
# 1D and 2D mixtures, the learned-versus-exact denoiser, the
# trajectory-variance detector, the shapes dataset, and recursive training.

# %% tags=["parameters"]
# "cpu": the default, about 6 minutes on 2 CPU cores; "full": reference sizes on a GPU
preset = "cpu"
overrides = {}  # e.g. {"width": 128}
seed = 0
device = "auto"  # "auto" | "cpu" | "cuda"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from reprobook.chapters import get_chapter
from reprobook.claims import Claims
from reprobook.common import Table, resolve_device, seed_everything, set_plot_style
from reprobook.hallucination import experiments as ex
from reprobook.hallucination.metrics import (
    auroc,
    chance_toward_a_neighbour,
    distance_in_sigmas,
    operating_point,
    roc,
    toward_a_neighbour,
    trajectory_variance,
)
from reprobook.hallucination.shapes import (
    classify_samples,
    count_shapes,
    render_shapes,
    strip_bounds,
)

# a bad preset or parameter: a clear error, now
cfg = get_chapter("hallucination").config(preset, overrides, namespace=globals())
device = resolve_device(device, "torch")
seed_everything(seed)
torch.set_num_threads(2)
set_plot_style()
claims = Claims("hallucination", preset)
print(f"preset={preset}, seed={seed}, device={device}")

# %% [markdown]
# ## DDPM in one page
#
# **Forward process.** With a variance schedule $\beta_0, \dots, \beta_{T-1}$,
# $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$,
#
# $$ x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \varepsilon,
#    \qquad \varepsilon \sim \mathcal N(0, I). $$
#
# **Training.** A network $\varepsilon_\theta(x_t, t)$ predicts the noise;
# the loss is $\mathbb E_{t, x_0, \varepsilon} \lVert \varepsilon -
# \varepsilon_\theta(x_t, t) \rVert^2$ with $t$ uniform. Its minimizer is
# $\mathbb E[\varepsilon \mid x_t]$, so the network's implied **prediction of
# the clean sample** is
#
# $$ \hat x_0(x_t, t) = \frac{x_t - \sqrt{1-\bar\alpha_t}\,
#    \varepsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}} \approx \mathbb E[x_0 \mid x_t]. $$
#
# **Ancestral sampling.** Start from noise and step down,
#
# $$ x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
#    \varepsilon_\theta(x_t, t)\Big) + \sqrt{\beta_t}\, z, $$
#
# with the reference's variance $\beta_t$ ("fixed large"), no noise at $t=0$
# and no clipping of $\hat x_0$. Our step is tested against diffusers'
# `DDPMScheduler` with the same settings.
#
# ```{literalinclude} ../../src/reprobook/diffusion/sampling.py
# :pyobject: ancestral_step
# ```
#
# **The schedule.** The reference code uses $T = 1000$ and betas linear from
# $10^{-3}$ to $0.2$, far steeper than the usual $10^{-4}$ to $0.02$. We keep
# it. Its consequence: $\sqrt{\bar\alpha_t}$ is below $10^{-3}$ for most of the
# chain, so most steps see pure noise and only the first couple of hundred
# carry signal. That is also why we may start the reverse chain late: at the
# `cpu` preset it starts at the first step where $\sqrt{\bar\alpha_t} <
# 10^{-4}$ (`start_tol`), from $\mathcal N(0, I)$. A test checks, with the
# exact denoiser, that this start gives the same distribution as the full
# chain (two-sample KS test); the `full` preset runs all 1000 steps.

# %%
schedule = ex.ddpm_schedule(cfg)
start = ex.chain_start(cfg, schedule)
standard = (
    torch.linspace(1e-4, 0.02, cfg.timesteps, dtype=torch.float64)
    .neg()
    .log1p()
    .cumsum(0)
    .exp()
    .sqrt()
)
fig, ax = plt.subplots(figsize=(6.4, 3.2), layout="constrained")
ax.semilogy(schedule.alpha_bars.sqrt(), label=r"reference: $\beta$ from 1e-3 to 0.2")
ax.semilogy(standard, "--", label=r"usual: $\beta$ from 1e-4 to 0.02")
ax.axvline(start - 1, color="gray", lw=0.8)
ax.set(
    xlabel="step t",
    ylabel=r"signal scale $\sqrt{\bar\alpha_t}$",
    ylim=(1e-12, 1.5),
    title=f"The reverse chain starts at t = {start - 1}",
)
ax.legend()
plt.show()
frac_noise = float((schedule.alpha_bars.sqrt() < 1e-3).double().mean())
print(
    f"steps with sqrt(alpha_bar) < 1e-3: {frac_noise:.0%}; "
    f"the chain runs {start} of {cfg.timesteps} steps"
)

# %% [markdown]
# ## The exact denoiser of a Gaussian mixture
#
# Let $x_0 \sim \sum_k w_k \mathcal N(\mu_k, s^2 I)$ and $x_t = a x_0 + \sigma
# \varepsilon$ with $a = \sqrt{\bar\alpha_t}$, $\sigma = \sqrt{1-\bar\alpha_t}$.
# Given the component $k$, $x_0$ and $x_t$ are jointly Gaussian:
# $x_t \mid k \sim \mathcal N(a\mu_k, v I)$ with $v = a^2 s^2 + \sigma^2$, and
# the usual conditioning formula gives
#
# $$ \mathbb E[x_0 \mid x_t, k] = \mu_k + \frac{a s^2}{v}(x_t - a\mu_k). $$
#
# Averaging over the posterior responsibilities $r_k(x_t) \propto w_k\,
# \mathcal N(x_t; a\mu_k, vI)$ gives the Bayes-optimal denoiser,
#
# $$ \mathbb E[x_0 \mid x_t] = \sum_k r_k(x_t)\Big[\mu_k + \frac{a s^2}{v}(x_t - a\mu_k)\Big]. $$
#
# When $t$ is small, $v \approx s^2 + \sigma^2$ is tiny, the responsibilities are
# nearly one-hot, and this function is a **staircase**: flat at $\mu_k$ near
# each mode and jumping between modes at the midpoints. The paper's argument is
# that a network cannot represent a jump; it draws a steep but smooth ramp, and
# samples that land on the ramp in the last steps end up between modes. Tests
# check this formula against numerical quadrature, against Tweedie's formula
# {cite:p}`efron2011tweedie`
# ($a\,\mathbb E[x_0 \mid x_t] = x_t + \sigma^2 \nabla \log p_t(x_t)$, by finite
# differences) and, for one Gaussian, against the closed-form minimum of the
# training loss.
#
# ```{literalinclude} ../../src/reprobook/diffusion/mixture.py
# :pyobject: GaussianMixture.posterior_mean
# ```

# %% [markdown]
# ## Experiment 1: a 1D mixture hallucinates between its modes
#
# Three modes at 1, 2 and 3 with $s = 0.05$, equal counts, not normalized
# (the reference's choices), 50,000 training points. The denoiser is the
# reference's MLP: sinusoidal time embedding, layer norm, LeakyReLU and one
# residual block applied three times (shared weights), trained with Adam on
# the epsilon loss, no EMA. At the `cpu` preset it is 64 wide instead of 128
# and trains for 1,200 steps of 1,024 points, with the learning rate annealed
# from $10^{-3}$ to 0 (the reference keeps it constant and trains far longer),
# and only on the steps the sampler visits ($t$ below the chain's start).
#
# **In support** means within $4s$ of some mode. A true sample falls outside
# with probability $6\times 10^{-5}$ (two-sided Gaussian tail), so nearly
# everything outside is a hallucination.

# %%
modes_1d = torch.tensor([1.0, 2.0, 3.0])
mix_1d = ex.mixture_1d(modes_1d, cfg.sigma)
data_1d = ex.training_data(mix_1d, cfg.n_train_1d, seed)
model_1d = ex.train_toy(data_1d, cfg, seed, device, desc="1D denoiser")
samples_1d = ex.sample_toy(
    model_1d,
    cfg,
    cfg.n_samples_1d,
    1,
    seed + 1,
    device,
    keep_last=50,
    desc="1D samples",
)
exact_1d = ex.sample_toy(
    mix_1d.eps_model(schedule),
    cfg,
    cfg.n_samples_1d,
    1,
    seed + 2,
    "cpu",
    desc="exact-score samples",
)

tail = 2 * 0.5 * torch.special.erfc(torch.tensor(cfg.support_sigmas) / 2**0.5).item()
rate_learned = ex.hallucination_rate(samples_1d.x, mix_1d, cfg)
rate_exact = ex.hallucination_rate(exact_1d.x, mix_1d, cfg)
display(
    Table(
        pd.DataFrame(
            {
                "sampler": [
                    "learned denoiser",
                    "exact denoiser (true score)",
                    "the data themselves (Gaussian tail)",
                ],
                "samples": [len(samples_1d), len(exact_1d), np.nan],
                "out of support": [rate_learned, rate_exact, tail],
            }
        ),
        floatfmt="{:.2e}",
    )
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
grid = torch.linspace(0.5, 3.5, 601, dtype=torch.float64)
density = mix_1d.log_prob(grid[:, None]).exp().numpy()
bins = np.linspace(0.5, 3.5, 121)
for ax, xs, name in [
    (axes[0], samples_1d.x, "learned denoiser"),
    (axes[1], exact_1d.x, "exact denoiser"),
]:
    ax.hist(
        xs[:, 0].numpy(),
        bins=bins,
        density=True,
        color="C0",
        alpha=0.7,
        label="samples",
    )
    ax.plot(grid, density, color="C3", lw=1, label="data density")
    ax.set(yscale="log", ylim=(1e-3, 300), xlabel="x", title=name)
    ax.legend(loc="upper center", ncol=2)
axes[0].set_ylabel("density (log scale)")
plt.show()

# %% [markdown]
# On a log scale the learned model's samples fill the gaps between modes with
# a floor of mass that the data do not have; the exact denoiser, run through
# the same sampler, does not. The gaps are where the hallucinations are.
#
# **More data, farther modes.** The paper reports fewer hallucinations with
# more training points and with modes farther apart. We train one model per
# setting with the same number of steps.

# %%
sweep = []
for n_train in cfg.n_train_sweep:
    if n_train == cfg.n_train_1d:
        x = samples_1d.x
    else:
        m = ex.train_toy(
            ex.training_data(mix_1d, n_train, seed + n_train),
            cfg,
            seed,
            device,
            desc=f"1D, n={n_train}",
        )
        x = ex.sample_toy(
            m, cfg, cfg.n_samples_1d, 1, seed + 1, device, desc="samples"
        ).x
    sweep.append(
        {
            "setting": "training points",
            "value": n_train,
            "spacing": 1.0,
            "rate": ex.hallucination_rate(x, mix_1d, cfg),
        }
    )
for spacing in cfg.spacing_sweep:
    if spacing == 1.0:
        sweep.append(
            {
                **sweep[list(cfg.n_train_sweep).index(cfg.n_train_1d)],
                "setting": "mode spacing",
                "value": 1.0,
            }
        )
        continue
    mix = ex.mixture_1d(1 + spacing * torch.arange(3.0), cfg.sigma)
    m = ex.train_toy(
        ex.training_data(mix, cfg.n_train_1d, seed),
        cfg,
        seed,
        device,
        desc=f"1D, spacing {spacing}",
    )
    x = ex.sample_toy(m, cfg, cfg.n_samples_1d, 1, seed + 1, device, desc="samples").x
    sweep.append(
        {
            "setting": "mode spacing",
            "value": spacing,
            "spacing": spacing,
            "rate": ex.hallucination_rate(x, mix, cfg),
        }
    )
unshared = ex.train_toy(
    data_1d, cfg, seed, device, share_blocks=False, desc="1D, separate blocks"
)
rate_unshared = ex.hallucination_rate(
    ex.sample_toy(unshared, cfg, cfg.n_samples_1d, 1, seed + 1, device).x, mix_1d, cfg
)
sweep = pd.DataFrame(sweep)
display(
    Table(
        sweep[["setting", "value", "rate"]].rename(columns={"rate": "out of support"}),
        floatfmt="{:.4f}",
    )
)
print(
    f"one block applied 3 times (reference): {rate_learned:.4f}; "
    f"three separate blocks: {rate_unshared:.4f}"
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
for ax, setting, xlabel in [
    (axes[0], "training points", "training points"),
    (axes[1], "mode spacing", "distance between modes"),
]:
    part = sweep[sweep.setting == setting]
    ax.plot(part.value, part.rate, "o-")
    ax.set(
        xscale="log" if setting == "training points" else "linear",
        xlabel=xlabel,
        ylabel="fraction out of support",
        title=f"vs {xlabel}",
    )
    ax.set_xticks([], minor=True)  # label only the values run
    ax.set_xticks(part.value, labels=[f"{v:g}" for v in part.value])
plt.show()

# %%
by_n = sweep[sweep.setting == "training points"].sort_values("value")
by_gap = sweep[sweep.setting == "mode spacing"].sort_values("value")
claims.add(
    "1D: learned samples fall between modes; exact-score samples do not",
    "yes (Fig. 1)",
    f"{rate_learned:.2%} vs {rate_exact:.2%} (data tail {tail:.1e})",
    rate_learned > 10 * max(rate_exact, tail),
)
claims.add(
    "fewer hallucinations with more training data",
    "yes",
    " → ".join(f"{r:.2%}" for r in by_n.rate)
    + f" for n = {', '.join(f'{v:g}' for v in by_n.value)}",
    by_n.rate.is_monotonic_decreasing and by_n.rate.iloc[-1] < by_n.rate.iloc[0],
    note="one model per size, same number of steps; "
    "holds if the rate falls at every step",
)
claims.add(
    "fewer hallucinations with modes farther apart",
    "yes",
    " → ".join(f"{r:.2%}" for r in by_gap.rate)
    + f" for spacing {', '.join(f'{v:g}' for v in by_gap.value)}",
    by_gap.rate.is_monotonic_decreasing and by_gap.rate.iloc[-1] < by_gap.rate.iloc[0],
    note="holds if the rate falls at every step",
)

# %% [markdown]
# **What we see.** The learned model puts under 1% of its samples out of
# support where the exact denoiser, run through the same sampler, puts none:
# the hallucinations come from the network, not from the sampler or the
# schedule. Modes closer together (spacing 0.5, ten $s$) make it an order of
# magnitude worse. The other two trends of the paper do not show cleanly
# here. More training points do not lower the rate: with the same 1,200
# optimization steps the three models differ by a few tenths of a percentage
# point, with no trend, which says the rate is set by how smooth the network
# is after this much training, not by how many points it has seen (the paper
# trains far longer). And spreading the
# modes from 1 to 2 apart *raises* the rate: the network has to cover a wider
# range with the same capacity. Separate (unshared) blocks give fewer
# hallucinations than the reference's one shared block, in line with sharing
# making the function smoother.

# %% [markdown]
# ## Experiment 2: why: the learned denoiser is smooth where the exact one jumps
#
# Below, $\hat x_0(x_t, t)$ of the trained network and the exact $\mathbb
# E[x_0 \mid x_t]$ as functions of $x_t$, at several steps. At large $t$ both
# are smooth averages. At small $t$ the exact one becomes a staircase with
# vertical jumps halfway between modes; the network follows the flat parts but
# replaces each jump by a ramp. A sample whose $x_t$ sits on a ramp in the
# last steps is mapped between modes, and there is nothing pulling it back.

# %%
steps_shown = [0, 5, 20, 60, 120]
x_grid = torch.linspace(0.6, 3.4, 400, dtype=torch.float64)
learned, exact = ex.denoiser_curves(
    model_1d, mix_1d, schedule, steps_shown, x_grid, device
)
n_rows = -(-len(steps_shown) // 3)  # three small panels per row
fig, axes = plt.subplots(
    n_rows, 3, figsize=(10, 3.0 * n_rows), sharey=True, layout="constrained"
)
axes = axes.ravel()
for ax, t, lc, tc in zip(axes, steps_shown, learned, exact):
    a = float(schedule.signal_scale(torch.tensor(t)))
    ax.plot(x_grid / a, tc, color="C3", lw=1.5, label="exact")
    ax.plot(x_grid / a, lc, color="C0", lw=1.2, ls="--", label="learned")
    ax.set(title=f"t = {t}", xlabel=r"$x_t / \sqrt{\bar\alpha_t}$")
for ax in axes[::3]:
    ax.set_ylabel(r"predicted $x_0$")
for ax in axes[len(steps_shown) :]:
    ax.axis("off")  # an empty slot holds the legend
if len(steps_shown) < len(axes):
    axes[-1].legend(*axes[0].get_legend_handles_labels(), loc="center")
else:
    axes[0].legend()
plt.show()
near = (x_grid - 1.5).abs() < 0.15  # a window around the first gap, at t = 0
slope_exact = np.gradient(exact[0], x_grid.numpy())[near.numpy()].max()
slope_learned = np.gradient(learned[0], x_grid.numpy())[near.numpy()].max()
print(
    f"steepest slope across the gap at 1.5, t = 0: exact {slope_exact:.0f}, "
    f"learned {slope_learned:.1f}"
)

# %% [markdown]
# ## Experiment 3: in 2D, interpolation only between nearest modes
#
# 25 Gaussians on the grid $2\cdot\{-2,\dots,2\}^2$ with $s = 0.05$, divided by
# $\sqrt{s^2 + 8} \approx 2.83$, 100,000 training points; and the same modes
# rotated by 45° (the "diamond"). The paper's claim is that samples
# interpolate only between **nearest** modes: they lie on the segments joining
# adjacent modes, not on diagonals. We test it by direction: for every
# out-of-support sample, does its offset from the nearest mode point toward
# one of that mode's nearest neighbours (within ±22.5°)? A sample on a
# nearest-neighbour segment does; a sample in an isotropic blur around the
# mode does so only by chance, and we compute that chance level by giving each
# offset a random direction (about 1/2 at an inner mode, less at the edges).
# The diamond is the control: its neighbours lie along the diagonals of the
# coordinate axes, so a model that interpolated along the axes would fail it.
#
# Fitting 25 modes this narrow takes much more optimization than three: at
# 2,000 steps the learned modes were several $s$ wide and most samples fell
# outside the $4s$ band, which is blur, not interpolation. At the `cpu` preset
# each 2D model trains for 10,000 steps at a peak rate of $3\times10^{-3}$
# (annealed); the table reports the median distance to the nearest mode (true
# samples: 1.18 $s$), a measure of how much blur is left.

# %%
results_2d = {}
for name, rotate in [("grid", False), ("diamond", True)]:
    mix = ex.grid_2d(cfg.sigma, rotate)
    model = ex.train_toy(
        ex.training_data(mix, cfg.n_train_2d, seed),
        cfg,
        seed,
        device,
        desc=f"2D {name}",
    )
    samples = ex.sample_toy(
        model, cfg, cfg.n_samples_2d, 2, seed + 1, device, desc=f"2D {name} samples"
    )
    distance = distance_in_sigmas(samples.x, mix)
    hallucinated, far = distance > cfg.support_sigmas, distance > 10
    results_2d[name] = {
        "mixture": mix,
        "samples": samples,
        "hallucinated": hallucinated,
        "toward": toward_a_neighbour(samples.x[hallucinated], mix),
        "toward_far": toward_a_neighbour(samples.x[far], mix),
        "chance": chance_toward_a_neighbour(samples.x[hallucinated], mix, seed=seed),
    }

fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), layout="constrained")
for ax, (name, r) in zip(axes, results_2d.items()):
    x, h = r["samples"].x.numpy(), r["hallucinated"]
    ax.scatter(*x[~h].T, s=1, color="C0", alpha=0.3, label="in support")
    ax.scatter(*x[h].T, s=4, color="C3", label="out of support")
    ax.scatter(
        *r["mixture"].means.numpy().T, marker="+", color="k", s=30, label="modes"
    )
    ax.set(
        title=f"{name}: {h.mean():.1%} out of support",
        xlabel="$x_1$",
        ylabel="$x_2$",
        aspect="equal",
    )
fig.legend(
    *axes[0].get_legend_handles_labels(),
    loc="outside lower center",
    ncol=3,
    markerscale=3,
)
plt.show()

rows = []
for name, r in results_2d.items():
    rows.append(
        {
            "dataset": name,
            "median distance to a mode (s)": np.median(
                distance_in_sigmas(r["samples"].x, r["mixture"])
            ),
            "out of support": r["hallucinated"].mean(),
            "count": int(r["hallucinated"].sum()),
            "toward a nearest neighbour": r["toward"].mean(),
            "by chance": r["chance"],
            "the same, beyond 10 s": r["toward_far"].mean(),
        }
    )
pairs_2d = pd.DataFrame(rows)
display(Table(pairs_2d, floatfmt="{:.3f}"))

# %% [markdown]
# Out-of-support samples in 2D are of two kinds: samples in a gap between
# modes, and samples in the fringe of a mode the model has drawn a little too
# wide (the median distance to a mode is above that of true samples, 1.18
# $s$). Fringe samples point anywhere, which pulls the "toward a nearest
# neighbour" fraction toward the chance level; restricted to samples farther
# than $10s$ from every mode (clearly in a gap; the modes are 40 $s$ apart)
# the fraction is higher. On the diamond, the model interpolates along the
# diagonals of the axes just as on the grid it does along the axes: the
# interpolation follows the modes, not the coordinates.
#
# The criterion, fixed before the run: the claim holds if, on both datasets,
# more than two thirds of the out-of-support samples point toward a nearest
# neighbour.

# %%
worst = pairs_2d["toward a nearest neighbour"].min()
claims.add(
    "2D: interpolation happens between nearest modes only",
    "yes (grid and diamond)",
    f"{worst:.1%} of out-of-support samples point toward a nearest neighbour "
    "(lowest of grid, diamond; "
    f"chance {pairs_2d['by chance'].max():.0%})",
    worst > 2 / 3,
)

# %% [markdown]
# ## Experiment 4: the model knows when it hallucinates
#
# Follow $\hat x_0$ during the last steps of sampling. For a sample that lands
# near a mode it settles early; for one that ends between modes it keeps
# swinging, because in that region the (smooth, steep) denoiser maps small
# changes of $x_t$ to large changes of $\hat x_0$. The paper's metric is the
# variance of the predicted $x_0$ (not of $x_t$) over the last $K = 10$ steps,
# averaged over dimensions:
#
# $$ \mathrm{Hal}(x) = \frac{1}{d}\sum_{j=1}^{d} \operatorname{Var}_{t \in \{K-1, \dots, 0\}}
#    \big[\hat x_0(x_t, t)_j\big]. $$
#
# ```{literalinclude} ../../src/reprobook/hallucination/metrics.py
# :pyobject: trajectory_variance
# ```

# %%
traj = samples_1d.x0_trajectory[:, :, 0].numpy()  # (50 steps, n)
h1 = distance_in_sigmas(samples_1d.x, mix_1d) > cfg.support_sigmas
hal_1d = trajectory_variance(samples_1d.x0_trajectory, cfg.hal_window)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
steps_axis = np.arange(traj.shape[0] - 1, -1, -1)
for idx in np.flatnonzero(~h1)[:12]:
    axes[0].plot(steps_axis, traj[:, idx], color="C0", lw=0.8, alpha=0.7)
for idx in np.flatnonzero(h1)[:12]:
    axes[0].plot(steps_axis, traj[:, idx], color="C3", lw=0.8)
axes[0].axvspan(cfg.hal_window - 1, 0, color="gray", alpha=0.15)
axes[0].set(
    xlim=(traj.shape[0] - 1, 0),
    xlabel="reverse step t",
    ylabel=r"predicted $x_0$",
    title="blue: in support, red: out of support",
)
bins = np.logspace(np.log10(max(hal_1d.min(), 1e-12)), np.log10(hal_1d.max()), 60)
axes[1].hist(hal_1d[~h1], bins=bins, alpha=0.7, label="in support", density=True)
axes[1].hist(
    hal_1d[h1], bins=bins, alpha=0.7, label="out of support", density=True, color="C3"
)
axes[1].set(
    xscale="log",
    xlabel=f"Hal (variance of $\\hat x_0$, last {cfg.hal_window} steps)",
    ylabel="density",
    title="1D mixture",
)
axes[1].legend()
plt.show()

# %% [markdown]
# **Detection.** We threshold Hal and ask two questions: how well it ranks
# (the ROC curve and its area) and what the paper's operating point gives:
# keep 96% of the in-support samples and count the hallucinations removed.

# %%
sources = {"1D (modes 1, 2, 3)": (mix_1d, samples_1d, h1)}
sources.update(
    {
        f"2D {name}": (r["mixture"], r["samples"], r["hallucinated"])
        for name, r in results_2d.items()
    }
)
detect = {
    name: (trajectory_variance(smp.x0_trajectory, cfg.hal_window), lab)
    for name, (_, smp, lab) in sources.items()
}
rows = []
fig, ax = plt.subplots(figsize=(5.6, 4.6), layout="constrained")
for name, (hal, lab) in detect.items():
    fpr, tpr = roc(hal, lab)
    op = operating_point(hal, lab, cfg.keep_in_support)
    rows.append(
        {
            "dataset": name,
            "hallucinations": op["n_hallucinated"],
            "AUROC": auroc(hal, lab),
            "in-support kept": op["kept_in_support"],
            "hallucinations removed": op["removed_hallucinations"],
        }
    )
    ax.plot(fpr, tpr, label=f"{name} (AUROC {rows[-1]['AUROC']:.3f})")
ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls=":")
ax.set(
    xlabel="in-support samples removed (FPR)",
    ylabel="hallucinations removed (TPR)",
    title="Hal as a detector",
)
ax.legend(loc="lower right")
plt.show()
detection = pd.DataFrame(rows)
display(Table(detection, floatfmt="{:.3f}"))

# %% [markdown]
# **Who are the in-support samples with a high Hal?** The operating point
# puts the threshold at the 96th percentile of the in-support samples' Hal, so
# it is set by the 4% of in-support samples whose $\hat x_0$ moved most. We
# look at where their $\hat x_0$ was $K - 1$ steps before the end: if it was
# far from every mode, these samples were in a gap and were pulled to a mode
# only in the last steps, which is exactly what Hal measures. Then the
# detector is doing its job, and they are the price of thresholding it.

# %%
late = []
for name, (hal, lab) in detect.items():
    mixture, smp, _ = sources[name]
    op = operating_point(hal, lab, cfg.keep_in_support)
    early = distance_in_sigmas(smp.x0_trajectory[-cfg.hal_window], mixture)
    flagged = ~lab & (hal > op["threshold"])
    quiet = ~lab & (hal <= op["threshold"])
    at_start = f"their x0-prediction at t={cfg.hal_window - 1}: median distance (s)"
    late.append(
        {
            "dataset": name,
            "in-support, high Hal": int(flagged.sum()),
            at_start: np.median(early[flagged]),
            "same for low-Hal in-support samples": np.median(early[quiet]),
            "same for hallucinations": np.median(early[lab]),
        }
    )
display(Table(pd.DataFrame(late), floatfmt="{:.2f}"))

# %%
best_removed = detection["hallucinations removed"].min()
claims.add(
    "Hal: hallucinations removed at 96% of in-support samples kept",
    "> 95%",
    ", ".join(f"{r['dataset']}: {r['hallucinations removed']:.1%}" for r in rows),
    best_removed > 0.95,
    note="lowest of the three datasets must exceed 95%",
)
claims.add(
    "Hal separates hallucinations from in-support samples (AUROC)",
    "high (no number in the abstract)",
    ", ".join(f"{r['dataset']}: {r['AUROC']:.3f}" for r in rows),
    detection["AUROC"].min() > 0.9,
    note="we call it separating when every AUROC exceeds 0.9",
)

# %% [markdown]
# **Where the detector falls short of the paper.** In 1D, Hal ranks well
# (AUROC about 0.96) but removes under 80% of the hallucinations at the 96%
# operating point, not more than 95%. In 2D it removes a fifth or less. The
# last table says why the two differ. In 2D the in-support samples with the
# highest Hal had their $\hat x_0$ some 14 $s$ from every mode nine steps
# before the end: they *were* in a gap and were pulled to a mode in the last
# steps. Hal flags them correctly as late deciders, but they end in support,
# and they are 4% of the in-support samples: the 96% threshold sits right
# among them, above most of the true hallucinations. In 1D the high-Hal
# in-support samples were already at their mode (under $1s$): there the
# threshold is set by ordinary noise and the detector does better. The
# paper's > 95% is not reproduced at this scale with this definition of
# support; the paper trains far longer (our 2D modes are still slightly too
# wide, see the median distance above), and its exact support rule may
# differ.

# %% [markdown]
# ## Experiment 5: shapes that never were
#
# Images of three vertical strips: a triangle may appear in the left strip, a
# square in the middle one, a pentagon in the right one, each with probability
# 1/2 at a random height. No training image has two shapes in one strip. A
# small U-Net {cite:p}`ronneberger2015unet` (diffusers' `UNet2DModel`, three
# levels of 16/32/64 channels) learns them with the same DDPM. A generated
# image **hallucinates** if some strip holds two shapes, or two shapes merged
# into one blob taller than 1.5 shape heights; shapes are 8-connected
# components of the pixels above mid-grey, ignoring specks smaller than 30% of
# a shape. A component larger than three shapes (a grey background, a field of
# noise) is a **failed** sample, counted apart: it is not a shape at all, so it
# is no evidence of mode interpolation (an undertrained U-Net produces many).
# At the `cpu` preset the images are 16×24 (shapes about 6 pixels across) and
# the model sees 1,000 batches of 32; the paper's are 64×64, trained far longer
# (the `full` preset). This is the most expensive cell of the chapter on a CPU.

# %%
shape_images, shape_present = render_shapes(
    cfg.n_shapes_train, cfg.shape_height, cfg.shape_width, np.random.default_rng(seed)
)
unet = ex.train_shapes(shape_images, cfg, seed, device)
shape_samples = ex.sample_shapes(unet, cfg, cfg.n_shapes_samples, seed + 1, device)
shape_counts, shape_merged, shape_smeared = count_shapes(shape_samples.x.numpy())
shape_hallucinated, shape_failed = classify_samples(shape_samples.x.numpy())
shape_hal = trajectory_variance(shape_samples.x0_trajectory, cfg.hal_window)

# two rows of training images above two rows of generated ones, four per row
fig, axes = plt.subplots(4, 4, figsize=(8, 5.6), layout="constrained")
order = np.r_[
    np.flatnonzero(shape_hallucinated)[:4], np.flatnonzero(~shape_hallucinated)
][:8]
for j, ax in enumerate(axes[:2].flat):
    ax.imshow(shape_images[j, 0], cmap="gray", vmin=-1, vmax=1)
    ax.set_title("training" if j == 0 else "", loc="left")
for j, (ax, i) in enumerate(zip(axes[2:].flat, order)):
    ax.imshow(shape_samples.x[i, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
    ax.set_title(
        "hallucinated" if shape_hallucinated[i] else ("generated" if j == 0 else ""),
        loc="left",
        color="C3" if shape_hallucinated[i] else "k",
    )
for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
    for lo, _ in strip_bounds(cfg.shape_width)[1:]:
        ax.axvline(lo - 0.5, color="C0", lw=0.5)
plt.show()

per_strip = pd.DataFrame(
    {
        "strip": ["triangles", "squares", "pentagons"],
        "present in training (fraction)": shape_present.mean(0),
        "one shape in samples": (shape_counts == 1).mean(0),
        "two or more in samples": (shape_counts >= 2).mean(0),
        "merged blobs in samples": shape_merged.mean(0),
        "smears in samples": shape_smeared.mean(0),
    }
)
display(Table(per_strip, floatfmt="{:.3f}"))
n_hal, n_valid = int(shape_hallucinated.sum()), int((~shape_failed).sum())
shape_auroc = auroc(shape_hal[~shape_failed], shape_hallucinated[~shape_failed])
print(
    f"{int(shape_failed.sum())} of {len(shape_failed)} samples failed (smears); "
    f"of the other {n_valid}, "
    + (
        f"{n_hal} hallucinate ({n_hal / n_valid:.1%}); AUROC of Hal: {shape_auroc:.3f}"
        if n_hal
        else "none hallucinates: Hal cannot be scored here"
    )
)

# %% [markdown]
# **At this scale the shapes do not hallucinate.** The U-Net has learned the
# data's rule (at most one shape per strip, each present about half the time)
# and none of the samples breaks it, so Hal has nothing to detect. With no
# event in 128 samples, the rate is below about 2.3% at 95% confidence (the
# rule of three), which is all this run can say: the paper's shapes are 64×64,
# its U-Net far larger and trained far longer, and its hallucinations are a
# few percent of many thousands of samples (the `full` preset runs that).
# While building the chapter we also trained for 700 steps instead of 1,000:
# about 40% of those samples "hallucinated" by the strip rule, but almost all
# were smears of noise and grey background, failed samples rather than two
# shapes composed; that is why smears are counted apart.

# %%
claims.add(
    "shapes: hallucinated combinations exist",
    "yes (two shapes of a kind in one strip)",
    f"{n_hal} of {n_valid} samples that are not smears",
    n_hal > 0,
    note=f"{cfg.shape_height}x{cfg.shape_width} images, "
    f"{cfg.shapes_steps} training steps, {cfg.n_shapes_samples} samples",
)
claims.add(
    "shapes: Hal separates hallucinated images (AUROC)",
    "high",
    f"{shape_auroc:.3f}" if n_hal else "not measurable (no hallucination)",
    bool(n_hal) and shape_auroc > 0.9,
    note="needs hallucinated samples to score",
)

# %% [markdown]
# ## Experiment 6: recursive training, with and without filtering
#
# Train a model on real data (generation 0), sample from it, train a fresh
# model **only** on those samples (generation 1), and so on. Hallucinations
# of one generation are training data of the next, so they should accumulate.
# We compare three ways of choosing the next training set of $N$ samples on
# the 2D grid:
#
# - **none**: draw exactly $N$ samples;
# - **random**: draw $N$ + extra and keep $N$ at random (the same distribution
#   as "none"; it controls for the extra draws);
# - **variance**: draw $N$ + extra and keep the $N$ with the lowest Hal.
#
# Generation 0 and its samples are shared by the three chains. The paper runs
# this on the 2D grid (and MNIST); at the `cpu` preset we run it on the 1D
# mixture, whose models are well fitted in 1,200 steps, because a 2D model
# costs a minute each (the `full` preset uses the grid).

# %%
recursive_mix = mix_1d if cfg.recursive_data == "1d" else results_2d["grid"]["mixture"]
recursive = pd.DataFrame(ex.recursive_training(recursive_mix, cfg, seed, device))
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True, layout="constrained")
for mode, part in recursive.groupby("filter", sort=False):
    axes[0].plot(part.generation, part.raw_hallucination, "o-", label=mode)
    axes[1].plot(part.generation, part.kept_hallucination, "o-", label=mode)
axes[0].set(
    xlabel="generation",
    ylabel="fraction out of support",
    title="samples of each generation",
)
axes[1].set(xlabel="generation", title="training set of the next generation")
axes[0].legend(title="filter")
axes[0].set_xticks(range(cfg.generations))
axes[1].set_xticks(range(cfg.generations))
plt.show()
display(
    Table(
        recursive.pivot(
            index="generation", columns="filter", values="raw_hallucination"
        )[list(ex.FILTERS)].reset_index(),
        floatfmt="{:.4f}",
    )
)

# %% [markdown]
# All three chains collapse quickly: a few generations of training only on
# one's own samples multiply the out-of-support rate many times over, because
# every generation adds its own interpolations to those it inherited. Keeping
# the lowest-Hal samples slows this. One caveat on the evidence: "none" and
# "random" are the same procedure (both train on $N$ unfiltered samples), so
# the gap between them is what a different seed does; we call the claim
# reproduced only if variance filtering beats both.

# %%
last = (
    recursive[recursive.generation == cfg.generations - 1]
    .set_index("filter")
    .raw_hallucination
)
claims.add(
    "variance filtering slows collapse compared with random filtering",
    "yes (2D Gaussians, MNIST)",
    f"generation {cfg.generations - 1}: variance {last['variance']:.2%}, "
    f"random {last['random']:.2%}, "
    f"none {last['none']:.2%}",
    last["variance"] < min(last["random"], last["none"]),
    note=f"{cfg.recursive_data} mixture, {cfg.generations} generations "
    f"of {cfg.recursive_n} samples, one chain "
    "per filter; none and random are the same procedure, so their gap is seed noise, "
    "and variance must beat both; no digits run",
)

# %% [markdown]
# ## On a GPU
#
# `make gpu-check` runs every chapter's GPU check in one command. This
# chapter's, `benchmarks/hallucination_gpu.py`, first verifies that the toy
# denoiser and the shapes U-Net give on the GPU what they give on the CPU,
# then trains the 25-mode grid at the full preset's width and batch for
# 3,000 steps and checks that its samples are finite. It saves
# `results/hallucination/gpu.json`, shown here when it exists:

# %%
from reprobook.gpucheck import show_gpu_check

gpu_check = show_gpu_check("hallucination")

# %% [markdown]
# ## Claims
#
# Each claim of the paper we tested, the paper's figure next to ours, at the
# `cpu` preset (all claims of the book are collected in the scoreboard). The
# table is computed from the runs above; a claim marked **NO** did not
# reproduce here, with the numbers that say why.

# %%
claims.report()

# %% [markdown]
# ## Summary
#
# - **Mode interpolation is real and comes from the network.** In 1D the
#   learned denoiser puts 0.72% of its samples between the modes, where the
#   exact denoiser, run through the same sampler, puts none: the exact
#   denoiser is a staircase, the network draws a ramp (steepest slope 16
#   against 2.1 across the first gap). In 2D the out-of-support samples point
#   toward a nearest neighbouring mode (67.8% at worst, against 41% by
#   chance), on the rotated grid as on the upright one.
# - **Filtering by Hal slows collapse.** After two generations of training
#   on its own samples, the chain that keeps the lowest-Hal samples has
#   15.04% of its samples out of support, against 38.72% and 34.05% for the
#   unfiltered chains.
# - **The trends with data and spacing did not reproduce.** With the same
#   1,200 training steps, more training points do not lower the rate, and
#   modes two apart hallucinate more than modes one apart: at this much
#   training the rate is set by how smooth the network is, not by the data
#   (the paper trains far longer).
# - **The detector falls short of the paper's > 95%.** Hal ranks well in 1D
#   (AUROC 0.960) but removes 77.8% of the hallucinations at the 96%
#   operating point, and in 2D only 16.0% and 20.3%: there the in-support
#   samples with the highest Hal are late deciders, pulled out of a gap to a
#   mode in the last steps, and the threshold sits among them.
# - **The shapes do not hallucinate at 16×24.** None of the 128 samples
#   breaks the data's rule (a rate below about 2.3% at 95% confidence), so
#   Hal has nothing to detect there; the paper's 64×64 run is the `full`
#   preset's.
#
# ## Exercises
#
# The chapter takes about 6 minutes on two cores; each run below writes its
# notebook and `claims.json` under `--output`.
#
# 1. **A wider support.** Count as hallucinations only samples farther than
#    $6s$ from every mode (instead of $4s$),
#    `.venv/bin/reprobook run hallucination -p support_sigmas 6 --output runs/hallucination-ex1`
#    (about 6 minutes). The fringe samples of the 2D modes now count as in
#    support: does the fraction pointing toward a nearest neighbour rise, and
#    does Hal remove more of the 2D hallucinations at the 96% operating
#    point?
# 2. **Train the 1D denoiser longer.** With
#    `.venv/bin/reprobook run hallucination -p steps_1d 4000 --output runs/hallucination-ex2`
#    (about 10 minutes: every 1D model, the recursive chains included, trains
#    3.3 times longer), check the sweep table: does the rate now fall with
#    more training points and with farther modes, as the paper reports?
# 3. **A better-trained U-Net.** Triple the shapes' training,
#    `.venv/bin/reprobook run hallucination -p shapes_steps 3000 --output runs/hallucination-ex3`
#    (about 9 minutes), and look at the gallery and the per-strip table: do
#    two shapes of a kind ever appear in one strip, and if so, does Hal
#    separate those images?
