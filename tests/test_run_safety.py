"""Runs that never lie: resume checks, folder locks, file modes, damaged files, no empty folders,
honest divergence messages."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from salspike.circuit import Circuit
from salspike.cli import main
from salspike.errors import ConfigError, DivergenceError
from salspike.results import RunDir, atomic_save_npz, atomic_write_text
from salspike.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "paper_mlp.toml")
QUIET = {"log": lambda *a: None}


# `digits` is a fixture of conftest.py.


def small(**over):
    base = {"hidden": [16, 12], "input_width": 64, "output_width": 10,
            "training": {"batch_size": 64, "epochs": 2},
            "eta": {"W": 0.01, "Wbar": 0.0001, "V": 0.0001, "Vbar": 0.0001}}
    base.update(over)
    return Circuit.from_dict(base, source="test")


def stamps(folder, names=("config.json", "model.toml", "metrics.jsonl", "checkpoint.npz")):
    """Bytes and mtime of each file: equal stamps mean nothing was rewritten."""
    return {n: ((folder / n).read_bytes(), (folder / n).stat().st_mtime_ns) for n in names}


@pytest.fixture
def interrupted(tmp_path, digits):
    """A run killed after epoch 1 of 2 (summary removed) and its circuit."""
    c = small(seed=3)
    train(c, digits, tmp_path / "run", epochs=1, **QUIET)
    (tmp_path / "run" / "summary.json").unlink()
    return tmp_path / "run", c


def assert_same_weights(a, b):
    wa, wb = np.load(a / "weights.npz"), np.load(b / "weights.npz")
    assert set(wa.files) == set(wb.files)
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wb[k])


# ----------------------------------------------------------------- 1. resume checks the saved config
@pytest.mark.parametrize("change, kw, keys", [
    ({"seed": 4}, {}, ["model.seed 3 -> 4"]),
    ({"eta.W": 0.02, "eta.V": 0.001}, {}, ["model.eta.W 0.01 -> 0.02", "model.eta.V 0.0001 -> 0.001"]),
    ({"hidden": [16, 8]}, {}, ["model.hidden [16, 12] -> [16, 8]"]),
    ({}, {"level": "rate"}, ['level "matrix" -> "rate"']),
    ({}, {"level_options": {"device": "runtime"}}, ['level_options.device (absent) -> "runtime"']),
    ({}, {"epochs": 0}, ["epochs 1 -> 0 (fewer than the 1 already done)"]),
    ({}, {"dataset": "other"}, ['dataset "digits" -> "other"']),
])
def test_resume_with_other_settings_is_refused_and_touches_nothing(interrupted, digits, change, kw, keys):
    out, c = interrupted
    before = stamps(out)
    data = dataclasses.replace(digits, name=kw.pop("dataset")) if "dataset" in kw else digits
    with pytest.raises(ConfigError) as e:
        train(c.with_overrides(change) if change else c, data, out, resume=True, **kw, **QUIET)
    msg = str(e.value)
    assert "\n" not in msg and "--force" in msg and "--out" in msg
    for k in keys:
        assert k in msg
    assert stamps(out) == before
    assert not (out / RunDir.LOCK).exists()  # the lock was released on the error


def test_resume_with_more_epochs_continues_bit_for_bit(interrupted, digits, tmp_path):
    out, c = interrupted
    ref = train(c, digits, tmp_path / "ref", epochs=3, **QUIET)
    # raising epochs, by argument or by the model key training.epochs, is allowed
    got = train(c.with_overrides({"training.epochs": 3}), digits, out, resume=True, **QUIET)
    assert got["final_test_accuracy"] == ref["final_test_accuracy"]
    assert_same_weights(tmp_path / "ref", out)
    assert json.loads((out / "config.json").read_text())["epochs"] == 3
    assert [r["epoch"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]


def test_force_resumes_with_other_settings(interrupted, digits):
    out, c = interrupted
    train(c.with_overrides({"eta.W": 0.02}), digits, out, resume=True, force=True, **QUIET)
    assert json.loads((out / "config.json").read_text())["model"]["eta"]["W"] == 0.02
    assert (out / "summary.json").exists()


# ----------------------------------------------------------------- 2. folder lock
HOLD = textwrap.dedent("""
    import sys, time
    from salspike.results import RunDir
    rd = RunDir(sys.argv[1], resume=True)
    print("locked", flush=True)
    time.sleep(120)
