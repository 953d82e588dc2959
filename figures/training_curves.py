"""Test accuracy and per-layer delta angle per epoch for one or more results folders.

    python figures/training_curves.py runs/bp runs/sal_s0 runs/sal_s1 --labels BP SAL SAL --out figures/out/curves

Runs with the same label (seeds of one setting) are drawn as mean +- sd bands.  Writes OUT.pdf,
OUT.svg and OUT.png.  The plotting code is `salspike.figures.training_curves`
(``salspike figures DIR`` draws the same from a results folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from salspike.errors import SalspikeError
from salspike.figures import training_curves


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--labels", nargs="*")
    ap.add_argument("--out", default="figures/out/training_curves")
    args = ap.parse_args(argv)
    try:
        training_curves(args.runs, args.labels, args.out)
    except SalspikeError as exc:  # one line on stderr, exit 2 (the salspike convention)
        print(f"training_curves: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {args.out}.pdf/.svg/.png")


if __name__ == "__main__":
    main()
