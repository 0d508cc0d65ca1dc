"""The experiments of chapter 02: the released parameters, and our own study."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .fit import FitPoints, FitResult, fit_pools
from .laws import FORMS, PoolLaw, frontier
from .study import WebPool, make_web_pool, train_students

# The authors' released parameters (DataComp medium, T-MARS-ranked buckets of
# 12.8M samples, ImageNet zero-shot), at the precision of their release: the
# grid points their search found. The spec lists them rounded to 3-4 digits.
RELEASED = {
    "utility": PoolLaw(
        a=0.025,
        d=0.1,
        b=(-0.16, -0.125, -0.1, -0.085),
        tau=(6.7272727272727275, 8.545454545454547, 5.2727272727272725, 2.2727272727272725),
        names=("top 10%", "top 10-20%", "top 20-30%", "top 30-40%"),
    ),
    "effective_data": PoolLaw(
        a=0.022,
        d=0.1,
        b=(-0.18227272727272728, -0.14484848484848487, -0.13530303030303031, -0.09757575757575758),
        tau=(4.0, 4.363636363636363, 2.909090909090909, 1.4545454545454546),
        names=("top 10%", "top 10-20%", "top 20-30%", "top 30-40%"),
    ),
}
#: The validation pool (a random 25% of the top 40%), fitted alone (utility form).
RELEASED_VALIDATION = {"b": -0.12, "tau": 6.0}
RELEASED_BUCKET = 12.8e6
RELEASED_BUDGETS = (32e6, 64e6, 128e6, 640e6)
#: Predicted ImageNet zero-shot accuracy (%) of the top-k mixtures, from the spec.
PAPER_TABLE = {
    "utility": [
        [18.25, 24.62, 28.73, 31.18],
        [15.84, 23.30, 29.60, 38.55],
        [13.42, 20.40, 26.77, 37.56],
        [11.68, 17.99, 24.13, 35.14],
    ],
    "effective_data": [
        [18.25, 24.58, 28.63, 30.77],
        [17.14, 24.42, 30.53, 39.02],
        [15.98, 23.23, 29.55, 40.09],
        [13.91, 20.83, 26.94, 37.92],
    ],
}
POOL_NAMES = ("top 10%", "top 20%", "top 30%", "top 40%")


def released_table(form: str, tau_scaling: str = "pool") -> pd.DataFrame:
    """Our predictions from the released parameters next to the paper's table."""
    f = frontier(RELEASED[form], RELEASED_BUDGETS, RELEASED_BUCKET, form, tau_scaling)
    rows = []
    for k, name in enumerate(POOL_NAMES):
        for j, n in enumerate(RELEASED_BUDGETS):
            ours = 100 * f["accuracy"][j, k]
            paper = PAPER_TABLE[form][k][j]
            rows.append({"pool": name, "samples seen": f"{n / 1e6:.0f}M", "paper": paper, "ours": ours,
                         "match (2 dp)": round(ours, 2) == paper})
    return pd.DataFrame(rows)


def best_pool_transitions(law: PoolLaw, budgets, pool_size: float, form="utility", tau_scaling="pool"):
    """The budgets at which the best top-k mixture changes: [(budget, old k, new k)]."""
    f = frontier(law, budgets, pool_size, form, tau_scaling)
    best = f["best_k"]
    return f, [(float(budgets[i]), int(best[i - 1]), int(best[i])) for i in range(1, len(best)) if best[i] != best[i - 1]]


@dataclass
class StudyResult:
    web: WebPool  # with the fresh-data control's samples appended
    bucket_size: int
    checkpoints: np.ndarray  # samples seen
    bucket_errors: np.ndarray  # (buckets, seeds, checkpoints)
    validation_errors: np.ndarray  # (seeds, checkpoints)
    fresh_errors: np.ndarray  # (seeds, checkpoints): fresh samples of the top bucket's quality, never repeated
    fits: dict  # form -> FitResult: per-bucket laws, shared a and d
    validation_fit: FitResult  # the validation pool, utility form, a and d held at the buckets' fit
    predicted_mixtures: dict  # form -> {k: predicted error at checkpoints} (made before training mixtures)
    mixture_errors: dict  # k -> (seeds, checkpoints), trained after predicting
    fit_mask: np.ndarray  # which checkpoints were used for fitting

    @property
    def fit(self) -> FitResult:
        """The utility-form fit (the paper's main form)."""
        return self.fits["utility"]


