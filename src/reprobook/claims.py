"""Claims: what a chapter tests of its paper, with the paper's figure and ours.

A chapter creates a :class:`Claims`, calls :meth:`Claims.add` for each claim,
and ends with :meth:`Claims.report`, which shows the table and, when the
``REPROBOOK_CLAIMS_PATH`` environment variable names a file (set by
``reprobook run`` and by the book's execute step), writes the claims there as
JSON: a list of objects with ``name``, ``paper``, ``ours``, ``holds`` (plus
``chapter``, ``preset``, ``note``). ``holds`` is ``true``, ``false`` or
``"inconclusive"`` (the data cannot decide at this scale). ``book/scoreboard.md`` is generated from
those files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CLAIMS_ENV = "REPROBOOK_CLAIMS_PATH"
INCONCLUSIVE = "inconclusive"


def paired_verdict(differences, margin: float = 0.0, z: float = 2.0) -> tuple[float, float, bool | str]:
    """Mean and standard error of paired differences (arm minus comparison, one per replicate or
    target) and the verdict of a rule fixed before the run: ``True`` when mean - z se > margin,
    ``False`` when mean + z se < margin, else ``"inconclusive"``."""
    d = np.asarray(differences, dtype=float)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
    if mean - z * se > margin:
        return mean, se, True
    if mean + z * se < margin:
        return mean, se, False
    return mean, se, INCONCLUSIVE


def verdict(holds) -> str:
    """How a verdict reads in tables: yes, NO or inconclusive."""
    return INCONCLUSIVE if holds == INCONCLUSIVE else ("yes" if holds else "NO")



@dataclass(frozen=True)
class Claim:
    chapter: str
    preset: str
    name: str
    paper: str
    ours: str
    holds: bool | str  # True, False or INCONCLUSIVE
    note: str = ""


class Claims:
    """The claims one chapter tests, in order."""

    def __init__(self, chapter: str, preset: str):
        self.chapter = chapter
        self.preset = preset
        self._claims: list[Claim] = []

    def add(self, name: str, paper: str, ours: str, holds: bool | str, note: str = "") -> None:
        """Record one claim. ``paper`` and ``ours`` are short human-readable figures; ``holds`` is
        True, False or ``"inconclusive"``."""
        if not name or not isinstance(name, str):
            raise ValueError("a claim needs a non-empty name")
        if isinstance(holds, str) and holds != INCONCLUSIVE:
            raise ValueError(f"holds must be True, False or {INCONCLUSIVE!r}, got {holds!r}")
        if any(c.name == name for c in self._claims):
            raise ValueError(f"claim {name!r} was already recorded")
        claim = Claim(self.chapter, self.preset, name, str(paper), str(ours),
                      holds if holds == INCONCLUSIVE else bool(holds), note)
        self._claims.append(claim)

    def __iter__(self):
        return iter(self._claims)

    def __len__(self):
        return len(self._claims)

    def as_records(self) -> list[dict]:
        return [asdict(c) for c in self._claims]

    def table(self):
        """The claims as a pandas DataFrame (claim, paper, ours, holds)."""
        import pandas as pd

        rows = [
            {"claim": c.name, "paper": c.paper, "ours": c.ours, "holds": verdict(c.holds)}
            for c in self._claims
        ]
        return pd.DataFrame(rows, columns=["claim", "paper", "ours", "holds"])

    def report(self, path: str | os.PathLike | None = None):
        """Return the table for display; write JSON to ``path`` or ``$REPROBOOK_CLAIMS_PATH``."""
        target = path or os.environ.get(CLAIMS_ENV)
        if target:
            write_claims(target, self.as_records())
        from .common import Table

        return Table(self.table())


def write_claims(path: str | os.PathLike, records: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2) + "\n")
    return path


def read_claims(path: str | os.PathLike) -> list[dict]:
    records = json.loads(Path(path).read_text())
    for r in records:
        missing = {"name", "paper", "ours", "holds"} - set(r)
        if missing:
            raise ValueError(f"{path}: claim {r!r} lacks {sorted(missing)}")
    return records


def scoreboard_markdown(claims_by_chapter: dict[str, tuple[str, list[dict]]]) -> str:
    """The scoreboard page: one table per chapter (title, records)."""
    lines = [
        "# Scoreboard",
        "",
        "Every claim the chapters test, the paper's figure next to ours, and whether it",
        "holds at the scale we ran it (the preset). Generated from the chapters' claims",
        "by `reprobook scoreboard`; do not edit by hand.",
        "",
    ]
    total = held = undecided = 0
    for title, records in claims_by_chapter.values():
        lines += [f"## {title}", "", "| claim | paper | ours | holds | scale |", "|---|---|---|---|---|"]
        for r in records:
            cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            holds = {"yes": "yes", "NO": "**no**"}.get(verdict(r["holds"]), INCONCLUSIVE)
            lines.append(
                f"| {cell(r['name'])} | {cell(r['paper'])} | {cell(r['ours'])} | {holds} | {cell(r.get('preset', ''))} |"
            )
            total += 1
            held += r["holds"] is True
            undecided += r["holds"] == INCONCLUSIVE
        lines.append("")
    lines.insert(6, f"**{held} of {total} claims hold"
                    + (f"; {undecided} inconclusive" if undecided else "") + ".**\n")
    return "\n".join(lines)
