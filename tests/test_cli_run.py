"""`reprobook run` end to end on a fake checkout (a one-cell stand-in for chapter 01, seconds):
outputs only under --output, --save-results, provenance, progress on stderr; and papermill
directly: unknown parameters refused, overrides through -y."""

import json
import subprocess
import sys
import textwrap

import nbformat
import pytest

from reprobook.claims import read_claims_file

FAKE_CHAPTER = '''\
# %% [markdown]
# # A stand-in for chapter 01

# %% tags=["parameters"]
preset = "cpu"
overrides = {}
seed = 0
device = "auto"

# %%
from reprobook.chapters import get_chapter, results_dir, results_path
from reprobook.claims import Claims
from reprobook.common import progress, save_results

cfg = get_chapter("lingam").config(preset, overrides, namespace=globals())
claims = Claims("lingam", preset)
print("genes", cfg.genes)
for _ in progress(range(3), desc="fake-inner-bar"):
    pass
if preset != "cpu":
    save_results(results_dir("lingam") / "long.json", {"genes": cfg.genes}, preset=preset, params=cfg)
claims.add("measured here", "1", str(cfg.genes), True)
saved = results_path("lingam", "long.json")
if saved.is_file():
    claims.add("read from saved results", "1", "1", True, source=saved)
claims.report()
'''


@pytest.fixture
def checkout(tmp_path):
    """A folder that `reprobook` takes for a checkout of the book: _toc.yml, chapters/01_lingam.py."""
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (root / "chapters" / "01_lingam.py").write_text(FAKE_CHAPTER)
    return root


def cli(*args, cwd):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("REPROBOOK_")}
    return subprocess.run([sys.executable, "-m", "reprobook.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_run_writes_only_under_output_and_records_provenance(checkout):
    out = cli("run", "01_lingam", "--preset", "full", "-p", "device", "cpu", "-p", "seed", "2",
              "-p", "genes", "7", "--output", "runs/x", cwd=checkout)
    assert out.returncode == 0, out.stderr[-3000:]
    run = checkout / "runs" / "x"
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()) == [
        "01_lingam.ipynb", "claims.json", "results/lingam/long.json"]
    assert not (checkout / "results").exists(), "a run writes only under its --output"
    # the chapter's own bar shows on stderr; ipykernel's TCP warning does not
    assert "fake-inner-bar" in out.stderr
    assert "without encryption" not in out.stderr
    prov, claims = read_claims_file(run / "claims.json")
    assert {k: prov[k] for k in ("chapter", "preset", "seed", "device", "overrides", "notebook")} == {
        "chapter": "lingam", "preset": "full", "seed": 2, "device": "cpu", "overrides": {"genes": 7},
        "notebook": "runs/x/01_lingam.ipynb"}
    assert prov["command"] == "reprobook run lingam --preset full -p genes 7 -p seed 2 -p device cpu"
    assert {"git_commit", "date", "hardware"} <= set(prov)
    assert str(checkout) not in json.dumps(prov)
    assert [c["name"] for c in claims] == ["measured here", "read from saved results"]
    assert claims[0]["source"] == "" and claims[1]["source"] == "runs/x/results/lingam/long.json"
    saved = json.loads((run / "results" / "lingam" / "long.json").read_text())["provenance"]
    assert {k: saved[k] for k in ("chapter", "preset", "seed", "device", "overrides")} == {
        "chapter": "lingam", "preset": "full", "seed": 2, "device": "cpu", "overrides": {"genes": 7}}
    assert str(checkout) not in json.dumps(saved)


def test_save_results_copies_into_results_and_says_the_chapter_is_stale(checkout):
    out = cli("run", "lingam", "--preset", "full", "-p", "device", "cpu", "--output", "runs/y", "--save-results",
              cwd=checkout)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (checkout / "results" / "lingam" / "long.json").is_file()
    assert "saved results/lingam/long.json" in out.stderr and "now stale" in out.stderr


def _papermill(checkout, tmp_path, *args, env=None):
    import os

    import jupytext

    nb = jupytext.read(checkout / "chapters" / "01_lingam.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, dst = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("REPROBOOK_")}, **(env or {})}
    out = subprocess.run([sys.executable, "-m", "papermill", str(src), str(dst), *args, "--cwd", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=checkout, env=env)
    return out, dst


def test_papermill_refuses_a_parameter_the_chapter_does_not_take(checkout, tmp_path):
    out, dst = _papermill(checkout, tmp_path, "-p", "genes", "5")
    assert out.returncode != 0
    assert "unknown notebook parameter(s) 'genes'" in out.stderr
    assert """-y '{"overrides": {"genes": ...}}'""" in out.stderr


def test_papermill_overrides_through_yaml_and_claims_only_when_asked(checkout, tmp_path):
    out, dst = _papermill(checkout, tmp_path, "-y", '{"overrides": {"genes": 5}}', "-p", "seed", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    nb = nbformat.read(dst, as_version=4)
    assert any(o.get("text") == "genes 5\n" for c in nb.cells for o in c.get("outputs", []))
    assert not list(tmp_path.rglob("*claims*.json")), "papermill alone writes no claims file unless asked"

    claims_path = tmp_path / "asked" / "claims.json"
    out, dst = _papermill(checkout, tmp_path, "-y", '{"overrides": {"genes": 5}}', "-p", "seed", "1",
                          env={"REPROBOOK_CLAIMS_PATH": str(claims_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    prov, claims = read_claims_file(claims_path)  # the notebook's own parameters, without reprobook run
    assert {k: prov[k] for k in ("chapter", "preset", "seed", "device", "overrides")} == {
        "chapter": "lingam", "preset": "cpu", "seed": 1, "device": "auto", "overrides": {"genes": 5}}
    assert "command" not in prov


def test_papermill_overrides_as_a_string_name_the_fix(checkout, tmp_path):
    out, dst = _papermill(checkout, tmp_path, "-p", "overrides", '{"genes": 5}')
    assert out.returncode != 0
    assert "papermill's -p passes a string" in out.stderr