def study_checkpoints(cfg, bucket_size: int) -> np.ndarray:
    raw = np.geomspace(cfg.min_passes, cfg.max_passes, cfg.checkpoints) * bucket_size
    ck = np.unique(np.maximum(cfg.batch, (raw // cfg.batch) * cfg.batch).astype(int))
    return ck


def run_study(cfg, seed: int, device: str, progress=None) -> StudyResult:
    """Train bucket students, fit the laws, predict the mixtures, then train them.

    Seed ``s`` starts from the same weights on every pool (buckets, validation
    pool, fresh-data control and mixtures), so pools are compared seed by seed.
    """
    rng = np.random.default_rng([seed, 2])
    web = make_web_pool(
        cfg.pool_size, cfg.n_buckets, rng, quality_beta=tuple(cfg.quality_beta), metadata_noise=cfg.metadata_noise
    )
    N = web.bucket_size
    ck = study_checkpoints(cfg, N)
    init_seed = int(rng.integers(2**31))
    train = dict(hidden=cfg.hidden, batch=cfg.batch, lr=cfg.lr, weight_decay=cfg.weight_decay, device=device,
                 progress=progress, init_seed=init_seed)
    # Phase 1: the buckets; the validation pool (a random 25% of the top 40%, one bucket's size);
    # and the fresh-data control: as many new samples of the top bucket's quality as the
    # largest budget sees, so that nothing is repeated.
    top = np.concatenate(web.buckets[: min(4, cfg.n_buckets)])
    validation = rng.choice(top, size=N, replace=False)
    web, fresh = web.with_fresh_like(web.buckets[0], int(ck[-1]), rng)
    errs = train_students(web, [*web.buckets, validation, fresh], ck, cfg.seeds, rng, **train)
    bucket_errors, validation_errors, fresh_errors = errs[: cfg.n_buckets], errs[-2], errs[-1]
    # Fit both forms of the law on the buckets (shared a, d); the validation pool on the
    # buckets' a and d (utility form), so that its b is on the buckets' scale.
    mask = ck >= cfg.fit_from_passes * N
    names = [f"bucket {i}" for i in range(cfg.n_buckets)]
    points = [FitPoints(names[i], ck[mask], bucket_errors[i].mean(axis=0)[mask]) for i in range(cfg.n_buckets)]
    fits = {form: fit_pools(points, N, form=form) for form in FORMS}
    validation_fit = fit_pools(
        [FitPoints("validation", ck[mask], validation_errors.mean(axis=0)[mask])], N,
        fixed_a=fits["utility"].law.a, fixed_d=fits["utility"].law.d,
    )
    # Predict the top-k mixtures from the bucket fits alone ...
    predicted = {
        form: {k: np.array([fit.law.error(n, range(k), N, form) for n in ck]) for k in range(2, cfg.n_buckets + 1)}
        for form, fit in fits.items()
    }
    # ... and only then train them.
    mixtures = [np.concatenate(web.buckets[:k]) for k in range(2, cfg.n_buckets + 1)]
    mix_errs = train_students(web, mixtures, ck, cfg.seeds, rng, **train)
    mixture_errors = {k: mix_errs[k - 2] for k in range(2, cfg.n_buckets + 1)}
    return StudyResult(web, N, ck, bucket_errors, validation_errors, fresh_errors, fits, validation_fit, predicted,
                       mixture_errors, mask)


def naive_mixture_predictions(study: StudyResult) -> dict:
    """Two predictions of each top-k mixture that need no law, from the measured bucket curves:
    "like its top bucket" and "like the mean of its buckets' curves" (at equal samples seen)."""
    curves = study.bucket_errors.mean(axis=1)  # (buckets, checkpoints)
    return {
        "like its top bucket": {k: curves[0] for k in study.mixture_errors},
        "mean of its buckets' curves": {k: curves[:k].mean(axis=0) for k in study.mixture_errors},
    }


def mixture_predictors(study: StudyResult) -> dict:
    """Every predictor of the mixtures: the two laws, then the two naive predictions."""
    return {"utility law": study.predicted_mixtures["utility"],
            "effective-data law": study.predicted_mixtures["effective_data"],
            **naive_mixture_predictions(study)}


def mixture_prediction_errors(study: StudyResult, n_boot: int = 2000, seed: int = 0):
    """How far each predictor is from the measured mixtures (seed-mean curves, fitted range),
    in accuracy points: a table per predictor and mixture, and the mean over mixtures with a
    bootstrap standard error over the mixture students' seeds (the predictors are fixed: they
    were made before the mixtures were trained)."""
    preds = mixture_predictors(study)
    ks = sorted(study.mixture_errors)
    mask = study.fit_mask
    rows = []
    for name, by_k in preds.items():
        for k in ks:
            gap = 100 * np.abs(by_k[k] - study.mixture_errors[k].mean(axis=0))[mask]
            rows.append({"predictor": name, "mixture": f"top {10 * k}%", "mean |error|": gap.mean(),
                         "max |error|": gap.max()})
    table = pd.DataFrame(rows)

    def overall(mixture_means):
        return {name: float(np.mean([100 * np.abs(by_k[k] - mixture_means[k])[mask].mean() for k in ks]))
                for name, by_k in preds.items()}

    seeds = study.mixture_errors[ks[0]].shape[0]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = rng.integers(0, seeds, seeds)
        boots.append(overall({k: study.mixture_errors[k][pick].mean(axis=0) for k in ks}))
    point = overall({k: study.mixture_errors[k].mean(axis=0) for k in ks})
    boot = pd.DataFrame(boots)
    return table, point, boot


def crossover_table(study: StudyResult, z: float = 2.0) -> pd.DataFrame:
    """Top bucket's error minus each mixture's, seed by seed (positive: the looser pool is
    better), at every checkpoint: mean, standard error over seeds, and the sign at ``z``
    standard errors ("top better", "mixture better" or "within noise")."""
    top = study.bucket_errors[0]
    rows = []
    for k in sorted(study.mixture_errors):
        diff = 100 * (top - study.mixture_errors[k])  # (seeds, checkpoints), points
        mean, se = diff.mean(axis=0), diff.std(axis=0, ddof=1) / np.sqrt(diff.shape[0])
        for c, n in enumerate(study.checkpoints):
            sign = "mixture better" if mean[c] - z * se[c] > 0 else "top better" if mean[c] + z * se[c] < 0 else "within noise"
            rows.append({"mixture": f"top {10 * k}%", "k": k, "samples seen": int(n),
                         "passes": n / study.bucket_size, "difference": mean[c], "se": se[c], "sign": sign})
    return pd.DataFrame(rows)


def predicted_crossover(study: StudyResult, k: int, form: str = "utility", points: int = 400) -> float | None:
    """Passes over one bucket from which the law predicts the top-k mixture to beat the top
    bucket at every larger budget, on a fine grid of budgets (not the checkpoints)."""
    N = study.bucket_size
    law = study.fits[form].law
    ns = np.geomspace(study.checkpoints[0], study.checkpoints[-1], points)
    better = np.array([law.error(n, range(k), N, form) < law.error(n, [0], N, form) for n in ns])
    for i in range(len(ns)):
        if better[i:].all():
            return float(ns[i] / N)
    return None


def measured_crossover(table: pd.DataFrame, k: int) -> tuple[float | None, float | None]:
    """(last checkpoint where the top bucket is significantly better, first checkpoint after it
    where the top-k mixture is significantly better), in passes: the measured crossover lies
    between them. None where there is no such checkpoint."""
    rows = table[table.k == k].sort_values("passes")
    top = rows[rows.sign == "top better"]
    if top.empty:
        return None, None
    last_top = float(top.passes.max())
    later = rows[(rows.passes > last_top) & (rows.sign == "mixture better")]
    return last_top, (float(later.passes.min()) if not later.empty else None)


#: Half-lives (passes) searched when mapping the fresh-data curve onto the repeated one.
HALF_LIFE_GRID = np.geomspace(0.5, 200, 400)


def repetition_half_life(study: StudyResult, grid=None) -> float:
    """The half-life that maps the fresh-data curve onto the repeated top bucket's curve:
    repeated error at n equals fresh error at the discounted count n_eff(n; tau) =
    sum_k (samples in epoch k) 2^(-k / tau). The fresh curve is interpolated linearly in
    log samples; fitted on the checkpoints used for the laws. Capacity limits are in both
    curves, so tau measures repetition alone. Returns tau in passes (np.inf when no decay
    fits better than the largest value of the grid)."""
    grid = HALF_LIFE_GRID if grid is None else np.asarray(grid)
    return _half_life(study.checkpoints, study.bucket_size, study.bucket_errors[0].mean(axis=0),
                      study.fresh_errors.mean(axis=0), study.fit_mask, grid)


def _half_life(ck, N, repeated, fresh, mask, grid) -> float:
    from .laws import epoch_samples

    log_ck = np.log(ck)
    sse = []
    for tau in grid:
        n_eff = np.array([np.sum(epoch_samples(n, N) * 0.5 ** (np.arange(int(n // N) + 1) / tau)) for n in ck[mask]])
        pred = np.interp(np.log(n_eff), log_ck, fresh)
        sse.append(np.sum((pred - repeated[mask]) ** 2))
    best = int(np.argmin(sse))
    return float(grid[best]) if best < len(grid) - 1 else float("inf")


def half_life_bootstrap(study: StudyResult, n_boot: int = 200, seed: int = 0, grid=None) -> np.ndarray:
    """:func:`repetition_half_life` on seed resamples (the same seeds for both curves: they are paired)."""
    grid = HALF_LIFE_GRID if grid is None else np.asarray(grid)
    rng = np.random.default_rng(seed)
    S = study.fresh_errors.shape[0]
    out = []
    for _ in range(n_boot):
        pick = rng.integers(0, S, S)
        out.append(_half_life(study.checkpoints, study.bucket_size, study.bucket_errors[0][pick].mean(axis=0),
                              study.fresh_errors[pick].mean(axis=0), study.fit_mask, grid))
    return np.array(out)


def per_seed_utilities(study: StudyResult) -> np.ndarray:
    """Seed by seed, each bucket's utility and then the validation pool's: every pool fitted
    alone on that seed's curve (utility form) with a and d held at the buckets' fit, so the
    b are on one scale. Shape (seeds, buckets + 1)."""
    law = study.fit.law
    mask, ck, N = study.fit_mask, study.checkpoints, study.bucket_size

    def b_of(curve, name):
        return fit_pools([FitPoints(name, ck[mask], curve[mask])], N, fixed_a=law.a, fixed_d=law.d).law.b[0]

    out = []
    for s in range(study.validation_errors.shape[0]):
        row = [b_of(study.bucket_errors[i, s], f"bucket {i}") for i in range(study.bucket_errors.shape[0])]
        out.append(row + [b_of(study.validation_errors[s], "validation")])
    return np.array(out)


def fresh_floor_law(study: StudyResult) -> tuple[FitResult, FitResult]:
    """A diagnostic the paper could not run: the fresh-data curve fitted with the base law
    (one pass, no repetition: ``y = (a n / 1e5)^b + d``), and the buckets' effective-data law
    refitted with ``d`` held at that floor, the error the student cannot go below whatever the
    data. Returns (fresh-data fit, bucket fit with the measured floor)."""
    mask, ck, N = study.fit_mask, study.checkpoints, study.bucket_size
    never_repeated = float(ck[-1]) * 2  # a pool larger than any budget: one epoch
    fresh_fit = fit_pools([FitPoints("fresh", ck[mask], study.fresh_errors.mean(axis=0)[mask])], never_repeated)
    points = [FitPoints(f"bucket {i}", ck[mask], study.bucket_errors[i].mean(axis=0)[mask])
              for i in range(study.bucket_errors.shape[0])]
    floored = fit_pools(points, N, form="effective_data", fixed_d=fresh_fit.law.d)
    return fresh_fit, floored
