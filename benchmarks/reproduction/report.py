"""Summarise reproduction sweeps: per grid point the validation and test accuracy (mean +- sample sd over
seeds), the point chosen on validation accuracy alone, and whether the grid brackets it.

    python benchmarks/reproduction/report.py runs/reproduction/table1_sal [more sweep folders]
    python benchmarks/reproduction/report.py --by algorithm runs/reproduction/table1_baselines

The choice: among grid points whose seeds all finished (a diverged seed disqualifies the point), the
highest mean final val_accuracy.  "bracketed" means that, along every numeric grid axis, the chosen
value is not the first or the last of the axis (within the points sharing its other coordinates).
Test accuracy is printed for the record and never used to choose.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _fmt(m: dict | None, scale: float = 100.0) -> str:
    if not m or m.get("mean") is None:
        return "-"
    sd = m.get("std")
    return f"{scale * m['mean']:.2f}" + (f" +- {scale * sd:.2f}" if sd is not None else "")


def summarise(folder: Path, by: str | None = None, metric: str = "val_accuracy") -> list[str]:
    report = json.loads((folder / "sweep.json").read_text())
    rows, grid = report["table"], report["sweep"]["grid"]
    lines = [f"## {folder}  (grid: {', '.join(f'{k}={v}' for k, v in grid.items())})"]
    extra = [m for m in ("delta_angle_layer0", "delta_H_angle_layer0", "lemma1_normalised_layer1",
                         "Wbar_transport_angle_layer1", "rel_change_V_layer1", "rel_change_Vbar_layer0")
             if rows and m in rows[0]["metrics"]]
    lines.append("| point | done/seeds | val acc % | test acc % |" + "".join(f" {m} |" for m in extra))
    lines.append("|---" * (4 + len(extra)) + "|")
    for r in rows:
        fails = sorted(set(r["status"]) - {"done"})
        done = f"{r['n_done']}/{len(r['seeds'])}" + (f" ({', '.join(fails)})" if fails else "")
        ex = "".join(f" {_fmt(r['metrics'].get(m), 1.0)} |" for m in extra)
        lines.append(f"| {r['point']} | {done} | {_fmt(r['metrics'].get(metric))} | "
                     f"{_fmt(r['metrics'].get('test_accuracy'))} |{ex}")
    groups = {}
    for r in rows:
        groups.setdefault(r["coords"].get(by) if by else None, []).append(r)
    for g, rs in groups.items():
        ok = [r for r in rs if r["n_done"] == len(r["seeds"]) and r["metrics"].get(metric, {}).get("mean") is not None]
        if not ok:
            lines.append(f"- {by}={g}: no grid point finished on every seed")
            continue
        best = max(ok, key=lambda r: r["metrics"][metric]["mean"])
        edges, numeric = [], 0
        for key, values in grid.items():
            if key == by or not all(isinstance(v, (int, float)) for v in values) or len(values) < 3:
                continue
            numeric += 1
            if best["coords"][key] in (values[0], values[-1]):
                edges.append(f"{key}={best['coords'][key]} is at the edge of its grid")
        where = f"{by}={g}: " if by else ""
        lines.append(f"- {where}chosen on {metric}: {best['point']}: val {_fmt(best['metrics'][metric])}, test "
                     f"{_fmt(best['metrics'].get('test_accuracy'))} (seeds {best['seeds']}); "
                     + ("; ".join(edges) if edges else "bracketed" if numeric else "no numeric grid axis"))
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--by", default=None, help="choose one point per value of this grid key (e.g. algorithm)")
    p.add_argument("--metric", default="val_accuracy", help="the metric to choose on (default val_accuracy)")
    args = p.parse_args(argv)
    for f in args.folders:
        print("\n".join(summarise(f, args.by, args.metric)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
