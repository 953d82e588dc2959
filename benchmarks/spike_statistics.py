"""Recorded statistics of the closed-loop spiking level (the long versions of tests/test_spike_network.py).

1. Propagation with frozen weights, paper widths (64-200-200-200-10), 4 digits rows, ``--seeds``
   seeds, ``--window`` s windows: per layer the mean rate, the rms z-score of the per-neuron
   rates against the matched rate model (variance S(0) / T, S(0) the spike train's
   zero-frequency power propagated layer by layer, `MatrixNetwork.window_power`,
   docs/spike_network.md) and the layer's mean bias.
   Tier poisson against ``spike.matched_transfer = lnp``; tier two_compartment against
   ``calibrated`` when ``--calibrated FILE`` (a model file written by ``salspike calibrate``) is given.
2. Learning: ``salspike train``-equivalent runs on digits, hidden [30], ``--n-train`` trials, one
   epoch, eta_W = 0.1 (others 0.01), ``--learn-seeds`` seeds: the spike level (accuracy read out
   from spikes), the matched rate model with the spike level's count noise, and the noiseless
   matched and ReLU models (matrix level, online), with mean, sd and the gap in pooled sd.

Usage::

    python benchmarks/spike_statistics.py [--seeds 8] [--window 5] [--learn-seeds 5] [--n-train 300]
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

from salspike.brian.spike import SpikeNetwork  # noqa: E402
from salspike.circuit import Circuit, init_weights  # noqa: E402
from salspike.circuit.functions import shot_noise_third_cumulant  # noqa: E402
from salspike.datasets import load_digits  # noqa: E402
from salspike.errors import DivergenceError  # noqa: E402
from salspike.matrix.engine import MatrixNetwork  # noqa: E402
from salspike.training import train  # noqa: E402

PAPER = ROOT / "models" / "paper_mlp.toml"
ETA = {"eta.W": 0.1, "eta.Wbar": 0.01, "eta.V": 0.01, "eta.Vbar": 0.01}


def propagation(circuit: Circuit, transfer: str, seeds: int, build: Path) -> list[str]:
    data = load_digits(seed=0)
    w0 = init_weights(circuit)
    x, y = data.x_train[:4], data.y_train[:4]
    matched = MatrixNetwork(circuit.with_overrides({"spike.matched_transfer": transfer}), w0)
    ref = matched.activities(x, y).as_arrays()
    reads = [SpikeNetwork(circuit, w0, device="cpp_standalone", build_dir=build, seed=100 + s).readout(x, y)
             for s in range(seeds)]
    s_rate, T = circuit["spike.rate_scale"], circuit["spike.t_window"] * 1e-3
    power = matched.window_power(x)
    K = circuit.n_layers
    lines = []
    for k in range(1, K + 1):
        var = power[f"h{k}"] / T / seeds
        meas = np.stack([r[f"h{k}"] for r in reads]).mean(0)
        z = (meas - ref[f"h{k}"]) / np.sqrt(var)
        bias = float(np.mean(meas - ref[f"h{k}"])) * s_rate
        se = float(np.sqrt(np.mean(var) / meas.size)) * s_rate
        lines.append(f"  h{k}: rate {np.abs(meas).mean() * s_rate:6.2f} Hz  z rms {np.sqrt(np.mean(z ** 2)):5.2f}  "
                     f"bias {bias:+6.2f} Hz (SE of the layer mean {se:.2f} Hz)")
        if 1 < k < K:  # the layer's own transfer: predicted from each seed's measured layer below
            cond = np.stack([conditional(matched, w0, r, k, x) for r in reads]).mean(0)
            zc = (meas - cond) / np.sqrt(var)
            lines.append(f"      given the measured h{k - 1} of each seed: z rms {np.sqrt(np.mean(zc ** 2)):5.2f}  "
                         f"bias {float(np.mean(meas - cond)) * s_rate:+6.2f} Hz")
    return lines


def conditional(matched: MatrixNetwork, w0: dict, read: dict, k: int, x: np.ndarray) -> np.ndarray:
    """Hidden layer k of the matched model with its mean input from one run's measured h^{k-1}
    (its input sd from the model's own chain): separates the layer's transfer from the errors it
    inherits."""
    c, W = matched.circuit, w0[f"W{k - 1}"]
    sigma = matched.matched_statistics(x)[f"h{k}"]["sigma"]
    kappa3 = (shot_noise_third_cumulant(W, read[f"h{k - 1}"], c["spike.rate_scale"], c["spike.tau_s"])
              if c["spike.matched_transfer"] == "lnp" else None)  # the LNP model's skewness term
    return matched._transfer(read[f"h{k - 1}"] @ W.T, sigma, kappa3)[0]


def learning(n_train: int, seeds: int, cache: Path) -> list[str]:
    results: dict[str, list[float]] = {}
    diverged: dict[str, list[int]] = {}
    base = Circuit.load(PAPER, {"hidden": [30], **ETA})
    for seed in range(seeds):
        data = load_digits(seed=seed, n_train=n_train)
        c = base.with_overrides({"seed": seed})
        runs = {"spike level (read out from spikes)": ("spike", c, {"device": "cpp_standalone", "seed": seed}),
                "matched rate model + count noise": ("matrix", c.with_overrides(
                    {"spike.matched_transfer": "lnp", "spike.matched_count_noise": True,
                     "training.batch_size": 1}), {}),
                "matched rate model, noiseless": ("matrix", c.with_overrides(
                    {"spike.matched_transfer": "lnp", "training.batch_size": 1}), {}),
                "ReLU rate model (paper), noiseless": ("matrix", c.with_overrides({"training.batch_size": 1}), {})}
        for label, (level, circ, opts) in runs.items():
            t0 = time.perf_counter()
            try:
                s = train(circ, data, None, level=level, epochs=1, progress=False, level_options=opts,
                          log=lambda *a: None)
                acc = s["final_test_accuracy"]
            except DivergenceError as exc:  # reported, counted as chance (0.1) in the mean, and named
                print(f"    seed {seed} {label}: DIVERGED ({exc})", flush=True)
                diverged.setdefault(label, []).append(seed)
                acc = 0.1
            results.setdefault(label, []).append(acc)
            print(f"    seed {seed} {label}: {acc:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    spike = np.array(results["spike level (read out from spikes)"])
    lines = []
    for label, acc in results.items():
        a = np.array(acc)
        pooled = np.sqrt((a.var(ddof=1) + spike.var(ddof=1)) / 2)
        gap = (spike.mean() - a.mean()) / pooled if pooled > 0 else float("nan")
        lines.append(f"  {label:38s} {a.mean():.4f} +- {a.std(ddof=1):.4f}  (spike - this = "
                     f"{spike.mean() - a.mean():+.4f} = {gap:+.2f} pooled sd)  seeds: {', '.join(f'{v:.3f}' for v in a)}"
                     + (f"  diverged (counted 0.1): seeds {diverged[label]}" if label in diverged else ""))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds of the propagation runs")
    ap.add_argument("--window", type=float, default=5.0, help="seconds per read-out window (propagation)")
    ap.add_argument("--calibrated", default=None, help="a model file with spike.calibration (two_compartment)")
    ap.add_argument("--learn-seeds", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--skip-learning", action="store_true")
    ap.add_argument("--skip-propagation", action="store_true", help="only the learning comparison")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="salspike_spike_stats_"))
    os.environ.setdefault("SALSPIKE_CACHE_DIR", str(root / "cache"))
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}")
    over = {"hidden": [200, 200, 200], "input_width": 64, "output_width": 10, "spike.t_window": args.window * 1e3}
    c = Circuit.load(PAPER, over)
    if args.skip_propagation:
        print("\n".join(learning(args.n_train, args.learn_seeds, root)))
        return 0
    print(f"\n1. propagation, tier poisson vs spike.matched_transfer = lnp ({args.seeds} seeds x 4 rows x "
          f"{args.window:g} s, s = {c['spike.rate_scale']:g} Hz/unit, tau_s = {c['spike.tau_s']:g} ms)")
    print("\n".join(propagation(c, "lnp", args.seeds, root / "poisson")), flush=True)
    if args.calibrated:
        cal = Circuit.load(args.calibrated, over)
        print(f"\n   tier two_compartment vs spike.matched_transfer = calibrated ({args.calibrated})")
        print("\n".join(propagation(cal.with_overrides({"spike.tier": "two_compartment"}), "calibrated", args.seeds,
                                    root / "two_compartment")), flush=True)
    if not args.skip_learning:
        print(f"\n2. learning: digits, hidden [30], {args.n_train} trials, 1 epoch, online, eta_W = 0.1 "
              f"(others 0.01), {args.learn_seeds} seeds, test accuracy")
        print("\n".join(learning(args.n_train, args.learn_seeds, root)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
