"""Shared plumbing for every chapter: seeding, devices, array modules,
progress bars, plot style and saving results with provenance."""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEVICES = ("auto", "cpu", "cuda")

def _find_repo_root() -> Path:
    """The checkout to work on: ``$REPROBOOK_REPO_ROOT`` (set by ``reprobook run`` / ``execute`` for
    the chapter's kernel), else the nearest folder at or above the working directory holding
    ``_toc.yml`` and ``chapters/``, else the checkout this package was installed from."""
    if os.environ.get("REPROBOOK_REPO_ROOT"):
        return Path(os.environ["REPROBOOK_REPO_ROOT"]).resolve()
    try:
        here = Path.cwd().resolve()
    except OSError:  # the working directory was removed
        here = None
    for folder in (here, *here.parents) if here else ():
        if (folder / "_toc.yml").is_file() and (folder / "chapters").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]


#: Repository root (the folder holding ``_toc.yml`` and ``chapters/``): see :func:`_find_repo_root`.
REPO_ROOT = _find_repo_root()


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy (and torch / cupy when present); return a NumPy Generator."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
    if "cupy" in sys.modules:
        sys.modules["cupy"].random.seed(seed)
    return np.random.default_rng(seed)


BACKENDS = ("cupy", "torch")


def cuda_available(backend: str | None = None) -> bool:
    """True when a CUDA GPU is usable through ``backend`` ("cupy" or "torch";
    None: through either)."""
    if backend not in (None, *BACKENDS):
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend in (None, "torch"):
        try:
            import torch

            if torch.cuda.is_available():
                return True
        except ImportError:
            pass
    if backend in (None, "cupy"):
        try:
            import cupy

            return cupy.cuda.runtime.getDeviceCount() > 0
        except Exception:  # not installed, or installed without a driver / device
            return False
    return False


_INSTALL_HINT = {
    "cupy": "install CuPy for your CUDA version (e.g. `pip install cupy-cuda12x`)",
    "torch": "install a CUDA build of PyTorch",
    None: "install CuPy (`pip install cupy-cuda12x`) or a CUDA build of PyTorch",
}


