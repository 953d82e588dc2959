"""Benchmark of the Brian2 rate network (salspike.brian.rate), printed in one run.

* compile time of the cpp_standalone project (code generation + make, fresh build folder);
* time per trial: runtime device (numpy code generation) and cpp_standalone;
* cost of a new parameter point (new learning rate, weights and inputs through ``run_args``,
  no recompile): wall time of the call minus the simulation time inside the binary;
* synapse-step throughput of the summed variables (Brian2 profiling of the summed-variable
  code objects) against a scipy.sparse CSR matrix-vector product over the same connectivity.

Usage::

    python benchmarks/rate_network.py [--model models/paper_mlp.toml] [--trials 10]
                                      [--runtime-trials 1] [--jobs 2] [--points 3]

The default circuit is the paper's 64-200-200-200-10 MLP (downstream widths 200) on the
scikit-learn digits, with the default rate parameters (dt = 0.1 ms; 30 + 30 + 10 ms per trial,
i.e. 700 steps per trial).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from salspike.brian.common import connection_indices  # noqa: E402
from salspike.brian.rate import RateNetwork  # noqa: E402
from salspike.circuit import Circuit  # noqa: E402
from salspike.datasets import load_digits  # noqa: E402
from salspike.matrix.engine import init_weights  # noqa: E402


def sparse_throughput(layout, repeats: int) -> tuple[float, int]:
    """Synapse operations per second of y = M x over every summed-variable projection."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    mats, vecs, nnz = [], [], 0
    for name, pr in layout.projections.items():
        i, j = connection_indices(pr)  # the synapses Brian2 holds, one stored entry each
        csr = sp.csr_matrix((rng.standard_normal(i.size), (j, i)), shape=pr.shape)
        mats.append(csr)
        vecs.append(rng.standard_normal(pr.shape[1]))
        nnz += csr.nnz
    for M, v in zip(mats, vecs):  # warm up
        M @ v
    t0 = time.perf_counter()
    for _ in range(repeats):
        for M, v in zip(mats, vecs):
            M @ v
    elapsed = time.perf_counter() - t0
    return nnz * repeats / elapsed, nnz


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "paper_mlp.toml"))
    ap.add_argument("--trials", type=int, default=10, help="trials per standalone run")
    ap.add_argument("--runtime-trials", type=int, default=1)
    ap.add_argument("--points", type=int, default=3, help="parameter points re-run through run_args")
    ap.add_argument("--jobs", type=int, default=2, help="make -j")
    ap.add_argument("--build-dir", default=None, help="default: a fresh temporary folder")
    args = ap.parse_args(argv)

    import brian2

    data = load_digits(seed=0)
    # one update per trial (online): the batch-32 rates of the model file diverge, use 1/10 of them
    online = {"eta.W": 1e-3, "eta.Wbar": 1e-5, "eta.V": 1e-5, "eta.Vbar": 1e-5}
    circuit = Circuit.load(args.model, online).with_io_widths(data.input_width, data.output_width)
    n = args.trials
    if data.x_train.shape[0] < n * (args.points + 1):
        raise SystemExit("not enough digits for that many trials and points")
    x, y = data.x_train[:n], data.y_train[:n]
    w0 = init_weights(circuit)
    print(f"salspike rate-network benchmark  ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, brian2 {brian2.__version__}, numpy {np.__version__})")
    print(f"circuit: widths {circuit.widths}, downstream {circuit.downstream_widths[1:]}, "
          f"dt {circuit['rate.dt']} ms, trial {circuit['rate.t_forward']}+{circuit['rate.t_feedback']}+"
          f"{circuit['rate.t_plasticity']} ms")

    tmp = None
    build_dir = args.build_dir
    if build_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="salspike_bench_")
        build_dir = tmp.name
    net = RateNetwork(circuit, w0, device="cpp_standalone", build_dir=build_dir, trials_per_run=n,
                      compile_jobs=args.jobs, profile=True)
    layout = net.layout
    n_syn = sum(int(np.prod(p.shape)) if p.connect != "one_to_one" else p.shape[0]
                for p in layout.projections.values())
    steps = n * net.schedule.steps_per_trial
    print(f"synapses: {n_syn} in {len(layout.projections)} groups; {net.schedule.steps_per_trial} steps per trial")

    # ---- compile
    t0 = time.perf_counter()
    runner = net.compile(n)
    compile_s = time.perf_counter() - t0
    print(f"\n[compile] cpp_standalone: {compile_s:.1f} s (code generation {runner.timings['assemble_s']:.1f} s "
          f"+ build {runner.timings['build_s']:.1f} s, make -j{args.jobs})")
    mtime = runner.binary_mtime()

    # ---- standalone trials
    t0 = time.perf_counter()
    net.run_trials(x, y)
    wall = time.perf_counter() - t0
    sim = float(brian2.get_device()._last_run_time)
    print(f"\n[trials] cpp_standalone: {n} trials in {wall:.2f} s wall ({wall / n * 1e3:.1f} ms/trial), "
          f"simulation {sim:.2f} s ({sim / n * 1e3:.1f} ms/trial, {sim / steps * 1e6:.1f} us/step)")
    prof = runner.profiling_info()

    # ---- parameter points through run_args
    overheads = []
    for p in range(args.points):
        c2 = circuit.with_overrides({"eta.W": 5e-4 * (p + 2), "seed": p + 1})
        net.set_circuit(c2)
        net.set_weights(init_weights(c2))
        xp, yp = data.x_train[(p + 1) * n:(p + 2) * n], data.y_train[(p + 1) * n:(p + 2) * n]
        t0 = time.perf_counter()
        net.run_trials(xp, yp)
        wall_p = time.perf_counter() - t0
        sim_p = float(brian2.get_device()._last_run_time)
        overheads.append(wall_p - sim_p)
    recompiled = runner.binary_mtime() != mtime or runner.n_compiles != 1
    print(f"\n[run_args] {args.points} parameter points (eta.W, weights, inputs): overhead per point "
          f"{np.mean(overheads):.3f} s (min {np.min(overheads):.3f}, max {np.max(overheads):.3f}; "
          f"target < 0.5 s); recompiled: {'YES' if recompiled else 'no'} (compiles: {runner.n_compiles})")

    # ---- throughput
    summed = {k: v for k, v in prof.items() if "_summed_variable_" in k}
    plast = {k: v for k, v in prof.items() if k.startswith("syn_") and k.endswith("stateupdater_codeobject")}
    neurons = {k: v for k, v in prof.items() if k.startswith("pop_") and "stateupdater" in k}
    t_summed = sum(summed.values())
    t_plast = sum(plast.values())
    brian_rate = n_syn * steps / t_summed
    n_plastic = sum(int(np.prod(p.shape)) for p in layout.projections.values() if p.stored)
    sparse_rate, nnz = sparse_throughput(layout, repeats=200)
    print(f"\n[throughput] summed variables (Brian2 cpp_standalone, profiled): {brian_rate / 1e6:.0f} M synapse-steps/s "
          f"({t_summed:.2f} s for {n_syn} synapses x {steps} steps)")
    print(f"             scipy.sparse CSR mat-vec, same connectivity ({nnz} nonzeros): "
          f"{sparse_rate / 1e6:.0f} M synapse-ops/s  -> Brian2/scipy = {brian_rate / sparse_rate:.2f}")
    print(f"             plasticity ODEs (every step, gated): {n_plastic * steps / t_plast / 1e6:.0f} M synapse-steps/s "
          f"({t_plast:.2f} s); neuron updaters {sum(neurons.values()):.2f} s; "
          f"profiled total {sum(prof.values()):.2f} s")

    # ---- runtime
    rt = RateNetwork(circuit, w0, device="runtime")
    m = args.runtime_trials
    t0 = time.perf_counter()
    rt.run_trials(x[:m], y[:m])
    wall_rt = time.perf_counter() - t0
    print(f"\n[trials] runtime (numpy code generation): {m} trial(s) in {wall_rt:.2f} s "
          f"({wall_rt / m:.2f} s/trial, {wall_rt / (m * net.schedule.steps_per_trial) * 1e3:.2f} ms/step)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
