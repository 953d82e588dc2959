"""Sweeps: a dask LocalCluster of 2 workers against serial execution, and the dask path's overhead per point.

One run prints:

1) the speed-up of ``salspike.sweeps.run_sweep`` on a LocalCluster of 2 single-threaded worker
   processes (1 BLAS thread each) over serial execution in this process (1 BLAS thread) for 8
   matrix-level points (4 eta_scale values x 2 seeds) of the paper MLP at downstream ratio 5 on
   digits, with the epochs chosen so that one point takes at least ``--point-s`` seconds (measured
   first, one epoch);
2) the overhead per point of the dask path for 8 trivial points (hidden [8], 100 samples, 1 epoch):
   (dask wall time) / 8 - (serial wall time) / 8, both with a fresh LocalCluster (its start-up
   amortised over the 8 points) and with an already running one (``--scheduler``'s path).

As a control for 1), the same 8 points also run in two plain Python processes without dask (4 points
each): if they are as slow as the dask workers, the machine (shared cores, memory bandwidth), not
dask, sets the speed-up.

Each mode writes to a fresh folder (no cached points).  The load average is printed before and after
each measurement: the machine is shared and other jobs change the numbers.

    PYTHONPATH=$PWD python benchmarks/sweep.py [--point-s 12]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from salspike.console import set_quiet
from salspike.sweeps import SweepSpec, run_sweep
from salspike.training import available_cores

HEAVY = {"downstream_ratio": 5.0, "training.blas_threads": 1}
TRIVIAL = {"hidden": [8], "training.blas_threads": 1}


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def point_seconds(root: str, name: str) -> list[float]:
    """train + eval seconds of every point of a sweep, from their summary.json."""
    out = []
    for f in Path(root, name, "points").glob("*/summary.json"):
        t = json.loads(f.read_text())["timings"]
        out.append(t["train_s"] + t["eval_s"])
    return out


def timed_sweep(root: str, name: str, cluster: dict, **spec) -> float:
    s = SweepSpec(out=os.path.join(root, name), cluster=cluster, **spec)
    t0 = time.perf_counter()
    result = run_sweep(s, log=lambda *a: None)
    wall = time.perf_counter() - t0
    bad = {k: v for k, v in result["counts"].items() if k != "done"}
    if bad:
        raise SystemExit(f"{name}: points failed: {bad}")
    return wall


_PLAIN = """
import json, sys
from threadpoolctl import threadpool_limits
from salspike.console import set_quiet
from salspike.sweeps import SweepSpec, run_sweep
set_quiet(True)
spec = json.loads(sys.argv[1])
with threadpool_limits(limits=1, user_api="blas"):
    run_sweep(SweepSpec(cluster={"kind": "serial"}, **spec), log=lambda *a: None)
