"""Paper Fig. 3: W W^T and H = Vbar Vbar^T of one layer, and the singular-value spectra of W and
Vbar, from a results folder (``weights.npz``) or any weights file of the cross-level layout.

    python figures/weight_matrices.py runs/digits --layer 1 --out figures/out/fig3

Writes OUT.pdf, OUT.svg, OUT.png; titles give the effective rank (Roy & Vetterli 2007).  The
plotting code is `salspike.figures.weight_matrices`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from salspike.errors import SalspikeError
from salspike.figures import load_weights, weight_matrices


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--layer", type=int, default=0, help="k of W^k and Vbar^k")
    ap.add_argument("--out", default="figures/out/weight_matrices")
    args = ap.parse_args(argv)
    try:
        weight_matrices(load_weights(args.weights), args.layer, args.out)
    except SalspikeError as exc:  # one line on stderr, exit 2 (the salspike convention)
        print(f"weight_matrices: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {args.out}.pdf/.svg/.png")


if __name__ == "__main__":
    main()
