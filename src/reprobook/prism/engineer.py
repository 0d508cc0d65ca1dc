"""The prompt engineer F: a chat LLM that answers in JSON, sampled for many streams at once.

* Our own system prompt, always: SmolLM2's chat template injects a default one when the messages
  have none.
* Batched sampling: every row starts with our system turn, whose keys and values are computed once
  and shared by all rows (``share_system_cache``; without it, plain left padding).
* PAIR's prefill: the assistant turn starts with ``{"prompt": "`` so the model only writes the
  prompt's text; generation stops at ``"}`` (or a newline, or ``max_new_tokens``).
* :func:`extract_prompt` parses the answer with a JSON decoder (quotes and braces inside the
  prompt survive, unlike the reference's first-"{"-to-first-"}" slice), then falls back to the
  text between the prefill and the last ``"}``. Answers that are empty, one word, the
  instructions' placeholder, or over-length are rejected and the stream is resampled, up to
  ``retries`` times; every failure is counted.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

PREFILL = '{"prompt": "'
# The prompt's value up to the first quote that closes it (followed by "}" or ","): inner quotes survive.
_FALLBACK = re.compile(r'"prompt"\s*:\s*"(.*?)"\s*[},]', re.DOTALL)
#: Answers that are the instructions' placeholders, not prompts.
PLACEHOLDERS = {"p", "prompt", "your prompt", "your prompt here", "text", "..."}


def extract_prompt(answer: str, *, max_words: int = 40) -> tuple[str | None, str]:
    """``(prompt, status)`` from an answer that starts with :data:`PREFILL`'s continuation or is a
    whole JSON object. ``status``: "ok", or why there is no prompt ("unparsable", "over-length",
    "empty", "one word", "placeholder")."""
    text = answer if answer.lstrip().startswith("{") else PREFILL + answer
    start = text.find("{")
    prompt = None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
        if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
            prompt = obj["prompt"]
    except json.JSONDecodeError:
        match = _FALLBACK.search(text[start:])
        if match:
            prompt = match.group(1)
    if prompt is None:
        closed = '"' in text[start + len(PREFILL):] if text[start:].startswith(PREFILL) else False
        return None, "unparsable" if closed else "over-length"
    prompt = " ".join(prompt.replace("\\n", " ").split())
    words = prompt.split()
    if not words:
        return None, "empty"
    if prompt.lower().strip(" .") in PLACEHOLDERS:
        return None, "placeholder"
    if len(words) == 1:
        return None, "one word"
    if len(words) > max_words:
        return None, "over-length"
    return prompt, "ok"


@dataclass
class EngineerLog:
    """Every answer's status, and the number of sampled rows and new tokens (for the speed figures)."""

    statuses: Counter = field(default_factory=Counter)
    rows: int = 0
    new_tokens: int = 0
    calls: int = 0

    @property
    def failure_rate(self) -> float:
        total = sum(self.statuses.values())
        return 1 - self.statuses["ok"] / total if total else 0.0


