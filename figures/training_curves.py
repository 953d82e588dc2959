"""Test accuracy and per-layer delta angle per epoch for one or more results folders.

    python figures/training_curves.py runs/bp runs/digits --labels BP SAL --out figures/out/curves

Writes OUT.pdf, OUT.svg and OUT.png (Okabe-Ito colour-blind-safe palette, labelled units).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from salspike.plotting import OKABE_ITO, save_figure  # noqa: E402


def fail(message: str):
    """One line on stderr and exit status 2 (the salspike convention for user errors)."""
    print(f"training_curves: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_metrics(folder: Path) -> list[dict]:
    """The epoch records of a results folder; empty, unreadable or non-finite input is an error."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        fail(f"{path} not found: pass results folders written by `salspike train --out`")
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        fail(f"{path} is not JSON lines ({exc}); pass a results folder of `salspike train`")
    if not records:
        fail(f"{path} has no epochs yet: train at least one epoch first")
    for r in records:
        values = [r.get("test_accuracy")] + [m.get("delta_angle") for m in r.get("layers", [])]
        if any(v is None or not math.isfinite(v) for v in values):
            fail(f"{path}: epoch {r.get('epoch')} has a missing or non-finite accuracy/angle (a diverged run?); "
                 "plot runs that finished")
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--labels", nargs="*")
    ap.add_argument("--out", default="figures/out/training_curves")
    args = ap.parse_args(argv)
    labels = args.labels or [p.name for p in args.runs]
    if len(labels) != len(args.runs):
        fail(f"{len(args.runs)} runs but {len(labels)} labels: give one label per run (or none)")
    fig, (ax_acc, ax_ang) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    for i, (run, label) in enumerate(zip(args.runs, labels)):
        m = read_metrics(run)
        epochs = [r["epoch"] for r in m]
        color = OKABE_ITO[i % len(OKABE_ITO)]
        ax_acc.plot(epochs, [100 * r["test_accuracy"] for r in m], color=color, label=label)
        n_layers = len(m[0]["layers"])
        for k in range(n_layers - 1):  # the output layer's angle is 0 by construction
            ax_ang.plot(epochs, [r["layers"][k]["delta_angle"] for r in m], color=color,
                        linestyle=["-", "--", ":", "-."][k % 4], label=f"{label}, W{k}" if i == 0 or k == 0 else None)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Accuracy")
    ax_ang.set(xlabel="epoch", ylabel="angle to backprop delta (degrees)", title="Delta angle per layer",
               ylim=(0, 95))
    ax_acc.legend(frameon=False)
    ax_ang.legend(frameon=False, fontsize=7)
    save_figure(fig, args.out, ("pdf", "svg", "png"))
    print(f"wrote {args.out}.pdf/.svg/.png")


if __name__ == "__main__":
    main()
