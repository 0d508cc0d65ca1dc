"""The chapters of the book, their configs, and how a chapter is executed.

Executing a chapter = jupytext (``chapters/NN_slug.py`` -> notebook) +
papermill (run it, with parameters when they differ from the defaults).

Where a chapter's results go: :func:`results_dir` (a run's own folder under
``reprobook run --output``; the repository's ``results/<slug>/`` otherwise) and
:func:`results_path` (what a chapter reads: the run's own copy when it wrote
one, else the committed file).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import claims as _claims
from .claims import CLAIMS_ENV, RUN_INFO_ENV
from .common import DEVICES, REPO_ROOT, cuda_available
from .presets import ConfigError, coerce, field_types, resolve
from .registry import ENTRIES

#: Chapter-level parameters every chapter's ``parameters`` cell has, besides ``preset`` and ``overrides``.
GLOBAL_PARAMS = {"seed": int, "device": str}
DEFAULT_SEED = 0
DEFAULT_DEVICE = "auto"
#: Every name a chapter's ``parameters`` cell defines: all papermill may set.
NOTEBOOK_PARAMS = ("preset", "overrides", *GLOBAL_PARAMS)

#: Presets meant for a CPU; any other preset (``full``) is paper scale, meant for a GPU.
CPU_PRESETS = ("cpu", "long")
PRESET_PURPOSE = {
    "cpu": "the default: what the book shows, minutes on a laptop's CPU",
    "long": "a longer CPU run (up to hours), shown in the chapter's larger-scale section",
    "full": "paper scale, for a GPU",
}

#: Set by ``reprobook run`` for the chapter's kernel: the folder its results go to (``OUTPUT/results``).
RESULTS_ENV = "REPROBOOK_RESULTS_DIR"
#: Set by ``reprobook run`` / ``execute`` for the kernel: the checkout (see ``reprobook.common.REPO_ROOT``).
REPO_ROOT_ENV = "REPROBOOK_REPO_ROOT"


def is_checkout(root: Path | None = None) -> bool:
    """True when ``root`` (default: ``REPO_ROOT``) is a checkout of the book (``_toc.yml`` and ``chapters/``)."""
    root = REPO_ROOT if root is None else Path(root)
    return (root / "_toc.yml").is_file() and (root / "chapters").is_dir()


def require_checkout(root: Path | None = None) -> Path:
    """``root`` (default: ``REPO_ROOT``), or a ConfigError when it is not a checkout of the book."""
    root = REPO_ROOT if root is None else Path(root)
    if not is_checkout(root):
        raise ConfigError(
            "not in a checkout of the book: run this inside the repository (a folder holding _toc.yml "
            f"and chapters/); {root} is not one"
        )
    return root


def results_dir(slug: str) -> Path:
    """The folder a chapter's run saves its results in: ``$REPROBOOK_RESULTS_DIR/<slug>`` when set
    (``reprobook run`` sets it to ``OUTPUT/results``, so a run writes only under its ``--output``),
    else the repository's ``results/<slug>``."""
    base = os.environ.get(RESULTS_ENV)
    return (Path(base) if base else REPO_ROOT / "results") / slug


def results_path(slug: str, name: str) -> Path:
    """A saved result a chapter shows: the run's own ``results_dir(slug) / name`` when this run
    wrote it, else the committed ``results/<slug>/<name>``."""
    own = results_dir(slug) / name
    return own if own.is_file() else REPO_ROOT / "results" / slug / name


def injected_parameters(namespace: dict) -> list[str]:
    """The names papermill assigned in the cell(s) it injected (which start with the comment
    ``# Parameters``), from the inputs IPython keeps in ``namespace["In"]``; empty outside papermill."""
    names: list[str] = []
    for source in namespace.get("In") or ():
        if not isinstance(source, str) or source.lstrip().split("\n", 1)[0].strip() != "# Parameters":
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name) and sub.id not in names:
                        names.append(sub.id)
    return names


def check_injected_parameters(namespace: dict, chapter: str = "SLUG") -> None:
    """A ConfigError naming every parameter papermill injected that the chapter does not take
    (papermill would otherwise define it and the chapter ignore it)."""
    unknown = [n for n in injected_parameters(namespace)
               if n not in NOTEBOOK_PARAMS and not n.startswith("PAPERMILL_")]
    if unknown:
        raise ConfigError(
            f"unknown notebook parameter(s) {', '.join(map(repr, unknown))}: the chapter's parameters are "
            f"{', '.join(NOTEBOOK_PARAMS)}. Config fields go in overrides: papermill ... "
            f"-y '{{\"overrides\": {{\"{unknown[0]}\": ...}}}}', or `reprobook run {chapter} -p {unknown[0]} ...`"
        )


