"""The validation split (salspike.datasets.split_validation) and its use by training and sweeps, so that
learning rates and decay are chosen on validation accuracy, never on test accuracy."""

import json

import numpy as np
import pytest

from salspike.circuit import Circuit
from salspike.cli import main
from salspike.datasets import load_dataset, split_validation
from salspike.errors import DatasetError
from salspike.metrics import accuracy


def _rows(x):
    return {r.tobytes() for r in x}


def test_validation_split_is_stratified_seeded_and_disjoint(digits):
    """Catches: a split that is not stratified (per class round(val_size * n_c) rows), not seeded (same seed,
    same rows; another seed, other rows), that loses or duplicates training rows, or that touches the test split."""
    d = split_validation(digits, 0.2, seed=0)
    counts = np.bincount(digits.labels_train, minlength=10)
    np.testing.assert_array_equal(np.bincount(d.labels_val, minlength=10), np.round(0.2 * counts).astype(int))
    assert len(d.x_train) + len(d.x_val) == len(digits.x_train)
    assert not _rows(d.x_train) & _rows(d.x_val)
    assert _rows(d.x_train) | _rows(d.x_val) == _rows(digits.x_train)
    np.testing.assert_array_equal(d.y_val.argmax(1), d.labels_val)
    np.testing.assert_array_equal(d.x_test, digits.x_test)
    np.testing.assert_array_equal(d.x_val, split_validation(digits, 0.2, seed=0).x_val)
    assert _rows(d.x_val) != _rows(split_validation(digits, 0.2, seed=1).x_val)
    assert not digits.has_validation and d.has_validation


@pytest.mark.parametrize("name", ["digits", "teacher_student"])
def test_every_loader_takes_val_size(name):
    """Catches: load_dataset ignoring val_size for a data set (the split is applied after every loader), or a
    cast (astype) that drops the validation arrays."""
    d = load_dataset(name, seed=3, val_size=0.25).astype(np.float32)
    assert d.has_validation and d.x_val.dtype == np.float32 and len(d.x_val) == len(d.labels_val) > 0
    plain = load_dataset(name, seed=3)
    assert len(d.x_train) + len(d.x_val) == len(plain.x_train)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True])
def test_bad_val_size_is_a_one_line_error(digits, bad):
    """Catches: a validation fraction outside (0, 1) accepted silently (an empty or whole-training split)."""
    with pytest.raises(DatasetError, match="val_size"):
        split_validation(digits, bad)


def test_training_reports_validation_accuracy(paper_model_path):
    """Catches: training that does not evaluate the validation split, or evaluates another split under its name
    (val_accuracy must equal the accuracy of the final weights on x_val)."""
    from salspike.levels import make_level
    from salspike.training import train

    data = load_dataset("digits", seed=0, n_train=300, val_size=0.2)
    circuit = Circuit.load(paper_model_path, {"hidden": [16], "training.epochs": 1})
    summary = train(circuit, data, None, log=lambda *a: None, progress=False)
    # rebuild the trained weights: one epoch from the seed is deterministic
    circuit = circuit.with_io_widths(64, 10)
    lvl = make_level("matrix", circuit)
    order = np.random.default_rng([circuit["seed"], 2]).permutation(len(data.x_train))
    for i in range(0, len(order), circuit["training.batch_size"]):
        idx = order[i:i + circuit["training.batch_size"]]
        lvl.step(data.x_train[idx], data.y_train[idx])
    assert summary["final_val_accuracy"] == pytest.approx(accuracy(lvl.predict(data.x_val), data.labels_val))
    assert summary["final_val_accuracy"] != pytest.approx(accuracy(lvl.predict(data.x_test), data.labels_test))


def test_sweep_collects_validation_accuracy(tmp_path, capsys, paper_model_path):
    """Catches: a sweep that cannot collect val_accuracy (missing from its metrics or its dataset), or that
    collects it without a validation split (refused, naming --val-size)."""
    out = tmp_path / "s"
    argv = ["sweep", "--model", str(paper_model_path), "--set", "hidden=[8]", "--n-train", "100", "--quiet", "--workers", "0", "--epochs", "1",
            "--metrics", "val_accuracy,test_accuracy", "--out", str(out)]
    assert main(argv + ["--val-size", "0.2"]) == 0
    rows = json.loads((out / "sweep.json").read_text())["table"]
    val = rows[0]["metrics"]["val_accuracy"]["mean"]
    assert val is not None and 0 <= val <= 1
    assert "val_accuracy" in capsys.readouterr().out
    assert main(argv[:-2] + ["--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "val_size" in err and "--val-size" in err and "\n" not in err.strip()
