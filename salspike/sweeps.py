"""Grids over model settings and seeds, run as independent `train` calls.

Each point trains into its own folder ``OUT/<key=value,...>/seed<N>``; a point whose
``summary.json`` exists is skipped, so an interrupted sweep resumes where it stopped.
``eta_scale`` multiplies all four learning rates: the paper fixes their ratio and tunes the
overall factor (Sec. 2.1, Fig. 5).  Points run in a local process pool (``jobs``); on these
2-core machines a process pool is all the parallelism there is, so no cluster scheduler is
pulled in (see docs/training.md).
"""

from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .circuit import GROUPS, Circuit, parse_value
from .errors import ConfigError, DivergenceError
from .console import progress
from .results import atomic_write_json


def parse_grid(items: list[str]) -> dict[str, list]:
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,... e.g. --grid eta_scale=0.5,1,2")
        key, values = item.split("=", 1)
        grid[key.strip()] = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def point_overrides(base: Circuit, point: dict) -> dict:
    over = {k: v for k, v in point.items() if k != "eta_scale"}
    if "eta_scale" in point:
        for g in GROUPS:
            over[f"eta.{g}"] = over.get(f"eta.{g}", base[f"eta.{g}"]) * float(point["eta_scale"])
    return over


def _run_point(args):
    model, overrides, dataset, data_root, out, epochs, level = args
    from .datasets import load_dataset
    from .training import train

    circuit = Circuit.load(model, overrides)
    data = load_dataset(dataset, root=data_root, seed=circuit["seed"])
    try:
        summary = train(circuit, data, out, level=level, epochs=epochs, resume=True, progress=False,
                        log=lambda *a: None)
        return {"final_test_accuracy": summary["final_test_accuracy"], "status": "done"}
    except DivergenceError as exc:
        atomic_write_json(os.path.join(out, "summary.json"),
                          {"final_test_accuracy": None, "status": "diverged", "error": str(exc)})
        return {"final_test_accuracy": None, "status": "diverged"}


def run_sweep(model, dataset, out, *, grid: dict, seeds: list, base_overrides: dict | None = None,
              jobs: int = 1, epochs=None, data_root=None, level="matrix") -> list[dict]:
    base_overrides = base_overrides or {}
    base = Circuit.load(model, base_overrides)
    for key in grid:
        if key != "eta_scale" and key not in base.params:
            base.with_overrides({key: grid[key][0]})  # raises a ConfigError naming the key
    keys = list(grid)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]
    tasks, rows = [], []
    for point in points:
        name = ",".join(f"{k}={v}" for k, v in point.items()) or "base"
        for seed in seeds:
            over = {**base_overrides, **point_overrides(base, point)}
            if seed is not None:
                over["seed"] = seed
            folder = Path(out) / name / f"seed{seed if seed is not None else base['seed']}"
            summary = folder / "summary.json"
            row = {"point": name, "seed": over.get("seed", base["seed"]), "folder": str(folder)}
            if summary.is_file():
                row.update(json.loads(summary.read_text()) | {"status": "done (cached)"})
                rows.append(row)
                continue
            tasks.append((row, (str(model), over, dataset, data_root, str(folder), epochs, level)))
            rows.append(row)
    with progress(len(tasks), "sweep", unit="point") as bar:
        if jobs > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                results = []
                for res in pool.map(_run_point, [t[1] for t in tasks]):
                    results.append(res)
                    bar.update()
        else:
            results = []
            for t in tasks:
                results.append(_run_point(t[1]))
                bar.update()
    for (row, _), res in zip(tasks, results):
        row.update(res)
    table = []
    for name in dict.fromkeys(r["point"] for r in rows):
        accs = [r.get("final_test_accuracy") for r in rows if r["point"] == name]
        ok = [a for a in accs if a is not None]
        table.append({"point": name, "n_seeds": len(accs), "n_diverged": len(accs) - len(ok),
                      "mean_test_accuracy": float(np.mean(ok)) if ok else None,
                      "std_test_accuracy": float(np.std(ok)) if ok else None})
    atomic_write_json(os.path.join(out, "sweep.json"), {"rows": [{k: v for k, v in r.items() if k != "provenance"}
                                                                 for r in rows], "table": table})
    return table
