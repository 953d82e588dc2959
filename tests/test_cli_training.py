"""Model-file validation, the `salspike step` contract, training runs, resume and divergence."""

import json

import numpy as np
import pytest

from salspike.circuit import Circuit
from salspike.cli import main
from salspike.errors import ConfigError, DivergenceError
from salspike.circuit import init_weights
from salspike.matrix.engine import MatrixNetwork
from salspike.training import train

# `digits` and `paper_model_path` (models/paper_mlp.toml, opened from the repository root) are
# fixtures of conftest.py.


def small(**over):
    base = {"hidden": [16, 12], "input_width": 64, "output_width": 10,
            "training": {"batch_size": 64, "epochs": 2},
            "eta": {"W": 0.01, "Wbar": 0.0001, "V": 0.0001, "Vbar": 0.0001}}
    base.update(over)
    return Circuit.from_dict(base, source="test")


# ----------------------------------------------------------------- model files
def test_paper_model_loads(paper_model_path):
    c = Circuit.load(paper_model_path).with_io_widths(64, 10)
    assert c.widths == [64, 200, 200, 200, 10] and c["algorithm"] == "sal" and c["rule"] == "equations"


@pytest.mark.parametrize("text, match", [
    ('hidden = [4]\nlearning_rate = 0.1\n', r"bad\.toml: unknown key 'learning_rate'"),
    ('hidden = [4]\n[eta]\nWW = 0.1\n', r"unknown key 'eta\.WW'.*Did you mean eta\.W"),
    ('hidden = [4]\ngamma = "big"\n', r"key 'gamma' must be int/float"),
    ('hidden = [4]\nloss = "hinge"\n', r"'loss' = 'hinge' is not allowed; choose one of \['mse', 'cross_entropy'\]"),
    ('hidden = [4, 5]\ndownstream_widths = [8]\n', r"'downstream_widths' must list 2 positive integers"),
    ('hidden = [4, -1]\n', r"'hidden' must be a list of positive integers"),
    ('hidden = [4]\ndownstream_ratio = 2.0\nalgorithm = "kp"\n', r"needs downstream widths equal"),
    ('hidden = [4\n', r"not valid TOML"),
])
def test_model_file_errors_name_file_and_key(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Circuit.load(path)


def test_set_overrides_are_validated(paper_model_path):
    c = Circuit.load(paper_model_path, {"eta.W": 0.5, "rule": "algorithm1"})
    assert c["eta.W"] == 0.5 and c.rule_options["decay"] == "eta_scaled"
    with pytest.raises(ConfigError, match="unknown key 'eta.X'"):
        Circuit.load(paper_model_path, {"eta.X": 1.0})


def test_io_width_mismatch():
    c = small()
    with pytest.raises(ConfigError, match="input_width = 64 but the data has width 30"):
        c.with_io_widths(30, 10)


# ----------------------------------------------------------------- step contract
def _write_step_files(tmp_path, circuit, n=5, seed=0):
    rng = np.random.default_rng(seed)
    w = init_weights(circuit)
    np.savez(tmp_path / "in.npz", **w)
    x = rng.standard_normal((n, circuit.widths[0]))
    y = rng.standard_normal((n, circuit.widths[-1]))
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    return w, x, y


@pytest.mark.parametrize("online", [False, True])
def test_step_matrix_matches_engine(tmp_path, online):
    c = small(downstream_ratio=2.0)
    w, x, y = _write_step_files(tmp_path, c)
    args = ["step", "--level", "matrix", "--weights", str(tmp_path / "in.npz"), "--inputs", str(tmp_path / "batch.npz"),
            "--out", str(tmp_path / "out.npz"), "--set", "downstream_ratio=2.0"]
    assert main(args + (["--online"] if online else [])) == 0
    ref = MatrixNetwork(c, w)
    act = ref.step(x, y, online=online)
    with np.load(tmp_path / "out.npz") as out:
        for name in c.shapes():
            np.testing.assert_array_equal(out[name], ref.weights[name])
        for k in range(c.n_layers + 1):
            np.testing.assert_array_equal(out[f"h{k}"], act.h[k])
        for k in range(1, c.n_layers + 1):
            np.testing.assert_array_equal(out[f"hbar{k}"], act.hbar[k])


def test_step_with_model_and_set_keys(tmp_path, paper_model_path):
    c = Circuit.load(paper_model_path, {"hidden": [7, 6]}).with_io_widths(5, 3)
    w, x, y = _write_step_files(tmp_path, c)
    path = tmp_path / "m.toml"
    path.write_text(Circuit.load(paper_model_path, {"hidden": [7, 6]}).to_toml())
    assert main(["step", "--model", str(path), "--weights", str(tmp_path / "in.npz"), "--inputs",
                 str(tmp_path / "batch.npz"), "--out", str(tmp_path / "o.npz"), "--set", "eta.W=0.3",
                 "--set", "rule=algorithm1", "--set", "gamma=0.01", "--set", "downstream_nonlinearity=relu_jacobian",
                 "--set", "loss=cross_entropy", "--set", "dtype=float64"]) == 0
    ref = MatrixNetwork(c.with_overrides({"eta.W": 0.3, "rule": "algorithm1", "gamma": 0.01,
                                          "downstream_nonlinearity": "relu_jacobian", "loss": "cross_entropy"}), w)
    ref.step(x, y)
    with np.load(tmp_path / "o.npz") as out:
        np.testing.assert_allclose(out["W0"], ref.weights["W0"], rtol=1e-14)
        np.testing.assert_allclose(out["Vbar0"], ref.weights["Vbar0"], rtol=1e-14)


def test_step_errors_name_key_and_shape(tmp_path, capsys, paper_model_path):
    c = small()
    w, x, y = _write_step_files(tmp_path, c)
    w["V1"] = w["V1"][:3]
    np.savez(tmp_path / "bad.npz", **w)
    code = main(["step", "--model", str(paper_model_path), "--weights", str(tmp_path / "bad.npz"),
                 "--inputs", str(tmp_path / "batch.npz"), "--out", str(tmp_path / "o.npz"),
                 "--set", "hidden=[16, 12]"])
    err = capsys.readouterr().err
    assert code == 2 and "'V1' has shape (3, 16), expected (16, 16)" in err
    code = main(["step", "--weights", str(tmp_path / "in.npz"), "--inputs", str(tmp_path / "missing.npz"),
                 "--out", str(tmp_path / "o.npz")])
    assert code == 2 and "missing.npz does not exist" in capsys.readouterr().err
    code = main(["step", "--weights", str(tmp_path / "in.npz"), "--inputs", str(tmp_path / "batch.npz"),
                 "--out", str(tmp_path / "o.npz"), "--set", "algorithm=sgd"])
    assert code == 2 and "'algorithm' = 'sgd' is not allowed" in capsys.readouterr().err


# ----------------------------------------------------------------- training
def test_training_learns_and_writes_results(tmp_path, digits):
    summary = train(small(hidden=[32], algorithm="bp", eta={"W": 0.1}, training={"batch_size": 32, "epochs": 8}), digits,
                    tmp_path / "run", log=lambda *a: None)
    assert summary["final_test_accuracy"] > 0.8
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["final_test_accuracy"] == summary["final_test_accuracy"]
    assert {"git_commit", "numpy", "brian2"} <= set(on_disk["provenance"])
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8 and "delta_angle" in lines[-1]
    Circuit.load(tmp_path / "run" / "model.toml")  # the resolved model is a valid model file


def test_same_seed_same_result_bit_for_bit_and_resume(tmp_path, digits):
    c = small(seed=3)
    a = train(c, digits, tmp_path / "a", log=lambda *a: None)
    b = train(c, digits, tmp_path / "b", log=lambda *a: None)
    assert a["final_test_accuracy"] == b["final_test_accuracy"]
    wa, wb = np.load(tmp_path / "a" / "weights.npz"), np.load(tmp_path / "b" / "weights.npz")
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wb[k])
    # interrupted after one epoch, then resumed: identical to the uninterrupted run
    train(c, digits, tmp_path / "c", epochs=1, log=lambda *a: None)
    (tmp_path / "c" / "summary.json").unlink()  # as if it had been killed before finishing
    with pytest.raises(ConfigError, match="--resume"):
        train(c, digits, tmp_path / "c", log=lambda *a: None)
    train(c, digits, tmp_path / "c", resume=True, log=lambda *a: None)
    wc = np.load(tmp_path / "c" / "weights.npz")
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wc[k])


