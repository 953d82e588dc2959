"""The self-assembly trajectory of a sweep: chosen metrics at chosen epochs, mean +- sample sd over seeds,
from OUT/sweep.nc (one line per grid point and epoch).

    python benchmarks/reproduction/trajectory.py runs/reproduction/self_assembly \
        --metrics val_accuracy,delta_H_angle_layer0,Wbar_transport_angle_layer1,lemma1_normalised_layer1 \
        --epochs 1,5,20,60
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    import xarray as xr

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--metrics", required=True, help="comma-separated variables of sweep.nc")
    p.add_argument("--epochs", default="1,10,30,60", help="comma-separated epochs")
    args = p.parse_args(argv)
    ds = xr.open_dataset(args.folder / "sweep.nc", engine="h5netcdf").load()
    metrics = [m.strip() for m in args.metrics.split(",")]
    epochs = [int(e) for e in args.epochs.split(",")]
    grid = [d for d in ds["status"].dims if d != "seed"]
    print("| point | epoch | " + " | ".join(metrics) + " |")
    print("|---" * (2 + len(metrics)) + "|")
    for combo in itertools.product(*(range(ds.sizes[g]) for g in grid)):
        sel = ds.isel(dict(zip(grid, combo)))
        label = ",".join(f"{g}={sel[g].values}" for g in grid) or "base"
        for e in epochs:
            cells = []
            for m in metrics:
                v = sel[m].sel(epoch=e).values
                v = v[np.isfinite(v)]
                cells.append("-" if not v.size else f"{v.mean():.3g}" + (f" +- {v.std(ddof=1):.2g}" if v.size > 1 else ""))
            print(f"| {label} | {e} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
