"""The chapters of the book, their configs, and how a chapter is executed.

Executing a chapter = jupytext (``chapters/NN_slug.py`` -> notebook) +
papermill (run it, with parameters when they differ from the defaults).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .claims import CLAIMS_ENV
from .common import DEVICES, REPO_ROOT
from .presets import ConfigError, coerce, resolve
from .registry import ENTRIES

#: Chapter-level parameters every chapter's ``parameters`` cell has, besides ``preset`` and ``overrides``.
GLOBAL_PARAMS = {"seed": int, "device": str}
DEFAULT_SEED = 0
DEFAULT_DEVICE = "auto"


@dataclass(frozen=True)
class Chapter:
    number: int
    slug: str
    title: str
    uses: tuple[str, ...] = ()  # shared subpackages of reprobook the chapter depends on (e.g. "diffusion")

    @property
    def name(self) -> str:
        return f"{self.number:02d}_{self.slug}"

    @property
    def source(self) -> Path:
        return REPO_ROOT / "chapters" / f"{self.name}.py"

    @property
    def book_notebook(self) -> Path:
        return REPO_ROOT / "book" / "chapters" / f"{self.name}.ipynb"

    @property
    def book_claims(self) -> Path:
        return REPO_ROOT / "book" / "chapters" / f"{self.name}.claims.json"

    def _config_module(self):
        return importlib.import_module(f"reprobook.{self.slug}.config")

    @property
    def config_cls(self):
        return self._config_module().Config

    @property
    def presets(self) -> dict[str, dict]:
        return self._config_module().PRESETS

    def config(self, preset: str = "cpu", overrides: dict | None = None, also_valid: tuple[str, ...] = ()):
        return resolve(self.config_cls, self.presets, preset, overrides, also_valid)

    def inputs_hash(self) -> str:
        """A hash of everything the executed notebook depends on: the chapter
        source, the shared modules, the chapter's subpackage, the shared subpackages it
        uses and its saved results."""
        files = [self.source, *sorted((REPO_ROOT / "src" / "reprobook").glob("*.py"))]
        folders = [REPO_ROOT / "src" / "reprobook" / name for name in (self.slug, *self.uses)]
        for folder in (*folders, REPO_ROOT / "results" / self.slug):
            files += sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        h = hashlib.sha256()
        for f in files:
            h.update(str(f.relative_to(REPO_ROOT)).encode())
            h.update(f.read_bytes() if f.exists() else b"<missing>")
        return h.hexdigest()


#: The chapters in order, from :mod:`reprobook.registry` (kept out of the chapters' inputs hash).
CHAPTERS: dict[str, Chapter] = {e.slug: Chapter(e.number, e.slug, e.title, e.uses) for e in ENTRIES}


def get_chapter(slug: str) -> Chapter:
    if slug not in CHAPTERS:
        raise ConfigError(f"unknown chapter {slug!r}; valid chapters: {', '.join(CHAPTERS)}")
    return CHAPTERS[slug]


def check_parameters(chapter: Chapter, preset: str, params: dict) -> dict:
    """Split and validate ``params`` (config fields plus ``seed`` / ``device``).

    Returns the papermill parameters (only those that differ from the
    chapter's defaults). Raises ConfigError before any work.
    """
    params = dict(params)
    seed = coerce("seed", params.pop("seed", DEFAULT_SEED), int)
    if seed < 0:
        raise ConfigError(f"parameter 'seed' must be a non-negative integer, got {seed}")
    device = coerce("device", params.pop("device", DEFAULT_DEVICE), str)
    if device not in DEVICES:
        raise ConfigError(f"parameter 'device' must be one of {', '.join(DEVICES)}, got {device!r}")
    chapter.config(preset, params, also_valid=tuple(GLOBAL_PARAMS))
    out: dict = {}
    if preset != "cpu":
        out["preset"] = preset
    if params:
        out["overrides"] = params
    if seed != DEFAULT_SEED:
        out["seed"] = seed
    if device != DEFAULT_DEVICE:
        out["device"] = device
    return out


def _finish_book_notebook(path: Path, inputs_hash: str) -> None:
    """Drop papermill's timestamps (so a re-execution changes only what
    changed) and record the inputs hash that marks the notebook up to date."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    nb["metadata"].pop("papermill", None)
    nb["metadata"]["reprobook"] = {"inputs_hash": inputs_hash}
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def execute(
    chapter: Chapter,
    output_notebook: Path,
    parameters: dict | None = None,
    claims_path: Path | None = None,
    *,
    progress_bar: bool = True,
    book: bool = False,
) -> Path:
    """Run ``chapter`` with papermill into ``output_notebook``.

    Only non-default parameters are injected (so the book's notebooks have
    exactly the source's code cells). With ``book=True`` the notebook gets
    the inputs hash that marks it up to date, and papermill's timestamps are
    dropped.
    """
    import jupytext
    import papermill

    output_notebook = Path(output_notebook)
    output_notebook.parent.mkdir(parents=True, exist_ok=True)
    nb = jupytext.read(chapter.source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):  # stable ids: re-executions diff only where outputs change
        cell["id"] = f"cell-{i:03d}"
    inputs_hash = chapter.inputs_hash()
    with tempfile.TemporaryDirectory() as tmp:
        src_nb = Path(tmp) / f"{chapter.name}.ipynb"
        jupytext.write(nb, src_nb)
        env_backup = {k: os.environ.get(k) for k in (CLAIMS_ENV, "REPROBOOK_PROGRESS")}
        try:
            if claims_path is not None:
                os.environ[CLAIMS_ENV] = str(Path(claims_path).resolve())
            else:
                os.environ.pop(CLAIMS_ENV, None)
            # tqdm widgets in a saved notebook are noise; papermill shows progress by cell.
            os.environ["REPROBOOK_PROGRESS"] = "0"
            papermill.execute_notebook(
                str(src_nb),
                str(output_notebook),
                parameters=parameters or {},
                kernel_name="python3",
                cwd=str(output_notebook.parent),
                progress_bar=progress_bar,
            )
        finally:
            for k, v in env_backup.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if book:
        _finish_book_notebook(output_notebook, inputs_hash)
    return output_notebook


def is_stale(chapter: Chapter) -> bool:
    """True when the book's notebook is missing or was made from other inputs."""
    nb = chapter.book_notebook
    if not nb.exists() or not chapter.book_claims.exists():
        return True
    recorded = json.loads(nb.read_text()).get("metadata", {}).get("reprobook", {}).get("inputs_hash")
    return recorded != chapter.inputs_hash()
