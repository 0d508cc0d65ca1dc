"""The strings of the real-model study, by category.

Famous quotes and boilerplate are surely in a web-scale training set many
times; the "new" sentences were written for this book in November 2026,
after SmolLM2's training data was collected (2024), about made-up events, so
the model cannot have seen them (the last three were added in December 2026); random strings are drawn as token ids with
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
    "We hold these truths to be self-evident, that all men are created equal",
    "In the beginning God created the heaven and the earth",
    "Not all those who wander are lost",
    "The unexamined life is not worth living",
    "Genius is one percent inspiration and ninety-nine percent perspiration",
    "Give me liberty, or give me death",
    "I think, therefore I am",
    "Elementary, my dear Watson",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune",
    "Houston, we have a problem",
    "Float like a butterfly, sting like a bee",
    "Life is like a box of chocolates",
    "The quick brown fox jumps over the lazy dog",
    "Imagination is more important than knowledge",
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
    "Residents of Brindlecombe voted to paint every post box in their village teal",
    "The Ostmere rowing team won its first regatta with a boat built from recycled kayaks",
    "A librarian in Fennick Cross catalogued four hundred lost umbrellas this winter",
]

CATEGORIES = ("famous quote", "boilerplate", "new text", "random tokens")


def random_token_strings(allowed: torch.Tensor, n: int, length: int, seed: int) -> list[list[int]]:
    """``n`` strings of ``length`` ids drawn uniformly from the allowed ids, with their own generator."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    ids = allowed.nonzero().squeeze(1).cpu()
    return [ids[torch.randint(len(ids), (length,), generator=gen)].tolist() for _ in range(n)]


def study_strings(tokenizer, allowed: torch.Tensor, per_category: int, seed: int,
                  random_len: int = 12, prefer=()) -> list[tuple[str, list[int]]]:
    """``(category, target ids)`` pairs: ``per_category`` strings of each
    category (quotes deduplicated), text tokenized without special tokens.
    Texts in ``prefer`` (those the screen found completed) come first in
    their category, in list order; the rest follow in list order."""
    prefer = set(prefer)
    texts = {"famous quote": list(dict.fromkeys(FAMOUS_QUOTES)), "boilerplate": BOILERPLATE,
             "new text": NEW_TEXT}
    out = []
    for category, items in texts.items():
        if per_category > len(items):
            raise ValueError(f"only {len(items)} strings of category {category!r}, asked for {per_category}")
        items = [t for t in items if t in prefer] + [t for t in items if t not in prefer]
        out += [(category, tokenizer.encode(t, add_special_tokens=False)) for t in items[:per_category]]
    out += [("random tokens", ids) for ids in random_token_strings(allowed, per_category, random_len, seed)]
    return out
