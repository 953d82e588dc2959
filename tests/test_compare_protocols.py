"""`salspike compare` (levels side by side) and protocol files (the pairing window), on tiny circuits
with the runtime device.

* compare: matrix vs rate must agree to rounding (the rate limit), which checks the bookkeeping of
  the comparison (per-trial updates, pooling per group, cumulative change); rate vs spike writes
  every file and a table with one row per group.
* protocol files: validated like model files (unknown key -> error naming the file and the key);
  the pairing protocol's timing-dependent change equals its closed form q^lag to rounding
  (deterministic: a silent network, injected spikes), is zero when the presynaptic spike comes
  first (the causal heterosynaptic rule) and needs no postsynaptic spike.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("brian2")

from salspike.brian import devices  # noqa: E402
from salspike.circuit import Circuit  # noqa: E402
from salspike.cli import main  # noqa: E402
from salspike.compare import compare_levels  # noqa: E402
from salspike.errors import ConfigError  # noqa: E402
from salspike.protocols import load_protocol  # noqa: E402

PROTOCOL = "protocols/pairing_window.toml"


@pytest.fixture(autouse=True)
def _runtime_after():
    yield
    devices.select_device("runtime")


def tiny(**over) -> Circuit:
    data = {"hidden": [3], "input_width": 3, "output_width": 2, "downstream_widths": [5], "gamma": 0.01,
            "eta": {"W": 0.1, "Wbar": 0.05, "V": 0.05, "Vbar": 0.05},
            "rate": {"tau_up": 1.0, "tau_down": 1.0, "dt": 0.5, "t_forward": 20.0, "t_feedback": 20.0,
                     "t_plasticity": 5.0},
            "spike": {"dt": 0.5, "t_window": 100.0, "repeats": 2, "t_warmup": 50.0, "baseline_rate": 40.0}}
    data.update(over)
    return Circuit.from_dict(data)


def test_compare_matrix_and_rate_agree(tmp_path):
    res = compare_levels(tiny(), ["matrix", "rate"], tmp_path, trials=3)
    assert [r["group"] for r in res["rows"]] == ["W", "Wbar", "V", "Vbar"]
    for r in res["rows"]:
        assert r["update_cosine_min"] > 1 - 1e-9 and abs(r["cumulative_relative_norm"] - 1) < 1e-6
    for name in ("table.csv", "trials.csv", "trajectories.csv", "table.json", "summary.json", "compare.pdf",
                 "compare.png"):
        assert (tmp_path / name).is_file(), name
    assert "rate level vs matrix level" in res["table"]


def test_compare_rate_and_spike_writes_everything(tmp_path):
    res = compare_levels(tiny(), ["rate", "spike"], tmp_path, trials=2)
    assert len(res["rows"]) == 4 and len(res["per_trial"]) == 8
    assert "tier poisson" in res["table"]
    traj = (tmp_path / "trajectories.csv").read_text().splitlines()
    assert len(traj) == 1 + 2 * 3 * 4  # header + 2 levels x (initial + 2 trials) x 4 groups
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["levels"] == ["rate", "spike"] and summary["circuit"]["spike"]["tier"] == "poisson"


def test_compare_with_a_dataset_reports_accuracy(tmp_path):
    c = Circuit.from_dict({"hidden": [4], "downstream_widths": [6],
                           "rate": {"dt": 0.5, "t_forward": 20.0, "t_feedback": 20.0, "t_plasticity": 5.0}})
    res = compare_levels(c, ["matrix", "rate"], tmp_path, dataset="digits", trials=2)
    assert set(res["accuracy"]) == {"initial", "matrix", "rate"}
    assert abs(res["accuracy"]["matrix"] - res["accuracy"]["rate"]) < 1e-9


def test_compare_errors(tmp_path):
    with pytest.raises(ConfigError, match="two levels"):
        compare_levels(tiny(), ["rate"], tmp_path)
    with pytest.raises(ConfigError, match="auto"):
        compare_levels(Circuit.from_dict({"hidden": [3]}), ["matrix", "rate"], tmp_path)


# ----------------------------------------------------------------- protocol files


@pytest.mark.parametrize("edit, match", [
    (lambda t: t + "\nfrequency_hz = 5\n", r"unknown key 'frequency_hz'"),
    (lambda t: t.replace("pairings = 10", "pairings = \"ten\""), r"key 'pairings' must be int"),
    (lambda t: t.replace('protocol = "pairing_window"', 'protocol = "theta_burst"'), r"protocol.*not allowed"),
    (lambda t: t.replace("hold_soma = true", "hold_somma = true"), r"unknown key 'hold_somma'.*hold_soma"),
    (lambda t: t.replace('pre = "h0"', ""), r"missing key 'pre'"),
    (lambda t: t.replace("topdown_neurons = [0]", "topdown_neurons = \"some\""), r"topdown_neurons"),
])
def test_protocol_file_validation(tmp_path, edit, match):
    from pathlib import Path

    text = Path(PROTOCOL).read_text()
    bad = edit(text)
    assert bad != text
    path = tmp_path / "bad_protocol.toml"
    path.write_text(bad)
    with pytest.raises(ConfigError, match=match) as err:
        load_protocol(path)
    assert "bad_protocol.toml" in str(err.value)


def test_shipped_protocol_loads():
    p = load_protocol(PROTOCOL)
    assert p["protocol"] == "pairing_window" and p["pre"] == "h0" and p["post"] == "h1"
    assert p["hold_soma"] is True and min(p["timings_ms"]) < 0 < max(p["timings_ms"])


def test_pairing_window_end_to_end(tmp_path):
    """`salspike compare --protocol protocols/pairing_window.toml` on a small model (dt = 0.5 ms)."""
    model = tmp_path / "m.toml"
    model.write_text('hidden = [3]\ndownstream_ratio = 2.0\ninput_width = "auto"\noutput_width = "auto"\n'
                     "gamma = 0.01\n[spike]\ndt = 0.5\n")
    out = tmp_path / "pw"
    assert main(["compare", "--protocol", PROTOCOL, "--model", str(model), "--out", str(out)]) == 0
    data = json.loads((out / "pairing_window.json").read_text())
    rows, meta = data["rows"], data["meta"]
    assert meta["postsynaptic_spikes"] == 0  # soma held below threshold: a heterosynaptic change
    scale = max(abs(r["predicted_per_unit_topdown"]) for r in rows)
    assert scale > 0
    for r in rows:
        assert r["max_abs_error"] <= 1e-9 * scale * 10, r
        if r["delta_t_ms"] >= 0:  # presynaptic spike first (or same step): the causal rule reads nothing
            assert abs(r["dW_timing_per_unit_topdown"]) < 1e-3 * scale
    lead = [r for r in rows if r["delta_t_ms"] < 0]
    vals = [r["dW_timing_per_unit_topdown"] for r in sorted(lead, key=lambda r: -r["delta_t_ms"])]
    assert all(a > b > 0 for a, b in zip(vals, vals[1:]))  # decays with the lead of the top-down input
    # 1 ms more lead costs a factor exp(-1 ms / tau_trace), tau_trace = 20 ms
    assert vals[0] / vals[1] == pytest.approx(np.exp(1.0 / 20.0), rel=1e-3)
    for name in ("pairing_window.csv", "pairing_window.pdf", "pairing_window.png"):
        assert (out / name).is_file()