def resolve_device(device: str, backend: str | None = None) -> str:
    """Turn ``auto | cpu | cuda`` into ``cpu`` or ``cuda`` for a chapter whose
    GPU path runs on ``backend`` ("cupy", "torch" or None for either).

    Asking for ``cuda`` without a usable GPU is an error, never a silent
    fallback to the CPU.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "cuda" if cuda_available(backend) else "cpu"
    if device == "cuda" and not cuda_available(backend):
        raise RuntimeError(
            f"device='cuda' was requested but no CUDA GPU is usable{' through ' + backend if backend else ''}: "
            f"{_INSTALL_HINT[backend]} on a machine with an NVIDIA GPU, or use device='cpu'."
        )
    return device


def array_module(device: str):
    """The array namespace for a device: ``numpy`` on CPU, ``cupy`` on CUDA."""
    device = resolve_device(device, "cupy")
    if device == "cuda":
        import cupy

        return cupy
    return np


def to_numpy(a) -> np.ndarray:
    """Bring an array (NumPy or CuPy) to host memory."""
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def progress_disabled() -> bool:
    """Progress bars are off under tests (nbval) and when REPROBOOK_PROGRESS=0."""
    return os.environ.get("REPROBOOK_PROGRESS", "1") == "0"


def progress(iterable=None, **kwargs):
    """A tqdm progress bar that respects :func:`progress_disabled`."""
    kwargs["disable"] = kwargs.get("disable", False) or progress_disabled()
    kwargs.setdefault("leave", False)
    if kwargs["disable"] or os.environ.get("REPROBOOK_PROGRESS") == "text":  # text bars (reprobook run)
        from tqdm import tqdm
    else:
        try:  # a notebook widget when ipywidgets is there, else text
            import ipywidgets  # noqa: F401
            from tqdm.auto import tqdm
        except ImportError:
            from tqdm import tqdm
    return tqdm(iterable, **kwargs)


def set_plot_style() -> None:
    """One plot style for the whole book.

    Figures are drawn at 100 dpi, so a figure 10 inches wide is 1000 px and the book's
    content column (about 750 px) shows it at three quarters of its size: the fonts are
    sized for that (11 pt text, 12.5 pt titles, 10.5 pt ticks stay legible), and a click
    on a figure in the book opens it at full size. Constrained layout is on, so titles,
    labels and colorbars do not overlap (no figure calls ``tight_layout()``).
    """
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "figure.constrained_layout.use": True,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 11,
            "axes.titlesize": 12.5,
            "axes.labelsize": 11,
            "xtick.labelsize": 10.5,
            "ytick.labelsize": 10.5,
            "legend.fontsize": 10.5,
            "legend.title_fontsize": 10.5,
            "figure.titlesize": 13,
            "legend.frameon": False,
            # Deterministic SVG/PNG metadata-free output.
            "svg.hashsalt": "reprobook",
        }
    )


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The current git commit of the checkout, or None outside a repository."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def hardware() -> dict[str, Any]:
    """A short description of the machine, for provenance."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "numpy": np.__version__,
    }
    if cuda_available("cupy"):
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
        info["cupy"] = cupy.__version__
    elif cuda_available("torch"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
        info["torch"] = torch.__version__
    return info


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return _jsonable(dataclasses.asdict(obj))
    return obj


def _repo_relative(obj):
    """Absolute paths inside the checkout, anywhere in ``obj``, as paths relative to it: saved
    results must not depend on where the repository was cloned."""
    if isinstance(obj, dict):
        return {k: _repo_relative(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_repo_relative(v) for v in obj]
    if isinstance(obj, str) and obj.startswith(str(REPO_ROOT) + os.sep):
        return str(Path(obj).relative_to(REPO_ROOT))
    return obj


def save_results(path: str | Path, results: dict, *, preset: str, params: Any = None) -> Path:
    """Write ``results`` as JSON with provenance (preset, parameters, commit, hardware, date);
    paths inside the checkout are recorded relative to it."""
    from .claims import provenance  # chapter, seed, device, overrides, command, commit, date, hardware

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "provenance": {**provenance(preset=preset), "params": _repo_relative(_jsonable(params))},
        "results": _repo_relative(_jsonable(results)),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def load_results(path: str | Path) -> dict:
    """Read a file written by :func:`save_results`; a clear error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no saved results at {path}: produce them with the command named in "
            "the chapter (a benchmark script or `reprobook run ... --preset long`)."
        )
    return json.loads(path.read_text())


class Table:
    """A DataFrame shown without its index, deterministically (no ids, no
    addresses), as HTML in the book and as text in nbval's comparison.

    A missing value (NaN, None, pd.NA) prints as an en dash, and a table holding one
    gets the footnote :attr:`NA_NOTE` under it."""

    NA = "\u2013"  # en dash
    NA_NOTE = "\u2013 : not available (NaN)"

    def __init__(self, df, floatfmt: str = "{:.4g}"):
        self.df = df
        self.floatfmt = floatfmt

    def _has_na(self) -> bool:
        return bool(self.df.isna().to_numpy().any())

    def _shown(self):
        """The frame to print: unchanged without missing values; else the missing values of
        the columns that are not float (None, pd.NA in Int64 ...) replaced by the dash."""
        if not self._has_na():
            return self.df
        df = self.df.copy()
        for c in df.columns:
            if df[c].dtype.kind != "f" and df[c].isna().any():
                col = df[c].astype(object)
                df[c] = col.where(col.notna(), self.NA)
        return df

    def _formatters(self):
        import pandas as pd

        na, fmt = self.NA, self.floatfmt.format
        return {
            c: (lambda v: na if pd.isna(v) else fmt(v))
            for c in self.df.columns
            if self.df[c].dtype.kind == "f"
        }

    def _repr_html_(self) -> str:
        html = self._shown().to_html(
            index=False, formatters=self._formatters(), na_rep=self.NA, border=0, classes="table"
        )
        if self._has_na():
            html += f'\n<p class="table-note">{self.NA_NOTE}</p>'
        return html

    def __repr__(self) -> str:
        text = self._shown().to_string(index=False, formatters=self._formatters(), na_rep=self.NA)
        if self._has_na():
            text += "\n" + self.NA_NOTE
        return text


def best_time(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` after one warm-up call (benchmarks)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
