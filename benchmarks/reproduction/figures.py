"""Reproduction figures from the sweep folders that benchmarks/reproduction/*.toml write (docs/reproduction.md).

One command per figure; each writes STEM.pdf, STEM.svg and STEM.png (``--formats`` to choose):

    python benchmarks/reproduction/figures.py table1 runs/reproduction/table1_final/{sal,bp,fa,kp,wm}
    python benchmarks/reproduction/figures.py fig2 runs/reproduction/fig2_width
    python benchmarks/reproduction/figures.py fig3 runs/reproduction/table1_sal --point eta_scale=2
    python benchmarks/reproduction/figures.py fig4 runs/reproduction/fig4_plastic
    python benchmarks/reproduction/figures.py fig5 runs/reproduction/fig5_rates
    python benchmarks/reproduction/figures.py trajectory runs/reproduction/self_assembly

Accuracies are the final epoch's, mean +- sample sd (ddof = 1) over the seeds that finished with a
finite value; error bars are that sd.  ``--out`` sets the file stem (default figures/reproduction/KIND).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from salspike.plotting import FORMATS, OKABE_ITO, pyplot, save_figure, stamp

# OKABE_ITO without black and yellow first: blue, vermillion, green, orange, purple, sky blue
PALETTE = [OKABE_ITO[i] for i in (5, 6, 3, 1, 7, 2, 0)]


def open_sweep(folder):
    import xarray as xr

    path = Path(folder) / "sweep.nc"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run the sweep first (docs/reproduction.md names its command)")
    return xr.open_dataset(path, engine="h5netcdf").load()


def grid_dims(ds) -> list[str]:
    return [d for d in ds["status"].dims if d != "seed"]


def finals(ds, var: str) -> np.ndarray:
    """Final-epoch values of ``var``, shape (grid..., seed); NaN where a seed did not finish."""
    v = ds[var].isel(epoch=-1) if "epoch" in ds[var].dims else ds[var]
    v = v.where(ds["status"] == "done")
    return v.transpose(*grid_dims(ds), "seed").values.astype(np.float64)


def mean_sd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sample sd (0 for one finite value) and count of finite values along the last axis."""
    v = np.asarray(values, dtype=np.float64)
    n = np.isfinite(v).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(v, -1) / n
        dev = np.where(np.isfinite(v), v - mean[..., None], 0.0)
        sd = np.where(n > 1, np.sqrt((dev ** 2).sum(-1) / np.maximum(n - 1, 1)), 0.0)
    return np.where(n > 0, mean, np.nan), sd, n


def layer_vars(ds, base: str) -> list[str]:
    names = sorted((v for v in ds.data_vars if v.startswith(base + "_layer")), key=lambda v: int(v.rsplit("layer", 1)[1]))
    return names or ([base] if base in ds.data_vars else [])


def _label(value) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode()
    if isinstance(value, str) and value.startswith("["):
        try:
            return "+".join(json.loads(value))
        except (ValueError, TypeError):
            return value
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _provenance(fig, ds_list) -> None:
    ds = ds_list[0]
    spec = json.loads(ds.attrs.get("sweep", "{}"))
    seeds = sorted({int(s) for d in ds_list for s in d["seed"].values})
    stamp(fig, model=Path(spec.get("model", "")).stem, seeds=seeds, commit=str(ds.attrs.get("provenance_git_commit", "")))


def _epochs_note(ds) -> str:
    spec = json.loads(ds.attrs.get("sweep", "{}"))
    return f"{spec.get('dataset', '?')}, {int(ds['epoch'].values[-1])} epochs"