@dataclass(frozen=True)
class Chapter:
    number: int
    slug: str
    title: str
    uses: tuple[str, ...] = ()  # shared subpackages of reprobook the chapter depends on (e.g. "diffusion")
    gpu_backend: str = "torch"  # the library its GPU path (device="cuda") runs on: "cupy" or "torch"

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

    def preset_changes(self, preset: str) -> dict:
        """What ``preset`` changes relative to ``cpu``: {field: value} (canonical types)."""
        types_, base = field_types(self.config_cls), self.config_cls()
        values = {k: coerce(k, v, types_[k]) for k, v in self.presets[preset].items()}
        return {k: v for k, v in values.items() if v != getattr(base, k)}

    def config(self, preset: str = "cpu", overrides: dict | None = None, also_valid: tuple[str, ...] = (),
               *, namespace: dict | None = None):
        """The typed config of ``preset`` with ``overrides``.

        ``namespace``: the notebook's ``globals()``. Then a parameter papermill injected that the
        chapter does not take (``-p acc_dims '[5]'`` instead of ``-y '{"overrides": {...}}'``)
        is a ConfigError, and the notebook's parameters are recorded for the claims' provenance.
        Outside papermill (no injected cell) nothing is checked.
        """
        if namespace is not None:
            check_injected_parameters(namespace, self.slug)
            _claims.NOTEBOOK_PARAMETERS.clear()
            _claims.NOTEBOOK_PARAMETERS.update(
                {"chapter": self.slug, "preset": preset, "overrides": overrides or {}},
                **{k: namespace[k] for k in GLOBAL_PARAMS if k in namespace},
            )
        if isinstance(overrides, str):
            raise ConfigError(
                f"overrides must be a dict of parameter -> value, got the string {overrides!r}: with papermill "
                "pass it as YAML, -y '{\"overrides\": {...}}' (papermill's -p passes a string)"
            )
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
CHAPTERS: dict[str, Chapter] = {
    e.slug: Chapter(e.number, e.slug, e.title, e.uses, e.gpu_backend) for e in ENTRIES
}


def get_chapter(slug: str) -> Chapter:
    """A chapter by slug (``lingam``) or by file name (``01_lingam``)."""
    if slug in CHAPTERS:
        return CHAPTERS[slug]
    for chapter in CHAPTERS.values():
        if slug in (chapter.name, f"{chapter.name}.py", f"{chapter.name}.ipynb"):
            return chapter
    raise ConfigError(f"unknown chapter {slug!r}; valid chapters: {', '.join(CHAPTERS)} (or 01_lingam, ...)")


def check_device(chapter: Chapter, preset: str, device: str) -> None:
    """Before any work: ``device="cuda"`` needs a GPU usable through the chapter's GPU library, and
    a paper-scale preset (not in :data:`CPU_PRESETS`) with ``device="auto"`` on a machine without
    one is refused (it would run for hours or days on the CPU) unless ``device="cpu"`` asks for it."""
    if device == "cpu" or (device == "auto" and preset in CPU_PRESETS):
        return
    backend = chapter.gpu_backend
    if cuda_available(backend):
        return
    if device == "cuda":
        raise ConfigError(
            f"device 'cuda' asked for, but no CUDA GPU is usable through {backend} on this machine "
            f"(chapter {chapter.slug}'s GPU path runs on {backend}); use -p device cpu or a machine with an NVIDIA GPU"
        )
    cpu_ones = [p for p in chapter.presets if p in CPU_PRESETS]
    raise ConfigError(
        f"preset {preset!r} is paper scale, meant for a GPU, and no CUDA GPU is usable through {backend} here: "
        f"on the CPU it would run for hours or days. Add -p device cpu to run it on the CPU anyway, "
        f"or use a CPU preset ({', '.join(cpu_ones)})"
    )


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


_KERNEL_FILTER = (
    "import logging; logging.getLogger('IPKernelApp').addFilter("
    "lambda r: 'running over TCP without encryption' not in r.getMessage()); "
    "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
)


