"""Presets -> typed configs, and the claims / scoreboard plumbing."""

import json
from dataclasses import dataclass

import pytest

from reprobook.claims import CLAIMS_ENV, Claims, read_claims, scoreboard_markdown
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
    claims = Claims("toy", "cpu")
    claims.add("A holds", "1.0", "0.9", True)
    claims.add("B fails", "2x", "1.1x", False, note="small scale")
    table = claims.report()
    assert "A holds" in repr(table) and "NO" in repr(table)
    records = read_claims(target)
    assert [r["name"] for r in records] == ["A holds", "B fails"]
    assert records[1] == {
        "chapter": "toy", "preset": "cpu", "name": "B fails", "paper": "2x", "ours": "1.1x",
        "holds": False, "note": "small scale",
    }


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
    assert "| a\\|b | 1 | 2 | yes | cpu |" in text
    assert "| c | 3 | 4 | **no** | long |" in text


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
