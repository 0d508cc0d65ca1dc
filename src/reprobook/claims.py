"""Claims: what a chapter tests of its paper, with the paper's figure and ours.

A chapter creates a :class:`Claims`, calls :meth:`Claims.add` for each claim,
and ends with :meth:`Claims.report`, which shows the table and, when the
``REPROBOOK_CLAIMS_PATH`` environment variable names a file (set by
``reprobook run`` and by the book's execute step), writes the claims there as
JSON: ``{"provenance": {...}, "claims": [...]}``, each claim an object with
``name``, ``paper``, ``ours``, ``holds`` (plus ``chapter``, ``preset``, ``note``
and ``source``: the saved result a claim was read from, empty when this run
measured it). ``holds`` is ``true``, ``false`` or ``"inconclusive"`` (the data
cannot decide at this scale). The provenance says how the claims were produced
(chapter, preset, seed, device, overrides, the command, git commit, date,
hardware; paths relative to the repository). Older files are a bare list of
claims; :func:`read_claims` reads both. ``book/scoreboard.md`` is generated
from those files.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CLAIMS_ENV = "REPROBOOK_CLAIMS_PATH"
#: JSON of how the chapter's kernel was started (chapter, preset, seed, device, overrides, command,
#: notebook), set by ``reprobook run`` and ``reprobook execute`` (:func:`reprobook.chapters.execute`).
RUN_INFO_ENV = "REPROBOOK_RUN_INFO"
INCONCLUSIVE = "inconclusive"

#: The notebook's own parameters (chapter, preset, overrides, seed, device), recorded by
#: ``Chapter.config(..., namespace=globals())``: provenance when the kernel was started by papermill alone.
NOTEBOOK_PARAMETERS: dict = {}
_RUN_KEYS = ("chapter", "preset", "seed", "device", "overrides", "command", "notebook")


def run_info() -> dict:
    """How this run was started: :data:`NOTEBOOK_PARAMETERS` completed by ``$REPROBOOK_RUN_INFO``
    (the notebook's own values win: they are what ran)."""
    try:
        info = json.loads(os.environ.get(RUN_INFO_ENV) or "{}")
    except json.JSONDecodeError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    info.update(NOTEBOOK_PARAMETERS)
    return {k: info[k] for k in _RUN_KEYS if k in info}


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (papermill, nbval, Jupyter), where sys.argv is the kernel's."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def provenance(**known) -> dict:
    """How a result or a claims file was produced: chapter, preset, seed, device, overrides (from
    :func:`run_info`; ``known`` overrides them), the command (outside a chapter's kernel: the
    script and its arguments), git commit, date and hardware. Paths inside the checkout are
    relative to it."""
    from .common import _jsonable, _repo_relative, git_commit, hardware

    info = {**run_info(), **{k: v for k, v in known.items() if v is not None}}
    if "command" not in info and not _in_kernel() and sys.argv and sys.argv[0]:
        info["command"] = " ".join(map(str, _repo_relative(list(sys.argv))))
    out = {k: info[k] for k in _RUN_KEYS if k in info}
    out.update({k: v for k, v in info.items() if k not in out})
    out["git_commit"] = git_commit()
    out["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    out["hardware"] = hardware()
    return _repo_relative(_jsonable(out))


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
    source: str = ""  # the saved result the claim was read from (e.g. "results/lingam/cpu_benchmark.json")


def _source_text(source) -> str:
    """A saved result's path as recorded: relative to the checkout when inside it."""
    if not source:
        return ""
    from .common import REPO_ROOT

    path = Path(source)
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix() if path.is_absolute() else path.as_posix()
    except ValueError:
        return str(source)


class Claims:
    """The claims one chapter tests, in order."""

    def __init__(self, chapter: str, preset: str):
        self.chapter = chapter
        self.preset = preset
        self._claims: list[Claim] = []

    def add(self, name: str, paper: str, ours: str, holds: bool | str, note: str = "",
            *, source: str | os.PathLike | None = None) -> None:
        """Record one claim. ``paper`` and ``ours`` are short human-readable figures; ``holds`` is
        True, False or ``"inconclusive"``. ``source``: the saved result the figure was read from
        (not measured by this run), e.g. ``REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json"``;
        the claims table and the scoreboard show it."""
        if not name or not isinstance(name, str):
            raise ValueError("a claim needs a non-empty name")
        if isinstance(holds, str) and holds != INCONCLUSIVE:
            raise ValueError(f"holds must be True, False or {INCONCLUSIVE!r}, got {holds!r}")
        if any(c.name == name for c in self._claims):
            raise ValueError(f"claim {name!r} was already recorded")
        claim = Claim(self.chapter, self.preset, name, str(paper), str(ours),
                      holds if holds == INCONCLUSIVE else bool(holds), note, _source_text(source))
        self._claims.append(claim)

    def __iter__(self):
        return iter(self._claims)

    def __len__(self):
        return len(self._claims)

    def as_records(self) -> list[dict]:
        return [asdict(c) for c in self._claims]

    def table(self):
        """The claims as a pandas DataFrame (claim, paper, ours, holds; ``note`` when some claim
        has one, e.g. its rule or tolerance; ``from`` when some claim was read from saved results)."""
        import pandas as pd

        columns = ["claim", "paper", "ours", "holds"]
        rows = [
            {"claim": c.name, "paper": c.paper, "ours": c.ours, "holds": verdict(c.holds),
             "note": c.note, "from": c.source or "this run"}
            for c in self._claims
        ]
        if any(c.note for c in self._claims):
            columns.append("note")
        if any(c.source for c in self._claims):
            columns.append("from")
        return pd.DataFrame(rows, columns=columns)

    def report(self, path: str | os.PathLike | None = None):
        """Return the table for display; write JSON (with provenance) to ``path`` or
        ``$REPROBOOK_CLAIMS_PATH``."""
        target = path or os.environ.get(CLAIMS_ENV)
        if target:
            write_claims(target, self.as_records(), provenance(chapter=self.chapter, preset=self.preset))
        from .common import Table

        return Table(self.table())


def write_claims(path: str | os.PathLike, records: list[dict], provenance: dict | None = None) -> Path:
    """Write ``{"provenance": ..., "claims": records}`` (a bare list when no provenance is given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = records if provenance is None else {"provenance": provenance, "claims": records}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_claims_file(path: str | os.PathLike) -> tuple[dict | None, list[dict]]:
    """(provenance, claims) of a claims file, new format or old (a bare list: no provenance)."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and isinstance(data.get("claims"), list):
        prov, records = data.get("provenance"), data["claims"]
    elif isinstance(data, list):
        prov, records = None, data
    else:
        raise ValueError(f"{path}: not a claims file (a list of claims or {{'provenance', 'claims'}})")
    for r in records:
        missing = {"name", "paper", "ours", "holds"} - set(r) if isinstance(r, dict) else {"a claim object"}
        if missing:
            raise ValueError(f"{path}: claim {r!r} lacks {sorted(missing)}")
    return prov, records


def read_claims(path: str | os.PathLike) -> list[dict]:
    """The claims of a claims file (either format)."""
    return read_claims_file(path)[1]


def scoreboard_markdown(claims_by_chapter: dict[str, tuple]) -> str:
    """The scoreboard page: one table per chapter. Each value is ``(heading, records)`` or
    ``(heading, records, link)``; with a link (e.g. ``chapters/01_lingam.ipynb``, relative to
    ``book/``) the heading links to the chapter. A claim's note (its rule, tolerance or caveat)
    is in the ``note`` column; a claim read from saved results shows its source in ``scale``."""
    lines = [
        "# Scoreboard",
        "",
        "Every claim the chapters test, the paper's figure next to ours, and whether it",
        "holds at the scale we ran it (the preset; \"saved\" names the saved result of a larger",
        "run or a benchmark the claim was read from). Generated from the chapters' claims",
        "by `reprobook scoreboard`; do not edit by hand.",
        "",
    ]
    total = held = undecided = 0
    for value in claims_by_chapter.values():
        title, records, link = (*value, None)[:3]
        heading = f"[{title}]({link})" if link else title
        lines += [f"## {heading}", "", "| claim | paper | ours | holds | note | scale |",
                  "|---|---|---|---|---|---|"]
        for r in records:
            cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            holds = {"yes": "yes", "NO": "**no**"}.get(verdict(r["holds"]), INCONCLUSIVE)
            scale = f"saved: `{r['source']}`" if r.get("source") else cell(r.get("preset", ""))
            lines.append(
                f"| {cell(r['name'])} | {cell(r['paper'])} | {cell(r['ours'])} | {holds} "
                f"| {cell(r.get('note', ''))} | {scale} |"
            )
            total += 1
            held += r["holds"] is True
            undecided += r["holds"] == INCONCLUSIVE
        lines.append("")
    lines.insert(7, f"**{held} of {total} claims hold"
                    + (f"; {undecided} inconclusive" if undecided else "") + ".**\n")
    return "\n".join(lines)
