"""Device check: the rate (and spike) network on cuda_standalone against cpp_standalone.

Same circuit, weights and inputs on both devices; prints one table:

  size | synapses | device | compile s | run s | s/trial | max rel. weight diff vs reference | speed-up

float64: weights must agree to 1e-9 relative; float32 (``--float32``): 1e-4.  The spike level is
compared statistically: the closed loop's weight changes (cosine) and spike-count rates (mean
relative difference of the population rates) over the same trials; RNG streams differ between
devices.

On a GPU machine run it through ``benchmarks/gpu_check.sh`` (installs from carried wheels);
here, without a GPU, ``python benchmarks/gpu_check.py --devices cpp_standalone,runtime --sizes 20``
exercises the same code path.  Results of real GPU runs go to benchmarks/recorded/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


def circuit_for(hidden: int, float32: bool):
    from salspike.circuit import Circuit

    return Circuit.from_dict({"name": f"gpu_check_{hidden}", "hidden": [hidden, hidden], "input_width": hidden,
                              "output_width": 10, "downstream_ratio": 1.0, "seed": 0,
                              "dtype": "float32" if float32 else "float64",
                              "eta": {"W": 0.01, "Wbar": 0.001, "V": 0.001, "Vbar": 0.001},
                              "rate": {"t_forward": 10.0, "t_feedback": 10.0, "t_plasticity": 1.0, "dt": 0.1,
                                       "tau_up": 0.5, "tau_down": 0.5},
                              "spike": {"t_settle": 250.0, "t_window": 2000.0}})


def n_synapses(circuit) -> int:
    return int(sum(a * b for a, b in circuit.shapes().values()))


def run_level(level: str, circuit, device: str, x, y, build_root: str, trials: int):
    from salspike.circuit import init_weights

    weights = init_weights(circuit)
    build_dir = os.path.join(build_root, f"{level}-{device}-{circuit['name']}")
    if level == "rate":
        from salspike.brian.rate import RateNetwork

        net = RateNetwork(circuit, weights, device=device, build_dir=None if device == "runtime" else build_dir,
                          trials_per_run=trials)
    else:
        from salspike.brian.spike import SpikeNetwork

        net = SpikeNetwork(circuit, weights, device=device, build_dir=None if device == "runtime" else build_dir,
                           trials_per_run=trials, seed=1)
    t0 = time.perf_counter()
    if device != "runtime" and hasattr(net, "compile"):
        net.compile(trials)
    t1 = time.perf_counter()
    new, acts = net.run_trials(x, y)
    t2 = time.perf_counter()
    delta = {k: new[k] - weights[k] for k in new}
    return {"compile_s": t1 - t0, "run_s": t2 - t1, "weights": new, "delta": delta, "activities": acts}


def max_rel_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k])) / max(np.max(np.abs(b[k])), 1e-300)) for k in b)


def cosine(a: dict, b: dict) -> float:
    va = np.concatenate([a[k].ravel() for k in sorted(b)])
    vb = np.concatenate([b[k].ravel() for k in sorted(b)])
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb) + 1e-300))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="cuda_standalone,cpp_standalone",
                    help="first is tested, last is the reference")
    ap.add_argument("--sizes", default="40,120,400", help="hidden widths; 400 gives > 1e6 synapses")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--levels", default="rate,spike")
    ap.add_argument("--float32", action="store_true")
    ap.add_argument("--build-root", default=os.path.join("benchmarks", "out", "gpu_check"))
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    if args.float32:
        from brian2 import prefs

        prefs.core.default_float_dtype = np.float32
    devs = args.devices.split(",")
    tol = 1e-4 if args.float32 else 1e-9
    header = (f"gpu: {gpu_name()} | host: {platform.node()} | python {platform.python_version()} | "
              f"{'float32' if args.float32 else 'float64'} | tolerance {tol:g}")
    print(header)
    print(f"{'level':5s} {'hidden':>6s} {'synapses':>9s} {'device':>15s} {'compile s':>9s} {'run s':>8s} "
          f"{'s/trial':>8s} {'vs ref':>22s} {'speed-up':>8s}")
    rows, failures = [], []
    rng = np.random.default_rng(0)
    for level in args.levels.split(","):
        for hidden in [int(s) for s in args.sizes.split(",")]:
            circuit = circuit_for(hidden, args.float32)
            x = rng.uniform(0.0, 1.0, (args.trials, circuit.widths[0]))  # rates >= 0 for the spike level
            y = np.eye(10)[rng.integers(0, 10, args.trials)]
            results = {}
            for dev in reversed(devs):  # reference first
                try:
                    results[dev] = run_level(level, circuit, dev, x, y, args.build_root, args.trials)
                except Exception as exc:  # noqa: BLE001 - report and go on with the next size
                    print(f"{level:5s} {hidden:6d} {dev:>15s} FAILED: {exc}", file=sys.stderr)
                    failures.append(f"{level}/{hidden}/{dev}: {exc}")
            ref = results.get(devs[-1])
            for dev in devs:
                if dev not in results:
                    continue
                r = results[dev]
                if ref is None or dev == devs[-1]:
                    agree = "reference"
                elif level == "rate":
                    d = max_rel_diff(r["weights"], ref["weights"])
                    agree = f"{d:.1e}"
                    if d > tol:
                        failures.append(f"{level}/{hidden}/{dev}: max rel diff {d:.2e} > {tol:g}")
                else:
                    cos = cosine(r["delta"], ref["delta"])
                    rates = [abs(np.abs(r["activities"][p]).mean() / max(np.abs(ref["activities"][p]).mean(), 1e-12) - 1)
                             for p in ref["activities"]]
                    agree = f"cos {cos:.3f} rates {max(rates):.0%}"
                    if cos < 0.95:
                        failures.append(f"{level}/{hidden}/{dev}: update cosine {cos:.3f} < 0.95")
                    if max(rates) > 0.15:
                        failures.append(f"{level}/{hidden}/{dev}: a population rate differs by {max(rates):.0%} > 15%")
                speed = ref["run_s"] / r["run_s"] if ref else float("nan")
                row = {"level": level, "hidden": hidden, "synapses": n_synapses(circuit), "device": dev,
                       "compile_s": r["compile_s"], "run_s": r["run_s"], "s_per_trial": r["run_s"] / args.trials,
                       "vs_reference": agree, "speedup_vs_reference": speed}
                rows.append(row)
                print(f"{level:5s} {hidden:6d} {row['synapses']:9d} {dev:>15s} {r['compile_s']:9.1f} {r['run_s']:8.2f} "
                      f"{row['s_per_trial']:8.4f} {agree:>22s} {speed:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows, "failures": failures}, f, indent=1)
    if failures:
        print("FAILED checks:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
