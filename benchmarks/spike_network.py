"""Cost of the closed-loop spiking network, against Brian2's CUBA benchmark, in one run.

Printed in one run, both in cpp_standalone on this machine:

* the closed-loop SAL spiking network (salspike.brian.spike, LNP neurons, signed quantities as
  ON/OFF pairs, all four synapse groups plastic: every presynaptic spike delivers its weight AND
  adds the postsynaptic factor to its synapse's tag; consolidation at each trial's end), on
  ``--trials`` digits rows, wall time per trial at the default trial length
  (spike.t_settle + spike.t_window);
* the anchor: Brian2's standard CUBA network (examples/CUBA.py: 4000 LIF neurons, 3200
  excitatory / 800 inhibitory, connection probability 2%, current-based exponential synapses,
  no plasticity; Vogels & Abbott 2005 / Brette et al. 2007);
* their ratio of synaptic events per second (target: the SAL network at least half the CUBA rate).

A synaptic event is one spike arriving at one synapse (spikes x out-degree).  The loop time is
the simulation loop of the compiled binary (Brian2's ``last_run_info``: no process start, no file
I/O); the wall time includes the binary's start and the run_args files.

Usage::

    python benchmarks/spike_network.py [--model models/paper_mlp.toml] [--trials 20] [--jobs 2]
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

from salspike.brian import devices  # noqa: E402
from salspike.brian.spike import SpikeNetwork  # noqa: E402
from salspike.circuit import Circuit  # noqa: E402
from salspike.datasets import load_digits  # noqa: E402


def cuba(duration_s: float, build_dir: Path, jobs: int) -> dict:
    """Brian2's CUBA example in cpp_standalone; returns events, loop and wall times."""
    import brian2
    from brian2 import NeuronGroup, Network, SpikeMonitor, Synapses, mV, ms, second

    devices.select_device("cpp_standalone", build_dir=build_dir, compile_jobs=jobs)
    brian2.seed(0)
    taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
    Vt, Vr, El = -50 * mV, -60 * mV, -49 * mV
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    """
    P = NeuronGroup(4000, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact")
    P.v = "Vr + rand() * (Vt - Vr)"
    P.ge = 0 * mV
    P.gi = 0 * mV
    we = (60 * 0.27 / 10) * mV
    wi = (-20 * 4.5 / 10) * mV
    Ce = Synapses(P, P, on_pre="ge += we")
    Ci = Synapses(P, P, on_pre="gi += wi")
    Ce.connect("i<3200", p=0.02)
    Ci.connect("i>=3200", p=0.02)
    s_mon = SpikeMonitor(P)
    net = Network(P, Ce, Ci, s_mon)
    net.run(duration_s * second)
    t0 = time.perf_counter()
    info = devices.build("cpp_standalone", run=True)
    total = time.perf_counter() - t0
    dev = brian2.get_device()
    counts = np.asarray(s_mon.count[:], dtype=np.float64)
    outdeg = np.bincount(np.asarray(Ce.i[:]), minlength=4000) + np.bincount(np.asarray(Ci.i[:]), minlength=4000)
    events = float(counts @ outdeg)
    return {"neurons": 4000, "synapses": int(len(Ce) + len(Ci)), "spikes": float(counts.sum()),
            "rate_Hz": float(counts.sum() / 4000 / duration_s), "events": events,
            "loop_s": float(dev._last_run_time), "binary_s": float(dev.timers.get("run_binary") or 0.0),
            "build_and_run_s": total, "compile_s": info.timings.get("compile")}


def plastic(model: str, n_trials: int, build_dir: Path, jobs: int) -> dict:
    """The closed-loop network on ``n_trials`` digits rows with learning on (one Brian2 run)."""
    import brian2

    data = load_digits(seed=0)
    circuit = Circuit.load(model).with_io_widths(data.input_width, data.output_width)
    # every spike of the run is counted: the window spans the whole trial
    count_all = circuit.with_overrides({"spike.t_window": circuit["spike.t_settle"] + circuit["spike.t_window"],
                                        "spike.t_settle": 0.0})
    net = SpikeNetwork(count_all, device="cpp_standalone", build_dir=build_dir, compile_jobs=jobs, seed=0)
    t0 = time.perf_counter()
    net.compile(n_trials)
    compile_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    _, acts = net.run_trials(data.x_train[:n_trials], data.y_train[:n_trials])
    wall_s = time.perf_counter() - t1
    dev = brian2.get_device()
    s, T = count_all["spike.rate_scale"], count_all["spike.t_window"] * 1e-3
    fanout = {name: 0 for name in net.layout.populations}
    n_syn = 0
    for pr in net.layout.projections.values():
        fanout[pr.pre] += pr.shape[0] if pr.connect != "one_to_one" else 1
        n_syn += pr.shape[0] * pr.shape[1] if pr.connect != "one_to_one" else pr.shape[0]
    # |ON - OFF| counts: a signed pair fires one sign at a time, so this is its spike count
    spikes = {name: float(np.abs(a).sum() * s * T) for name, a in acts.items()}
    events = sum(spikes[name] * fanout[name] for name in spikes)
    n_neurons = sum(p.width * (2 if p.role in ("output", "downstream", "error") else 1)
                    for p in net.layout.populations.values())
    duration_s = n_trials * T
    widths = "-".join(str(w) for w in circuit.widths)
    return {"circuit": f"{widths} (downstream {circuit.downstream_widths[1:]})", "tier": circuit["spike.tier"],
            "neurons (ON/OFF counted)": n_neurons, "synapses": n_syn, "trials": n_trials,
            "trial_ms": T * 1e3, "spikes": sum(spikes.values()),
            "rate_Hz": sum(spikes.values()) / n_neurons / duration_s, "events": events,
            "loop_s": float(dev._last_run_time), "binary_s": float(net.last_runner.timings.get("binary_s", 0.0)),
            "wall_s": wall_s, "wall_s_per_trial": wall_s / n_trials, "compile_s": compile_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "paper_mlp.toml"))
    ap.add_argument("--duration", type=float, default=2.0, help="simulated seconds of the CUBA network")
    ap.add_argument("--trials", type=int, default=20, help="digits rows (trials) of the SAL network")
    ap.add_argument("--jobs", type=int, default=2, help="make -j")
    ap.add_argument("--build-dir", default=None, help="default: a fresh temporary folder")
    args = ap.parse_args(argv)
    root = Path(args.build_dir) if args.build_dir else Path(tempfile.mkdtemp(prefix="salspike_spike_bench_"))
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}")
    p = plastic(args.model, args.trials, root / "plastic", args.jobs)
    c = cuba(args.duration, root / "cuba", args.jobs)
    devices.select_device("runtime")
    for name, r in (("plastic SAL spiking network", p), ("CUBA (Brian2 examples/CUBA.py)", c)):
        print(f"\n{name}")
        for key, value in r.items():
            print(f"  {key:16s} {value:.6g}" if isinstance(value, float) else f"  {key:16s} {value}")
        print(f"  events/s (loop)  {r['events'] / r['loop_s']:.4g}")
        print(f"  events/s (wall)  {r['events'] / r['binary_s']:.4g}" if r.get("binary_s") else "")
    ratio = (p["events"] / p["loop_s"]) / (c["events"] / c["loop_s"])
    print(f"\nratio plastic / CUBA synaptic events per second (simulation loop): {ratio:.3g} "
          f"(target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")
    print(f"build folders: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
