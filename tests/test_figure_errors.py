"""The figure scripts refuse empty, non-finite or mismatched inputs with one line and exit 2."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def run_script(name, argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [name, *argv])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(FIGURES / name), run_name="__main__")
    err = capsys.readouterr().err.strip()
    return exc.value.code, err


def metrics_folder(tmp_path, name, records):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


GOOD = {"epoch": 1, "test_accuracy": 0.5, "layers": [{"delta_angle": 40.0}, {"delta_angle": 0.0}]}


@pytest.mark.parametrize("records, labels, match", [
    ([], None, "no epochs"),
    ([dict(GOOD, test_accuracy=None)], None, "non-finite"),
    ([GOOD], ["a", "b"], "1 runs but 2 labels"),
])
def test_training_curves_errors(tmp_path, monkeypatch, capsys, records, labels, match):
    run = metrics_folder(tmp_path, "run", records)
    argv = [str(run), "--out", str(tmp_path / "fig")] + (["--labels", *labels] if labels else [])
    code, err = run_script("training_curves.py", argv, monkeypatch, capsys)
    assert code == 2 and match in err and len(err.splitlines()) == 1
    assert not (tmp_path / "fig.pdf").exists()


def test_training_curves_fewer_labels_than_runs(tmp_path, monkeypatch, capsys):
    a, b = metrics_folder(tmp_path, "a", [GOOD]), metrics_folder(tmp_path, "b", [GOOD])
    code, err = run_script("training_curves.py", [str(a), str(b), "--labels", "only-one", "--out",
                                                  str(tmp_path / "fig")], monkeypatch, capsys)
    assert code == 2 and "2 runs but 1 labels" in err


@pytest.mark.parametrize("content, match", [
    ({"W0": np.full((3, 2), np.nan), "Vbar0": np.eye(3)}, "NaN"),
    ({"W0": np.zeros((0, 2)), "Vbar0": np.zeros((0, 0))}, "empty"),
    ({"W1": np.eye(2)}, "need W0 and Vbar0"),
])
def test_weight_matrices_errors(tmp_path, monkeypatch, capsys, content, match):
    f = tmp_path / "w.npz"
    np.savez(f, **content)
    code, err = run_script("weight_matrices.py", [str(f), "--layer", "0", "--out", str(tmp_path / "fig")],
                           monkeypatch, capsys)
    assert code == 2 and match in err and len(err.splitlines()) == 1


def test_weight_matrices_garbage_file(tmp_path, monkeypatch, capsys):
    f = tmp_path / "w.npz"
    f.write_bytes(b"not a zip")
    code, err = run_script("weight_matrices.py", [str(f), "--out", str(tmp_path / "fig")], monkeypatch, capsys)
    assert code == 2 and "not a readable .npz" in err
