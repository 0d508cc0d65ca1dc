"""A small, real version of the QQT situation: a web pool of uneven quality,
filtered into buckets by a noisy quality score, and students trained on each
bucket (and on mixtures of buckets) for many compute budgets.

* Inputs come from a fixed generator (standard normal in ``dim`` dimensions)
  and labels from a fixed random teacher network (``classes`` classes).
* Each sample has a latent quality ``q`` (Beta distributed); with probability
  ``1 - q`` its label is replaced by a random class (a mis-paired caption).
* A quality scorer, a ridge regression from a few noisy observable
  "metadata" features to quality, trained on a small hand-rated clean set,
  stands in for CLIP score / T-MARS. The pool is ranked by score into
  buckets of equal size: top 0-10%, 10-20%, ...
* Students (one MLP architecture, one constant learning rate, so a run
  evaluated at checkpoints is the same as separate runs of those lengths)
  are trained all at once with ``torch.func.vmap``; each has its own data
  stream: passes over its pool in a fresh random order per pass. With
  ``init_seed``, seed ``s`` starts from the same weights on every pool, so
  pools can be compared seed by seed (paired differences).
* A fresh-data control (:meth:`WebPool.with_fresh_like`): new samples of a
  bucket's quality, never repeated, to tell the cost of repetition from the
  limits of the student.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class WebPool:
    X: np.ndarray  # (M, dim) float32
    y: np.ndarray  # (M,) given labels, some corrupted
    y_clean: np.ndarray  # (M,) teacher labels
    quality: np.ndarray  # (M,) latent quality q
    score: np.ndarray  # (M,) the scorer's quality estimate
    buckets: list[np.ndarray]  # indices of each bucket, best first
    X_test: np.ndarray
    y_test: np.ndarray
    teacher: tuple[np.ndarray, np.ndarray]  # (W1, W2) of the labelling network

    @property
    def bucket_size(self) -> int:
        return len(self.buckets[0])

    def corruption_rate(self, idx) -> float:
        return float(np.mean(self.y[idx] != self.y_clean[idx]))

    def with_fresh_like(self, like: np.ndarray, m: int, rng: np.random.Generator) -> tuple["WebPool", np.ndarray]:
        """This pool with ``m`` new samples of the same quality as the samples ``like`` appended,
        and their indices: qualities resampled from ``like``'s, new inputs, teacher labels
        corrupted with probability ``1 - q``. Conditional on its quality a sample's input and
        label do not depend on the score, so these are draws from the bucket's distribution."""
        if m < 1 or len(like) == 0:
            raise ValueError(f"need m >= 1 new samples and a non-empty reference set, got m={m}, {len(like)}")
        classes = self.teacher[1].shape[1]
        X = rng.standard_normal((m, self.X.shape[1])).astype(np.float32)
        y_clean = _teacher(X, *self.teacher).argmax(axis=1)
        q = rng.choice(self.quality[like], size=m, replace=True)
        corrupt = rng.random(m) > q
        y = y_clean.copy()
        y[corrupt] = rng.integers(0, classes, corrupt.sum())
        M = len(self.y)
        extended = WebPool(
            np.concatenate([self.X, X]), np.concatenate([self.y, y]), np.concatenate([self.y_clean, y_clean]),
            np.concatenate([self.quality, q]), np.concatenate([self.score, np.full(m, np.nan)]),
            self.buckets, self.X_test, self.y_test, self.teacher,
        )
        return extended, np.arange(M, M + m)


def _teacher(X, W1, W2):
    return np.tanh(X @ W1) @ W2


def make_web_pool(
    pool_size: int,
    n_buckets: int,
    rng: np.random.Generator,
    *,
    dim: int = 16,
    classes: int = 10,
    teacher_width: int = 32,
    quality_beta: tuple[float, float] = (1.5, 1.0),
    clean_set: int = 400,
    metadata_noise: float = 0.5,
    test_size: int = 5000,
) -> WebPool:
    """The synthetic web pool; ``n_buckets`` buckets of ``pool_size / 10`` samples each."""
    from sklearn.linear_model import Ridge

    if pool_size < 10 * n_buckets or n_buckets < 1 or n_buckets > 10:
        raise ValueError("need 1 <= n_buckets <= 10 and pool_size >= 10 * n_buckets")
    W1 = rng.standard_normal((dim, teacher_width)) / np.sqrt(dim)
    W2 = rng.standard_normal((teacher_width, classes))

    def draw(m):
        X = rng.standard_normal((m, dim)).astype(np.float32)
        return X, _teacher(X, W1, W2).argmax(axis=1)

    X, y_clean = draw(pool_size)
    q = rng.beta(*quality_beta, pool_size)
    corrupt = rng.random(pool_size) > q
    y = y_clean.copy()
    y[corrupt] = rng.integers(0, classes, corrupt.sum())
    # What a curator can observe of a sample's quality: a few noisy
    # "metadata" features (think caption length, resolution, language
    # detector, text-image similarity), each q plus noise.
    def metadata(quality):
        return quality[:, None] + metadata_noise * rng.standard_normal((len(quality), 4))

    # The quality scorer: a regression from metadata to quality, trained on a
    # small clean set where quality was rated by hand.
    q_rated = rng.beta(*quality_beta, clean_set)
    scorer = Ridge(alpha=1.0).fit(metadata(q_rated), q_rated)
    score = scorer.predict(metadata(q))
    ranked = np.argsort(-score, kind="stable")
    size = pool_size // 10
    buckets = [ranked[i * size : (i + 1) * size] for i in range(n_buckets)]
    X_test, y_test = draw(test_size)
    return WebPool(X, y, y_clean, q, score, buckets, X_test, y_test, (W1, W2))


