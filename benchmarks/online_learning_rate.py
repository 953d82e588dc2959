"""Choose the overall learning-rate factor of the online single-epoch regime on a validation split.

The regime of the spike level's learning comparison (docs/spike_network.md, Learning): digits,
hidden [30], 300 training trials (375 rows, 20% of them held out for validation), one epoch,
one update per trial (online), paper_mlp's rate ratios W : Wbar : V : Vbar = 1 : 0.1 : 0.1 : 0.1
times an overall factor (the paper: "fix the ratio ... while tuning the overall factor").  Matrix
level, the ReLU model and the matched LNP model with count noise, seeds 0-4; the choice is made on
validation accuracy (test accuracy printed beside it, not used).

``--circuit paper``: the same choice for paper_mlp's own circuit (hidden [200, 200, 200]) over one
online epoch of digits (1437 rows, 20% held out), ReLU model: the online rate for a full-size run
at the rate and spike levels (docs/training.md, Online learning rates).

Usage::

    python benchmarks/online_learning_rate.py [--circuit small|paper]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from salspike.circuit import Circuit  # noqa: E402
from salspike.datasets import load_digits, split_validation  # noqa: E402
from salspike.errors import DivergenceError  # noqa: E402
from salspike.training import train  # noqa: E402

BASE = {"eta.W": 0.02, "eta.Wbar": 0.002, "eta.V": 0.002, "eta.Vbar": 0.002}
MODELS = {"relu": {}, "lnp+noise": {"spike.matched_transfer": "lnp", "spike.matched_count_noise": True}}


REGIMES = {  # circuit, rows of digits (None: all), factors of paper_mlp's rates, models
    "small": ({"hidden": [30]}, 375, (1, 2.5, 5, 10), MODELS),
    "paper": ({"hidden": [200, 200, 200]}, None, (0.1, 0.25, 0.5, 1), {"relu": {}}),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuit", choices=sorted(REGIMES), default="small")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)
    over, n_rows, scales, models = REGIMES[args.circuit]
    for scale in scales:
        for label, extra in models.items():
            val, test, diverged = [], [], 0
            for seed in range(args.seeds):
                data = split_validation(load_digits(seed=seed, **({} if n_rows is None else {"n_train": n_rows})),
                                        0.2, seed)
                c = Circuit.load(ROOT / "models" / "paper_mlp.toml",
                                 {**over, "seed": seed, "training.batch_size": 1,
                                  **{k: v * scale for k, v in BASE.items()}, **extra})
                try:
                    s = train(c, data, None, level="matrix", epochs=1, progress=False, log=lambda *a: None)
                    val.append(s["final_val_accuracy"])
                    test.append(s["final_test_accuracy"])
                except DivergenceError:  # counted as chance
                    val.append(0.1)
                    test.append(0.1)
                    diverged += 1
            print(f"eta_W {0.02 * scale:.3f} {label:10s} validation {np.mean(val):.3f} +- {np.std(val, ddof=1):.3f}"
                  f"   test {np.mean(test):.3f} +- {np.std(test, ddof=1):.3f}"
                  + (f"   diverged {diverged}/{args.seeds} (counted 0.1)" if diverged else ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
