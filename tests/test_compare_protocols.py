"""`salspike compare` (levels side by side) and protocol files (the pairing window), on tiny circuits
with the runtime device.

* compare: matrix vs rate must agree to rounding (the rate limit); the bookkeeping of the
  comparison (per-trial updates, pooling per group, trajectories, accuracies) is checked against
  a matrix-level run and a forward pass done here, not against the numbers of the other level
  (which go through the same bookkeeping and the same numpy forward pass); rate vs spike writes
  every file and a table with one row per group.
* protocol files: validated like model files (unknown key -> error naming the file and the key);
  the pairing protocol's timing-dependent change equals its closed form q^lag to rounding
  (deterministic: a silent network, injected spikes), is zero when the presynaptic spike comes
  first (the causal heterosynaptic rule) and needs no postsynaptic spike.

Each scientific test names in its docstring the mistakes in the package it catches ("Catches:");
each was checked by making that mistake in the package and seeing the test fail.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import brian2  # noqa: F401  (a hard dependency: a missing one fails, never skips)
import numpy as np
import pytest

from salspike.circuit import Circuit
from salspike.cli import main
from salspike.compare import compare_levels
from salspike.datasets import load_dataset
from salspike.errors import ConfigError
from salspike.circuit import init_weights
from salspike.matrix.engine import MatrixNetwork
from salspike.protocols import load_protocol

PROTOCOL = Path(__file__).resolve().parents[1] / "protocols" / "pairing_window.toml"
GROUPS = ("W", "Wbar", "V", "Vbar")


def tiny(**over) -> Circuit:
    data = {"hidden": [3], "input_width": 3, "output_width": 2, "downstream_widths": [5], "gamma": 0.01,
            "eta": {"W": 0.1, "Wbar": 0.05, "V": 0.05, "Vbar": 0.05},
            "rate": {"tau_up": 1.0, "tau_down": 1.0, "dt": 0.5, "t_forward": 20.0, "t_feedback": 20.0,
                     "t_plasticity": 5.0},
            "spike": {"dt": 0.5, "t_window": 100.0, "t_settle": 50.0, "rate_scale": 40.0}}
    data.update(over)
    return Circuit.from_dict(data)


def group_norms(weights) -> dict[str, float]:
    """Frobenius norm of each group's weights, all layers pooled."""
    sq = dict.fromkeys(GROUPS, 0.0)
    for name, w in weights.items():
        sq[name.rstrip("0123456789")] += float(np.sum(np.square(w)))
    return {g: float(np.sqrt(v)) for g, v in sq.items()}


def group_update_norms(new, old) -> dict[str, float]:
    return group_norms({k: new[k] - old[k] for k in new})


def trajectories(path) -> dict[tuple[str, int, str], float]:
    with open(path, newline="") as f:
        return {(r["level"], int(r["trial"]), r["group"]): float(r["frobenius_norm"]) for r in csv.DictReader(f)}


def accuracy_of(weights, x, labels) -> float:
    """Accuracy of the upstream network, written out here (ReLU hidden layers, linear output)."""
    n_layers = sum(1 for k in weights if k.startswith("W") and k[1:].isdigit())
    h = np.asarray(x, dtype=np.float64)
    for k in range(n_layers):
        h = h @ weights[f"W{k}"].T
        h = np.maximum(h, 0.0) if k < n_layers - 1 else h
    return float(np.mean(np.argmax(h, axis=1) == labels))


