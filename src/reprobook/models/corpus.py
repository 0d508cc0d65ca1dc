"""Offline training text: Python's own reference documentation.

``pydoc_data.topics`` (the help texts of the language's topics) ships with
every Python, so the models trained here need no download.
"""

from __future__ import annotations

import re


def python_docs_paragraphs(min_chars: int = 40) -> list[str]:
    """The paragraphs of Python's topic help texts (``pydoc_data.topics``), whitespace-normalized."""
    from pydoc_data.topics import topics

    paragraphs = []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            para = " ".join(para.split())
            if len(para) >= min_chars:
                paragraphs.append(para)
    return paragraphs