def stream_indices(pool: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` sample indices: passes over ``pool``, each in a fresh random order."""
    passes = -(-total // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(passes)])[:total]


def train_students(
    web: WebPool,
    pools: list[np.ndarray],
    checkpoints: np.ndarray,
    seeds: int,
    rng: np.random.Generator,
    *,
    hidden: int = 64,
    batch: int = 32,
    lr: float = 0.05,
    weight_decay: float = 0.0,
    device: str = "cpu",
    progress=None,
    vectorized: bool = True,
    init_seed: int | None = None,
):
    """Train ``len(pools) * seeds`` students at once; test error at each checkpoint.

    ``checkpoints`` are samples seen (multiples of ``batch``). Returns an
    array of shape (len(pools), seeds, len(checkpoints)).

    ``vectorized=False`` trains the same students (same initialization, same
    data streams, same update) one after another with plain autograd: the
    baseline that ``torch.func.vmap`` is measured against, and an independent
    check of it.

    ``init_seed``: when given, every pool's seed-``s`` student starts from the same
    weights (drawn from this seed), here and in any other call with the same
    ``init_seed``: differences between pools can then be paired by seed.
    """
    import torch
    from torch.func import functional_call, grad, vmap

    checkpoints = np.asarray(checkpoints, dtype=int)
    if np.any(checkpoints % batch) or np.any(np.diff(checkpoints) <= 0) or checkpoints[0] <= 0:
        raise ValueError(f"checkpoints must be increasing positive multiples of batch={batch}")
    steps = int(checkpoints[-1] // batch)
    students = [(p, s) for p in range(len(pools)) for s in range(seeds)]
    S = len(students)
    dim = web.X.shape[1]
    classes = int(max(web.y.max(), web.y_test.max()) + 1)
    torch_gen = torch.Generator().manual_seed(int(rng.integers(2**31)) if init_seed is None else int(init_seed))
    model = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes))

    def init():
        # PyTorch's default Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn for all S students.
        params = {}
        for layer_name, layer in model.named_children():
            if not isinstance(layer, torch.nn.Linear):
                continue
            bound = 1 / np.sqrt(layer.in_features)
            for name, p in layer.named_parameters():
                if init_seed is None:
                    draw = torch.rand((S, *p.shape), generator=torch_gen)
                else:  # one draw per seed, shared by the pools
                    draw = torch.rand((seeds, *p.shape), generator=torch_gen)[[s for _, s in students]]
                params[f"{layer_name}.{name}"] = (draw * 2 - 1) * bound
        return {k: v.to(device) for k, v in params.items()}

    params = init()
    streams = np.stack([stream_indices(pools[p], steps * batch, rng) for p, _ in students])  # (S, steps*batch)
    X = torch.as_tensor(web.X, device=device)
    Y = torch.as_tensor(web.y, device=device)
    X_test = torch.as_tensor(web.X_test, device=device)
    y_test = torch.as_tensor(web.y_test, device=device)
    streams_t = torch.as_tensor(streams, device=device)

    def loss_fn(p, xb, yb):
        logits = functional_call(model, p, (xb,))
        return torch.nn.functional.cross_entropy(logits, yb)

    errors = np.zeros((S, len(checkpoints)))
    next_ck = 0
    steps_iter = range(1, steps + 1) if progress is None else progress(range(1, steps + 1), desc="training students")
    if vectorized:
        grad_all = vmap(grad(loss_fn))
        predict_all = vmap(lambda p: functional_call(model, p, (X_test,)).argmax(dim=-1))
        for t in steps_iter:
            idx = streams_t[:, (t - 1) * batch : t * batch]
            g = grad_all(params, X[idx], Y[idx])
            params = {k: params[k] * (1 - lr * weight_decay) - lr * g[k] for k in params}
            if t * batch == checkpoints[next_ck]:
                with torch.no_grad():
                    wrong = (predict_all(params) != y_test[None, :]).float().mean(dim=1)
                errors[:, next_ck] = wrong.cpu().numpy()
                next_ck += 1
    else:
        students_params = [{k: v[s].clone() for k, v in params.items()} for s in range(S)]
        for t in steps_iter:
            idx = streams_t[:, (t - 1) * batch : t * batch]
            for s, p in enumerate(students_params):
                leaves = {k: v.requires_grad_(True) for k, v in p.items()}
                loss = loss_fn(leaves, X[idx[s]], Y[idx[s]])
                grads = torch.autograd.grad(loss, list(leaves.values()))
                with torch.no_grad():
                    students_params[s] = {
                        k: v.detach() * (1 - lr * weight_decay) - lr * g for (k, v), g in zip(leaves.items(), grads)
                    }
            if t * batch == checkpoints[next_ck]:
                with torch.no_grad():
                    for s, p in enumerate(students_params):
                        pred = functional_call(model, p, (X_test,)).argmax(dim=-1)
                        errors[s, next_ck] = (pred != y_test).float().mean().item()
                next_ck += 1
    return errors.reshape(len(pools), seeds, len(checkpoints))