def test_compare_matrix_and_rate_agree(tmp_path):
    """Catches: a rate-level rule term deleted or wrong (eta zero, decay deleted, signs);
    groups pooled wrongly (W with Wbar)."""
    res = compare_levels(tiny(), ["matrix", "rate"], tmp_path, trials=3)
    assert [r["group"] for r in res["rows"]] == ["W", "Wbar", "V", "Vbar"]
    for r in res["rows"]:
        assert r["update_cosine_min"] > 1 - 1e-9 and abs(r["cumulative_relative_norm"] - 1) < 1e-6
    assert len(res["per_trial"]) == 3 * 4
    for r in res["per_trial"]:  # every group learns on every trial, at the same rate at both levels
        assert r["norm_update_matrix"] > 0, r
        assert r["norm_update_rate"] == pytest.approx(r["norm_update_matrix"], rel=1e-6), r
    traj = trajectories(tmp_path / "trajectories.csv")
    start = group_norms(init_weights(tiny()))
    for level in ("matrix", "rate"):
        for g in GROUPS:
            assert traj[(level, 0, g)] == pytest.approx(start[g], rel=1e-12), (level, g)
    for name in ("table.csv", "trials.csv", "trajectories.csv", "table.json", "summary.json", "compare.pdf",
                 "compare.png"):
        assert (tmp_path / name).is_file(), name
    assert "rate level vs matrix level" in res["table"]


def test_compare_rate_and_spike_writes_everything(tmp_path, monkeypatch):
    """Every file and one row per group, trial and level are written, and the figures drawn from
    them hold the recorded data: the per-synapse change scatter's cosines are the table's (computed
    from the levels' weight histories), the rates figure draws the spike network's window rates
    (whole spike counts) against the matched rate model (lnp), whose first-trial prediction is
    recomputed here from the initial weights.  Catches: the prediction made with other weights
    (the final ones) or the ReLU model, measured and predicted swapped on the axes, a change
    taken against the wrong initial weights."""
    import salspike.levelfigures as levelfigures
    from salspike.compare import _data
    from test_figures import capture_figures, fonts_embedded

    kept = capture_figures(monkeypatch, levelfigures)
    res = compare_levels(tiny(), ["rate", "spike"], tmp_path, trials=2)
    assert len(res["rows"]) == 4 and len(res["per_trial"]) == 8
    assert "tier poisson" in res["table"]
    traj = (tmp_path / "trajectories.csv").read_text().splitlines()
    assert len(traj) == 1 + 2 * 3 * 4  # header + 2 levels x (initial + 2 trials) x 4 groups
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["levels"] == ["rate", "spike"] and summary["circuit"]["spike"]["tier"] == "poisson"
    weights = dict(np.load(tmp_path / "weights.npz"))
    ca, cb = levelfigures.changes(weights, "rate"), levelfigures.changes(weights, "spike")
    for r in res["rows"]:
        a, b = ca[r["group"]], cb[r["group"]]
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) == pytest.approx(r["cumulative_cosine"], rel=1e-9)
    c = tiny()
    s, T = c["spike.rate_scale"], c["spike.t_window"] * 1e-3
    _, x, y, _, _ = _data(c, None, 2)
    ref = MatrixNetwork(c.with_overrides({"spike.matched_transfer": "lnp"}), init_weights(c)).activities(x[:1], y[:1])
    ref = ref.as_arrays()
    pairs = levelfigures.rate_pairs(dict(np.load(tmp_path / "rates.npz")))
    assert set(pairs) == {"h1", "h2", "hbar1", "hbar2"}
    for pop, (measured, predicted) in pairs.items():
        np.testing.assert_allclose(predicted[0], ref[pop][0] * s, rtol=1e-12)  # trial 1: the initial weights
        np.testing.assert_allclose(measured * T, np.rint(measured * T), atol=1e-9)  # whole spike counts
    assert np.abs(pairs["h1"][0]).sum() > 0  # not vacuous: the network fired
    by_title = {ax.get_title().split(":")[0]: ax for fig in kept for ax in fig.axes}
    for pop, (measured, predicted) in pairs.items():
        dots = [ln for ln in by_title[pop].lines if ln.get_marker() == "o"][0]
        np.testing.assert_array_equal(dots.get_xdata(), predicted.ravel())  # x: model, y: spiking network
        np.testing.assert_array_equal(dots.get_ydata(), measured.ravel())
    for g in GROUPS:
        dots = [ln for ln in by_title[g].lines if ln.get_marker() == "o"][0]
        np.testing.assert_array_equal(dots.get_xdata(), ca[g])
        np.testing.assert_array_equal(dots.get_ydata(), cb[g])
    for stem in ("compare", "weight_changes", "rates"):
        for ext in ("pdf", "svg", "png"):
            (tmp_path / f"{stem}.{ext}").unlink()
    assert main(["figures", str(tmp_path)]) == 0  # redrawn from the recorded files alone
    for stem in ("compare", "weight_changes", "rates"):
        assert all((tmp_path / f"{stem}.{ext}").stat().st_size > 1000 for ext in ("pdf", "svg", "png"))
        assert fonts_embedded(tmp_path / f"{stem}.pdf")


