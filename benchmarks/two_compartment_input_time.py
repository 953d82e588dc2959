"""Does the two_compartment tier's rate depend on the correlation time of its input, and how slow
is the input of its deeper layers?  (A diagnosis of docs/spike_network.md, two_compartment
propagation; not a test.)

1. The LIF neuron's rate at a few (mu, sigma) under OU input of correlation time tau_c = 20, 40
   and 80 ms (`measure_transfer`, 16 neurons x 20 s per point; the calibration table uses
   tau_c = spike.tau_s = 20 ms).
2. The effective correlation time of each hidden layer's input in the paper circuit under the
   calibrated matched model: tau_eff = S_I(0) / (2 sigma^2) (an OU input has tau_eff = tau_c;
   S_I(0) from `MatrixNetwork.window_power`, sigma^2 from the model), 4 digits rows.

Usage::

    python benchmarks/two_compartment_input_time.py [--model models/paper_two_compartment.toml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from salspike.brian.calibrate import measure_transfer  # noqa: E402
from salspike.circuit import Circuit, init_weights  # noqa: E402
from salspike.datasets import load_digits  # noqa: E402
from salspike.matrix.engine import MatrixNetwork  # noqa: E402

POINTS = np.array([[0.5, 0.5], [0.75, 0.5], [1.0, 0.5], [0.75, 0.75], [1.0, 0.3]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "paper_two_compartment.toml"))
    args = ap.parse_args(argv)
    c = Circuit.load(args.model, {"hidden": [200, 200, 200], "input_width": 64, "output_width": 10})
    print("1. rate (Hz, +- SE) at (mu, sigma) =", ", ".join(f"({m:g}, {s:g})" for m, s in POINTS))
    for tau_c in (20.0, 40.0, 80.0):
        rate, se = measure_transfer(c.with_overrides({"spike.tau_s": tau_c}), POINTS, repeats=16, t_measure_s=20.0)
        print(f"   tau_c {tau_c:4.0f} ms: " + "  ".join(f"{r:6.2f} +- {e:.2f}" for r, e in zip(rate, se)), flush=True)
    m = MatrixNetwork(c.with_overrides({"spike.matched_transfer": "calibrated"}), init_weights(c))
    x = load_digits(seed=0).x_train[:4]
    stats = m.matched_statistics(x)
    tau_s = c["spike.tau_s"] * 1e-3
    print("2. effective correlation time of each hidden layer's input, tau_eff / tau_s (median, IQR)")
    for k in range(1, c.n_layers):
        st = stats[f"h{k}"]
        ratio = st["input_power"] / (2 * tau_s * st["sigma"] ** 2)
        q1, med, q3 = np.percentile(ratio, [25, 50, 75])
        print(f"   h{k}: {med:.2f} ({q1:.2f}-{q3:.2f}); input sd median {np.median(st['sigma']):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
