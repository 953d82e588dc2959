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
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from salspike.brian.assembly import connection_indices  # noqa: E402
from salspike.brian.rate import RateNetwork  # noqa: E402
from salspike.circuit import Circuit  # noqa: E402
from salspike.datasets import load_digits  # noqa: E402
from salspike.circuit import init_weights  # noqa: E402


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

    print(f"load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          "(wall times are unreliable when it exceeds the cores; CPU times are reported too)")

    tmp = tempfile.TemporaryDirectory(prefix="salspike_bench_") if args.build_dir is None else None
    root = Path(args.build_dir) if args.build_dir is not None else Path(tmp.name)

    def standalone(profile):
        return RateNetwork(circuit, w0, device="cpp_standalone", build_dir=root / ("prof" if profile else "plain"),
                           trials_per_run=n, compile_jobs=args.jobs, profile=profile)

    net = standalone(False)
    layout = net.layout
    n_syn = sum(int(np.prod(p.shape)) if p.connect != "one_to_one" else p.shape[0]
                for p in layout.projections.values())
    steps = n * net.schedule.steps_per_trial
    print(f"synapses: {n_syn} in {len(layout.projections)} groups; {net.schedule.steps_per_trial} steps per trial; "
          f"{n} trials per run")

    # ---- compile
    t0 = time.perf_counter()
    runner = net.compile(n)
    compile_s = time.perf_counter() - t0
    print(f"\n[compile] cpp_standalone: {compile_s:.1f} s wall (code generation {runner.timings['assemble_s']:.1f} s "
          f"+ build {runner.timings['build_s']:.1f} s, make -j{args.jobs})")
    mtime, compiles = runner.binary_mtime(), runner.n_compiles

    def timed(fn):
        """wall, CPU of this process, CPU of finished children (the standalone binary)."""
        c0, p0, w0_ = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time(), time.perf_counter()
        fn()
        c1, p1, w1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time(), time.perf_counter()
        return w1 - w0_, p1 - p0, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)

    # ---- standalone trials
    wall, py_cpu, bin_cpu = timed(lambda: net.run_trials(x, y))
    sim = float(brian2.get_device()._last_run_time)  # CPU time of the simulation loop (std::clock)
    print(f"\n[trials] cpp_standalone: {n} trials: simulation {sim:.2f} s CPU ({sim / n * 1e3:.1f} ms/trial, "
          f"{sim / steps * 1e6:.1f} us/step); whole call {wall:.2f} s wall, {py_cpu + bin_cpu:.2f} s CPU "
          f"({(py_cpu + bin_cpu) / n * 1e3:.1f} ms/trial)")

    # ---- parameter points through run_args
    over_cpu, over_wall, py_side = [], [], []
    for p in range(args.points):
        c2 = circuit.with_overrides({"eta.W": 5e-4 * (p + 2), "seed": p + 1})
        net.set_circuit(c2)
        net.set_weights(init_weights(c2))
        xp, yp = data.x_train[(p + 1) * n:(p + 2) * n], data.y_train[(p + 1) * n:(p + 2) * n]
        wall_p, py_p, bin_p = timed(lambda: net.run_trials(xp, yp))
        sim_p = float(brian2.get_device()._last_run_time)
        over_cpu.append(py_p + bin_p - sim_p)
        over_wall.append(wall_p - sim_p)
        py_side.append(py_p)
    recompiled = runner.binary_mtime() != mtime or runner.n_compiles != compiles
    print(f"\n[run_args] {args.points} parameter points (new eta.W, seed, weights, inputs; same binary): "
          f"overhead per point {np.mean(over_cpu):.3f} s CPU (min {np.min(over_cpu):.3f}, max {np.max(over_cpu):.3f}; "
          f"target < 0.5 s), {np.mean(over_wall):.3f} s wall; recompiled: {'YES' if recompiled else 'no'}\n"
          f"           of which Python (values, run_args files, reading results) {np.mean(py_side):.3f} s CPU; "
          "the rest is the binary outside its simulation loop (start, synapse creation, writing results)")

    # ---- throughput (a second, profiled build: Brian2's per-code-object timers)
    pnet = standalone(True)
    t0 = time.perf_counter()
    prunner = pnet.compile(n)
    pcompile = time.perf_counter() - t0
    pnet.run_trials(x, y)
    prof = prunner.profiling_info()
    summed = {k: v for k, v in prof.items() if "_summed_variable_" in k}
    plast = {k: v for k, v in prof.items() if k.startswith("syn_") and "stateupdater" in k}
    neurons = {k: v for k, v in prof.items() if k.startswith("pop_") and "stateupdater" in k}
    t_summed = sum(summed.values())
    t_plast = sum(plast.values())
    brian_rate = n_syn * steps / t_summed
    sparse_rate, nnz = sparse_throughput(layout, repeats=200)
    p_ticks = n + 1 if circuit["rate.plasticity"] == "one_shot" else steps
    print(f"\n[throughput] (profiled build, compiled in {pcompile:.1f} s)\n"
          f"  summed variables, Brian2 cpp_standalone: {brian_rate / 1e6:.0f} M synapse-steps/s "
          f"({t_summed:.2f} s for {n_syn} synapses x {steps} steps)\n"
          f"  scipy.sparse CSR mat-vec over the same connectivity ({nnz} nonzeros): "
          f"{sparse_rate / 1e6:.0f} M synapse-ops/s  -> Brian2 / scipy = {brian_rate / sparse_rate:.2f}\n"
          f"  plasticity ODEs ({circuit['rate.plasticity']}: {p_ticks} ticks) {t_plast:.3f} s; "
          f"neuron updaters {sum(neurons.values()):.2f} s; all code objects {sum(prof.values()):.2f} s")

    # ---- runtime
    rt = RateNetwork(circuit, w0, device="runtime")
    m = args.runtime_trials
    wall_rt, cpu_rt, _ = timed(lambda: rt.run_trials(x[:m], y[:m]))
    print(f"\n[trials] runtime (numpy code generation): {m} trial(s): {cpu_rt / m:.2f} s CPU/trial "
          f"({cpu_rt / (m * net.schedule.steps_per_trial) * 1e3:.2f} ms/step), {wall_rt / m:.2f} s wall/trial")
    print(f"\nload average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
