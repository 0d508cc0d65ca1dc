"""Prompt inversion's proxy objective: a prompt's CLIP similarity to a target image.

For free tokens ``X`` (one-hot, ``n x |V|``) with embeddings ``XE``, the text tower reads
``BOS + XE + EOS + PAD ...`` and is pooled at the EOS position ``1 + n``, fixed by the
template (never ``argmax(ids)``, which means nothing for soft embeddings), then projected:
``h(XE)``. The loss is

    L(X) = 1 - mean_j cos(h(XE), g(Y_j)),

``g`` the image tower, ``Y_j`` the target image(s). Every optimizer minimizes this proxy; what
prompt inversion wants is an image *generated* from the prompt that looks like ``Y``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .objective import Objective


def clip_allowed_mask(clip, *, ascii_only: bool = True) -> torch.Tensor:
    """Ids a free token may take in a CLIP prompt: never BOS, EOS or PAD (EOS would move the pooled
    position), and with ``ascii_only`` only ids that decode to non-empty printable ASCII."""
    tok = clip.tokenizer
    vocab_size = clip.model.token_embedding.weight.shape[0]
    mask = torch.ones(vocab_size, dtype=torch.bool)
    mask[[tok.bos_id, tok.eos_id, tok.pad_id]] = False
    if ascii_only:
        if tok.decode is None:
            raise ValueError("ascii_only needs a tokenizer that can decode ids")
        for i in range(vocab_size):
            if mask[i]:
                text = tok.decode([i])
                mask[i] = bool(text.strip()) and text.isascii() and text.isprintable()
    return mask


class ClipImageObjective(Objective):
    """``1 - cos(text embedding of BOS + free + EOS, image embedding)``, averaged over target images.

    ``clip``: a :class:`~reprobook.models.clip.ClipModel` (its weights are not changed; eval mode);
    ``target_images``: float ``(m, 3, H, W)`` in [0, 1] (one image: ``(3, H, W)`` is accepted);
    ``allowed``: mask of the free tokens' ids (default :func:`clip_allowed_mask`).
    """

    def __init__(self, clip, target_images, allowed=None):
        self.clip = clip
        self.model = clip.model.eval()
        self.device = clip.device
        self.tokenizer = clip.tokenizer
        images = torch.as_tensor(target_images) if not isinstance(target_images, torch.Tensor) else target_images
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
            raise ValueError(f"target images must have shape (3, H, W) or (m, 3, H, W) with m >= 1, "
                             f"got {tuple(images.shape)}")
        if not torch.isfinite(images).all():
            raise ValueError("target images contain NaN or infinite values")
        self.target = F.normalize(clip.encode_images(images), dim=-1)  # [m, d], range checked there
        self.set_allowed(clip_allowed_mask(clip) if allowed is None else allowed)

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.model.token_embedding.weight

    def max_free(self) -> int:
        return self.tokenizer.context_length - 2  # BOS and EOS

    def ids(self, free: torch.Tensor) -> torch.Tensor:
        """Full token rows ``[B, context]``: BOS, the free ids, EOS, PAD."""
        free = self.check_free(free)
        b, n = free.shape
        rows = torch.full((b, self.tokenizer.context_length), self.tokenizer.pad_id, dtype=torch.long,
                          device=self.device)
        rows[:, 0] = self.tokenizer.bos_id
        rows[:, 1:1 + n] = free
        rows[:, 1 + n] = self.tokenizer.eos_id
        return rows

    def _loss(self, text_emb: torch.Tensor) -> torch.Tensor:
        return 1 - (F.normalize(text_emb, dim=-1) @ self.target.T).mean(dim=1)

    def loss_from_embeds(self, free_embeds: torch.Tensor) -> torch.Tensor:
        b, n, _ = free_embeds.shape
        self.check_length(n)
        template = self.model.token_embedding(self.ids(torch.full((1, n), int(self.allowed_ids[0]),
                                                                  device=self.device)))[0]
        embeds = torch.cat([template[None, :1].expand(b, -1, -1), free_embeds,
                            template[None, 1 + n:].expand(b, -1, -1)], dim=1)
        return self._loss(self.clip.encode_embeddings(embeds, 1 + n))

    def evaluate(self, free: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact losses of id rows through the model's own ``encode_text`` (its own pooling); a
        similarity has no success criterion, so success is always False."""
        rows = self.ids(free)
        with torch.no_grad():
            loss = torch.cat([self._loss(self.clip.encode_ids(chunk)) for chunk in rows.split(batch_size)])
        return loss, torch.zeros(len(loss), dtype=torch.bool, device=loss.device)

    def similarity_of_texts(self, texts: list[str]) -> torch.Tensor:
        """``1 - loss`` of arbitrary texts (captions, decoded prompts), tokenized as the tokenizer does."""
        emb = self.clip.embed_texts(texts)
        return 1 - self._loss(emb.to(self.device))