def test_compare_with_a_dataset_reports_accuracy(tmp_path):
    """The comparison's numbers against a matrix-level run done here on the same rows (the first
    `trials` rows of the training split): per-trial update norms of both levels, the weight
    trajectories, and the accuracies recomputed with this file's forward pass.

    Catches: per-trial updates taken against the wrong trial (cumulative); groups pooled
    wrongly (W with Wbar); accuracy against the wrong labels; a rate-level rule term deleted
    (eta zero), the plasticity ODE's or the error module's sign."""
    c = Circuit.from_dict({"hidden": [4], "downstream_widths": [6],
                           "rate": {"dt": 0.5, "t_forward": 20.0, "t_feedback": 20.0, "t_plasticity": 5.0}})
    res = compare_levels(c, ["matrix", "rate"], tmp_path, dataset="digits", trials=2)
    assert set(res["accuracy"]) == {"initial", "matrix", "rate"}
    assert abs(res["accuracy"]["matrix"] - res["accuracy"]["rate"]) < 1e-9
    # the same run, here
    data = load_dataset("digits", seed=c["seed"])
    rc = c.with_io_widths(data.input_width, data.output_width)
    net = MatrixNetwork(rc)
    history = [net.copy_weights()]
    for n in range(2):
        net.step(data.x_train[n:n + 1], data.y_train[n:n + 1], online=True)
        history.append(net.copy_weights())
    acc = {"initial": accuracy_of(history[0], data.x_test, data.labels_test),
           "final": accuracy_of(history[-1], data.x_test, data.labels_test)}
    assert res["accuracy"]["initial"] == acc["initial"]
    assert res["accuracy"]["matrix"] == acc["final"] and res["accuracy"]["rate"] == acc["final"]
    for r in res["per_trial"]:
        n, g = r["trial"], r["group"]
        expected = group_update_norms(history[n], history[n - 1])[g]
        assert expected > 0
        assert r["norm_update_matrix"] == pytest.approx(expected, rel=1e-9), r
        assert r["norm_update_rate"] == pytest.approx(expected, rel=1e-6), r
    traj = trajectories(tmp_path / "trajectories.csv")
    for n, w in enumerate(history):
        for g, v in group_norms(w).items():
            assert traj[("matrix", n, g)] == pytest.approx(v, rel=1e-12), (n, g)
            assert traj[("rate", n, g)] == pytest.approx(v, rel=1e-9), (n, g)


def test_compare_errors(tmp_path):
    """A one-level comparison or an unresolved circuit without data is an error."""
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
    """Each malformed protocol file is an error naming the file and the key."""
    text = PROTOCOL.read_text()
    bad = edit(text)
    assert bad != text
    path = tmp_path / "bad_protocol.toml"
    path.write_text(bad)
    with pytest.raises(ConfigError, match=match) as err:
        load_protocol(path)
    assert "bad_protocol.toml" in str(err.value)


def test_shipped_protocol_loads():
    """The shipped protocol file loads with its pre/post populations and both timing signs."""
    p = load_protocol(PROTOCOL)
    assert p["protocol"] == "pairing_window" and p["pre"] == "h0" and p["post"] == "h1"
    assert p["hold_soma"] is True and min(p["timings_ms"]) < 0 < max(p["timings_ms"])