class Engineer:
    """F: ``model`` and ``tokenizer`` of a chat LM (SmolLM2-135M-Instruct here), ``system`` our system
    prompt; sampling at ``temperature`` with nucleus ``top_p`` (the paper's 1.0 and 0.9)."""

    def __init__(self, model, tokenizer, system: str, *, temperature: float = 1.0, top_p: float = 0.9,
                 max_new_tokens: int = 32, retries: int = 5, max_words: int = 40, share_system_cache: bool = True):
        if not system or not system.strip():
            raise ValueError("the engineer needs a system prompt (SmolLM2's template would inject its own default)")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the engineer's tokenizer has no chat template")
        if not temperature > 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        if max_new_tokens < 4 or retries < 0:
            raise ValueError(f"need max_new_tokens >= 4 and retries >= 0, got {max_new_tokens}, {retries}")
        self.model, self.tokenizer, self.system = model.eval(), tokenizer, system
        self.temperature, self.top_p = temperature, top_p
        self.max_new_tokens, self.retries, self.max_words = max_new_tokens, retries, max_words
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.log = EngineerLog()
        self.share_system_cache = share_system_cache
        self._prefix: tuple[str, list[int], object] | None = None  # system turn: text, ids, its keys and values

    def chat_text(self, turns: Sequence[dict]) -> str:
        """The model's input for one stream: our system prompt, the turns, the assistant's prefill."""
        messages = [{"role": "system", "content": self.system}, *turns]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + PREFILL

    def _system_prefix(self, device) -> tuple[str, list[int], object]:
        """Our system turn's text, ids and keys/values (computed once): every stream's input starts
        with it, so its prefill is shared instead of repeated per row."""
        if self._prefix is None:
            text = self.chat_text([{"role": "user", "content": "-"}])
            marker = "<|im_start|>user"
            if marker not in text:
                raise ValueError("share_system_cache needs a ChatML template (SmolLM2's); pass "
                                 "share_system_cache=False for this tokenizer")
            prefix_text = text[: text.index(marker)]
            ids = self.tokenizer.encode(prefix_text, add_special_tokens=False)
            with torch.no_grad():
                out = self.model(torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
            cache = getattr(out, "cache", None)
            self._prefix = (prefix_text, ids, out.past_key_values if cache is None else cache)
        return self._prefix

    def _batch(self, texts: Sequence[str], device) -> tuple[torch.Tensor, torch.Tensor, object]:
        """Input ids, attention mask and (with the shared cache) the system turn's cache for a batch.
        Without the cache: left padding, so every row's last position is its next token. With it:
        ``[system | padding | rest]``, the padding masked in the middle (position ids follow the
        mask, so every row's tokens sit where they would alone), and generation starts after the
        cached system turn."""
        if not self.share_system_cache:
            encoded = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
            head, cache = [], None
        else:
            prefix_text, head, prefix_cache = self._system_prefix(device)
            if not all(t.startswith(prefix_text) for t in texts):
                raise ValueError("every conversation must start with the engineer's own system turn")
            encoded = [self.tokenizer.encode(t[len(prefix_text):], add_special_tokens=False) for t in texts]
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(texts))
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), len(head) + width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        ids[:, : len(head)] = torch.tensor(head, dtype=torch.long)
        mask[:, : len(head)] = 1
        for i, e in enumerate(encoded):
            ids[i, ids.shape[1] - len(e):] = torch.tensor(e)
            mask[i, ids.shape[1] - len(e):] = 1
        return ids.to(device), mask.to(device), cache

    def sample_raw(self, conversations: Sequence[Sequence[dict]], seed: int) -> list[str]:
        """One sampled continuation (after the prefill) per conversation, all in one batch, the random
        draws from ``seed`` alone (the global random state is left as it was)."""
        device = next(self.model.parameters()).device
        ids, mask, cache = self._batch([self.chat_text(c) for c in conversations], device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(seed)
            out = self.model.generate(ids, attention_mask=mask, cache=cache, do_sample=True,
                                      temperature=self.temperature, top_p=self.top_p, top_k=0,
                                      max_new_tokens=self.max_new_tokens, pad_token_id=self.pad_id,
                                      stop_strings=['"}', "\n"], tokenizer=self.tokenizer)
        new = out[:, ids.shape[1]:].cpu()
        self.log.calls += 1
        self.log.rows += len(conversations)
        self.log.new_tokens += int((new != self.pad_id).sum())
        return [self.tokenizer.decode(row, skip_special_tokens=True) for row in new]

    def propose(self, conversations: Sequence[Sequence[dict]], seed: int) -> list[str | None]:
        """A valid prompt per conversation, resampling the failed rows up to ``retries`` times (each
        retry with a new seed); None where every try failed."""
        if not conversations:
            raise ValueError("no conversations to answer")
        prompts: list[str | None] = [None] * len(conversations)
        todo = list(range(len(conversations)))
        for attempt in range(self.retries + 1):
            answers = self.sample_raw([conversations[i] for i in todo], seed * 1009 + attempt)
            still = []
            for i, answer in zip(todo, answers):
                prompt, status = extract_prompt(answer, max_words=self.max_words)
                self.log.statuses[status] += 1
                if prompt is None:
                    still.append(i)
                else:
                    prompts[i] = prompt
            todo = still
            if not todo:
                break
        return prompts
