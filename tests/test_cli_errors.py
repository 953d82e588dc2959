"""Everyday mistakes end in one line on stderr and exit 2, with nothing half-written.

Each case names the problem and the fix; none leaves an output file or folder behind."""

from __future__ import annotations

import numpy as np
import pytest

from salspike.circuit import Circuit, init_weights
from salspike.cli import main

SMALL = "small_circuit"


def one_line_error(capsys, code, match):
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert match in err, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def step_files(tmp_path):
    c = Circuit.load(_small_path())
    w = init_weights(c)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, c.widths[0])), rng.standard_normal((4, c.widths[-1]))
    np.savez(tmp_path / "w.npz", **w)
    np.savez(tmp_path / "b.npz", x=x, y=y)
    return c, w, x, y


def _small_path():
    from salspike.resources import bundled_path

    return bundled_path("model", SMALL)


def step(tmp_path, *extra, weights="w.npz", inputs="b.npz", out="out.npz"):
    return main(["step", "--model", SMALL, "--weights", str(tmp_path / weights), "--inputs", str(tmp_path / inputs),
                 "--out", str(tmp_path / out), *extra])


@pytest.mark.parametrize("argv, match", [
    (["train", "--out", "r", "--epochs", "0"], "--epochs must be >= 1"),
    (["train", "--out", "r", "--epochs", "-3"], "--epochs must be >= 1"),
    (["train", "--out", ""], "--out must not be empty"),
    (["train", "--out", "r", "--seed", "-1"], "--seed must be >= 0"),
    (["train", "--out", "r", "--n-train", "0"], "--n-train must be >= 1"),
    (["train", "--out", "r", "--device", "cpp_standalone"], "--device applies to the Brian2 levels only"),
    (["train", "--out", "r", "--data-root", "/tmp"], "drop --data-root"),
    (["train", "--out", "r", "--set", "eta.Q=1"], "unknown key 'eta.Q'"),
    (["train", "--out", "r", "--model", "nope.toml"], "does not exist"),
    (["train", "--out", "r", "--level", "spike", "--dataset", "teacher_student"], "firing rates"),
    (["compare", "--out", "c", "--dataset", "digits", "--protocol", "pairing_window"], "exclude each other"),
    (["compare", "--out", "c", "--trials", "0"], "--trials must be >= 1"),
    (["sweep", "--out", "s", "--seeds", "0,x"], "comma-separated integers"),
    (["sweep", "--out", "s", "--seeds", "-1"], "non-negative"),
    (["calibrate", "--model", SMALL, "--in-place", "--out", "x.toml"], "exclude each other"),
    (["step", "--level", "matrix", "--device", "runtime", "--weights", "w", "--inputs", "b", "--out", "o"],
     "--device applies to the Brian2 levels only"),
    (["step", "--level", "rate", "--seed", "2", "--weights", "w", "--inputs", "b", "--out", "o"],
     "--seed applies to the spike level only"),
    (["step", "--level", "rate", "--online", "--weights", "w", "--inputs", "b", "--out", "o"],
     "--online is the only mode of the rate level"),
])
def test_wrong_arguments(tmp_path, monkeypatch, capsys, argv, match):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, main(argv), match)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_calibrate_never_overwrites_the_model_unless_asked(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.toml"
    model.write_text(_small_path().read_text())
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, main(["calibrate", "--model", str(model), "--out", str(model)]), "--in-place")
    (tmp_path / "taken.toml").write_text("x")
    one_line_error(capsys, main(["calibrate", "--model", str(model), "--out", "taken.toml"]), "exists")
    assert model.read_text() == _small_path().read_text()


