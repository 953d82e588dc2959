"""Paper Fig. 3: W W^T and H = Vbar Vbar^T of one layer, and the singular-value spectra of W and
Vbar, from a results folder (``weights.npz``) or any weights file of the cross-level layout.

    python figures/weight_matrices.py runs/digits --layer 1 --out figures/out/fig3

Writes OUT.pdf, OUT.svg, OUT.png; titles give the effective rank (Roy & Vetterli 2007).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from salspike.metrics import effective_rank  # noqa: E402
from salspike.plotting import save_figure  # noqa: E402


def fail(message: str):
    """One line on stderr and exit status 2 (the salspike convention for user errors)."""
    print(f"weight_matrices: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_weights(path: Path) -> dict[str, np.ndarray]:
    f = path / "weights.npz" if path.is_dir() else path
    if not f.is_file():
        fail(f"{f} not found: pass a results folder of `salspike train` or a weights .npz")
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing file problem
        fail(f"{f} is not a readable .npz ({type(exc).__name__}); pass weights.npz of `salspike train`")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--layer", type=int, default=0, help="k of W^k and Vbar^k")
    ap.add_argument("--out", default="figures/out/weight_matrices")
    args = ap.parse_args(argv)
    w = load_weights(args.weights)
    k = args.layer
    if f"W{k}" not in w or f"Vbar{k}" not in w:
        fail(f"layer {k}: need W{k} and Vbar{k}; available: {sorted(w)} (the output layer's Vbar is the fixed I)")
    W, Vb = w[f"W{k}"].astype(np.float64), w[f"Vbar{k}"].astype(np.float64)
    for name, m in ((f"W{k}", W), (f"Vbar{k}", Vb)):
        if m.size == 0 or not np.all(np.isfinite(m)):
            fail(f"{name} is empty or holds NaN/inf (a diverged run?); plot weights of a run that finished")
    mats = {"W W$^T$": W @ W.T, "H = $\\bar V \\bar V^T$": Vb @ Vb.T}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), constrained_layout=True)
    for ax, (name, m) in zip(axes[:2], mats.items()):
        lim = np.abs(m).max()
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)  # diverging, colour-blind safe
        ax.set(title=f"{name} (layer {k}), erank {effective_rank(m):.1f}", xlabel="neuron", ylabel="neuron")
        fig.colorbar(im, ax=ax, shrink=0.8, label="weight product (dimensionless)")
    for name, m, color, style in (("W", W, "#0072B2", "-"), ("$\\bar V$", Vb, "#D55E00", "--")):
        s = np.linalg.svd(m, compute_uv=False)
        axes[2].semilogy(np.arange(1, len(s) + 1), s / s[0], color=color, linestyle=style, label=name)
    axes[2].set(title="singular values", xlabel="index", ylabel="s_i / s_1")
    axes[2].legend(frameon=False)
    save_figure(fig, args.out, ("pdf", "svg", "png"))
    print(f"wrote {args.out}.pdf/.svg/.png")


if __name__ == "__main__":
    main()
