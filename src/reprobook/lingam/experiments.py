"""The experiments of chapter 01, as functions returning tidy DataFrames."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ..common import progress
from .direct import DirectLiNGAM, VARLiNGAM
from .metrics import edge_scores, order_consistency, shd
from .simulate import KNOCKOUT_SETTINGS, random_sem


def _peer():
    import lingam

    return lingam


def peer_scores(X: np.ndarray, order) -> list[np.ndarray]:
    """The `lingam` package's score lists M, step by step along ``order``.

    This replays the peer's own private search and residual functions, so the
    comparison is with the peer's arithmetic, not a re-implementation.
    """
    peer = _peer().DirectLiNGAM()
    X_ = np.array(X, dtype=np.float64)
    U = np.arange(X.shape[1])
    out = []
    for m in order[:-1]:
        M = []
        for i in U:
            total = 0.0
            for j in U:
                if i != j:
                    xi = (X_[:, i] - np.mean(X_[:, i])) / np.std(X_[:, i])
                    xj = (X_[:, j] - np.mean(X_[:, j])) / np.std(X_[:, j])
                    ri_j = peer._residual(xi, xj)
                    rj_i = peer._residual(xj, xi)
                    total += np.min([0, peer._diff_mutual_info(xi, xj, ri_j, rj_i)]) ** 2
            M.append(-total)
        out.append(np.array(M))
        for i in U:
            if i != m:
                X_[:, i] = peer._residual(X_[:, i], X_[:, m])
        U = U[U != m]
    return out


def agreement(cfg, seed: int, device: str) -> pd.DataFrame:
    """Experiment 1: our DirectLiNGAM against `lingam.DirectLiNGAM` on random LiNGAMs."""
    rows = []
    cases = list(itertools.product(cfg.agree_noises, cfg.agree_dims, cfg.agree_ns, range(cfg.agree_seeds)))
    for noise, d, n, s in progress(cases, desc="agreement"):
        rng = np.random.default_rng([seed, d, n, s])
        X = random_sem(d, rng, noise=noise, expected_degree=min(2.0, d - 1)).sample(n, rng)
        ours = DirectLiNGAM(device=device, n_jobs=cfg.n_jobs, record_scores=True).fit(X)
        peer = _peer().DirectLiNGAM().fit(X)
        same_order = [int(v) for v in peer.causal_order_] == ours.causal_order_
        score_gap = np.nan
        if same_order:
            theirs = peer_scores(X, ours.causal_order_)
            score_gap = max(float(np.max(np.abs(M - t))) for (_, M), t in zip(ours.scores_, theirs))
        rows.append(
            {
                "noise": noise,
                "d": d,
                "n": n,
                "seed": s,
                "same_order": same_order,
                "max_score_gap": score_gap,
                "max_adjacency_gap": float(np.max(np.abs(ours.adjacency_matrix_ - peer.adjacency_matrix_))),
            }
        )
    return pd.DataFrame(rows)


def accuracy(cfg, seed: int, device: str) -> pd.DataFrame:
    """Experiment 2: structure recovery on random graphs with known B, as d and n grow.

    The graph of each (d, seed) is the same for every n (its random stream does
    not depend on n), and the data for a smaller n are the first n rows of one
    sample of the largest n, so the trend in n compares like with like.
    """
    rows = []
    n_max = max(cfg.acc_ns)
    for d, s in progress(list(itertools.product(cfg.acc_dims, range(cfg.acc_seeds))), desc="accuracy"):
        rng = np.random.default_rng([seed, 1000 + d, s])
        sem = random_sem(d, rng, noise=cfg.acc_noise, expected_degree=cfg.expected_degree, max_parent_weight=2.0)
        X_all = sem.sample(n_max, rng)
        for n in sorted(cfg.acc_ns):
            model = DirectLiNGAM(device=device, n_jobs=cfg.n_jobs).fit(X_all[:n])
            scores = edge_scores(sem.B, model.adjacency_matrix_)
            rows.append(
                {
                    "d": d,
                    "n": n,
                    "seed": s,
                    "edges": int((sem.B != 0).sum()),
                    "shd": shd(sem.B, model.adjacency_matrix_),
                    **scores,
                    "order_consistency": order_consistency(sem.B, model.causal_order_),
                }
            )
    return pd.DataFrame(rows).sort_values(["d", "n", "seed"], ignore_index=True)


MACRO_LOG_DIFF = ("realgdp", "realcons", "realinv", "realgovt", "realdpi")
MACRO_LEVELS = ("tbilrate", "unemp", "infl")


def macrodata() -> pd.DataFrame:
    """statsmodels' US macro data: quarterly log-differences (x100) of the real
    series, the rates as levels (aligned to the differenced quarters)."""
    import statsmodels.api as sm

    df = sm.datasets.macrodata.load_pandas().data
    out = {c: 100 * np.diff(np.log(df[c].to_numpy())) for c in MACRO_LOG_DIFF}
    out.update({c: df[c].to_numpy()[1:] for c in MACRO_LEVELS})
    return pd.DataFrame(out)


def var_on_macrodata(max_lags: int, device: str):
    """Experiment 4: our VARLiNGAM and `lingam.VARLiNGAM` on the macro data."""
    data = macrodata()
    X = data.to_numpy()
    ours = VARLiNGAM(lags=max_lags, device=device).fit(X)
    peer = _peer().VARLiNGAM(lags=max_lags).fit(X)
    return data.columns.tolist(), ours, peer


KNOCKOUT_METHODS = ("LiNGAM", "NOTEARS", "NOTEARS (standardized)", "regression", "no change")


def knockout_study(cfg, seed: int, device: str) -> pd.DataFrame:
    """Experiment 5: predict the mean shift of every gene under each single-gene knockdown.

    Sparse linear gene networks (:func:`~reprobook.lingam.simulate.knockout_network`)
    stand in for the paper's Perturb-seq data, in each of ``cfg.gene_settings``:
    exactly LiNGAM (skewed noise), part of the noise Gaussian, or hidden
    confounders. Network ``s`` has the same genes and edges in every setting.
    Each gene k is knocked down to ``mean - c sd`` (``c = knockdown_sd``, mean and
    sd observational); the exact mean shift of gene j is the total effect
    ``T[j, k] (c_k - mu_k)`` with ``T = (I - B)^-1`` of the true SEM (latent
    variables included). Predictors of the shift:

    * LiNGAM and NOTEARS: the same formula with their estimate of ``B``.
      NOTEARS runs on the data as given ("NOTEARS") and on z-scored data with
      its weights mapped back to the data's units ("NOTEARS (standardized)");
      both refit the kept edges by least squares, as LiNGAM's adjacency step does;
    * regression: ``cov(x_j, x_k) / var(x_k) (c_k - mu_k)``, what the
      correlation graph predicts (it moves ancestors as well as descendants);
    * no change: predict zero shifts.

    Returns one row per (setting, network, method): the RMSE over all ordered
    pairs j != k against the exact shifts (``rmse_exact``) and against the mean
    shifts of simulated interventional samples (``rmse_sampled``), and the edge
    F1 of the graph methods.
    """
    from .notears import NOTEARS
    from .simulate import knockout_network

    d = cfg.genes
    off = ~np.eye(d, dtype=bool)
    rows = []
    cases = list(itertools.product(cfg.gene_settings, range(cfg.gene_seeds)))
    for setting, s in progress(cases, desc="knockouts"):
        sem, obs = knockout_network(
            d, np.random.default_rng([seed, 5001, s, KNOCKOUT_SETTINGS.index(setting)]), setting,
            base_rng=np.random.default_rng([seed, 5000, s]),
            expected_degree=cfg.gene_degree, max_parent_weight=1.5,
            gaussian_fraction=cfg.gene_gaussian_fraction,
            latents=cfg.gene_latents, latent_children=cfg.gene_latent_children,
        )
        rng = np.random.default_rng([seed, 5002, s, KNOCKOUT_SETTINGS.index(setting)])
        X = sem.sample(cfg.gene_samples, rng)[:, obs]
        mu, sd = X.mean(axis=0), X.std(axis=0)
        shift = -cfg.knockdown_sd * sd  # c_k - mu_k
        truth = (sem.total_effects()[np.ix_(obs, obs)] * shift[None, :])[off]
        B_true = sem.B[np.ix_(obs, obs)]
        graphs = {
            "LiNGAM": DirectLiNGAM(device=device, n_jobs=cfg.n_jobs).fit(X).adjacency_matrix_,
            "NOTEARS": NOTEARS(cfg.notears_lambda, cfg.notears_threshold, standardize=False)
            .fit(X).adjacency_matrix_,
            "NOTEARS (standardized)": NOTEARS(cfg.notears_lambda, cfg.notears_threshold, standardize=True)
            .fit(X).adjacency_matrix_,
        }
        preds = {m: (np.linalg.inv(np.eye(d) - B) * shift[None, :])[off] for m, B in graphs.items()}
        cov = np.cov(X, rowvar=False, bias=True)
        preds["regression"] = ((cov / np.diag(cov)[None, :]) * shift[None, :])[off]
        preds["no change"] = np.zeros_like(truth)
        # Interventional samples: do(x_k = mu_k + shift_k) in the full SEM, empirical mean shift.
        n_int = max(200, cfg.gene_samples // 10)
        D = sem.d
        emp = np.zeros((d, d))
        for k in range(d):
            B_do = sem.B.copy()
            B_do[obs[k]] = 0.0
            E = sem.sample_noise(n_int, rng)
            E[:, obs[k]] = mu[k] + shift[k]
            emp[:, k] = np.linalg.solve(np.eye(D) - B_do, E.T).T[:, obs].mean(axis=0) - mu
        emp = emp[off]
        for method in KNOCKOUT_METHODS:
            pred = preds[method]
            rows.append(
                {
                    "setting": setting,
                    "seed": s,
                    "method": method,
                    "rmse_exact": float(np.sqrt(np.mean((pred - truth) ** 2))),
                    "rmse_sampled": float(np.sqrt(np.mean((pred - emp) ** 2))),
                    "edge_f1": edge_scores(B_true, graphs[method])["f1"] if method in graphs else np.nan,
                }
            )
    return pd.DataFrame(rows)


def knockout_verdicts(ko: pd.DataFrame, margin: float, z: float = 2.0) -> pd.DataFrame:
    """Per setting, the paired comparison of LiNGAM with NOTEARS, fixed before the run.

    ``log_ratio`` is the mean over networks of ``log(RMSE_LiNGAM / RMSE_NOTEARS)``
    (exact truth) with its standard error. "Competitive" means LiNGAM's RMSE is
    at most ``1 + margin`` times NOTEARS's: yes when the upper end of the
    ``z``-SE interval of the log ratio is below ``log(1 + margin)``, NO when
    its lower end is above it, otherwise inconclusive. ``ratio``, ``lo`` and
    ``hi`` are the geometric-mean ratio and its interval.
    """
    from ..claims import paired_verdict

    rows, verdicts = [], []
    for setting, grp in ko.groupby("setting", sort=False):
        r = grp.pivot(index="seed", columns="method", values="rmse_exact")
        log_ratio = np.log(r["LiNGAM"] / r["NOTEARS"])
        # paired_verdict tests "mean > margin"; competitive is "log ratio < log(1 + margin)"
        mean, se, holds = paired_verdict(-log_ratio, -np.log1p(margin), z)
        rows.append(
            {
                "setting": setting,
                "networks": len(r),
                "ratio": float(np.exp(-mean)),
                "lo": float(np.exp(-mean - z * se)),
                "hi": float(np.exp(-mean + z * se)),
                "log_ratio": -mean,
                "se": se,
            }
        )
        verdicts.append(holds)
    out = pd.DataFrame(rows)
    out["holds"] = pd.Series(verdicts, dtype=object)  # True, False or "inconclusive"
    return out


def load_benchmark(path) -> dict:
    """The saved CPU benchmark (``benchmarks/lingam_speed.py``).

    Returns the timing table, the ratios to the package at d = 100 (ordering
    and whole fit, one thread and all cores), log-log slopes of ordering time
    vs d (d >= 25), the bootstrap row, and the hardware line.
    """
    from ..common import load_results

    saved = load_results(path)
    table = pd.DataFrame(saved["results"]["rows"])
    if "order_1t_s" not in table:
        raise ValueError(f"{path} is from an older benchmark; rerun benchmarks/lingam_speed.py")
    slopes = {}
    for col in ("peer_order_s", "order_1t_s", "order_s"):
        pts = table.dropna(subset=[col]) if col in table else table.iloc[:0]
        pts = pts[pts.d >= 25]  # below that, fixed costs dominate
        slopes[col] = float(np.polyfit(np.log(pts.d), np.log(pts[col]), 1)[0]) if len(pts) >= 2 else np.nan
    at_100 = table[(table.d == 100)].dropna(subset=["peer_order_s"]) if "peer_order_s" in table else table.iloc[:0]
    if at_100.empty:
        raise ValueError(f"{path} has no package timing at d = 100; rerun benchmarks/lingam_speed.py")
    row = at_100.iloc[0]
    hw = saved["provenance"]["hardware"]
    return {
        "table": table,
        "slopes": slopes,
        "at_100": {k: float(row[k]) for k in ("order_ratio_1t", "order_ratio", "fit_ratio_1t", "fit_ratio")},
        "cores": int(row["cores"]),
        "bootstrap": saved["results"]["bootstrap"],
        "hardware": f"{hw.get('processor')}, {hw.get('cpu_count')} cores, numpy {hw.get('numpy')}",
    }


def bootstrap_study(d: int, n: int, n_sampling: int, seed: int, device: str, n_jobs=None) -> dict:
    """Bootstrap edge probabilities of ours and of `lingam.DirectLiNGAM` on the same resamples.

    Both estimators draw their resamples from NumPy's global RNG (the package's
    convention), which is seeded identically before each. Returns the true
    graph, both results and their largest differences.
    """
    rng = np.random.default_rng([seed, 77])
    sem = random_sem(d, rng, noise="laplace", expected_degree=2.0)
    X = sem.sample(n, rng)
    np.random.seed(seed)
    ours = DirectLiNGAM(device=device, n_jobs=n_jobs).bootstrap(X, n_sampling)
    np.random.seed(seed)
    peer = _peer().DirectLiNGAM().bootstrap(X, n_sampling)
    return {
        "B_true": sem.B,
        "ours": ours,
        "peer": peer,
        "max_probability_gap": float(np.abs(ours.get_probabilities() - peer.get_probabilities()).max()),
        "max_total_effect_gap": float(np.abs(ours.total_effects_ - peer.total_effects_).max()),
    }


def load_gpu_results(path) -> dict | None:
    """The saved GPU check (``benchmarks/lingam_gpu.py``), or None when it has not been run."""
    from pathlib import Path

    from ..common import load_results

    if not Path(path).is_file():
        return None
    res = load_results(path)["results"]
    checks = res["order_checks"]
    return {
        "table": pd.DataFrame(res["timings"]),
        "checks": pd.DataFrame(checks),
        "headline": res.get("headline"),
        "same": sum(bool(c["same_order"]) for c in checks),
        "cases": len(checks),
    }


def plot_var_graph(names, B_taus: np.ndarray, threshold: float = 0.05):
    """Instantaneous (B_0, solid) and lag-1 (B_1, dashed) effects above ``threshold``."""
    import matplotlib.pyplot as plt
    import networkx as nx

    G = nx.DiGraph()
    G.add_nodes_from(names)
    edges = {0: [], 1: []}
    for tau in (0, 1):
        if tau >= len(B_taus):
            continue
        for i, j in zip(*np.nonzero(np.abs(B_taus[tau]) > threshold)):
            if tau == 1 and i == j:
                continue  # own lags: shown as the diagonal of B_1 above, not as loops
            edges[tau].append((names[j], names[i], float(B_taus[tau][i, j])))
    pos = nx.circular_layout(G)
    fig, ax = plt.subplots(figsize=(7, 6))
    nx.draw_networkx_nodes(G, pos, ax=ax, node_color="#dde8f5", node_size=1800)
    nx.draw_networkx_labels(G, pos, ax=ax, font_size=9)
    for tau, style in ((0, "solid"), (1, "dashed")):
        el = [(u, v) for u, v, _ in edges[tau]]
        colors = ["#b2182b" if w > 0 else "#2166ac" for _, _, w in edges[tau]]
        widths = [1 + 3 * min(1.0, abs(w)) for _, _, w in edges[tau]]
        nx.draw_networkx_edges(
            G, pos, edgelist=el, ax=ax, style=style, edge_color=colors, width=widths,
            arrows=True, arrowsize=15, node_size=1800, connectionstyle="arc3,rad=0.08",
        )
    ax.set_title(f"VarLiNGAM on macrodata: B_0 solid, B_1 dashed (|effect| > {threshold}); red +, blue -")
    ax.axis("off")
    return fig


def plot_var_heatmaps(names, B_taus: np.ndarray, linthresh: float = 0.1):
    """B_0, ..., B_lags as heatmaps, one panel per lag (row = effect, column = cause).

    A diverging colormap centred at 0 on a symmetric-log scale (linear within
    ``+-linthresh``), so that a few large effects do not wash out the rest;
    every non-zero entry is printed in its cell.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import SymLogNorm

    B_taus = np.asarray(B_taus)
    k, d = B_taus.shape[0], B_taus.shape[1]
    vmax = float(np.abs(B_taus).max()) or 1.0
    norm = SymLogNorm(linthresh=linthresh, vmin=-vmax, vmax=vmax, base=10)
    fig, axes = plt.subplots(
        1, k, figsize=(4.6 * k + 1.2, 4.9), layout="constrained", squeeze=False
    )
    for tau, ax in enumerate(axes[0]):
        B = B_taus[tau]
        im = ax.imshow(B, cmap="RdBu_r", norm=norm)
        ax.set_xticks(range(d), labels=names, rotation=60, ha="right", fontsize=9)
        ax.set_yticks(range(d), labels=names if tau == 0 else [""] * d, fontsize=9)
        ax.set_xlabel("cause (column)")
        if tau == 0:
            ax.set_ylabel("effect (row)")
        ax.set_title(f"$B_{tau}$" + (" (instantaneous)" if tau == 0 else f" (lag {tau})"))
        ax.grid(False)
        for i, j in zip(*np.nonzero(B)):
            strong = abs(B[i, j]) > 0.5 * vmax or abs(B[i, j]) > 10 * linthresh
            ax.text(j, i, f"{B[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if strong else "black")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.85, label="effect of column on row")
    return fig