def test_pairing_window_end_to_end(tmp_path, monkeypatch):
    """`salspike compare --protocol protocols/pairing_window.toml` on a small model (dt = 0.5 ms).

    Catches: the apical current decaying with another time constant than the closed form's
    tau_s (the exp(1 ms / 20 ms) ratio is computed here); the timing sign convention flipped (the
    presynaptic spike placed on the other side of the top-down input); the tag's sign flipped
    (the changes must be positive and shrink with the lead); the soma not held below threshold
    (a postsynaptic spike); an unpaired control that changes beyond the decay (the open-loop
    artefact); and a W change that needs the postsynaptic spike (freeing the soma must leave
    every W change as it was).  Its figure (`salspike figures DIR`, PDF/SVG/PNG, TrueType fonts)
    draws per postsynaptic neuron the change beyond the decay, dW + c w, which is the closed form
    times the neuron's top-down weight (the raw dW hid it in the fifth digit behind the decay):
    catches the raw dW drawn again, or another neuron's values."""
    model = tmp_path / "m.toml"
    model.write_text('hidden = [3]\ndownstream_ratio = 2.0\ninput_width = "auto"\noutput_width = "auto"\n'
                     "gamma = 0.01\n[spike]\ndt = 0.5\n")
    out = tmp_path / "pw"
    assert main(["compare", "--protocol", str(PROTOCOL), "--model", str(model), "--out", str(out)]) == 0
    data = json.loads((out / "pairing_window.json").read_text())
    rows, meta = data["rows"], data["meta"]
    assert meta["postsynaptic_spikes"] == 0  # soma held below threshold: a heterosynaptic change
    scale = max(abs(r["predicted_per_unit_topdown"]) for r in rows)
    assert scale > 0
    for r in rows:
        assert r["max_abs_error"] <= 1e-9 * scale * 10, r
        if r["delta_t_ms"] > 0:  # presynaptic spike first: the causal rule reads only the previous
            assert abs(r["dW_timing_per_unit_topdown"]) < 1e-6 * scale  # pairing's tail, exp(-400 / 20)
    assert meta["dW_unpaired_control_minus_decay_max"] < 1e-15  # no top-down input: exactly the decay
    lead = [r for r in rows if r["delta_t_ms"] <= 0]
    vals = [r["dW_timing_per_unit_topdown"] for r in sorted(lead, key=lambda r: -r["delta_t_ms"])]
    assert all(a > b > 0 for a, b in zip(vals, vals[1:]))  # decays with the lead of the top-down input
    # 1 ms more lead costs a factor exp(-1 ms / tau_s), tau_s = 20 ms
    assert vals[0] / vals[1] == pytest.approx(np.exp(1.0 / 20.0), rel=1e-9)
    for name in ("pairing_window.csv", "pairing_window.pdf", "pairing_window.png", "pairing_window.svg"):
        assert (out / name).is_file()
    import salspike.protocols.pairing as pairing
    from test_figures import capture_figures, fonts_embedded

    kept = capture_figures(monkeypatch, pairing)
    assert main(["figures", str(out)]) == 0 and fonts_embedded(out / "pairing_window.pdf")
    drawn = [ln.get_ydata() for ln in kept[0].axes[1].lines if ln.get_marker() == "o"]
    per_post, top = data["per_post_neuron"], meta["topdown_weight_per_post_neuron"]
    assert len(drawn) == len(per_post["dW_beyond_decay"]) == len(top) == 3
    closed = np.array([r["predicted_per_unit_topdown"] for r in rows])
    for y, values, b in zip(drawn, per_post["dW_beyond_decay"], top):
        np.testing.assert_array_equal(y, values)  # drawn = recorded
        np.testing.assert_allclose(values, closed * b, rtol=0, atol=1e-8 * scale * max(map(abs, top)))
    free = tmp_path / "free.toml"
    free.write_text(PROTOCOL.read_text().replace("hold_soma = true", "hold_soma = false"))
    out2 = tmp_path / "pw_free"
    assert main(["compare", "--protocol", str(free), "--model", str(model), "--out", str(out2)]) == 0
    data2 = json.loads((out2 / "pairing_window.json").read_text())
    assert data2["meta"]["postsynaptic_spikes"] > 0  # the soma fires now ...
    for a, b in zip(rows, data2["rows"]):  # ... and W changes exactly as before: no postsynaptic spike needed
        assert b["dW"] == pytest.approx(a["dW"], rel=1e-12, abs=1e-15)
