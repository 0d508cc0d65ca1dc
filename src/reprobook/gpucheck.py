"""Every chapter's GPU check in one command.

    make gpu-check          # on a machine with an NVIDIA GPU: about 8 minutes in all
    make gpu-check-smoke    # the same scripts at toy size on the CPU (a unit test runs it too)
    python -m reprobook.gpucheck --only mohawk lingam    # some checks
    bash benchmarks/gpu_check_lent.sh OUT                # on a GPU machine without the venv or network

Each chapter's script ``benchmarks/<slug>_gpu.py`` defines
``gpu_check(device, smoke, deadline) -> dict``: it first verifies that the
chapter's numerical core gives on the device what it gives on the CPU (or what
an independent computation gives) and then times it, stopping its timing loops
when its ``deadline`` is near. The dict holds ``passed`` (the correctness
verdict), ``key_figure`` (one line for the summary) and the measurements.

Each check runs in its own child process with a wall-clock limit (its budget),
so a check that hangs or overruns is killed and reported, and the next one
starts. Checks run from the smallest budget to the largest, so when the total
budget runs out it is the slowest check that is cut. Each child writes
``<results-dir>/<slug>/gpu.json`` with provenance; the parent prints one
summary table and writes ``<results-dir>/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .common import REPO_ROOT, load_results, resolve_device, save_results
from .registry import ENTRIES

TOTAL_BUDGET_S = 480.0  # 8 minutes on one H200, leaving the rest of a 15-minute loan for start-up
SMOKE_BUDGET_S = 120.0  # per check at toy size on a CPU; the smoke run normally takes seconds per check
MIN_START_S = 20.0  # a check given less than this is not started (CUDA start-up alone takes seconds)


@dataclass(frozen=True)
class CheckSpec:
    slug: str
    budget_s: float  # wall clock on one H200, start-up of the child process included
    backend: str = "torch"  # the GPU library the check runs on ("cupy" or "torch")

    @property
    def script(self) -> Path:
        return REPO_ROOT / "benchmarks" / f"{self.slug}_gpu.py"


#: One check per chapter with a GPU path; budgets are set in :mod:`reprobook.registry`.
CHECKS: tuple[CheckSpec, ...] = tuple(CheckSpec(e.slug, e.gpu_budget_s, e.gpu_backend) for e in ENTRIES
                                      if e.gpu_budget_s is not None)


@dataclass
class Deadline:
    """The time a check has left; timing loops ask it before each size."""

    seconds: float
    start: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def allows(self, fraction: float = 0.2) -> bool:
        """True while more than ``fraction`` of the budget is left (kept for saving and slack)."""
        return self.left() > fraction * self.seconds


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def device_time(fn, device: str, repeats: int = 3) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after one warm-up call, with the device
    synchronized around each call (CUDA kernels run asynchronously)."""
    fn()
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def relative_difference(a, b) -> float:
    """max |a - b| / max |b| over two tensors (brought to the CPU in float64)."""
    import torch

    a, b = (torch.as_tensor(t).detach().cpu().double() for t in (a, b))
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def forward_difference(module, inputs: tuple, device: str) -> float:
    """Relative difference between ``module(*inputs)`` on the CPU and a copy of it on ``device``,
    in float32 with TF32 off (on by default for cuDNN convolutions, it rounds to 10 bits)."""
    import copy

    import torch

    module = module.cpu().eval()
    on_device = copy.deepcopy(module).to(device)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            expected = module(*inputs)
            got = on_device(*(t.to(device) if torch.is_tensor(t) else t for t in inputs))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return relative_difference(got, expected)


def plan(checks: tuple[CheckSpec, ...], total_s: float) -> list[tuple[CheckSpec, float | None]]:
    """The order of the run and each check's limit: smallest budget first, each limited by its
    own budget and by what the total has left if all before it use their whole budget; a check
    with less than MIN_START_S left gets None (cut)."""
    out, used = [], 0.0
    for spec in sorted(checks, key=lambda c: (c.budget_s, c.slug)):
        limit = min(spec.budget_s, total_s - used)
        if limit < MIN_START_S:
            out.append((spec, None))
            continue
        out.append((spec, limit))
        used += limit
    return out


def _load_check(spec: CheckSpec):
    if not spec.script.is_file():
        raise FileNotFoundError(f"no GPU script for {spec.slug!r}: expected {spec.script}")
    sys.path.insert(0, str(spec.script.parent))  # the scripts import their chapter's CPU benchmarks
    module_spec = importlib.util.spec_from_file_location(f"{spec.slug}_gpu", spec.script)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "gpu_check"):
        raise AttributeError(f"{spec.script} defines no gpu_check(device, smoke, deadline)")
    return module.gpu_check


def run_child(slug: str, device: str, smoke: bool, budget_s: float, results_dir: Path) -> Path:
    """Run one check in this process and save ``results_dir/slug/gpu.json``."""
    spec = _spec(slug)
    deadline = Deadline(budget_s)
    check = _load_check(spec)
    device = resolve_device(device, spec.backend)
    record = check(device, smoke, deadline)
    missing = {"passed", "key_figure"} - set(record)
    if missing:
        raise KeyError(f"{spec.script.name}'s gpu_check returned no {sorted(missing)}")
    record = {"passed": bool(record["passed"]), **record, "device": device, "device_name": _device_name(device),
              "seconds": time.perf_counter() - deadline.start}
    return save_results(results_dir / slug / "gpu.json", record, preset="gpu-check-smoke" if smoke else "gpu-check",
                        params={"budget_s": budget_s, "smoke": smoke})


