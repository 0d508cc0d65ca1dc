"""The experiments of chapter 02: the released parameters, and our own study."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .fit import FitPoints, FitResult, fit_pools
from .laws import PoolLaw, frontier
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
    web: WebPool
    bucket_size: int
    checkpoints: np.ndarray  # samples seen
    bucket_errors: np.ndarray  # (buckets, seeds, checkpoints)
    validation_errors: np.ndarray  # (seeds, checkpoints)
    fit: FitResult  # per-bucket laws, shared a and d
    validation_fit: FitResult  # the validation pool fitted alone
    predicted_mixtures: dict  # k -> predicted error at checkpoints (made before training mixtures)
    mixture_errors: dict  # k -> (seeds, checkpoints), trained after predicting
    fit_mask: np.ndarray  # which checkpoints were used for fitting


def study_checkpoints(cfg, bucket_size: int) -> np.ndarray:
    raw = np.geomspace(cfg.min_passes, cfg.max_passes, cfg.checkpoints) * bucket_size
    ck = np.unique(np.maximum(cfg.batch, (raw // cfg.batch) * cfg.batch).astype(int))
    return ck


def run_study(cfg, seed: int, device: str, progress=None) -> StudyResult:
    """Train bucket students, fit the laws, predict the mixtures, then train them."""
    rng = np.random.default_rng([seed, 2])
    web = make_web_pool(
        cfg.pool_size, cfg.n_buckets, rng, quality_beta=tuple(cfg.quality_beta), metadata_noise=cfg.metadata_noise
    )
    N = web.bucket_size
    ck = study_checkpoints(cfg, N)
    train = dict(hidden=cfg.hidden, batch=cfg.batch, lr=cfg.lr, weight_decay=cfg.weight_decay, device=device,
                 progress=progress)
    # Phase 1: the buckets, and the validation pool (a random 25% of the top 40%, one bucket's size).
    top = np.concatenate(web.buckets[: min(4, cfg.n_buckets)])
    validation = rng.choice(top, size=N, replace=False)
    errs = train_students(web, [*web.buckets, validation], ck, cfg.seeds, rng, **train)
    bucket_errors, validation_errors = errs[:-1], errs[-1]
    # Fit the laws on the buckets (shared a, d), and the validation pool alone.
    mask = ck >= cfg.fit_from_passes * N
    names = [f"bucket {i}" for i in range(cfg.n_buckets)]
    points = [FitPoints(names[i], ck[mask], bucket_errors[i].mean(axis=0)[mask]) for i in range(cfg.n_buckets)]
    fit = fit_pools(points, N)
    validation_fit = fit_pools([FitPoints("validation", ck[mask], validation_errors.mean(axis=0)[mask])], N)
    # Predict the top-k mixtures from the bucket fits alone ...
    predicted = {
        k: np.array([fit.law.error(n, range(k), N) for n in ck]) for k in range(2, cfg.n_buckets + 1)
    }
    # ... and only then train them.
    mixtures = [np.concatenate(web.buckets[:k]) for k in range(2, cfg.n_buckets + 1)]
    mix_errs = train_students(web, mixtures, ck, cfg.seeds, rng, **train)
    mixture_errors = {k: mix_errs[k - 2] for k in range(2, cfg.n_buckets + 1)}
    return StudyResult(web, N, ck, bucket_errors, validation_errors, fit, validation_fit, predicted, mixture_errors,
                       mask)


def measured_best(study: StudyResult) -> tuple[np.ndarray, list]:
    """The best top-k pool at each checkpoint, by mean measured error, and where it changes."""
    curves = [study.bucket_errors[0].mean(axis=0)] + [
        study.mixture_errors[k].mean(axis=0) for k in sorted(study.mixture_errors)
    ]
    best = np.argmin(np.stack(curves), axis=0) + 1
    changes = [(int(study.checkpoints[i]), int(best[i - 1]), int(best[i])) for i in range(1, len(best))
               if best[i] != best[i - 1]]
    return best, changes


def crossover(study: StudyResult) -> dict:
    """Where a looser filter starts to beat the top bucket, measured and predicted.

    Measured: the first checkpoint from which the best top-k mixture (k >= 2)
    has lower mean error than the top bucket at every later checkpoint.
    Predicted: the same on the fitted laws' curves.
    """
    ck = study.checkpoints
    top = study.bucket_errors[0].mean(axis=0)
    loose = np.min(np.stack([study.mixture_errors[k].mean(axis=0) for k in sorted(study.mixture_errors)]), axis=0)
    N = study.bucket_size
    top_pred = np.array([study.fit.law.error(n, [0], N) for n in ck])
    loose_pred = np.min(np.stack([study.predicted_mixtures[k] for k in sorted(study.predicted_mixtures)]), axis=0)

    def first_lasting(better):
        for i in range(len(better)):
            if better[i:].all():
                return int(ck[i])
        return None

    return {
        "measured": first_lasting(loose < top),
        "predicted": first_lasting(loose_pred < top_pred),
        "top_minus_loose_low": float(np.mean((top - loose)[study.fit_mask & (ck <= 4 * N)])),
        "top_minus_loose_high": float(np.mean((top - loose)[-3:])),
    }
