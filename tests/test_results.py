"""Tests of salspike.results: atomic files, provenance, RunDir."""

import json
import os

import numpy as np
import pytest

from salspike.errors import ConfigError, SalspikeError
from salspike.results import (RunDir, atomic_save_npz, atomic_write_bytes, atomic_write_json,
                              atomic_write_text, config_differences, provenance)


def only_files(folder):
    return sorted(f for f in os.listdir(folder) if f != RunDir.LOCK)  # the lock of an open RunDir


def test_atomic_writes_leave_no_temp_files(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"xyz")
    atomic_write_text(tmp_path / "b.txt", "hello")
    atomic_write_text(tmp_path / "b.txt", "again")  # overwrite
    atomic_save_npz(tmp_path / "c.npz", w=np.eye(2))
    atomic_write_json(tmp_path / "sub" / "d.json", {"x": 1})  # creates the folder
    assert only_files(tmp_path) == ["a.bin", "b.txt", "c.npz", "sub"]
    assert only_files(tmp_path / "sub") == ["d.json"]
    assert (tmp_path / "a.bin").read_bytes() == b"xyz"
    assert (tmp_path / "b.txt").read_text() == "again"
    with np.load(tmp_path / "c.npz") as z:
        np.testing.assert_array_equal(z["w"], np.eye(2))


def test_failed_write_keeps_old_file_and_no_temp(tmp_path):
    p = tmp_path / "x.json"
    atomic_write_json(p, {"ok": True})

    class Boom:
        pass

    with pytest.raises(TypeError):
        atomic_write_json(p, {"bad": Boom()})
    assert json.loads(p.read_text()) == {"ok": True}
    assert only_files(tmp_path) == ["x.json"]


def test_json_numpy_and_nan(tmp_path):
    p = tmp_path / "x.json"
    atomic_write_json(p, {"a": np.float32(1.5), "b": np.arange(3), "c": np.int64(7), "d": float("nan"),
                          "e": [np.inf, 1.0], "f": (1, 2), "g": np.array([np.nan, 2.0]), 3: np.bool_(True)})
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": 1.5, "b": [0, 1, 2], "c": 7, "d": None, "e": [None, 1.0],
                                "f": [1, 2], "g": [None, 2.0], "3": True}


def test_provenance_keys():
    p = provenance({"run": "x"})
    for k in ("git_commit", "git_dirty", "python", "numpy", "scipy", "brian2", "salspike", "hostname",
              "platform", "timestamp_utc"):
        assert k in p
    assert p["run"] == "x" and p["numpy"] == np.__version__
    assert isinstance(p["git_commit"], str) and p["git_commit"]
    assert p["timestamp_utc"].endswith("+00:00")
    json.dumps(p)


def test_rundir_json_arrays(tmp_path):
    rd = RunDir(tmp_path / "run")
    assert os.path.isdir(tmp_path / "run")
    rd.write_json("config", {"lr": 0.1})
    assert rd.read_json("config.json") == {"lr": 0.1}
    rd.save_arrays("weights", w1=np.ones((2, 3)), b=np.arange(4))
    a = rd.load_arrays("weights.npz")
    assert set(a) == {"w1", "b"}
    np.testing.assert_array_equal(a["b"], np.arange(4))
    assert not rd.is_finished()
    assert only_files(rd.path) == ["config.json", "weights.npz"]


