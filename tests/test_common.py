"""Shared plumbing: devices, results with provenance, tables."""

import json

import numpy as np
import pandas as pd
import pytest

from reprobook.common import Table, cuda_available, load_results, resolve_device, save_results, seed_everything


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto", "torch") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_device("auto", "jax")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("gpu")


@pytest.mark.parametrize("backend, hint", [("torch", "CUDA build of PyTorch"), ("cupy", "cupy-cuda12x")])
def test_cuda_request_without_gpu_is_an_error_naming_the_fix(backend, hint):
    if cuda_available(backend):
        pytest.skip(f"a GPU is usable through {backend} here")
    with pytest.raises(RuntimeError, match=hint):
        resolve_device("cuda", backend)
    assert resolve_device("auto", backend) == "cpu"


def test_save_results_records_provenance(tmp_path):
    path = save_results(tmp_path / "r" / "x.json", {"a": np.float64(1.5), "b": np.arange(3)}, preset="cpu",
                        params={"n": 3})
    saved = json.loads(path.read_text())
    assert saved["results"] == {"a": 1.5, "b": [0, 1, 2]}
    prov = saved["provenance"]
    assert prov["preset"] == "cpu" and prov["params"] == {"n": 3}
    assert {"platform", "python", "cpu_count", "numpy"} <= set(prov["hardware"])
    assert load_results(path)["results"]["a"] == 1.5
    with pytest.raises(FileNotFoundError, match="no saved results"):
        load_results(tmp_path / "missing.json")


def test_seeding_is_reproducible_and_checked():
    a = seed_everything(3).random(3)
    b = seed_everything(3).random(3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_everything(-1)


def test_table_has_no_index_and_formats_floats():
    t = Table(pd.DataFrame({"x": [1.23456, 2.0], "name": ["a", "b"]}), floatfmt="{:.2f}")
    assert "1.23" in repr(t) and "1.2346" not in repr(t)
    html = t._repr_html_()
    assert "<table" in html and "1.23" in html and "<th></th>" not in html


def test_table_without_missing_values_prints_as_pandas_does():
    # nbval compares these texts with the executed chapters: no NaN, no change.
    df = pd.DataFrame({"x": [1.23456, 2.0, 1e-7], "n": [1, 2, 3], "name": ["a", "bb", "c"]})
    fmt = {"x": "{:.4g}".format}
    t = Table(df)
    assert repr(t) == df.to_string(index=False, formatters=fmt)
    assert t._repr_html_() == df.to_html(index=False, formatters=fmt, border=0, classes="table")
    assert Table.NA_NOTE not in repr(t)


def test_table_prints_missing_values_as_a_dash_with_a_footnote():
    df = pd.DataFrame(
        {
            "x": [1.23456, np.nan],
            "name": ["a", None],
            "k": pd.array([1, None], dtype="Int64"),
        }
    )
    t = Table(df, floatfmt="{:.2f}")
    text = repr(t)
    lines = text.splitlines()
    body = "\n".join(lines[:-1])
    assert "NaN" not in body and "nan" not in body and "None" not in body and "<NA>" not in body
    assert lines[1].split() == ["1.23", "a", "1"]
    assert lines[2].split() == ["\u2013", "\u2013", "\u2013"]
    assert lines[-1] == "\u2013 : not available (NaN)"
    html = t._repr_html_()
    assert "NaN</td>" not in html and "<td>\u2013</td>" in html
    assert html.rstrip().endswith('<p class="table-note">\u2013 : not available (NaN)</p>')


def test_saved_results_record_paths_inside_the_checkout_relative_to_it(tmp_path):
    from reprobook.common import REPO_ROOT, load_results, save_results

    params = {"output": str(REPO_ROOT / "results" / "x" / "y.json"), "other": "/elsewhere/z.json", "n": 3}
    out = save_results(tmp_path / "r.json", {"paths": [str(REPO_ROOT / "a.txt")]}, preset="cpu", params=params)
    saved = load_results(out)
    assert saved["provenance"]["params"] == {"output": "results/x/y.json", "other": "/elsewhere/z.json", "n": 3}
    assert saved["results"] == {"paths": ["a.txt"]}
