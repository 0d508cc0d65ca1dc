"""The tiny model's training corpus: text that ships with Python, with
planted canaries.

The text is Python's own reference documentation
(:func:`reprobook.models.corpus.python_docs_paragraphs`), cut into paragraphs. A canary is a
sequence of words drawn at random from the corpus's common words, so it is
made of familiar tokens but is not predictable from language alone. Each
canary is planted ``k`` times as its own document; held-out canaries are
drawn the same way and never planted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np



def common_words(paragraphs: list[str], n: int = 400) -> list[str]:
    """The ``n`` most frequent lower-case alphabetic words of at least 3 letters."""
    counts = Counter(w for p in paragraphs for w in re.findall(r"\b[a-z]{3,}\b", p))
    return [w for w, _ in counts.most_common(n)]


@dataclass(frozen=True)
class Canary:
    text: str
    copies: int  # how many times it is planted in the corpus (0: held out)


def make_canaries(words: list[str], copies: tuple[int, ...], per_count: int, n_heldout: int, n_words: int,
                  rng: np.random.Generator, per_top: int | None = None) -> list[Canary]:
    """``per_count`` canaries for each duplication count in ``copies`` (``per_top``
    for the highest count, when given) plus ``n_heldout`` never planted, each
    ``n_words`` distinct random words."""
    per_top = per_count if per_top is None else per_top
    if per_count < 1 or per_top < 1 or n_words < 2 or len(words) < n_words:
        raise ValueError("need per_count, per_top >= 1, n_words >= 2 and at least n_words words to draw from")
    top = max(copies)
    counts = [k for k in copies for _ in range(per_top if k == top else per_count)] + [0] * n_heldout
    seen, out = set(), []
    for k in counts:
        while True:
            text = " ".join(rng.choice(words, size=n_words, replace=False))
            if text not in seen:
                seen.add(text)
                break
        out.append(Canary(text, k))
    return out


def plant(paragraphs: list[str], canaries: list[Canary], rng: np.random.Generator) -> list[str]:
    """The documents of the training corpus: the paragraphs plus ``copies``
    copies of each canary, shuffled."""
    docs = list(paragraphs) + [c.text for c in canaries for _ in range(c.copies)]
    order = rng.permutation(len(docs))
    return [docs[i] for i in order]