def _bars(ax, labels, values, ylabel, colors=None) -> None:
    mean, sd, n = mean_sd(values)
    x = np.arange(len(labels))
    colors = colors or [PALETTE[i % len(PALETTE)] for i in range(len(labels))]
    ax.bar(x, mean, yerr=sd, color=colors, capsize=3, error_kw={"elinewidth": 0.8})
    for xi, yi, ni in zip(x, values, n):
        ax.plot(np.full(np.isfinite(yi).sum(), xi), yi[np.isfinite(yi)], "o", ms=2.5, color="0.2", zorder=3)
        if ni == 0:
            ax.text(xi, 0, "no finished\nseed", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    finite = values[np.isfinite(values)]
    if finite.size:
        lo = max(0.0, finite.min() - 5 - float(np.nanmax(sd) if sd.size else 0))
        ax.set_ylim(lo, min(100.0, finite.max() + 3))


# ----------------------------------------------------------------- figures


def table1(folders, out, metric="test_accuracy", formats=FORMATS) -> list[Path]:
    """Bar chart: one bar per sweep folder (algorithm), final ``metric`` in %, sample-sd error bars."""
    plt = pyplot()
    sets = [open_sweep(f) for f in folders]
    labels = [Path(f).name.upper() for f in folders]
    n_seeds = max(d.sizes["seed"] for d in sets)
    values = np.full((len(sets), n_seeds), np.nan)
    for i, d in enumerate(sets):
        v = finals(d, metric).reshape(-1) * 100.0
        values[i, :v.size] = v
    fig, ax = plt.subplots(figsize=(3.4, 2.6), layout="constrained")
    _bars(ax, labels, values, f"{metric.replace('_', ' ')} (%)")
    ax.set_title(f"Table 1 analogue ({_epochs_note(sets[0])})")
    _provenance(fig, sets)
    paths = save_figure(fig, out, formats)
    plt.close(fig)
    return paths


def fig2(folder, out, metric="test_accuracy", formats=FORMATS) -> list[Path]:
    """Final ``metric`` (%) against the downstream width ratio dbar/d, one line per other grid value."""
    plt = pyplot()
    ds = open_sweep(folder)
    if "downstream_ratio" not in ds.dims:
        raise SystemExit(f"{folder}: the sweep has no downstream_ratio axis (fig2_width.toml has one)")
    others = [d for d in grid_dims(ds) if d != "downstream_ratio"]
    ds2 = ds.transpose("downstream_ratio", *others, "seed", ...)
    ratios = ds2["downstream_ratio"].values.astype(float)
    v = finals(ds2, metric) * 100.0  # (ratio, others..., seed)
    v = v.reshape(len(ratios), -1, v.shape[-1])
    combos = [dict(zip(others, c)) for c in np.ndindex(*[ds2.sizes[o] for o in others])] or [{}]
    fig, ax = plt.subplots(figsize=(3.4, 2.6), layout="constrained")
    for j, combo in enumerate(combos):
        mean, sd, _ = mean_sd(v[:, j, :])
        label = ", ".join(f"{o}={_label(ds2[o].values[i])}" for o, i in combo.items()) or None
        ax.errorbar(ratios, mean, yerr=sd, marker="o", ms=3, capsize=3, color=PALETTE[j % len(PALETTE)], label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ratios, [_label(r) for r in ratios])
    ax.set_xlabel("downstream width ratio dbar/d (dimensionless)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title(f"Fig. 2 analogue ({_epochs_note(ds)})")
    if others:
        ax.legend(frameon=False, fontsize=6)
    _provenance(fig, [ds])
    paths = save_figure(fig, out, formats)
    plt.close(fig)
    return paths


def fig4(folder, out, metric="test_accuracy", formats=FORMATS) -> list[Path]:
    """Bar chart over the ``plastic`` grid: which synapse groups learn, final ``metric`` (%)."""
    plt = pyplot()
    ds = open_sweep(folder)
    if "plastic" not in ds.dims:
        raise SystemExit(f"{folder}: the sweep has no plastic axis (fig4_plastic.toml has one)")
    labels = [_label(p) for p in ds["plastic"].values]
    v = finals(ds.transpose("plastic", ..., "seed"), metric).reshape(len(labels), -1) * 100.0
    fig, ax = plt.subplots(figsize=(4.2, 2.6), layout="constrained")
    _bars(ax, labels, v, f"{metric.replace('_', ' ')} (%)")
    ax.set_xlabel("plastic synapse groups")
    ax.tick_params(axis="x", labelsize=6, labelrotation=20)
    ax.set_title(f"Fig. 4 analogue ({_epochs_note(ds)})")
    _provenance(fig, [ds])
    paths = save_figure(fig, out, formats)
    plt.close(fig)
    return paths


def fig5(folder, out, metric="test_accuracy", formats=FORMATS) -> list[Path]:
    """Final ``metric`` (%) over a learning-rate grid: a line for one rate axis, a heat map for two."""
    plt = pyplot()
    ds = open_sweep(folder)
    dims = grid_dims(ds)
    if len(dims) not in (1, 2):
        raise SystemExit(f"{folder}: fig5 draws one or two grid axes, the sweep has {dims}")
    v = finals(ds, metric) * 100.0
    mean, sd, _ = mean_sd(v)
    fig, ax = plt.subplots(figsize=(3.4, 2.6), layout="constrained")
    unit = " (learning rate, dimensionless)"
    if len(dims) == 1:
        d = dims[0]
        x = np.arange(ds.sizes[d])
        ax.errorbar(x, mean, yerr=sd, marker="o", ms=3, capsize=3, color=PALETTE[0])
        for i, row in enumerate(v):
            ax.plot(np.full(np.isfinite(row).sum(), i), row[np.isfinite(row)], "o", ms=2, color="0.4")
        ax.set_xticks(x, [_label(t) for t in ds[d].values])
        ax.set_xlabel(d + unit)
        ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    else:
        a, b = dims
        im = ax.imshow(mean, origin="lower", cmap="cividis", aspect="auto")
        for (i, j), m in np.ndenumerate(mean):
            ax.text(j, i, "div." if not np.isfinite(m) else f"{m:.1f}\n+-{sd[i, j]:.1f}", ha="center", va="center",
                    fontsize=5, color="w" if np.isfinite(m) and m < np.nanmean(mean) else "k")
        ax.set_yticks(range(ds.sizes[a]), [_label(t) for t in ds[a].values])
        ax.set_xticks(range(ds.sizes[b]), [_label(t) for t in ds[b].values])
        ax.set_ylabel(a + unit)
        ax.set_xlabel(b + unit)
        fig.colorbar(im, ax=ax, label=f"{metric.replace('_', ' ')} (%)")
    ax.set_title(f"Fig. 5 analogue ({_epochs_note(ds)})")
    _provenance(fig, [ds])
    paths = save_figure(fig, out, formats)
    plt.close(fig)
    return paths


def _spectrum(m: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetric PSD ``m``, descending, divided by the largest."""
    e = np.clip(np.linalg.eigvalsh(m)[::-1], 0.0, None)
    return e / e[0] if e[0] > 0 else e


def fig3(folder, out, point=None, formats=FORMATS) -> list[Path]:
    """Per layer, the normalised eigenvalue spectra of W W^T (top row) and H = Vbar Vbar^T (bottom row)
    at initialisation and after training, with their effective ranks; the first finished run of the
    point (its seed) is drawn, the legend gives mean +- sd of the effective rank over the point's seeds."""
    from salspike.circuit import Circuit, init_weights
    from salspike.metrics import effective_rank

    plt = pyplot()
    runs = [r for r in sorted((Path(folder) / "points").iterdir())
            if (r / "weights.npz").is_file() and (point is None or r.name.startswith(point + ","))]
    if not runs:
        raise SystemExit(f"no finished runs in {folder}/points" + (f" for {point}" if point else ""))
    spectra, ranks = [], []
    for run in runs:
        circuit = Circuit.load(run / "model.toml")
        with np.load(run / "weights.npz") as f:
            after = {k: f[k] for k in f.files}
        before = init_weights(circuit)
        s, r = {}, {}
        for when, w in (("before", before), ("after", after)):
            for k in range(circuit.n_layers):
                mats = {"W W^T": w[f"W{k}"] @ w[f"W{k}"].T}
                if f"Vbar{k}" in w:
                    mats["H"] = w[f"Vbar{k}"] @ w[f"Vbar{k}"].T
                for name, m in mats.items():
                    s[when, name, k] = _spectrum(m)
                    r[when, name, k] = effective_rank(m)
        spectra.append(s)
        ranks.append(r)
    K = max(k for (_, _, k) in spectra[0]) + 1
    names = [n for n in ("W W^T", "H") if ("after", n, 0) in spectra[0]]
    fig, axes = plt.subplots(len(names), K, figsize=(1.9 * K, 1.7 * len(names) + 0.3), layout="constrained",
                             squeeze=False)
    for row, name in enumerate(names):
        for k in range(K):
            ax = axes[row, k]
            for when, color, style in (("before", PALETTE[0], "--"), ("after", PALETTE[1], "-")):
                if (when, name, k) not in spectra[0]:
                    continue
                er = np.array([r[when, name, k] for r in ranks])
                m, sd, _ = mean_sd(er)
                e = spectra[0][when, name, k]
                ax.semilogy(np.arange(1, e.size + 1), np.maximum(e, 1e-12), style, color=color, lw=1,
                            label=f"{when}: erank {float(m):.1f}" + (f" +- {float(sd):.1f}" if len(er) > 1 else ""))
            if ("after", name, k) not in spectra[0]:
                ax.set_visible(False)  # no Vbar at this layer
                continue
            ax.set_title(f"{name}, layer {k}", fontsize=7)
            ax.set_ylim(1e-6, 2)
            ax.legend(frameon=False, fontsize=5)
            if row == len(names) - 1:
                ax.set_xlabel("eigenvalue index")
            if k == 0:
                ax.set_ylabel("eigenvalue / largest")
    ds = open_sweep(folder) if (Path(folder) / "sweep.nc").is_file() else None
    fig.suptitle("Fig. 3 analogue: spectra before and after training" + (f" ({_epochs_note(ds)})" if ds else ""),
                 fontsize=8)
    if ds is not None:
        _provenance(fig, [ds])
    paths = save_figure(fig, out, formats)
    plt.close(fig)
    return paths


TRAJECTORY_PANELS = (
    ("lemma1_normalised", "Lemma 1 distance\n(normalised, dimensionless)", "layer"),
    ("rel_change_V", "drift of V\n(|V - V0| / |V0|)", "layer"),
    ("rel_change_Vbar", "drift of Vbar\n(|Vbar - Vbar0| / |Vbar0|)", "layer"),
    ("rel_change_Wbar", "drift of Wbar\n(|Wbar - Wbar0| / |Wbar0|)", "layer"),
    ("erank_H", "effective rank of H\n(eigenvalues)", "layer"),
    ("H_cond", "condition number of H\n(dimensionless)", "layer"),
    ("delta_H_angle", "angle(delta_SAL, H delta_BP)\n(degrees)", "layer"),
    ("val_accuracy", "validation accuracy (%)", None),
)


def trajectory(folder, out, formats=FORMATS) -> list[Path]:
    """Per-epoch self-assembly metrics, mean +- sample sd band over seeds, one line per layer: every
    panel of TRAJECTORY_PANELS whose metric the sweep recorded (a single grid point is expected)."""
    plt = pyplot()
    ds = open_sweep(folder)
    if grid_dims(ds):
        ds = ds.isel({d: 0 for d in grid_dims(ds)})
    panels = [(b, lab) for b, lab, _ in TRAJECTORY_PANELS if layer_vars(ds, b)]
    if not panels:
        raise SystemExit(f"{folder}: none of {[p[0] for p in TRAJECTORY_PANELS]} was recorded (use --metrics)")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 1.9 * rows + 0.3), layout="constrained", squeeze=False)
    epochs = ds["epoch"].values
    handles = {}
    for ax, (base, ylabel) in zip(axes.flat, panels):
        for var in layer_vars(ds, base):
            scale = 100.0 if base.endswith("accuracy") else 1.0
            v = ds[var].where(ds["status"] == "done").transpose("epoch", "seed").values * scale
            m, sd, _ = mean_sd(v)
            layer = int(var.rsplit("layer", 1)[1]) if "_layer" in var else None
            color = PALETTE[(layer or 0) % len(PALETTE)] if layer is not None else OKABE_ITO[0]
            (line,) = ax.plot(epochs, m, color=color, lw=1)
            ax.fill_between(epochs, m - sd, m + sd, color=color, alpha=0.25, lw=0)
            if layer is not None and np.isfinite(m).any():
                handles.setdefault(layer, line)
        if base in ("H_cond",):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel, fontsize=6)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    if handles:
        fig.legend([handles[k] for k in sorted(handles)], [f"layer {k}" for k in sorted(handles)],
                   loc="outside right upper", frameon=False, fontsize=6)
    fig.suptitle(f"Self-assembly trajectory ({_epochs_note(ds)}; band: sample sd over seeds)", fontsize=8)
    _provenance(fig, [ds])
    paths = save_figure(fig, out, formats)
    plt.close(fig)
    return paths


KINDS = {"table1": table1, "fig2": fig2, "fig3": fig3, "fig4": fig4, "fig5": fig5, "trajectory": trajectory}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("folders", nargs="+", type=Path, help="sweep folder(s) (table1: one per algorithm)")
    p.add_argument("--out", default=None, help="file stem (default figures/reproduction/KIND)")
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: pdf, svg, png")
    p.add_argument("--metric", default="test_accuracy", help="table1, fig2, fig4, fig5: the final-epoch metric")
    p.add_argument("--point", default=None, help="fig3: only run folders whose name starts with this label")
    args = p.parse_args(argv)
    out = args.out or f"figures/reproduction/{args.kind}"
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    if args.kind != "table1" and len(args.folders) != 1:
        p.error(f"{args.kind} takes one sweep folder")
    if args.kind == "table1":
        paths = table1(args.folders, out, args.metric, formats)
    elif args.kind == "fig3":
        paths = fig3(args.folders[0], out, args.point, formats)
    elif args.kind == "trajectory":
        paths = trajectory(args.folders[0], out, formats)
    else:
        paths = KINDS[args.kind](args.folders[0], out, args.metric, formats)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