def _device_name(device: str) -> str:
    if device != "cuda":
        return "cpu"
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda (through cupy)"


def _spec(slug: str) -> CheckSpec:
    by_slug = {c.slug: c for c in CHECKS}
    if slug not in by_slug:
        raise ValueError(f"unknown check {slug!r}; valid: {', '.join(by_slug)}")
    return by_slug[slug]


def run_all(*, device: str, smoke: bool, results_dir: Path, total_s: float, only: list[str] | None = None,
            python: str = sys.executable) -> list[dict]:
    """Every check (or ``only`` those) in its own child process; one summary row per check."""
    checks = tuple(_spec(s) for s in only) if only else CHECKS
    rows = []
    for spec, limit in plan(checks, math.inf if smoke else total_s):
        if smoke:  # toy sizes on a CPU, in the GPU run's order: no budget pressure, but a limit against hangs
            limit = SMOKE_BUDGET_S
        row = {"check": spec.slug, "passed": False, "key figure": "", "seconds": 0.0, "status": ""}
        if limit is None:
            rows.append({**row, "status": "cut: the total budget was spent"})
            print(f"== {spec.slug}: cut, the total budget was spent", flush=True)
            continue
        out = results_dir / spec.slug / "gpu.json"
        out.unlink(missing_ok=True)  # a stale file must not pass for this run's result
        print(f"== {spec.slug}: at most {limit:.0f} s", flush=True)
        cmd = [python, "-m", "reprobook.gpucheck", "--child", spec.slug, "--device", device,
               "--budget", str(limit), "--results-dir", str(results_dir)] + (["--smoke"] if smoke else [])
        start = time.perf_counter()
        # A new session, so that on a timeout the whole process tree (CUDA workers included) is killed.
        proc = subprocess.Popen(cmd, start_new_session=True)
        try:
            code = proc.wait(timeout=limit + 5)
            status = "ok" if code == 0 else f"error (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = f"killed after {limit:.0f} s"
        row["seconds"] = time.perf_counter() - start
        if out.is_file() and status == "ok":
            result = load_results(out)["results"]
            row.update({"passed": result["passed"], "key figure": result["key_figure"]})
        row["status"] = status
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'check':<17} {'passed':<7} {'seconds':>7}  key figure"]
    for r in rows:
        passed = "yes" if r["passed"] else "NO"
        figure = r["key figure"] if r["status"] == "ok" else r["status"]
        lines.append(f"{r['check']:<17} {passed:<7} {r['seconds']:>7.0f}  {figure}")
    return "\n".join(lines)


def load_gpu_check(slug: str, results_dir: Path = REPO_ROOT / "results") -> dict | None:
    """The saved GPU check of a chapter (``results/<slug>/gpu.json``), or None when it has not run."""
    path = Path(results_dir) / slug / "gpu.json"
    return load_results(path) if path.is_file() else None


def show_gpu_check(slug: str, results_dir: Path = REPO_ROOT / "results") -> dict | None:
    """What a chapter prints about its GPU check: the verdict and key figure with the device
    and date, or that it has not run yet."""
    saved = load_gpu_check(slug, results_dir)
    if saved is None:
        print(f"No GPU check yet: `make gpu-check` (benchmarks/{slug}_gpu.py) has not run on a GPU for this book.")
        return None
    res, prov = saved["results"], saved["provenance"]
    commit = (prov.get("git_commit") or "unknown")[:7]
    print(f"GPU check on {res['device_name']} ({prov['date'][:10]}, commit {commit}): "
          f"{'passed' if res['passed'] else 'FAILED'}; {res['key_figure']}")
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: cuda (smoke: cpu)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU")
    parser.add_argument("--only", nargs="+", choices=[c.slug for c in CHECKS], help="run only these checks")
    parser.add_argument("--total", type=float, default=TOTAL_BUDGET_S, help="total budget in seconds")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="default: results/ (smoke: runs/gpu-check-smoke/, so results/ stays untouched)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = args.device or ("cpu" if args.smoke else "cuda")
    if args.smoke and device != "cpu":
        parser.error(f"--smoke runs the toy sizes on the CPU; --device {device} is not valid with it")
    results_dir = args.results_dir or (REPO_ROOT / ("runs/gpu-check-smoke" if args.smoke else "results"))
    if args.child:
        print(f"saved {run_child(args.child, device, args.smoke, args.budget, results_dir)}", flush=True)
        return 0
    if not args.smoke:
        resolve_device(device, "torch")  # no GPU: one clear error before any child starts
    rows = run_all(device=device, smoke=args.smoke, results_dir=results_dir, total_s=args.total, only=args.only)
    table = format_table(rows)
    print("\n" + table)
    summary = results_dir / ("gpu_check_smoke.json" if args.smoke else "gpu_check.json")
    save_results(summary, {"rows": rows}, preset="gpu-check-smoke" if args.smoke else "gpu-check",
                 params={"total_s": args.total, "only": args.only})
    print(f"saved {summary}")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
