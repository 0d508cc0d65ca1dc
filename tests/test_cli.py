"""The reprobook command: listing, bad input (exit 2, before any work) and a small real run."""

import json
import subprocess
import sys
import time

import nbformat
import pytest

from reprobook import chapters as chapters_mod
from reprobook import cli as cli_mod
from reprobook.chapters import CHAPTERS
from reprobook.claims import read_claims_file


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "reprobook.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_list_shows_run_names_titles_preset_changes_and_defaults():
    out = cli("list")
    assert out.returncode == 0, out.stderr
    for chapter in CHAPTERS.values():
        assert f"{chapter.slug}  ({chapter.name})  {chapter.title}" in out.stdout
        assert f"reprobook run {chapter.slug} [--preset {'|'.join(chapter.presets)}]" in out.stdout
    assert "seed = 0, device = auto (auto | cpu | cuda; the GPU path runs on cupy)" in out.stdout
    assert "the GPU path runs on torch" in out.stdout
    assert "full  paper scale, for a GPU; changes agree_dims=[3, 5, 10, 20, 50]" in out.stdout
    assert "long  a longer CPU run" in out.stdout and "changes study=True" in out.stdout
    assert "acc_dims: tuple of int = [5, 10, 20, 40, 80]" in out.stdout


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


def test_argparse_errors_also_exit_2_with_one_line():
    out = cli("run")
    assert out.returncode == 2
    assert "slug" in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without a usable GPU, and a run that records what it would execute (no kernel)."""
    monkeypatch.setattr(chapters_mod, "cuda_available", lambda backend=None: False)
    calls = []
    monkeypatch.setattr(cli_mod, "execute", lambda *a, **k: calls.append((a, k)))
    return calls


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "lingam", "-p", "device", "cuda"], "device 'cuda' asked for, but no CUDA GPU is usable through cupy"),
        (["run", "qqt", "-p", "device", "cuda"], "no CUDA GPU is usable through torch"),
        (["run", "lingam", "--preset", "full"],
         "preset 'full' is paper scale, meant for a GPU.*Add -p device cpu to run it on the CPU anyway"),
        (["run", "06_mohawk", "--preset", "full"], "preset 'full' is paper scale.*CPU preset \\(cpu, long\\)"),
    ],
)
def test_device_checks_exit_2_before_any_work(tmp_path, capsys, no_gpu, args, message):
    out_dir = tmp_path / "out"
    start = time.perf_counter()
    assert cli_mod.main([*args, "--output", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert not no_gpu and not out_dir.exists()
    assert time.perf_counter() - start < 10


def test_full_preset_runs_on_the_cpu_when_asked_and_slugs_take_both_forms(tmp_path, capsys, no_gpu):
    for name in ("lingam", "01_lingam"):
        assert cli_mod.main(["run", name, "--preset", "full", "-p", "device", "cpu", "--output", str(tmp_path)]) == 0
    (first, kw1), (second, kw2) = no_gpu
    assert first[0] is second[0] is CHAPTERS["lingam"]
    assert first[1] == tmp_path / "01_lingam.ipynb" and first[3] == tmp_path / "claims.json"
    assert first[2] == {"preset": "full", "device": "cpu"}
    assert kw1 == {"results_dir": tmp_path / "results", "show_progress": True}


def test_execute_and_list_take_both_forms():
    assert chapters_mod.get_chapter("01_lingam") is chapters_mod.get_chapter("lingam")
    out = cli("list", "02_qqt")
    assert out.returncode == 0 and out.stdout.startswith("qqt  (02_qqt)")


@pytest.mark.parametrize("inside", ["results", "results/lingam", "book/chapters"])
def test_output_inside_the_books_folders_is_refused(inside, capsys, no_gpu):
    from reprobook.common import REPO_ROOT

    assert cli_mod.main(["run", "lingam", "--output", str(REPO_ROOT / inside)]) == 2
    assert "a run writes only to its own folder" in capsys.readouterr().err


def test_output_that_cannot_be_written_exits_2(tmp_path, capsys, no_gpu):
    (tmp_path / "file").write_text("")
    assert cli_mod.main(["run", "lingam", "--output", str(tmp_path / "file" / "sub")]) == 2
    assert "cannot write to --output" in capsys.readouterr().err


def test_outside_a_checkout_execute_scoreboard_and_run_exit_2(tmp_path):
    env = {**__import__("os").environ, "REPROBOOK_REPO_ROOT": str(tmp_path)}
    for args in (["scoreboard"], ["execute", "lingam"], ["run", "lingam", "--output", str(tmp_path / "o")]):
        out = subprocess.run([sys.executable, "-m", "reprobook.cli", *args], capture_output=True, text=True, env=env)
        assert out.returncode == 2 and "not in a checkout of the book" in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_scoreboard_headings_link_chapters_and_read_both_claims_formats(tmp_path):
    root = tmp_path / "book-checkout"
    (root / "chapters").mkdir(parents=True)
    (root / "_toc.yml").write_text("root: intro\n")
    (root / "book" / "chapters").mkdir(parents=True)
    old = [{"chapter": "lingam", "preset": "cpu", "name": "old format", "paper": "1", "ours": "1", "holds": True}]
    (root / "book" / "chapters" / "01_lingam.claims.json").write_text(json.dumps(old))
    new = {"provenance": {"chapter": "qqt", "preset": "long"},
           "claims": [{"chapter": "qqt", "preset": "long", "name": "new format", "paper": "1", "ours": "2",
                       "holds": False, "source": "results/qqt/long.json"}]}
    (root / "results" / "qqt").mkdir(parents=True)
    (root / "results" / "qqt" / "long_claims.json").write_text(json.dumps(new))
    out = subprocess.run([sys.executable, "-m", "reprobook.cli", "scoreboard"], capture_output=True, text=True,
                         cwd=root, env={k: v for k, v in __import__("os").environ.items() if k != "REPROBOOK_REPO_ROOT"})
    assert out.returncode == 0, out.stderr
    text = (root / "book" / "scoreboard.md").read_text()
    assert f"## [01 · {CHAPTERS['lingam'].title}](chapters/01_lingam.ipynb)" in text
    assert f"## [02 · {CHAPTERS['qqt'].title}](chapters/02_qqt.ipynb)" in text
    assert "| old format | 1 | 1 | yes |  | cpu |" in text
    assert "| new format | 1 | 2 | **no** |  | saved: `results/qqt/long.json` |" in text


def test_small_run_writes_notebook_and_claims(tmp_path):
    out_dir = tmp_path / "run"
    params = {
        "agree_dims": "[3]", "agree_ns": "[60]", "agree_noises": '["laplace"]', "agree_seeds": "1",
        "acc_dims": "[3]", "acc_ns": "[60]", "acc_seeds": "1",
        "genes": "4", "gene_samples": "200", "gene_seeds": "2", "seed": "1", "device": "cpu",
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
    prov, claims = read_claims_file(out_dir / "claims.json")
    assert claims and all({"name", "paper", "ours", "holds"} <= set(c) for c in claims)
    assert all(c["chapter"] == "lingam" and c["preset"] == "cpu" for c in claims)
    assert prov["seed"] == 1 and prov["device"] == "cpu" and prov["overrides"]["genes"] == 4
    assert not (out_dir / "results").exists()


def test_repo_root_is_the_checkout_holding_the_working_directory(tmp_path):
    root = tmp_path / "clone"
    (root / "chapters").mkdir(parents=True)
    (root / "_toc.yml").write_text("root: intro\n")
    (root / "book" / "deep").mkdir(parents=True)
    env = {k: v for k, v in __import__("os").environ.items() if k != "REPROBOOK_REPO_ROOT"}
    code = "from reprobook.common import REPO_ROOT; print(REPO_ROOT)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root / "book" / "deep", env=env)
    assert out.stdout.strip() == str(root.resolve())
