"""Fig. 3 analogue: effective rank (Roy & Vetterli 2007) of W^k W^k^T and H^k = Vbar^k Vbar^k^T before and
after training, and how far H^k is from a multiple of the identity, for every finished point of a sweep.

    python benchmarks/reproduction/fig3_rank.py runs/reproduction/table1_sal [--point eta_scale=2]

The initial weights are recreated from each run's model.toml (its seed); the final ones are weights.npz.
Prints per layer the mean +- sample sd over the seeds of the selected points.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from salspike.circuit import Circuit, init_weights
from salspike.metrics import effective_rank


def _offdiag(m: np.ndarray) -> float:
    """|offdiag(m)|_F / |m|_F: 0 for a diagonal matrix (correlations between neurons grow it)."""
    return float(np.linalg.norm(m - np.diag(np.diag(m))) / np.linalg.norm(m))


def measures(weights: dict, K: int) -> dict:
    out = {}
    for k in range(K):
        W = weights[f"W{k}"]
        out[f"erank_WWT_{k}"] = effective_rank(W @ W.T)
        out[f"offdiag_WWT_{k}"] = _offdiag(W @ W.T)
        if f"Vbar{k}" in weights:
            H = weights[f"Vbar{k}"] @ weights[f"Vbar{k}"].T
            out[f"erank_H_{k}"] = effective_rank(H)
            out[f"offdiag_H_{k}"] = _offdiag(H)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--point", default=None, help="only run folders whose name starts with this label")
    args = p.parse_args(argv)
    rows = {"before": [], "after": []}
    for run in sorted((args.folder / "points").iterdir()):
        if args.point and not run.name.startswith(args.point + ",") or not (run / "summary.json").is_file():
            continue
        circuit = Circuit.load(run / "model.toml")
        with np.load(run / "weights.npz") as f:
            final = {k: f[k] for k in f.files}
        rows["before"].append(measures(init_weights(circuit), circuit.n_layers))
        rows["after"].append(measures(final, circuit.n_layers))
    if not rows["after"]:
        raise SystemExit(f"no finished runs in {args.folder}/points" + (f" for {args.point}" if args.point else ""))
    print(f"{len(rows['after'])} runs; mean +- sample sd")
    print(f"{'measure':<16} {'before':>16} {'after':>16}")
    for key in rows["after"][0]:
        cells = []
        for when in ("before", "after"):
            v = np.array([r[key] for r in rows[when]])
            cells.append(f"{v.mean():8.2f} +- {v.std(ddof=1) if len(v) > 1 else 0:5.2f}")
        print(f"{key:<16} {cells[0]:>16} {cells[1]:>16}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
