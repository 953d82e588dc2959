"""`salspike sweep` on dask.distributed: failed points, resume after SIGKILL, list-valued grid keys, the
full-configuration cache key, the netCDF dataset, sample std, sweep-file validation, the jobqueue script and
the Brian2 build lock."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from salspike.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "hidden=[8]", "--n-train", "100", "--quiet"]


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def sweep(tmp_path, *extra, out="s", workers="0"):
    return main(["sweep", *TINY, "--workers", workers, "--out", str(tmp_path / out), *extra])


def one_line_error(capsys, code, *needles):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def summaries(out: Path) -> dict:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "points").glob("*/summary.json")}


def open_nc(path):
    import xarray as xr  # a hard dependency: a missing one fails, never skips

    return xr.open_dataset(path, engine="h5netcdf").load()


def test_failed_points_are_recorded_and_the_sweep_goes_on(tmp_path):
    # eta_scale=1e5 diverges; downstream_widths=[4,4] does not fit hidden=[8] (a ConfigError)
    assert sweep(tmp_path, "--epochs", "1", "--grid", "eta_scale=1,100000",
                 "--grid", "downstream_widths=[4];[4,4]") == 0
    out = tmp_path / "s"
    report = json.loads((out / "sweep.json").read_text())
    assert report["counts"] == {"done": 1, "diverged": 1, "error": 2}
    by = {(r["coords"]["eta_scale"], len(r["coords"]["downstream_widths"])): r for r in report["rows"]}
    assert by[(1, 1)]["status"] == "done"
    assert by[(100000, 1)]["status"] == "diverged" and "diverg" in by[(100000, 1)]["error"].lower()
    assert by[(1, 2)]["status"] == "error" and "downstream_widths" in by[(1, 2)]["error"]
    failed = json.loads((out / by[(100000, 1)]["folder"] / "failed.json").read_text())
    assert failed["status"] == "diverged" and failed["key"] == by[(100000, 1)]["key"]
    ds = open_nc(out / "sweep.nc")
    acc = ds["test_accuracy"].sel(eta_scale=100000.0, downstream_widths="[4]").values
    assert np.isnan(acc).all()
    assert str(ds["status"].sel(eta_scale=100000.0, downstream_widths="[4]", seed=0).item()) == "diverged"
    assert np.isfinite(ds["test_accuracy"].sel(eta_scale=1.0, downstream_widths="[4]").values).all()
    # a rerun keeps the recorded failures (no retry) unless --retry-failed
    stamp = (out / by[(100000, 1)]["folder"] / "failed.json").stat().st_mtime_ns
    assert sweep(tmp_path, "--epochs", "1", "--grid", "eta_scale=1,100000",
                 "--grid", "downstream_widths=[4];[4,4]") == 0
    assert (out / by[(100000, 1)]["folder"] / "failed.json").stat().st_mtime_ns == stamp


def test_list_valued_grid_netcdf_dims_and_sample_std(tmp_path, capsys):
    assert sweep(tmp_path, "--epochs", "2", "--grid", "hidden=[8];[6,6]", "--grid", "plastic=[\"W\"];[\"W\",\"V\"]",
                 "--seeds", "0,1,2") == 0
    assert "hidden=6+6,plastic=W+V" in capsys.readouterr().out
    out = tmp_path / "s"
    ds = open_nc(out / "sweep.nc")
    assert dict(ds.sizes) == {"hidden": 2, "plastic": 2, "seed": 3, "epoch": 2}
    assert list(ds["hidden"].values) == ["[8]", "[6, 6]"]
    assert list(ds["plastic"].values) == ['["W"]', '["W", "V"]']
    assert list(ds["seed"].values) == [0, 1, 2] and list(ds["epoch"].values) == [1, 2]
    for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "delta_angle_layer0"):
        assert ds[name].dims == ("hidden", "plastic", "seed", "epoch")
    # hidden=[8] has two weight layers: its layer-2 metric is NaN, the [6, 6] network's is not
    assert np.isnan(ds["delta_angle_layer2"].sel(hidden="[8]")).all()
    assert np.isfinite(ds["delta_angle_layer2"].sel(hidden="[6, 6]")).all()
    assert json.loads(ds.attrs["provenance"])["numpy"] == np.__version__
    # the summary table: mean and SAMPLE standard deviation (ddof=1) over seeds of the final epoch
    table = json.loads((out / "sweep.json").read_text())["table"]
    row = next(r for r in table if r["coords"] == {"hidden": [6, 6], "plastic": ["W", "V"]})
    finals = ds["test_accuracy"].sel(hidden="[6, 6]", plastic='["W", "V"]', epoch=2).values
    assert row["metrics"]["test_accuracy"]["n"] == 3
    assert row["metrics"]["test_accuracy"]["mean"] == pytest.approx(finals.mean())
    assert row["metrics"]["test_accuracy"]["std"] == pytest.approx(np.std(finals, ddof=1))
    # one seed: no standard deviation
    assert sweep(tmp_path, "--epochs", "2", "--grid", "hidden=[8]", out="one") == 0
    one = json.loads((tmp_path / "one" / "sweep.json").read_text())["table"][0]["metrics"]["test_accuracy"]
    assert one["n"] == 1 and one["std"] is None


def test_the_cache_key_is_the_full_configuration(tmp_path):
    out = tmp_path / "s"
    assert sweep(tmp_path, "--epochs", "1", "--grid", "eta_scale=0.5,1") == 0
    first = summaries(out)
    assert len(first) == 2
    assert sweep(tmp_path, "--epochs", "1", "--grid", "eta_scale=0.5,1") == 0
    assert summaries(out) == first  # finished points are skipped
    # more epochs: new points, never the cached 1-epoch results
    assert sweep(tmp_path, "--epochs", "2", "--grid", "eta_scale=0.5,1") == 0
    after = summaries(out)
    assert len(after) == 4 and all(after[k] == v for k, v in first.items())
    ds = open_nc(out / "sweep.nc")
    assert ds.sizes["epoch"] == 2 and np.isfinite(ds["test_loss"].values).all()
    configs = [json.loads(p.read_text())["config"] for p in (out / "points").glob("*/point.json")]
    assert sorted(c["epochs"] for c in configs) == [1, 1, 2, 2]
    # extending the grid reuses the points already done; a changed model setting is a new point
    assert sweep(tmp_path, "--epochs", "2", "--grid", "eta_scale=0.5,1,2") == 0
    extended = summaries(out)
    assert len(extended) == 5 and all(extended[k] == v for k, v in after.items())
    assert sweep(tmp_path, "--epochs", "2", "--grid", "eta_scale=0.5", "--set", "gamma=0.001") == 0
    assert len(summaries(out)) == 6


def test_sweep_file_and_flags(tmp_path, capsys):
    f = tmp_path / "sweep.toml"
    f.write_text(textwrap.dedent("""
        model = "paper_mlp"
        dataset = "digits"
        n_train = 100
        epochs = 1
        seeds = [0, 1]
        metrics = ["test_accuracy", "delta_angle"]
        out = "from_file"
        [set]
        hidden = [8]
        eta.W = 0.01
        [grid]
        eta_scale = [0.5, 1]
        [cluster]
        kind = "serial"
        """))
    # flags override the file: --epochs, --out and the grid axis eta_scale
    assert main(["sweep", str(f), "--epochs", "2", "--grid", "eta_scale=2", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    ds = open_nc(tmp_path / "o" / "sweep.nc")
    assert dict(ds.sizes) == {"eta_scale": 1, "seed": 2, "epoch": 2}
    assert set(ds.data_vars) >= {"test_accuracy", "delta_angle_layer0", "delta_angle_layer1", "status"}
    assert "train_loss" not in ds.data_vars
    point = json.loads(next((tmp_path / "o" / "points").glob("*/point.json")).read_text())
    assert point["config"]["model"]["eta"]["W"] == pytest.approx(0.02)  # [set] eta.W times eta_scale
    assert not (tmp_path / "from_file").exists()


@pytest.mark.parametrize("text, needles", [
    ("grdi = {}", ["unknown key 'grdi'", "Did you mean grid"]),
    ("hidden = [8]", ["unknown key 'hidden'", "[set]"]),
    ("[grid]\netta_scale = [1]", ["unknown grid key 'etta_scale'", "Did you mean eta_scale"]),
    ("[grid]\nhidden = [8, 16]", ["list-valued", "hidden = [[100], [200, 200]]"]),
    ("[grid]\nseed = [1, 2]", ["seeds"]),
    ("[set]\neta.Q = 1", ["unknown key 'set.eta.Q'"]),
    ("seeds = [0, -1]", ["non-negative"]),
    ("metrics = [\"test_acc\"]", ["unknown metric 'test_acc'", "test_accuracy"]),
    ("epochs = 0", ["epochs", ">= 1"]),
    ("level = \"ratee\"", ["level 'ratee'"]),
    ("[cluster]\nkind = \"slurm\"\nworkrs = 2", ["unknown key 'cluster.workrs'", "Did you mean workers"]),
    ("[cluster]\nkind = \"local\"\nmemory = \"2GB\"", ["cluster.memory applies to kind"]),
    ("[cluster]\nkind = \"scheduler\"", ["needs address"]),
    ("model = [", ["not valid TOML"]),
])
def test_sweep_file_validation(tmp_path, monkeypatch, capsys, text, needles):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "bad.toml"
    f.write_text(text + "\n")
    one_line_error(capsys, main(["sweep", str(f), "--out", "o"]), str(f), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # nothing created


@pytest.mark.parametrize("argv, needle", [
    (["--grid", "hidden=[8;[16]"], "is not a list"),
    (["--grid", "hidden=8,16"], "list-valued"),
    (["--grid", "eta_scale"], "expected KEY=V1,V2"),
    (["--grid", "eta_scale=-1"], "numbers > 0"),
    (["--grid", "eta.WW=0.1"], "Did you mean eta.W"),
    (["--seeds", "0,x"], "comma-separated integers"),
    (["--seeds", "3-1"], "ranges A-B"),
    (["--scheduler", "tcp://x:1", "--workers", "2"], "exclude each other"),
    (["--print-job-script"], "kind = \"slurm\""),
    (["--set", "eta.Q=1"], "unknown key 'eta.Q'"),
])
def test_bad_flags_are_one_line_errors(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, main(["sweep", "--out", "s", *argv]), needle)
    assert list(tmp_path.iterdir()) == []


def test_jobqueue_job_script(tmp_path, capsys):
    import dask_jobqueue  # noqa: F401  (a hard dependency: a missing one fails, never skips)
    from salspike.sweeps import jobqueue_cluster

    f = tmp_path / "slurm.toml"
    f.write_text('[cluster]\nkind = "slurm"\ncores = 2\nmemory = "3GB"\nwalltime = "00:30:00"\nqueue = "short"\n'
                 'jobs = 4\njob_extra_directives = ["--exclusive"]\n')
    assert main(["sweep", str(f), "--print-job-script"]) == 0
    script = capsys.readouterr().out
    for needle in ("#SBATCH", "-p short", "-t 00:30:00", "--exclusive", "--mem=", "--nthreads 1", "--nworkers 2",
                   "distributed.cli.dask_worker"):
        assert needle in script, script
    cluster = jobqueue_cluster({"kind": "pbs", "cores": 1, "memory": "1GB", "walltime": "01:00:00"})
    try:
        pbs = cluster.job_script()
    finally:
        cluster.close()
    assert "#PBS" in pbs and "walltime=01:00:00" in pbs


def test_sigkill_mid_sweep_then_rerun_runs_every_point_once(tmp_path):
    """A LocalCluster sweep (2 workers) killed with SIGKILL (the whole process group) and rerun: every point
    finished exactly once, points finished before the kill untouched, a half-trained point resumed from its
    checkpoint (its metrics.jsonl holds each epoch once)."""
    out = tmp_path / "s"
    epochs = 6
    cmd = [sys.executable, "-m", "salspike.cli", "sweep", "--set", "hidden=[8]", "--epochs", str(epochs),
           "--grid", "eta_scale=0.5,0.75,1,1.5", "--seeds", "0,1", "--workers", "2", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env(), cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(summaries(out) if (out / "points").is_dir() else {}) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = summaries(out)
    assert 2 <= len(before) < 8, "the sweep ended before the kill: make its points slower"
    assert not (out / "sweep.nc").exists()
    rerun = subprocess.run(cmd, env=env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = summaries(out)
    assert len(after) == 8 and len(list((out / "points").iterdir())) == 8
    assert all(after[k] == v for k, v in before.items())  # not run again
    for folder in (out / "points").iterdir():
        epochs_seen = [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert epochs_seen == list(range(1, epochs + 1)), folder
    ds = open_nc(out / "sweep.nc")
    assert (ds["status"].values == "done").all() and np.isfinite(ds["test_accuracy"].values).all()


# --------------------------------------------------------------------------- the Brian2 build lock

_LOCK_HOLDER = """
import json, sys, time
from salspike.brian.runner import build_lock
t0 = time.time()
with build_lock(sys.argv[1], shared=sys.argv[2] == "shared"):
    t1 = time.time()
    time.sleep(1.0)
    t2 = time.time()
