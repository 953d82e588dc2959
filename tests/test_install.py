"""A built wheel, installed into a fresh virtual environment outside the checkout, runs every
level, the everyday training job and the README's main job (`salspike demo`) from a temporary
folder.

This is what a user who runs ``pip install salspike`` gets: no repository, so every model,
equation and protocol file must come from the package data.  Needs PyPI (or a pip cache) to
install the dependencies into the new environment; marked ``install`` (about a minute)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.install


def run(cmd, cwd, env=None, timeout=900):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    wheels = base / "dist"
    # without PYTHONPATH: a checkout on it (with the salspike.egg-info a wheel build leaves) would
    # make pip find salspike "already satisfied" and skip installing the wheel
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT], cwd=base, env=env)
    wheel = next(wheels.glob("salspike-*.whl"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel], cwd=base, env=env)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["SALSPIKE_CACHE_DIR"] = str(base / "cache")
    work = base / "work"
    work.mkdir()
    return {"py": py, "bin": env_dir / "bin", "env": env, "work": work, "venv": env_dir}


def test_the_package_is_imported_from_the_new_environment(installed):
    r = run([installed["py"], "-c", "import salspike, salspike.models; print(salspike.__file__); "
             "print(salspike.__version__)"], cwd=installed["work"], env=installed["env"])
    where = Path(r.stdout.splitlines()[0]).resolve()
    assert installed["venv"].resolve() in where.parents, where
    assert ROOT not in where.parents


def test_bundled_files_ship_in_the_wheel(installed):
    r = run([installed["bin"] / "salspike", "model", "list"], cwd=installed["work"], env=installed["env"])
    assert "paper_mlp" in r.stdout and "small_circuit" in r.stdout
    code = ("from salspike.resources import bundled; print(bundled('model')); print(bundled('protocol'))")
    r = run([installed["py"], "-c", code], cwd=installed["work"], env=installed["env"])
    assert "rate_equations" in r.stdout and "spike_equations" in r.stdout and "pairing_window" in r.stdout


def test_readme_main_job_and_every_level_from_a_temporary_folder(installed):
    """The README's main job (paper MLP on digits, shortened to 2 epochs), then one `step` at each
    level (rate and spike on the runtime device) from a folder that is not the checkout."""
    exe, env, work = installed["bin"] / "salspike", installed["env"], installed["work"]
    run([exe, "train", "--model", "paper_mlp", "--dataset", "digits", "--epochs", "2", "--out", "runs/digits",
         "--quiet"], cwd=work, env=env)
    assert (work / "runs" / "digits" / "summary.json").is_file()
    rng = np.random.default_rng(0)
    np.savez(work / "batch.npz", x=rng.uniform(0, 1, (2, 8)), y=rng.standard_normal((2, 3)))  # rates >= 0
    run([installed["py"], "-c", "import numpy as np; from salspike.circuit import Circuit, init_weights; "
         "np.savez('w.npz', **init_weights(Circuit.load(__import__('salspike.resources').resources."
         "bundled_path('model', 'small_circuit'))))"], cwd=work, env=env)
    for level, extra in (("matrix", []), ("rate", ["--device", "runtime"]),
                         ("spike", ["--device", "runtime", "--seed", "1", "--set", "spike.t_window=20",
                                    "--set", "spike.t_settle=10", "--set", "spike.dt=0.5"])):
        out = work / f"{level}.npz"
        run([exe, "step", "--level", level, "--model", "small_circuit", "--weights", "w.npz", "--inputs",
             "batch.npz", "--out", out.name, *extra], cwd=work, env=env)
        with np.load(out) as f:
            assert f["h1"].shape == (2, 6) and "W0" in f.files


def test_readme_demo_from_the_installed_wheel(installed):
    """`salspike demo --out DIR`, the README's first command as written, from a non-editable install
    (measured 2026-12-02: 14 s of CPU, 49 s wall on the loaded 2-core machine; its quick form
    `--epochs 1 --n-train 100 --trials 2` saves only about 1 s of CPU): it writes the training
    curves, the prediction figure, the table and the NWB file it points to, and the NWB file
    holds every population's units and their spikes.  Catches: a demo that needs the repository
    (protocol or model files read from the checkout), a file the demo promises but does not write."""
    exe, env, work = installed["bin"] / "salspike", installed["env"], installed["work"]
    r = run([exe, "demo", "--out", "demo"], cwd=work, env=env)
    out = work / "demo"
    for path in ("train/training_curves.png", "area_silencing/area_silencing.png", "area_silencing/area_silencing.csv",
                 "area_silencing/area_silencing.nwb"):
        assert (out / path).is_file(), path
        assert path.split("/")[-1] in r.stdout, path  # the demo points to it
    code = ("from pynwb import NWBHDF5IO; io = NWBHDF5IO('demo/area_silencing/area_silencing.nwb', 'r'); "
            "u = io.read().units; print(len(u), sum(len(u['spike_times'][i]) for i in range(len(u))))")
    n_units, n_spikes = map(int, run([installed["py"], "-c", code], cwd=work, env=env).stdout.split())
    assert n_units == 8 + 6 + 5 + 2 * (3 + 12 + 10 + 3) and n_spikes > 100