def _quiet_kernel_manager_class():
    """A KernelManager whose ipykernel drops one startup warning, ipykernel's "Kernel is running
    over TCP without encryption" (the kernel listens on localhost only): it launches the kernel
    through ``python -c`` with a logging filter on that message, instead of ``-m ipykernel_launcher``."""
    from jupyter_client.manager import KernelManager

    class QuietKernelManager(KernelManager):
        @property
        def kernel_spec(self):
            spec = KernelManager.kernel_spec.fget(self)
            argv = list(getattr(spec, "argv", None) or [])
            for i in range(len(argv) - 1):
                if argv[i] == "-m" and argv[i + 1] == "ipykernel_launcher":
                    spec.argv = argv[:i] + ["-c", _KERNEL_FILTER] + argv[i + 2:]
                    break
            return spec

    return QuietKernelManager


def _relative(path: Path) -> str:
    """``path`` relative to the checkout when inside it, else its name (no machine paths)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.name


def run_command(chapter: Chapter, parameters: dict, verb: str = "run") -> str:
    """The command that reproduces a run (without its ``--output``)."""
    if verb == "execute":
        return f"reprobook execute {chapter.slug}"
    parts = ["reprobook", "run", chapter.slug]
    if parameters.get("preset", "cpu") != "cpu":
        parts += ["--preset", parameters["preset"]]
    values = {**(parameters.get("overrides") or {}), **{k: parameters[k] for k in GLOBAL_PARAMS if k in parameters}}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(list(value) if isinstance(value, tuple) else value)
        parts += ["-p", key, text if text.replace("_", "").replace("-", "").replace(".", "").isalnum() else f"'{text}'"]
    return " ".join(parts)


def execute(
    chapter: Chapter,
    output_notebook: Path,
    parameters: dict | None = None,
    claims_path: Path | None = None,
    *,
    progress_bar: bool = True,
    book: bool = False,
    results_dir: Path | None = None,
    show_progress: bool = False,
) -> Path:
    """Run ``chapter`` with papermill into ``output_notebook``.

    Only non-default parameters are injected (so the book's notebooks have
    exactly the source's code cells). With ``book=True`` the notebook gets
    the inputs hash that marks it up to date, and papermill's timestamps are
    dropped.

    The kernel gets, through environment variables: the checkout
    (``REPROBOOK_REPO_ROOT``), where the claims go (``REPROBOOK_CLAIMS_PATH``),
    where results go (``REPROBOOK_RESULTS_DIR`` = ``results_dir``; unset: the
    repository's ``results/``), how it was run (``REPROBOOK_RUN_INFO``, JSON:
    the claims' and saved results' provenance) and whether progress bars show
    (``REPROBOOK_PROGRESS``: ``text`` bars on this process's stderr with
    ``show_progress``, else off).
    """
    import jupytext
    import papermill

    output_notebook = Path(output_notebook)
    output_notebook.parent.mkdir(parents=True, exist_ok=True)
    parameters = dict(parameters or {})
    info = {
        "chapter": chapter.slug,
        "preset": parameters.get("preset", "cpu"),
        "seed": parameters.get("seed", DEFAULT_SEED),
        "device": parameters.get("device", DEFAULT_DEVICE),
        "overrides": parameters.get("overrides", {}),
        "command": run_command(chapter, parameters, "execute" if book else "run"),
        "notebook": _relative(output_notebook),
    }
    env = {
        REPO_ROOT_ENV: str(REPO_ROOT),
        CLAIMS_ENV: str(Path(claims_path).resolve()) if claims_path is not None else None,
        RESULTS_ENV: str(Path(results_dir).resolve()) if results_dir is not None else None,
        RUN_INFO_ENV: json.dumps(info),
        # tqdm widgets in a saved notebook are noise: text bars, shown on stderr, for a run only.
        "REPROBOOK_PROGRESS": "text" if show_progress else "0",
    }
    nb = jupytext.read(chapter.source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):  # stable ids: re-executions diff only where outputs change
        cell["id"] = f"cell-{i:03d}"
    inputs_hash = chapter.inputs_hash()
    with tempfile.TemporaryDirectory() as tmp:
        src_nb = Path(tmp) / f"{chapter.name}.ipynb"
        jupytext.write(nb, src_nb)
        env_backup = {k: os.environ.get(k) for k in env}
        try:
            for k, v in env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            papermill.execute_notebook(
                str(src_nb),
                str(output_notebook),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(output_notebook.parent),
                progress_bar=progress_bar,
                stderr_file=sys.stderr if show_progress else None,
                kernel_manager_class=_quiet_kernel_manager_class(),
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