print(json.dumps([t1, t2]))
"""


@pytest.mark.parametrize("mode", ["exclusive", "shared"])
def test_build_lock_serialises_compiles_and_shares_runs(tmp_path, mode):
    build = tmp_path / "brian" / "rate-cpp_standalone-abc"
    procs = [subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(build), mode], env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    spans = []
    for p in procs:
        o, e = p.communicate(timeout=60)
        assert p.returncode == 0, e
        spans.append(json.loads(o))
    (a0, a1), (b0, b1) = sorted(spans)
    if mode == "exclusive":
        assert b0 >= a1 - 0.01, spans  # the second waited for the first to release
    else:
        assert b0 < a1, spans  # runners hold the lock together
    assert (tmp_path / "brian" / "rate-cpp_standalone-abc.lock").is_file()


_COMPILER = """
import json, sys
import numpy as np
from salspike.brian.rate import RateNetwork
from salspike.circuit import Circuit, init_weights
c = Circuit.from_dict({"hidden": [3], "input_width": 4, "output_width": 2, "downstream_widths": [3]})
x = np.random.default_rng(0).uniform(0, 1, (2, 4)); y = np.eye(2)
net = RateNetwork(c, init_weights(c), device="cpp_standalone", compile_jobs=1)
w, _ = net.run_trials(x, y)
print(json.dumps({"n_compiles": net.last_runner.n_compiles, "w": {k: v.tolist() for k, v in w.items()},
                  "build": str(net.last_runner.build_dir)}))
"""


@pytest.mark.slow
def test_two_processes_compiling_one_network_at_once(tmp_path):
    """Two processes build the same small rate network with cpp_standalone into one cache folder at the
    same time: the lock makes one compile and the other reuse its binary; both get the same weights."""
    e = env() | {"SALSPIKE_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", _COMPILER], env=e, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results, errs = [], []
    for p in procs:
        o, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(o.strip().splitlines()[-1]))
        errs.append(err)
    assert results[0]["build"] == results[1]["build"]
    assert sorted(r["n_compiles"] for r in results) == [0, 1], errs
    for k in results[0]["w"]:
        np.testing.assert_allclose(results[0]["w"][k], results[1]["w"][k], rtol=1e-12)
    assert sum("waiting for another process compiling" in err for err in errs) <= 1
    assert len(list(Path(results[0]["build"]).glob("results-*"))) == 2  # each process its own results
