"""The levels interface: the rate level trained on a dataset equals the matrix level's online
training (one_shot plasticity, settled dynamics), through the same `train` and `step` entry points."""

import numpy as np
import pytest

from salspike.circuit import Circuit
from salspike.cli import main
from salspike.datasets import load_dataset
from salspike.errors import ConfigError
from salspike.levels import make_level
from salspike.circuit import init_weights
from salspike.training import train


def tiny():
    return Circuit.from_dict({"hidden": [6], "downstream_ratio": 2.0, "loss": "cross_entropy",
                              "eta": {"W": 0.01, "Wbar": 0.001, "V": 0.001, "Vbar": 0.001},
                              "training": {"batch_size": 10, "epochs": 1}}, source="tiny")


def test_rate_training_equals_matrix_online_training(tmp_path):
    data = load_dataset("digits", n_train=30, n_test=20)
    rate = train(tiny(), data, tmp_path / "rate", level="rate", log=lambda *a: None)
    matrix = train(tiny().with_overrides({"training.online": True}), data, tmp_path / "matrix", log=lambda *a: None)
    assert rate["level"] == "rate" and matrix["level"] == "matrix"
    wr, wm = np.load(tmp_path / "rate" / "weights.npz"), np.load(tmp_path / "matrix" / "weights.npz")
    for k in wm.files:  # 30 online trials; one_shot rate limit is exact up to the settling error (~1e-10)
        np.testing.assert_allclose(wr[k], wm[k], rtol=1e-8, atol=1e-10, err_msg=k)
    assert rate["final_test_accuracy"] == matrix["final_test_accuracy"]


def test_cli_step_rate_level_matches_matrix(tmp_path):
    c = Circuit.load("models/small_circuit.toml")
    np.savez(tmp_path / "in.npz", **init_weights(c))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "b.npz", x=rng.standard_normal((3, 8)), y=np.eye(3)[[0, 2, 1]])
    base = ["step", "--model", "models/small_circuit.toml", "--weights", str(tmp_path / "in.npz"),
            "--inputs", str(tmp_path / "b.npz")]
    assert main(base + ["--level", "rate", "--device", "runtime", "--out", str(tmp_path / "r.npz")]) == 0
    assert main(base + ["--level", "matrix", "--online", "--out", str(tmp_path / "m.npz")]) == 0
    r, m = np.load(tmp_path / "r.npz"), np.load(tmp_path / "m.npz")
    assert set(r.files) == set(m.files)
    for k in m.files:
        np.testing.assert_allclose(r[k], m[k], rtol=1e-8, atol=1e-10, err_msg=k)


def test_unknown_level_and_batch_mode_at_rate_level():
    c = tiny().with_io_widths(4, 2)
    with pytest.raises(ConfigError, match="unknown level 'neuron'"):
        make_level("neuron", c)
    lvl = make_level("rate", c)
    with pytest.raises(ConfigError, match="online"):
        lvl.step(np.zeros((2, 4)), np.zeros((2, 2)), online=False)