"""


def two_plain_processes(root: str, heavy: dict) -> float:
    """Wall time of two plain Python processes (no dask) each running half of the heavy grid serially."""
    import subprocess
    import sys

    values = heavy["grid"]["eta_scale"]
    halves = [values[: len(values) // 2], values[len(values) // 2:]]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", _PLAIN, json.dumps(
        {**heavy, "grid": {"eta_scale": half}, "out": os.path.join(root, f"plain-{i}")})], env=env)
        for i, half in enumerate(halves)]
    if any(p.wait() for p in procs):
        raise SystemExit("a plain process failed")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--point-s", type=float, default=12.0, help="seconds one heavy point should take at least")
    args = ap.parse_args()
    set_quiet(True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"{available_cores()} available; python {platform.python_version()}")
    import dask
    import distributed
    import numpy
    print(f"numpy {numpy.__version__}, dask {dask.__version__}, distributed {distributed.__version__}")
    print(f"load average at start: {load()}  (the machine is shared: other jobs change these numbers)")
    with tempfile.TemporaryDirectory() as root, threadpool_limits(limits=1, user_api="blas"):
        # calibrate: two epochs of one heavy point, serially (train + eval seconds per epoch)
        timed_sweep(root, "calibrate", {"kind": "serial"}, set=HEAVY, epochs=2, seeds=[99])
        t1 = point_seconds(root, "calibrate")[0] / 2
        epochs = max(1, math.ceil(args.point_s / t1))
        grid = {"eta_scale": [0.25, 0.5, 1.0, 2.0]}
        heavy = dict(set=HEAVY, epochs=epochs, seeds=[0, 1], grid=grid)
        print(f"\n1) 8 matrix-level points: paper MLP, downstream_ratio 5, digits (1437 train), batch 32, "
              f"{epochs} epochs (one epoch took {t1:.2f} s when calibrating), eta_scale {grid['eta_scale']} x seeds 0,1")
        print(f"   load average before: {load()}")
        serial = timed_sweep(root, "heavy-serial", {"kind": "serial"}, **heavy)
        ps = point_seconds(root, "heavy-serial")
        print(f"   serial, this process, 1 BLAS thread:             {serial:7.1f} s  (train+eval per point: "
              f"{min(ps):.1f}-{max(ps):.1f} s, mean {sum(ps) / len(ps):.1f} s)")
        print(f"   load average: {load()}")
        local = timed_sweep(root, "heavy-dask", {"kind": "local", "workers": 2}, **heavy)
        pd = point_seconds(root, "heavy-dask")
        print(f"   dask LocalCluster, 2 workers x 1 thread:         {local:7.1f} s  (cluster start-up included; "
              f"train+eval per point on the workers: {min(pd):.1f}-{max(pd):.1f} s, mean {sum(pd) / len(pd):.1f} s)")
        print(f"   speed-up: {serial / local:.2f}x  (ideal 2 on 2 free cores)")
        print(f"   load average: {load()}")
        plain = two_plain_processes(root, heavy)
        pp = point_seconds(root, "plain-0") + point_seconds(root, "plain-1")
        print(f"   control without dask: 2 plain processes, 4 points each (serial), 1 BLAS thread: {plain:7.1f} s "
              f"(train+eval per point: {min(pp):.1f}-{max(pp):.1f} s, mean {sum(pp) / len(pp):.1f} s); "
              f"speed-up {serial / plain:.2f}x")
        print(f"   load average after: {load()}")

        trivial = dict(set=TRIVIAL, epochs=1, n_train=100, seeds=[0, 1], grid=grid)
        print("\n2) overhead per point: 8 trivial points (hidden [8], 100 train samples, 1 epoch)")
        print(f"   load average before: {load()}")
        timed_sweep(root, "warm", {"kind": "serial"}, **{**trivial, "seeds": [7]})  # imports, dataset cache
        s_triv = timed_sweep(root, "trivial-serial", {"kind": "serial"}, **trivial)
        l_triv = timed_sweep(root, "trivial-dask", {"kind": "local", "workers": 2}, **trivial)
        from dask.distributed import LocalCluster
        import logging
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as lc:
            timed_sweep(root, "warm-sched", {"kind": "scheduler", "address": lc.scheduler_address},
                        **{**trivial, "seeds": [7]})  # workers import salspike and load the data once
            r_triv = timed_sweep(root, "trivial-sched", {"kind": "scheduler", "address": lc.scheduler_address},
                                 **trivial)
        work = s_triv / 8
        print(f"   serial:                         {s_triv:6.2f} s total, {work:.3f} s/point (= the point's work)")
        print(f"   dask, fresh LocalCluster(2):    {l_triv:6.2f} s total, overhead {l_triv / 8 - work:+.3f} s/point "
              "(cluster start-up amortised over 8 points; 2 workers run 2 points at a time)")
        print(f"   dask, running scheduler (2 w.): {r_triv:6.2f} s total, overhead {r_triv / 8 - work:+.3f} s/point")
        print(f"   target: < 0.5 s/point; load average after: {load()}")


if __name__ == "__main__":
    main()