def test_metrics_append_read_and_crash_repair(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.read_metrics() == []
    rd.append_metrics({"epoch": 0, "loss": np.float64(1.0)})
    rd.append_metrics({"epoch": 1, "loss": float("nan")})
    assert rd.read_metrics() == [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": None}]
    # simulate a crash mid-append: a partial last line
    with open(rd.file("metrics.jsonl"), "ab") as f:
        f.write(b'{"epoch": 2, "lo')
    assert [r["epoch"] for r in rd.read_metrics()] == [0, 1]
    rd.append_metrics({"epoch": 2})
    assert [r["epoch"] for r in rd.read_metrics()] == [0, 1, 2]
    rd.trim_metrics(1)
    assert rd.read_metrics() == [{"epoch": 0, "loss": 1.0}]


def test_checkpoint_roundtrip(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.latest_checkpoint() is None
    rd.checkpoint({"w": np.arange(6.0).reshape(2, 3), "rng": np.array([1, 2], np.uint64)},
                  {"epoch": 3, "loss": np.float32(0.5)})
    rd.checkpoint({"w": np.ones((2, 3)), "rng": np.array([3, 4], np.uint64)}, {"epoch": 4})
    state, meta = rd.latest_checkpoint()
    assert meta == {"epoch": 4}
    np.testing.assert_array_equal(state["w"], np.ones((2, 3)))
    assert state["rng"].dtype == np.uint64 and set(state) == {"w", "rng"}
    assert only_files(rd.path) == ["checkpoint.npz"]
    with pytest.raises(ValueError):
        rd.checkpoint({"__meta__": np.zeros(1)}, {})


def test_resume_refusal(tmp_path):
    out = tmp_path / "run"
    rd = RunDir(out)
    rd.checkpoint({"w": np.zeros(2)}, {"epoch": 0})
    rd.close()
    with pytest.raises(ConfigError, match="--resume"):
        RunDir(out)
    rd2 = RunDir(out, resume=True)
    assert rd2.latest_checkpoint()[1] == {"epoch": 0}
    rd2.finish({"accuracy": 0.9})
    assert rd2.is_finished()
    s = rd2.read_json("summary")
    assert s["accuracy"] == 0.9 and "git_commit" in s["provenance"]
    rd2.close()
    with pytest.raises(SalspikeError) as e:
        RunDir(out)
    assert "--resume" in str(e.value) and "another folder" in str(e.value) and "finished" in str(e.value)
    assert RunDir(out, resume=True).is_finished()


def test_existing_folder_without_run_is_fine(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    RunDir(tmp_path).write_json("config", {})
    RunDir(tmp_path)  # only config: no metrics/checkpoint/summary
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        RunDir(tmp_path / "file")


def test_config_differences():
    saved = {"model": {"seed": 1, "eta": {"W": 0.1}, "hidden": [4]}, "level": "matrix", "opts": {}, "src": "a"}
    same = {"model": {"seed": 1, "eta": {"W": 0.1}, "hidden": (4,)}, "level": "matrix", "opts": {}, "src": "b",
            "epochs": 5}  # tuples compare as saved (lists); "epochs" is a section the saved config lacks
    assert config_differences(saved, same, ignore=("src",)) == []
    new = {"model": {"seed": 2, "eta": {"W": np.float64(0.2)}, "hidden": [4]}, "opts": {"device": "x"}, "src": "a"}
    assert config_differences(saved, new) == ["model.seed 1 -> 2", "model.eta.W 0.1 -> 0.2",
                                              'level "matrix" -> (absent)', 'opts.device (absent) -> "x"']
    assert config_differences(saved, new, ignore=("model.eta", "level", "opts")) == ["model.seed 1 -> 2"]


def test_check_resume_touches_nothing_and_force(tmp_path):
    with RunDir(tmp_path) as rd:
        assert rd.check_resume({"a": 1}) == []  # no saved config: nothing to compare
        rd.write_json("config", {"a": 1, "epochs": 3})
        stamp = os.stat(rd.file("config.json")).st_mtime_ns
        assert rd.check_resume({"a": 1, "epochs": 9}, epochs_done=3) == []
        with pytest.raises(ConfigError, match=r"a 1 -> 2; epochs 3 -> 2 \(fewer than the 3 already done\)"):
            rd.check_resume({"a": 2, "epochs": 2}, epochs_done=3)
        assert rd.check_resume({"a": 2, "epochs": 3}, force=True) == ["a 1 -> 2"]
        assert os.stat(rd.file("config.json")).st_mtime_ns == stamp
        (tmp_path / "config.json").write_text("{broken")
        with pytest.raises(ConfigError, match="config.json in .* is unreadable.*--force"):
            rd.check_resume({"a": 1})
