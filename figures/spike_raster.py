"""Spike rasters with PSTHs of a spike-level protocol run, from its NWB file.

    python figures/spike_raster.py runs/area_silencing_spike/area_silencing.nwb --out figures/out/raster

The first trials of each condition, placed end to end; per population a raster over its PSTH
(ON/OFF units of the signed pairs coloured), trial and window starts marked.  Writes OUT.pdf,
OUT.svg, OUT.png and OUT.csv (the PSTH counts as drawn).  The plotting code is
`salspike.rasters` (``salspike figures RUN`` draws the same beside the NWB file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from salspike.errors import SalspikeError
from salspike.rasters import raster_data, raster_figure


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nwb", type=Path, help="NAME.nwb of a spike-level `salspike protocol run`")
    ap.add_argument("--max-trials", type=int, default=8, help="trials shown (the first of each condition)")
    ap.add_argument("--bin-ms", type=float, default=None, help="PSTH bin (ms; default about 60 bins)")
    ap.add_argument("--out", default="figures/out/spike_raster")
    args = ap.parse_args(argv)
    try:
        raster_figure(raster_data(args.nwb, args.max_trials, args.bin_ms), args.out, args.nwb.stem)
    except SalspikeError as exc:  # one line on stderr, exit 2 (the salspike convention)
        print(f"spike_raster: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {args.out}.pdf/.svg/.png/.csv")


if __name__ == "__main__":
    main()
