"""The levels interface: the rate level trained on a dataset equals the matrix level's online
training (one_shot plasticity, settled dynamics), through the same `train` and `step` entry points.

What is compared between the levels is what each level computes itself: every weight matrix's
update over the run (new - initial, relative to the matrix level's update) and, through
`salspike step`, the activities each trial saw (Brian2 at the rate level, numpy at the matrix
level).  The test accuracies that `train` reports both come from the same numpy forward pass, so
comparing them across levels only repeats the weight check: here they are recomputed from the
saved weights with a forward pass written in this file and compared with the reports.

Each test names in its docstring the mistakes in the package it catches ("Catches:"); each was
checked by making that mistake in the package and seeing the test fail.
"""

import numpy as np
import pytest

from salspike.circuit import Circuit
from salspike.cli import main
from salspike.datasets import load_dataset
from salspike.errors import ConfigError
from salspike.levels import make_level
from salspike.circuit import init_weights
from salspike.training import train

ONE_SHOT_UPDATE_TOL = 1e-6  # the one_shot rate limit: settling residual (~1e-10 of the weights)


def tiny():
    return Circuit.from_dict({"hidden": [6], "downstream_ratio": 2.0, "loss": "cross_entropy",
                              "eta": {"W": 0.01, "Wbar": 0.001, "V": 0.001, "Vbar": 0.001},
                              "training": {"batch_size": 10, "epochs": 1}}, source="tiny")


def accuracy_of(weights, x, labels) -> float:
    """Test accuracy of the upstream network, written out here: h^{k+1} = relu(W^k h^k) for the
    hidden layers, a linear output, the predicted class the arg-max."""
    n_layers = sum(1 for k in weights if k.startswith("W") and k[1:].isdigit())
    h = np.asarray(x, dtype=np.float64)
    for k in range(n_layers):
        h = h @ np.asarray(weights[f"W{k}"], dtype=np.float64).T
        if k < n_layers - 1:
            h = np.maximum(h, 0.0)
    return float(np.mean(np.argmax(h, axis=1) == labels))


def test_rate_training_equals_matrix_online_training(tmp_path, assert_updates_close, monkeypatch):
    """Catches: a rate-level rule term deleted (eta of W, Wbar, V or Vbar zero at rate level);
    the plasticity ODE's sign; the cross-entropy error module's normalisation or sign; the
    trials of a batch run in another order by the rate level's `step`; the reported test
    accuracy not being that of the trained weights (checked: labels shuffled in `evaluate`).
    Also: the run notes that the model's batch-10 rates act once per trial here."""
    import salspike.training

    notes = []
    monkeypatch.setattr(salspike.training, "_note", notes.append)
    data = load_dataset("digits", n_train=30, n_test=20)
    rate = train(tiny(), data, tmp_path / "rate", level="rate", log=lambda *a: None)
    assert any("updates once per trial" in n and "batch-10" in n for n in notes)
    matrix = train(tiny().with_overrides({"training.online": True}), data, tmp_path / "matrix", log=lambda *a: None)
    assert rate["level"] == "rate" and matrix["level"] == "matrix"
    wr, wm = np.load(tmp_path / "rate" / "weights.npz"), np.load(tmp_path / "matrix" / "weights.npz")
    for k in wm.files:  # 30 online trials; one_shot rate limit is exact up to the settling error (~1e-10)
        np.testing.assert_allclose(wr[k], wm[k], rtol=1e-8, atol=1e-10, err_msg=k)
    # each matrix's update, relative to the update (the weights barely move at eta = 1e-3)
    w0 = init_weights(tiny().with_io_widths(data.input_width, data.output_width))
    assert set(w0) == set(wm.files)
    rate_w, matrix_w = {k: wr[k] for k in wr.files}, {k: wm[k] for k in wm.files}
    assert_updates_close(rate_w, matrix_w, w0, ONE_SHOT_UPDATE_TOL)
    assert all(not np.array_equal(matrix_w[k], w0[k]) for k in w0)  # every group learned
    # accuracies, recomputed from the saved weights
    assert rate["final_test_accuracy"] == accuracy_of(rate_w, data.x_test, data.labels_test)
    assert matrix["final_test_accuracy"] == accuracy_of(matrix_w, data.x_test, data.labels_test)
    assert rate["final_test_accuracy"] == matrix["final_test_accuracy"]


def test_cli_step_rate_level_matches_matrix(tmp_path, small_circuit, small_circuit_path, assert_updates_close):
    """`salspike step` at both levels: the activities every trial saw (h, hbar: Brian2 vs numpy)
    and every matrix's update.

    Catches: a rate-level rule term deleted (eta zero); the plasticity ODE's sign; the mse
    error module's sign; the trials run in another order by the rate level's `step`."""
    w0 = init_weights(small_circuit)
    np.savez(tmp_path / "in.npz", **w0)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "b.npz", x=rng.standard_normal((3, 8)), y=np.eye(3)[[0, 2, 1]])
    base = ["step", "--model", str(small_circuit_path), "--weights", str(tmp_path / "in.npz"),
            "--inputs", str(tmp_path / "b.npz")]
    assert main(base + ["--level", "rate", "--device", "runtime", "--out", str(tmp_path / "r.npz")]) == 0
    assert main(base + ["--level", "matrix", "--online", "--out", str(tmp_path / "m.npz")]) == 0
    r, m = np.load(tmp_path / "r.npz"), np.load(tmp_path / "m.npz")
    assert set(r.files) == set(m.files)
    for k in m.files:
        np.testing.assert_allclose(r[k], m[k], rtol=1e-8, atol=1e-10, err_msg=k)
    acts = [k for k in m.files if k not in w0]
    assert {"h0", "h3", "hbar1", "hbar3"} <= set(acts)
    for k in acts:
        assert m[k].shape[0] == 3 and np.abs(m[k]).max() > 0, k
    assert_updates_close({k: r[k] for k in w0}, {k: m[k] for k in w0}, w0, ONE_SHOT_UPDATE_TOL)


def test_unknown_level_and_batch_mode_at_rate_level():
    """Catches: an unknown level name accepted; batch-mean updates silently accepted at rate level."""
    c = tiny().with_io_widths(4, 2)
    with pytest.raises(ConfigError, match="unknown level 'neuron'"):
        make_level("neuron", c)
    lvl = make_level("rate", c)
    with pytest.raises(ConfigError, match="online"):
        lvl.step(np.zeros((2, 4)), np.zeros((2, 2)), online=False)