def test_divergence_stops_and_keeps_last_good_state(tmp_path, digits):
    c = small(seed=1)
    train(c, digits, tmp_path / "run", epochs=1, log=lambda *a: None)
    (tmp_path / "run" / "summary.json").unlink()
    good = dict(np.load(tmp_path / "run" / "checkpoint.npz"))
    bad = c.with_overrides({"eta.W": 50.0, "eta.Vbar": 50.0})
    with pytest.raises(DivergenceError, match=r"at epoch 2, step \d+: group \w+, layer \d.*Last good state \(epoch 1\)"):
        train(bad, digits, tmp_path / "run", resume=True, force=True, log=lambda *a: None)
    kept = np.load(tmp_path / "run" / "checkpoint.npz")
    np.testing.assert_array_equal(kept["W0"], good["W0"])
    assert "diverged" in json.loads((tmp_path / "run" / "diverged.json").read_text())["error"]


def test_cli_train_and_missing_dataset(tmp_path, capsys, paper_model_path):
    assert main(["train", "--model", str(paper_model_path), "--set", "hidden=[8]", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "r")]) == 0
    assert "final test accuracy" in capsys.readouterr().out
    code = main(["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--out", str(tmp_path / "m")])
    assert code == 2 and "train-images-idx3-ubyte" in capsys.readouterr().err
