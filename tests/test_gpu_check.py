"""`make gpu-check`'s runner: the plan, the saved record, and the smoke run of every chapter's check."""

import json
import subprocess
import sys

import pytest
import torch

from reprobook import gpucheck
from reprobook.common import save_results
from reprobook.gpucheck import CHECKS, CheckSpec, Deadline, plan, relative_difference


def test_every_chapter_with_a_gpu_path_has_a_check_script():
    for spec in CHECKS:
        assert spec.script.is_file(), spec.script
        assert "def gpu_check(device: str, smoke: bool, deadline)" in spec.script.read_text()


def test_the_budgets_fit_the_total():
    assert sum(c.budget_s for c in CHECKS) <= gpucheck.TOTAL_BUDGET_S


def test_plan_runs_the_smallest_budget_first_and_cuts_the_slowest():
    checks = (CheckSpec("slow", 300), CheckSpec("fast", 30), CheckSpec("mid", 100))
    assert [(c.slug, limit) for c, limit in plan(checks, 1000)] == [("fast", 30), ("mid", 100), ("slow", 300)]
    # 200 s in all: "slow" gets what is left (70 s); with 140 s in all it gets 10 s < MIN_START_S: cut.
    assert [limit for _, limit in plan(checks, 200)] == [30, 100, 70]
    assert [limit for _, limit in plan(checks, 140)] == [30, 100, None]


def test_deadline_allows_until_the_reserved_fraction():
    deadline = Deadline(10.0)
    assert deadline.allows(0.2) and 9.0 < deadline.left() <= 10.0
    deadline.start -= 8.5  # 1.5 s left
    assert not deadline.allows(0.2) and deadline.allows(0.1)


def test_relative_difference():
    b = torch.tensor([1.0, -4.0, 2.0])
    assert relative_difference(b, b) == 0.0
    assert relative_difference(b + torch.tensor([0.0, 0.0, 0.4]), b) == pytest.approx(0.1)


def test_forward_difference_is_zero_for_the_same_module_on_the_cpu():
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh())
    assert gpucheck.forward_difference(net, (torch.randn(4, 3),), "cpu") == 0.0


def test_show_gpu_check(tmp_path, capsys):
    assert gpucheck.show_gpu_check("mohawk", tmp_path) is None
    assert "No GPU check yet" in capsys.readouterr().out
    save_results(tmp_path / "mohawk" / "gpu.json", {"passed": True, "key_figure": "scan == matrix",
                                                    "device_name": "NVIDIA H200"}, preset="gpu-check")
    assert gpucheck.show_gpu_check("mohawk", tmp_path)["passed"]
    out = capsys.readouterr().out
    assert "NVIDIA H200" in out and "passed; scan == matrix" in out


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown check 'nope'; valid: lingam"):
        gpucheck.run_child("nope", "cpu", True, 10, None)
    with pytest.raises(SystemExit):
        gpucheck.main(["--smoke", "--device", "cuda"])
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            gpucheck.main(["--only", "mohawk"])


def test_smoke_run_of_every_check(tmp_path):
    """`make gpu-check-smoke`: every chapter's check at toy size on the CPU, each in its own
    process; each passes and saves its record with provenance."""
    proc = subprocess.run([sys.executable, "-m", "reprobook.gpucheck", "--smoke", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, env={**__import__("os").environ, "REPROBOOK_PROGRESS": "0"},
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "check             passed" in proc.stdout
    for spec in CHECKS:
        saved = json.loads((tmp_path / spec.slug / "gpu.json").read_text())
        assert saved["provenance"]["preset"] == "gpu-check-smoke" and saved["provenance"]["git_commit"]
        assert saved["results"]["passed"] is True and saved["results"]["key_figure"]
        assert saved["results"]["device"] == "cpu"
    rows = json.loads((tmp_path / "gpu_check_smoke.json").read_text())["results"]["rows"]
    assert [r["check"] for r in rows] == [c.slug for c, _ in plan(CHECKS, float("inf"))]