@pytest.mark.parametrize("mutate, match", [
    (lambda w, b: w.__setitem__("W0", np.full_like(w["W0"], np.nan)), "NaN"),
    (lambda w, b: b.__setitem__("x", np.full_like(b["x"], np.inf)), "NaN/inf"),
    (lambda w, b: b.update(x=b["x"][:0], y=b["y"][:0]), "0 trials"),
    (lambda w, b: b.update(x=b["x"][:, :-1]), "inputs x have shape"),
    (lambda w, b: w.pop("V1"), "missing key 'V1'"),
])
def test_step_refuses_bad_inputs_and_writes_nothing(tmp_path, capsys, step_files, mutate, match):
    c, w, x, y = step_files
    w, b = dict(w), {"x": x, "y": y}
    mutate(w, b)
    np.savez(tmp_path / "w.npz", **w)
    np.savez(tmp_path / "b.npz", **b)
    one_line_error(capsys, step(tmp_path), match)
    assert not (tmp_path / "out.npz").exists()


def test_step_divergence_is_an_error_and_writes_nothing(tmp_path, capsys, step_files):
    """An update whose weights exceed divergence_limit: exit 2, no output file."""
    one_line_error(capsys, step(tmp_path, "--set", "eta.W=1e9", "--set", "divergence_limit=10"), "diverged")
    assert not (tmp_path / "out.npz").exists()


def test_step_refuses_an_existing_out_unless_forced(tmp_path, capsys, step_files):
    (tmp_path / "out.npz").write_bytes(b"keep")
    one_line_error(capsys, step(tmp_path), "exists")
    assert (tmp_path / "out.npz").read_bytes() == b"keep"
    assert step(tmp_path, "--force") == 0


def test_step_uses_the_model_written_beside_the_weights(tmp_path, capsys):
    """Without --model, step reads model.toml beside weights.npz (as train writes them) instead of
    silently applying the schema defaults; with neither, it says which defaults it applies.
    Catches: step using default learning rates/loss for weights trained with others."""
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--n-train", "64", "--epochs", "1", "--out", str(run),
                 "--set", "hidden=[8]", "--set", "eta.W=0.003", "--quiet"]) == 0
    capsys.readouterr()
    with np.load(run / "weights.npz") as f:
        w = {k: f[k] for k in f.files}
    c = Circuit.load(run / "model.toml")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "b.npz", x=rng.standard_normal((3, c.widths[0])), y=rng.standard_normal((3, c.widths[-1])))
    args = ["step", "--weights", str(run / "weights.npz"), "--inputs", str(tmp_path / "b.npz")]
    assert main(args + ["--out", str(tmp_path / "o1.npz")]) == 0
    assert "model.toml" in capsys.readouterr().err
    ref = main(args + ["--model", str(run / "model.toml"), "--out", str(tmp_path / "o2.npz")])
    assert ref == 0
    with np.load(tmp_path / "o1.npz") as a, np.load(tmp_path / "o2.npz") as b:
        for k in w:
            np.testing.assert_array_equal(a[k], b[k])
    (tmp_path / "alone").mkdir()
    np.savez(tmp_path / "alone" / "w.npz", **w)
    assert main(["step", "--weights", str(tmp_path / "alone" / "w.npz"), "--inputs", str(tmp_path / "b.npz"),
                 "--out", str(tmp_path / "o3.npz")]) == 0
    err = capsys.readouterr().err
    assert "no --model and no model.toml" in err and "eta.W=0.01" in err


def test_build_resolves_auto_widths_from_the_dataset(monkeypatch, capsys):
    """`salspike build` on the default model (auto widths) takes them from --dataset (digits)
    instead of failing; the level's build receives the resolved circuit."""
    from salspike.levels import get_level

    seen = {}

    def fake_build(circuit, **options):
        seen["widths"] = circuit.widths
        seen["options"] = options
        return {"ok": True}

    monkeypatch.setattr(get_level("rate"), "build", staticmethod(fake_build))
    assert main(["build", "--level", "rate", "--device", "cuda_standalone", "--compile-only"]) == 0
    assert seen["widths"] == [64, 200, 200, 200, 10]
    assert seen["options"]["compile_only"] is True


def test_version_and_model_show(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("salspike ")
    assert main(["model", "show", SMALL]) == 0
    out = capsys.readouterr().out
    from salspike.circuit import SCHEMA

    for key in SCHEMA:
        assert f"\n{key} " in out
    assert "rate.tau_up" in out and " ms " in out
