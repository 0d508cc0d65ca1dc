"""The strings of the real-model study, by category.

Famous quotes and boilerplate are surely in a web-scale training set many
times; the "new" sentences were written for this book in November 2026,
after SmolLM2's training data was collected (2024), about made-up events, so
the model cannot have seen them; random strings are drawn as token ids with
a dedicated generator and stored as ids (their decoded text need not
re-encode to the same ids).
"""

from __future__ import annotations

import torch

FAMOUS_QUOTES = [
    "To be, or not to be, that is the question",
    "I have a dream that one day this nation will rise up",
    "Ask not what your country can do for you",
    "The only thing we have to fear is fear itself",
    "That's one small step for man, one giant leap for mankind",
    "Four score and seven years ago our fathers brought forth",
    "It was the best of times, it was the worst of times",
    "All happiness or unhappiness solely depends upon the quality",
]

BOILERPLATE = [
    "Beautiful is better than ugly.\nExplicit is better than implicit.",
    "Permission is hereby granted, free of charge, to any person obtaining a copy",
    "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND",
    "Licensed under the Apache License, Version 2.0 (the \"License\");",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit",
]

NEW_TEXT = [
    "The Harwick ferry board voted on Tuesday to rename its oldest boat Marigold",
    "A violet lantern festival in Oskeby drew nine thousand visitors this autumn",
    "Engineers at Pellmoor replaced the tram bridge with a folding timber span",
    "The chess club of Varden Hill elected a twelve-year-old as its treasurer",
    "Quill and Sorrel, a bakery in Lestwick, now opens only on rainy mornings",
]

CATEGORIES = ("famous quote", "boilerplate", "new text", "random tokens")


def random_token_strings(allowed: torch.Tensor, n: int, length: int, seed: int) -> list[list[int]]:
    """``n`` strings of ``length`` ids drawn uniformly from the allowed ids, with their own generator."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    ids = allowed.nonzero().squeeze(1).cpu()
    return [ids[torch.randint(len(ids), (length,), generator=gen)].tolist() for _ in range(n)]


def study_strings(tokenizer, allowed: torch.Tensor, per_category: int, seed: int,
                  random_len: int = 12) -> list[tuple[str, list[int]]]:
    """``(category, target ids)`` pairs: ``per_category`` strings of each
    category (quotes deduplicated), text tokenized without special tokens."""
    texts = {"famous quote": list(dict.fromkeys(FAMOUS_QUOTES)), "boilerplate": BOILERPLATE,
             "new text": NEW_TEXT}
    out = []
    for category, items in texts.items():
        if per_category > len(items):
            raise ValueError(f"only {len(items)} strings of category {category!r}, asked for {per_category}")
        out += [(category, tokenizer.encode(t, add_special_tokens=False)) for t in items[:per_category]]
    out += [("random tokens", ids) for ids in random_token_strings(allowed, per_category, random_len, seed)]
    return out
