"""The numerical core of PC-CLIP: the pairwise-difference losses, difference
accuracy, comparative prompting, the geometry distances and embedding
arithmetic. All of it works on embeddings, so it is the same for the tiny CLIP
and ViT-L-14."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def image_differences(u_first: torch.Tensor, u_second: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``normalize(normalize(u_1) - normalize(u_2))``: each image embedding is normalized
    *before* the difference (the official code's order), then the difference itself.
    Identical images have no direction: an error naming the pair."""
    if u_first.shape != u_second.shape or u_first.ndim != 2:
        raise ValueError(f"need two (n, d) embedding batches of one shape, got {tuple(u_first.shape)} "
                         f"and {tuple(u_second.shape)}")
    diff = F.normalize(u_first, dim=-1) - F.normalize(u_second, dim=-1)
    norms = diff.norm(dim=-1)
    if (norms < eps).any():
        bad = torch.nonzero(norms < eps).flatten()[:5].tolist()
        raise ValueError(f"pairs {bad} have (nearly) identical image embeddings: a difference needs two different "
                         "images")
    return diff / norms[:, None]


def pcclip_loss(text_emb: torch.Tensor, u_first: torch.Tensor, u_second: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:
    """PC-CLIP's loss: symmetric cross-entropy over the batch of
    ``S_ab = <normalize(f(T_a)), d_b> / tau``, with ``d_b`` from :func:`image_differences`.
    The temperature is fixed (1 in the paper), not CLIP's learned ``exp(logit_scale)``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t = F.normalize(text_emb, dim=-1)
    d = image_differences(u_first, u_second)
    logits = t @ d.T / temperature
    labels = torch.arange(len(t), device=t.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def pcclip_mse_loss(text_emb: torch.Tensor, u_first: torch.Tensor, u_second: torch.Tensor) -> torch.Tensor:
    """The MSE variant: ``|| normalize(f(T)) - (normalize(u_1) - normalize(u_2)) ||^2``, mean over entries."""
    target = F.normalize(u_first, dim=-1) - F.normalize(u_second, dim=-1)
    return F.mse_loss(F.normalize(text_emb, dim=-1), target)


def difference_correct(text_emb: torch.Tensor, u_first: torch.Tensor, u_second: torch.Tensor) -> np.ndarray:
    """Per pair: does the text of how the first differs from the second point along the
    image difference, ``<normalize(f(D_12)), normalize(u_1 - u_2)> > 0``? Chance is 50%."""
    cos = (F.normalize(text_emb, dim=-1) * image_differences(u_first, u_second)).sum(-1)
    return (cos > 0).cpu().numpy()


def comparative_prompting(class_emb: torch.Tensor, classes: Sequence[str],
                          comparisons: Mapping[tuple[str, str], torch.Tensor], alpha: float) -> torch.Tensor:
    """Class embeddings corrected by comparisons.

    With ``t_k = normalize(f("an image of k"))`` and ``c_ij = normalize(f(D_ij))``,
    where ``D_ij`` says how class ``i`` differs from class ``j``: if
    ``c_ij ~ t_i - t_j`` then ``t_i - c_ij`` is another estimate of ``t_j``, so
    ``t~_j = mean_i (t_i - c_ij)`` over the comparisons into ``j`` and
    ``t'_j = normalize(alpha t_j + (1 - alpha) t~_j)``; classes that no comparison
    names are unchanged. Returns the normalized ``(K, d)`` class embeddings.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if class_emb.ndim != 2 or len(class_emb) != len(classes):
        raise ValueError(f"class_emb must be (K, d) with K = {len(classes)} classes, got {tuple(class_emb.shape)}")
    index = {c: k for k, c in enumerate(classes)}
    t = F.normalize(class_emb, dim=-1)
    estimates: dict[int, list[torch.Tensor]] = {}
    for (ci, cj), c in comparisons.items():
        for name in (ci, cj):
            if name not in index:
                raise ValueError(f"comparison ({ci!r}, {cj!r}) names the unknown class {name!r}; "
                                 f"classes are {list(classes)}")
        if ci == cj:
            raise ValueError(f"comparison ({ci!r}, {cj!r}) compares a class with itself")
        estimates.setdefault(index[cj], []).append(t[index[ci]] - F.normalize(c, dim=-1))
    out = t.clone()
    for j, ests in estimates.items():
        out[j] = F.normalize(alpha * t[j] + (1 - alpha) * torch.stack(ests).mean(0), dim=-1)
    return out


def direction_distance(t_first: torch.Tensor, t_second: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``1 - cos(normalize(t_i - t_j), c_ij)`` per row: how far a comparison's embedding is from
    the difference of the two class embeddings (0 aligned, 1 orthogonal, 2 opposite).
    With ``c_ji`` in place of ``c_ij`` it is the reverse distance, which should grow."""
    d = F.normalize(F.normalize(t_first, dim=-1) - F.normalize(t_second, dim=-1), dim=-1)
    return 1 - (d * F.normalize(c, dim=-1)).sum(-1)


def edit_embedding(u: torch.Tensor, c: torch.Tensor, beta: float) -> torch.Tensor:
    """Embedding arithmetic: ``normalize(normalize(u) + beta normalize(c))``."""
    return F.normalize(F.normalize(u, dim=-1) + beta * F.normalize(c, dim=-1), dim=-1)


def nearest(queries: torch.Tensor, gallery: torch.Tensor, exclude: torch.Tensor | None = None) -> np.ndarray:
    """Index of the gallery row with the highest cosine to each query; ``exclude[q]`` (a gallery
    index per query, e.g. the query image itself) is never returned."""
    sims = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    if exclude is not None:
        sims[torch.arange(len(sims)), exclude] = -torch.inf
    return sims.argmax(-1).cpu().numpy()


def weight_average(theta_ft: Mapping[str, torch.Tensor], theta_0: Mapping[str, torch.Tensor],
                   alpha: float) -> dict[str, torch.Tensor]:
    """WiSE-FT: ``alpha theta_ft + (1 - alpha) theta_0``, key by key."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if set(theta_ft) != set(theta_0):
        raise ValueError("the two weight sets name different tensors")
    return {k: alpha * theta_ft[k] + (1 - alpha) * theta_0[k] for k in theta_ft}
