"""Presets -> typed configs, and the claims / scoreboard plumbing."""

import json
from dataclasses import dataclass

import pytest

from reprobook.claims import CLAIMS_ENV, RUN_INFO_ENV, Claims, read_claims, read_claims_file, scoreboard_markdown
from reprobook.presets import ConfigError, coerce, parse_cli_value, resolve


@dataclass(frozen=True)
class Toy:
    n: int = 3
    rate: float = 0.5
    name: str = "a"
    flag: bool = False
    dims: tuple[int, ...] = (1, 2)
    jobs: int | None = None


PRESETS = {"cpu": {}, "full": {"n": 30, "dims": (10, 20)}}


def test_resolve_applies_preset_then_overrides():
    cfg = resolve(Toy, PRESETS, "full", {"rate": 1, "dims": [5]})
    assert cfg == Toy(n=30, rate=1.0, dims=(5,))
    assert isinstance(cfg.rate, float)


@pytest.mark.parametrize(
    "preset, overrides, message",
    [
        ("gpu", {}, "unknown preset 'gpu'; valid presets: cpu, full"),
        ("cpu", {"m": 1}, "unknown parameter.*'m'.*valid parameters: n, rate, name, flag, dims, jobs"),
        ("cpu", {"n": "3"}, "parameter 'n' must be int"),
        ("cpu", {"n": 2.5}, "parameter 'n' must be int"),
        ("cpu", {"n": True}, "parameter 'n' must be int"),
        ("cpu", {"flag": 1}, "parameter 'flag' must be bool"),
        ("cpu", {"dims": 3}, "parameter 'dims' must be a tuple of int"),
        ("cpu", {"dims": [1, "x"]}, r"parameter 'dims\[1\]' must be int"),
        ("cpu", {"jobs": "all"}, "parameter 'jobs' must be int or None"),
        ("cpu", [("n", 1)], "overrides must be a dict"),
    ],
)
def test_resolve_errors_name_the_problem(preset, overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(Toy, PRESETS, preset, overrides)


def test_optional_accepts_none_and_int():
    assert coerce("jobs", None, int | None) is None
    assert coerce("jobs", 4, int | None) == 4


def test_cli_values_parse_as_json_else_string():
    assert parse_cli_value("3") == 3
    assert parse_cli_value("0.5") == 0.5
    assert parse_cli_value("true") is True
    assert parse_cli_value("[1, 2]") == [1, 2]
    assert parse_cli_value("laplace") == "laplace"


def test_claims_written_to_env_path(tmp_path, monkeypatch):
    target = tmp_path / "c.json"
    monkeypatch.setenv(CLAIMS_ENV, str(target))
    monkeypatch.setenv(RUN_INFO_ENV, json.dumps({"chapter": "toy", "preset": "cpu", "seed": 3, "device": "cpu",
                                                 "overrides": {"n": 2}, "command": "reprobook run toy"}))
    claims = Claims("toy", "cpu")
    claims.add("A holds", "1.0", "0.9", True)
    claims.add("B fails", "2x", "1.1x", False, note="small scale")
    table = claims.report()
    assert "A holds" in repr(table) and "NO" in repr(table)
    # a claim's note (its rule or tolerance) is shown in the chapter's table
    assert list(claims.table().columns) == ["claim", "paper", "ours", "holds", "note"]
    assert list(claims.table()["note"]) == ["", "small scale"]
    text = scoreboard_markdown({"toy": ("01 · Toy", records := claims.as_records())})
    assert "| B fails | 2x | 1.1x | **no** | small scale | cpu |" in text and len(records) == 2
    records = read_claims(target)
    assert [r["name"] for r in records] == ["A holds", "B fails"]
    assert records[1] == {
        "chapter": "toy", "preset": "cpu", "name": "B fails", "paper": "2x", "ours": "1.1x",
        "holds": False, "note": "small scale", "source": "",
    }
    prov, _ = read_claims_file(target)
    assert {k: prov[k] for k in ("chapter", "preset", "seed", "device", "overrides", "command")} == {
        "chapter": "toy", "preset": "cpu", "seed": 3, "device": "cpu", "overrides": {"n": 2},
        "command": "reprobook run toy"}
    assert {"git_commit", "date", "hardware"} <= set(prov)


def test_old_claims_files_still_read(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps([{"name": "x", "paper": "1", "ours": "1", "holds": True}]))
    assert read_claims_file(path) == (None, [{"name": "x", "paper": "1", "ours": "1", "holds": True}])


def test_a_claim_from_saved_results_says_so(tmp_path):
    from reprobook.common import REPO_ROOT

    claims = Claims("toy", "cpu")
    claims.add("measured", "1", "1", True)
    claims.add("speed ratio", "32x", "146x", True, source=REPO_ROOT / "results" / "lingam" / "cpu_benchmark.json")
    assert claims.as_records()[1]["source"] == "results/lingam/cpu_benchmark.json"
    table = claims.table()
    assert list(table["from"]) == ["this run", "results/lingam/cpu_benchmark.json"]
    plain = Claims("toy", "cpu")
    plain.add("measured", "1", "1", True)
    assert list(plain.table().columns) == ["claim", "paper", "ours", "holds"]
    text = scoreboard_markdown({"toy": ("01 · Toy", claims.as_records(), "chapters/01_toy.ipynb")})
    assert "## [01 · Toy](chapters/01_toy.ipynb)" in text
    assert "| speed ratio | 32x | 146x | yes |  | saved: `results/lingam/cpu_benchmark.json` |" in text
    assert "| measured | 1 | 1 | yes |  | cpu |" in text


def test_saved_results_record_the_runs_provenance(tmp_path, monkeypatch):
    from reprobook.common import load_results, save_results

    monkeypatch.setenv(RUN_INFO_ENV, json.dumps({"chapter": "toy", "preset": "long", "seed": 1, "device": "cpu",
                                                 "overrides": {}, "command": "reprobook run toy --preset long"}))
    prov = load_results(save_results(tmp_path / "r.json", {"a": 1}, preset="long", params={"n": 1}))["provenance"]
    assert {k: prov[k] for k in ("chapter", "preset", "seed", "device", "overrides", "command", "params")} == {
        "chapter": "toy", "preset": "long", "seed": 1, "device": "cpu", "overrides": {},
        "command": "reprobook run toy --preset long", "params": {"n": 1}}
    assert {"git_commit", "date", "hardware"} <= set(prov)
    monkeypatch.delenv(RUN_INFO_ENV)
    prov = load_results(save_results(tmp_path / "r.json", {"a": 1}, preset="benchmark"))["provenance"]
    assert prov["preset"] == "benchmark" and "chapter" not in prov and prov["command"]  # a script: its command


class FakeNamespace(dict):
    """A notebook's globals() as IPython keeps them: the executed inputs in ``In``."""


PARAMETERS_CELL = 'preset = "cpu"\noverrides = {}\nseed = 0\ndevice = "auto"\n'


def test_config_refuses_a_parameter_papermill_injected_that_the_chapter_does_not_take():
    from reprobook.chapters import get_chapter, injected_parameters

    injected = '# Parameters\nacc_dims = [5]\nseed = 2\nPAPERMILL_INPUT_PATH = "in.ipynb"\n'
    ns = FakeNamespace(In=["", PARAMETERS_CELL, injected], preset="cpu", overrides={}, seed=2, device="auto")
    assert injected_parameters(ns) == ["acc_dims", "seed", "PAPERMILL_INPUT_PATH"]
    with pytest.raises(ConfigError, match=r"unknown notebook parameter\(s\) 'acc_dims'.*"
                                          r"""-y '\{"overrides": \{"acc_dims": \.\.\.\}\}'"""):
        get_chapter("lingam").config("cpu", {}, namespace=ns)


def test_config_with_namespace_accepts_known_parameters_and_needs_no_papermill():
    from reprobook import claims as claims_mod
    from reprobook.chapters import get_chapter

    ok = FakeNamespace(In=["", PARAMETERS_CELL, '# Parameters\npreset = "full"\noverrides = {"acc_dims": [5]}\n'],
                       seed=4, device="cpu")
    cfg = get_chapter("lingam").config("full", {"acc_dims": [5]}, namespace=ok)
    assert cfg.acc_dims == (5,)
    assert claims_mod.NOTEBOOK_PARAMETERS == {"chapter": "lingam", "preset": "full", "overrides": {"acc_dims": [5]},
                                              "seed": 4, "device": "cpu"}
    # no injected cell (Jupyter, nbval, a plain script): nothing to check
    assert get_chapter("lingam").config("cpu", {}, namespace=FakeNamespace(In=["", PARAMETERS_CELL])).acc_seeds >= 1
    assert get_chapter("lingam").config("cpu", {}, namespace={}).acc_seeds >= 1
    with pytest.raises(ConfigError, match="papermill's -p passes a string"):
        get_chapter("lingam").config("cpu", '{"acc_dims": [5]}', namespace={})
    claims_mod.NOTEBOOK_PARAMETERS.clear()


def test_duplicate_or_empty_claim_rejected():
    claims = Claims("toy", "cpu")
    claims.add("A", "1", "1", True)
    with pytest.raises(ValueError, match="already recorded"):
        claims.add("A", "1", "1", True)
    with pytest.raises(ValueError, match="non-empty name"):
        claims.add("", "1", "1", True)


def test_read_claims_rejects_incomplete_records(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"name": "x", "paper": "1"}]))
    with pytest.raises(ValueError, match="lacks"):
        read_claims(path)