""")

TRAIN_THEN_HANG = textwrap.dedent("""
    import sys, time
    from salspike.circuit import Circuit
    from salspike.datasets import load_dataset
    from salspike.training import train
    c = Circuit.from_dict(dict(hidden=[16, 12], input_width=64, output_width=10, seed=3,
                               training=dict(batch_size=64, epochs=2),
                               eta=dict(W=0.01, Wbar=0.0001, V=0.0001, Vbar=0.0001)), source="test")
    def log(*a):  # after epoch 1 (checkpoint written): report and hang until killed
        print("epoch done", flush=True)
        time.sleep(120)
    train(c, load_dataset("digits", seed=0), sys.argv[1], progress=False, log=log)
""")


def start(script, out):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.strip(), f"helper process ended early (exit {proc.poll()})"
    return proc


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()


def test_locked_folder_is_refused_naming_the_holder_and_sigkill_frees_it(interrupted, digits):
    out, c = interrupted
    before = stamps(out)
    proc = start(HOLD, out)
    try:
        info = json.loads((out / RunDir.LOCK).read_text())
        assert info["pid"] == proc.pid and info["host"] == socket.gethostname()
        for resume in (True, False):
            with pytest.raises(ConfigError) as e:
                train(c, digits, out, resume=resume, **QUIET)
            msg = str(e.value)
            assert f"in use by PID {proc.pid} on host {socket.gethostname()} since {info['since']}" in msg
            assert "pick another --out" in msg and "\n" not in msg
        assert stamps(out) == before
        assert (out / RunDir.LOCK).exists()  # a refused run leaves the holder's lock alone
    finally:
        kill(proc)
    assert (out / RunDir.LOCK).exists()  # stale file, but the OS dropped the lock
    train(c, digits, out, resume=True, **QUIET)
    assert (out / "summary.json").exists() and not (out / RunDir.LOCK).exists()


def test_sigkilled_training_resumes_bit_for_bit(tmp_path, digits):
    ref = train(small(seed=3), digits, tmp_path / "ref", **QUIET)
    proc = start(TRAIN_THEN_HANG, tmp_path / "run")
    try:
        with pytest.raises(ConfigError, match=f"in use by PID {proc.pid}"):
            train(small(seed=3), digits, tmp_path / "run", resume=True, **QUIET)
    finally:
        kill(proc)
    got = train(small(seed=3), digits, tmp_path / "run", resume=True, **QUIET)
    assert got["final_test_accuracy"] == ref["final_test_accuracy"]
    assert_same_weights(tmp_path / "ref", tmp_path / "run")


def test_rundir_lock_in_one_process(tmp_path):
    rd = RunDir(tmp_path / "a")
    with pytest.raises(ConfigError, match=r"in use by PID \d+ \(this process\)"):
        RunDir(tmp_path / "a", resume=True)
    rd.write_json("config", {})
    rd.close()
    rd.close()  # idempotent
    assert os.listdir(tmp_path / "a") == ["config.json"]  # lock file gone, folder kept (not empty)
    with RunDir(tmp_path / "a") as rd2:
        assert (tmp_path / "a" / RunDir.LOCK).exists()
    assert not (tmp_path / "a" / RunDir.LOCK).exists() and rd2._lock_fd is None


# ----------------------------------------------------------------- 3. file modes follow the umask
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_follow_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_save_npz(tmp_path / "b.npz", w=np.zeros(2))
        assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == oct(mode)
        rd = RunDir(tmp_path / "run")
        rd.checkpoint({"w": np.zeros(2)}, {"epoch": 1})
        rd.append_metrics({"epoch": 1})
        rd.write_json("config", {})
        rd.close()
    finally:
        os.umask(old)
    for p in (tmp_path / "a.txt", tmp_path / "b.npz", *(tmp_path / "run").iterdir()):
        assert oct(p.stat().st_mode & 0o777) == oct(mode), p


# ----------------------------------------------------------------- 4. damaged files on --resume
@pytest.mark.parametrize("damage", ["truncate", "garbage", "bad_meta"])
def test_damaged_checkpoint_is_a_one_line_error(interrupted, digits, damage):
    out, c = interrupted
    ckpt = out / "checkpoint.npz"
    if damage == "truncate":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"not a zip file at all")
    else:
        with open(ckpt, "wb") as f:
            np.savez(f, w=np.zeros(1), __meta__=np.array('{"no_epoch": 1}'))
    before = stamps(out)
    with pytest.raises(ConfigError) as e:
        train(c, digits, out, resume=True, **QUIET)
    msg = str(e.value)
    assert msg == (f"checkpoint.npz in {out} is unreadable (truncated?): delete it to rerun from epoch 1 "
                   "with --resume, or start a new --out")
    assert stamps(out) == before
    ckpt.unlink()  # the advertised fix works
    train(c, digits, out, resume=True, **QUIET)
    assert [json.loads(r)["epoch"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_metrics_not_json_is_a_one_line_error_from_the_cli(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "--model", MODEL, "--set", "hidden=[8]", "--epochs", "1", "--quiet", "--out", str(out)]
    assert main(args) == 0
    (out / "summary.json").unlink()
    with open(out / "metrics.jsonl", "ab") as f:
        f.write(b"garbage\n")
    capsys.readouterr()
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"metrics.jsonl in {out} is corrupt (line 2 is not a JSON record)" in err and "--out" in err


# ----------------------------------------------------------------- 5. no empty folders, clear --out errors
def test_failed_start_leaves_no_new_folder(tmp_path, digits):
    new = tmp_path / "new" / "deeper"
    with pytest.raises(ConfigError, match="matrix level does not take the option"):
        train(small(), digits, new, level_options={"bogus": 1}, **QUIET)
    assert not (tmp_path / "new").exists()
    with pytest.raises(ConfigError, match="input_width = 30"):
        train(small(input_width=30), digits, new, **QUIET)
    assert not (tmp_path / "new").exists()
    with RunDir(new):
        assert new.is_dir()
    assert os.listdir(tmp_path) == []  # nothing written: both created levels removed


def test_existing_folder_is_kept_after_a_refusal(interrupted, digits):
    out, c = interrupted
    with pytest.raises(ConfigError, match="--resume"):
        train(c, digits, out, **QUIET)  # unfinished run, no --resume
    assert out.is_dir() and (out / "metrics.jsonl").exists()


@pytest.mark.parametrize("bad", ["", "file", "file/sub"])
def test_bad_out_is_a_config_error(tmp_path, digits, bad):
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / bad) if bad else ""
    with pytest.raises(ConfigError) as e:
        train(small(), digits, out, **QUIET)
    assert "--out" in str(e.value) and "\n" not in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_read_only_out_is_a_config_error(tmp_path, digits, monkeypatch):
    """A folder the user cannot write: one-line ConfigError, nothing created.  Root may write in
    read-only folders, so there the operating system's refusal (EACCES) is simulated for paths
    under the folder, which is what a non-root user gets."""
    import errno

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root: make the OS refuse writes below `ro` as it does for users
        real_open, real_mkdir = os.open, os.mkdir

        def refuse(real):
            def wrapped(path, *args, **kwargs):
                if str(path).startswith(str(ro) + os.sep):
                    raise PermissionError(errno.EACCES, "Permission denied", str(path))
                return real(path, *args, **kwargs)
            return wrapped

        monkeypatch.setattr(os, "open", refuse(real_open))
        monkeypatch.setattr(os, "mkdir", refuse(real_mkdir))
    try:
        for out in (ro, ro / "sub"):
            with pytest.raises(ConfigError, match="pick another --out"):
                train(small(), digits, out, **QUIET)
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------- 6. divergence before any checkpoint
def test_divergence_in_first_epoch_names_no_checkpoint(tmp_path, digits):
    bad = small(seed=1).with_overrides({"eta.W": 50.0, "eta.Vbar": 50.0})
    out = tmp_path / "run"
    with pytest.raises(DivergenceError, match=r"at epoch 1, step \d+.*No checkpoint exists") as e:
        train(bad, digits, out, **QUIET)
    assert "checkpoint.npz" not in str(e.value) and "initial weights are not saved" in str(e.value)
    info = json.loads((out / "diverged.json").read_text())
    assert info["checkpoint"] is None and info["last_good_epoch"] == 0
    assert not (out / "checkpoint.npz").exists() and not (out / RunDir.LOCK).exists()
    # nothing to resume: a new run with sane rates may reuse the folder and drops the stale diverged.json
    train(small(seed=1), digits, out, **QUIET)
    assert (out / "summary.json").exists() and not (out / "diverged.json").exists()
