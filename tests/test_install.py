"""A built wheel, installed into a fresh virtual environment outside the checkout, runs every
level and the README's main job from a temporary folder.

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
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT], cwd=base)
    wheel = next(wheels.glob("salspike-*.whl"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel], cwd=base)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
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
