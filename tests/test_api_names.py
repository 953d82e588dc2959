"""The two conveniences the tutorial (docs/tutorial.md) relies on: `Circuit.load` of a bundled
model's name, and `run_protocol(..., overrides=...)`.

Checked: a bundled name loads the same circuit as its file's path, with overrides applied, and an
unknown name is a one-line ConfigError listing the bundled models; protocol overrides replace the
file's keys for one run (the rows follow the overridden seeds and areas, a model key in ``set``
reaches the circuit: no learning at eta_W = 0), are recorded in summary.json, and a wrong key,
type or value is a one-line ConfigError naming it.
Catches: overrides silently ignored (rows of the file's seeds/areas, W still learning) or not
recorded; the model keys of ``set`` dropped."""

from __future__ import annotations

import json

import pytest

from salspike.circuit import Circuit
from salspike.errors import ConfigError
from salspike.protocols import run_protocol
from salspike.resources import bundled_path


def test_circuit_load_takes_a_bundled_name():
    by_name = Circuit.load("small_circuit", {"hidden": [4], "eta.W": 0.5})
    by_path = Circuit.load(bundled_path("model", "small_circuit"), {"hidden": [4], "eta.W": 0.5})
    assert by_name.to_dict() == by_path.to_dict()
    assert by_name["hidden"] == [4] and by_name["eta.W"] == 0.5
    with pytest.raises(ConfigError, match="does not exist.*bundled models: .*paper_mlp"):
        Circuit.load("no_such_model")


def test_run_protocol_overrides(tmp_path):
    res = run_protocol("area_silencing", "matrix", tmp_path / "a",
                       overrides={"seeds": [1], "trials": 4, "probe_trials": 2, "areas": [2]})
    assert {(r["seed"], r["silenced_area"]) for r in res["rows"]} == {(1, 2)}
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["overrides"] == {"seeds": [1], "trials": 4, "probe_trials": 2, "areas": [2]}

    # a model key in `set`: with eta_W = 0 no W learns, so area 3 above the silenced area 1 and the
    # control give 0 / 0; with the file's rates the control learns (the ratio is finite)
    frozen = run_protocol("area_silencing", "matrix", tmp_path / "b",
                          overrides={"seeds": [0], "trials": 4, "areas": [1], "set": {"eta": {"W": 0.0}}})
    learning = run_protocol("area_silencing", "matrix", tmp_path / "c", overrides={"seeds": [0], "trials": 4,
                                                                                  "areas": [1]})
    assert all(r["plasticity_W"] != r["plasticity_W"] for r in frozen["rows"])  # NaN: control did not learn
    assert all(r["plasticity_W"] == 0.0 for r in learning["rows"])

    for over, match in (({"trails": 3}, r"overrides: unknown key 'trails'.*Did you mean trials"),
                        ({"trials": "3"}, r"overrides: key 'trials' must be int"),
                        ({"levels": ["matrix"]}, r"overrides: unknown key 'levels'"),
                        ({"set": {"gama": 0.1}}, r"overrides \[set\]: unknown key 'gama'.*Did you mean gamma")):
        with pytest.raises(ConfigError, match=match):
            run_protocol("area_silencing", "matrix", tmp_path / "bad", overrides=over)
        assert not (tmp_path / "bad").exists()  # refused before anything is written
    with pytest.raises(ConfigError, match=r"overrides: key 'areas' = \[5\]: the model's hidden areas are 1..2"):
        run_protocol("area_silencing", "matrix", tmp_path / "bad", overrides={"areas": [5]})
