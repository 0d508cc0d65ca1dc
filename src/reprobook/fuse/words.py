"""Words on two tokenizers: the fitting vocabulary, its tubes, and the alignment of a prompt's
tokens to words by character offsets.

Model A's tokens are located by the lengths of their decoded texts (A is byte-level BPE: the
texts of a prompt's tokens concatenate to its decoded text); model B's by its tokenizer's offset
mapping (BERT lower-cases and splits punctuation, so counts alone would misalign). A word is a
whitespace-delimited stretch of the decoded text; a token belongs to the word holding its first
non-space character.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

import numpy as np
import torch

_WORD = re.compile(r"\S+")


def fitting_words(token_texts_a: list[str], tokenizer_b, min_chars: int = 2) -> list[str]:
    """The lower-cased words the adapter is fitted on: the words of Python's documentation,
    B's whole-word vocabulary entries and A's word tokens (" word"), alphabetic, at least
    ``min_chars`` long; sorted, without duplicates."""
    from ..models.corpus import python_docs_paragraphs

    alpha = re.compile(rf"^[a-z]{{{min_chars},}}$")
    words = set()
    for para in python_docs_paragraphs():
        words.update(w for w in re.findall(r"[a-z]+", para.lower()) if alpha.match(w))
    words.update(t for t in tokenizer_b.get_vocab() if alpha.match(t))
    words.update(t[1:] for t in token_texts_a if t.startswith(" ") and alpha.match(t[1:]))
    return sorted(words)


@dataclass
class WordTokens:
    """Words with their A ids (tokenized with the leading space prompts have) and B ids."""

    words: list[str]
    ids_a: list[list[int]]
    ids_b: list[list[int]]

    @property
    def n_a(self) -> np.ndarray:
        return np.array([len(i) for i in self.ids_a])

    @property
    def n_b(self) -> np.ndarray:
        return np.array([len(i) for i in self.ids_b])

    @property
    def k(self) -> np.ndarray:
        """Each word's tube length: ``max(n_A, n_B)``."""
        return np.maximum(self.n_a, self.n_b)

    def tubes(self, index, emb_a: torch.Tensor, emb_b: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tubes ``(n, d_A, k)`` and ``(n, d_B, k)`` (float64) of the words at ``index``, each zero-padded
        explicitly past its own length (never by matching a pad or EOS embedding)."""
        index = np.asarray(index)
        x_a = torch.zeros(len(index), emb_a.shape[1], k, dtype=torch.float64)
        x_b = torch.zeros(len(index), emb_b.shape[1], k, dtype=torch.float64)
        for row, i in enumerate(index):
            a, b = self.ids_a[i], self.ids_b[i]
            if len(a) > k or len(b) > k:
                raise ValueError(f"word {self.words[i]!r} has {len(a)} A and {len(b)} B tokens, more than k={k}")
            x_a[row, :, : len(a)] = emb_a[a].T.double()
            x_b[row, :, : len(b)] = emb_b[b].T.double()
        return x_a, x_b


def tokenize_words(words: list[str], tokenizer_a, tokenizer_b) -> WordTokens:
    """Both tokenizations, batched (the tokenizers' Rust batch encoders), without special tokens."""
    if not words:
        raise ValueError("no words to tokenize")
    ids_a = tokenizer_a([" " + w for w in words], add_special_tokens=False)["input_ids"]
    ids_b = tokenizer_b(list(words), add_special_tokens=False)["input_ids"]
    return WordTokens(list(words), ids_a, ids_b)


@dataclass
class Alignment:
    """A prompt's words: for each, the positions of its A tokens and of its B tokens."""

    text: str
    words: list[tuple[list[int], list[int]]]
    n_a: int
    n_b: int

    def shapes(self) -> list[tuple[int, int]]:
        return [(len(a), len(b)) for a, b in self.words]


def _anchor(start: int, piece: str) -> int | None:
    stripped = len(piece) - len(piece.lstrip())
    return start + stripped if stripped < len(piece) else None


def align(token_texts: list[str], offsets_b: list[tuple[int, int]], text: str) -> Alignment:
    """Group A tokens (their decoded texts, which must concatenate to ``text``) and B tokens (their
    character offsets in ``text``) by the whitespace-delimited word holding their first non-space
    character. A token of whitespace only belongs to no word."""
    if "".join(token_texts) != text:
        raise ValueError("the A tokens' texts do not concatenate to the decoded prompt: these ids do not survive "
                         "decode / encode token by token (e.g. partial UTF-8 bytes); allow only tokens that decode "
                         "to whole characters")
    spans = [m.span() for m in _WORD.finditer(text)]
    starts = [s for s, _ in spans]
    words: list[tuple[list[int], list[int]]] = [([], []) for _ in spans]

    def word_of(pos: int | None) -> int | None:
        if pos is None:
            return None
        i = bisect.bisect_right(starts, pos) - 1
        return i if i >= 0 and pos < spans[i][1] else None

    pos = 0
    for j, piece in enumerate(token_texts):
        w = word_of(_anchor(pos, piece))
        if w is not None:
            words[w][0].append(j)
        pos += len(piece)
    for j, (s, e) in enumerate(offsets_b):
        w = word_of(_anchor(s, text[s:e]) if e > s else None)
        if w is not None:
            words[w][1].append(j)
    return Alignment(text, [w for w in words if w[0]], len(token_texts), len(offsets_b))


__all__ = ["Alignment", "WordTokens", "align", "fitting_words", "tokenize_words"]
