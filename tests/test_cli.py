"""The reprobook command: listing, bad input (exit 2, before any work) and a small real run."""

import json
import subprocess
import sys
import time

import nbformat
import pytest


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "reprobook.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_list_shows_chapters_presets_and_parameters():
    out = cli("list")
    assert out.returncode == 0, out.stderr
    assert "01_lingam" in out.stdout
    assert "presets: cpu, full" in out.stdout
    assert "acc_dims: tuple of int = (5, 10, 20, 40, 80)" in out.stdout
    assert "device: str" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope"], "unknown chapter 'nope'; valid chapters: lingam, qqt, hallucination, ect, acr, mohawk"),
        (["run", "lingam", "--preset", "huge"], "unknown preset 'huge'; valid presets: cpu, full"),
        (["run", "lingam", "-p", "dims", "3"], "unknown parameter.*'dims'.*valid parameters: agree_dims.*seed, device"),
        (["run", "lingam", "-p", "agree_seeds", "many"], "parameter 'agree_seeds' must be int"),
        (["run", "lingam", "-p", "acc_dims", "5"], "parameter 'acc_dims' must be a tuple of int"),
        (["run", "lingam", "-p", "acc_noise", "cauchy"], "unknown noise 'cauchy'; valid noises"),
        (["run", "lingam", "-p", "device", "tpu"], "parameter 'device' must be one of auto, cpu, cuda"),
        (["run", "lingam", "-p", "seed", "-1"], "parameter 'seed' must be a non-negative integer"),
        (["run", "lingam", "-p", "seed", "1", "-p", "seed", "2"], "parameter 'seed' given twice"),
        (["execute", "nope"], "unknown chapter 'nope'"),
    ],
)
def test_bad_input_exits_2_naming_valid_choices_before_work(tmp_path, args, message):
    out_dir = tmp_path / "out"
    start = time.perf_counter()
    out = cli(*args, "--output", str(out_dir)) if args[0] == "run" else cli(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message is None or __import__("re").search(message, out.stderr), out.stderr
    assert not out_dir.exists(), "no work may start on bad input"
    assert time.perf_counter() - start < 30


def test_argparse_errors_also_exit_2():
    out = cli("run")
    assert out.returncode == 2
    assert "slug" in out.stderr


def test_small_run_writes_notebook_and_claims(tmp_path):
    out_dir = tmp_path / "run"
    params = {
        "agree_dims": "[3]", "agree_ns": "[60]", "agree_noises": '["laplace"]', "agree_seeds": "1",
        "acc_dims": "[3]", "acc_ns": "[60]", "acc_seeds": "1",
        "genes": "4", "gene_samples": "200", "gene_seeds": "1", "seed": "1", "device": "cpu",
    }
    args = ["run", "lingam", "--output", str(out_dir)]
    for k, v in params.items():
        args += ["-p", k, v]
    out = cli(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    nb = nbformat.read(out_dir / "01_lingam.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "seed = 1" in injected[0].source and '"genes": 4' in injected[0].source
    claims = json.loads((out_dir / "claims.json").read_text())
    assert claims and all({"name", "paper", "ours", "holds"} <= set(c) for c in claims)
    assert all(c["chapter"] == "lingam" and c["preset"] == "cpu" for c in claims)
