"""The experiments of chapter 01, as functions returning tidy DataFrames."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ..common import progress
from .direct import DirectLiNGAM, VARLiNGAM
from .metrics import edge_scores, order_consistency, shd
from .simulate import random_sem


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
    """Experiment 2: structure recovery on random graphs with known B, as d and n grow."""
    rows = []
    cases = list(itertools.product(cfg.acc_dims, cfg.acc_ns, range(cfg.acc_seeds)))
    for d, n, s in progress(cases, desc="accuracy"):
        rng = np.random.default_rng([seed, 1000 + d, n, s])
        sem = random_sem(d, rng, noise=cfg.acc_noise, expected_degree=cfg.expected_degree, max_parent_weight=2.0)
        X = sem.sample(n, rng)
        model = DirectLiNGAM(device=device, n_jobs=cfg.n_jobs).fit(X)
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
    return pd.DataFrame(rows)


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


def knockout_study(cfg, seed: int, device: str) -> pd.DataFrame:
    """Experiment 5: predict the mean shift of every gene under each single-gene knockdown.

    A sparse linear network with skewed (exponential) noise stands in for the
    paper's Perturb-seq data. Each gene k is knocked down to ``mean - c sd``
    (``c = knockdown_sd``); the true mean shift of gene j is the total effect
    ``T[j, k] (c_k - mu_k)``, ``T = (I - B)^-1``. We compare

    * LiNGAM: the same formula with ``B`` estimated from observational data;
    * regression: ``cov(x_j, x_k) / var(x_k) (c_k - mu_k)``, what the
      correlation graph predicts (it moves ancestors as well as descendants);
    * zero: predict no change.

    Also checked against simulated interventional samples (do(x_k = c_k)).
    """
    rows = []
    for s in progress(range(cfg.gene_seeds), desc="knockouts"):
        rng = np.random.default_rng([seed, 5000, s])
        sem = random_sem(
            cfg.genes, rng, noise="exponential", expected_degree=cfg.gene_degree, max_parent_weight=1.5
        )
        X = sem.sample(cfg.gene_samples, rng)
        mu, sd = X.mean(axis=0), X.std(axis=0)
        shift = -cfg.knockdown_sd * sd  # c_k - mu_k
        T_true = sem.total_effects()
        model = DirectLiNGAM(device=device, n_jobs=cfg.n_jobs).fit(X)
        T_hat = np.linalg.inv(np.eye(cfg.genes) - model.adjacency_matrix_)
        cov = np.cov(X, rowvar=False, bias=True)
        reg = cov / np.diag(cov)[None, :]  # reg[j, k] = cov(j, k) / var(k)
        off = ~np.eye(cfg.genes, dtype=bool)
        truth = (T_true * shift[None, :])[off]
        preds = {
            "LiNGAM": (T_hat * shift[None, :])[off],
            "regression": (reg * shift[None, :])[off],
            "zero": np.zeros_like(truth),
        }
        # Interventional samples: do(x_k = mu_k + shift_k), empirical mean shift.
        n_int = max(200, cfg.gene_samples // 10)
        emp = np.zeros((cfg.genes, cfg.genes))
        for k in range(cfg.genes):
            B_do = sem.B.copy()
            B_do[k] = 0.0
            E = sem.sample_noise(n_int, rng)
            E[:, k] = mu[k] + shift[k]
            emp[:, k] = np.linalg.solve(np.eye(cfg.genes) - B_do, E.T).T.mean(axis=0) - mu
        emp_off = emp[off]
        affected = np.abs(truth) > 1e-9
        for method, pred in preds.items():
            rows.append(
                {
                    "seed": s,
                    "method": method,
                    "rmse_vs_true": float(np.sqrt(np.mean((pred - truth) ** 2))),
                    "rmse_vs_interventional": float(np.sqrt(np.mean((pred - emp_off) ** 2))),
                    "false_effects": float(np.mean(np.abs(pred[~affected]) > 0.1 * np.abs(shift).mean()))
                    if (~affected).any()
                    else 0.0,
                    "sign_accuracy": float(np.mean(np.sign(pred[affected]) == np.sign(truth[affected])))
                    if affected.any()
                    else 1.0,
                }
            )
    return pd.DataFrame(rows)


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