def test_scoreboard_counts_and_escapes():
    records = [
        {"name": "a|b", "paper": "1", "ours": "2", "holds": True, "preset": "cpu"},
        {"name": "c", "paper": "3", "ours": "4", "holds": False, "preset": "long"},
    ]
    text = scoreboard_markdown({"x": ("01 X", records)})
    assert "**1 of 2 claims hold.**" in text
    assert "| a\\|b | 1 | 2 | yes |  | cpu |" in text
    assert "| c | 3 | 4 | **no** | long |" not in text  # the note column sits before the scale
    assert "| c | 3 | 4 | **no** |  | long |" in text


def test_inconclusive_claims_are_neither_held_nor_failed(tmp_path):
    claims = Claims("toy", "cpu")
    claims.add("C undecided", "1", "1 ± 2", "inconclusive")
    with pytest.raises(ValueError, match="inconclusive"):
        claims.add("D", "1", "1", "maybe")
    assert "inconclusive" in repr(claims.report(tmp_path / "c.json"))
    records = read_claims(tmp_path / "c.json")
    assert records[0]["holds"] == "inconclusive"
    text = scoreboard_markdown({"x": ("01 X", records + [{"name": "e", "paper": "1", "ours": "1", "holds": True}])})
    assert "**1 of 2 claims hold; 1 inconclusive.**" in text
    assert "| C undecided | 1 | 1 ± 2 | inconclusive |" in text
