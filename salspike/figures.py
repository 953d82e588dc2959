"""`salspike figures DIR`: regenerate every figure of a results folder from its recorded files.

* a protocol run (``summary.json`` naming a protocol): its prediction figure with the protocol
  sketch, from ``<name>.json``; at the spike level also the spike rasters with PSTHs from
  ``<name>.nwb`` (`salspike.rasters`);
* a level comparison (`salspike compare`): ``compare``, ``weight_changes`` and, with the spike
  level, ``rates`` (`salspike.levelfigures`); the pairing window (``pairing_window.json``): its figure;
* a training run (``metrics.jsonl``): ``training_curves`` (accuracy and per-layer delta angle);
* a sweep (``sweep.nc``): the same, one curve per grid point with mean +- sd over its seeds;
* a folder of such folders: each of them, and training runs together in one ``training_curves``
  figure with mean +- sd bands over runs of the same label (seeds).

Figures are PDF, SVG and PNG (`salspike.plotting`: Okabe-Ito palette, fonts embedded, stamp).
The thin scripts in ``figures/`` call these functions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .plotting import FORMATS, OKABE_ITO, pyplot, save_figure, stamp

__all__ = ["regenerate", "training_curves", "sweep_curves", "read_metrics", "weight_matrices", "load_weights"]

_STYLES = ["-", "--", ":", "-."]


def read_metrics(folder: Path) -> list[dict]:
    """The epoch records of a training results folder; empty, unreadable or non-finite input is an error."""
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path} not found: pass results folders written by `salspike train --out`")
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON lines ({exc}); pass a results folder of `salspike train`") from None
    if not records:
        raise ConfigError(f"{path} has no epochs yet: train at least one epoch first")
    for r in records:
        values = [r.get("test_accuracy")] + [m.get("delta_angle") for m in r.get("layers", [])]
        if any(v is None or not math.isfinite(v) for v in values):
            raise ConfigError(f"{path}: epoch {r.get('epoch')} has a missing or non-finite accuracy/angle (a diverged "
                              "run?); plot runs that finished")
    return records


def training_curves(runs, labels=None, out="training_curves", commit: str = "") -> list[Path]:
    """Test accuracy and the angle to backprop's delta per layer over epochs, from training results
    folders.  Runs sharing a label (seeds of one setting) are drawn as their mean with a +- sd band."""
    runs = [Path(r) for r in runs]
    labels = list(labels) if labels else [r.name for r in runs]
    if len(labels) != len(runs):
        raise ConfigError(f"{len(runs)} runs but {len(labels)} labels: give one label per run (or none)")
    members: dict[str, list[list[dict]]] = {}
    for run, label in zip(runs, labels):
        members.setdefault(label, []).append(read_metrics(run))
    groups = {}
    for label, ms in members.items():
        n = min(len(m) for m in ms)
        n_layers = len(ms[0][0]["layers"])
        groups[label] = {"epochs": np.array([r["epoch"] for r in ms[0][:n]]),
                         "accuracy": np.array([[r["test_accuracy"] for r in m[:n]] for m in ms]),
                         "angle": np.array([[[r["layers"][k]["delta_angle"] for r in m[:n]] for k in range(n_layers - 1)]
                                            for m in ms])}
    return _draw_training(groups, out, commit)


def sweep_curves(folder, out=None) -> list[Path]:
    """Training curves of a sweep (``sweep.nc`` of `salspike sweep`): one curve per grid point,
    mean +- sd over its seeds (failed seeds left out)."""
    import xarray as xr

    folder = Path(folder)
    with xr.open_dataset(folder / "sweep.nc", engine="h5netcdf") as ds:
        ds = ds.load()
    if "test_accuracy" not in ds:
        raise ConfigError(f"{folder / 'sweep.nc'} has no test_accuracy: run the sweep with --metrics including "
                          "test_accuracy,delta_angle")
    angles = sorted((v for v in ds.data_vars if v.startswith("delta_angle_layer")), key=lambda v: int(v[17:]))[:-1]
    keys = [d for d in ds["test_accuracy"].dims if d not in ("seed", "epoch")]
    stacked = ds.stack(point=keys) if keys else ds.expand_dims(point=[0])
    groups = {}
    for i in range(stacked.sizes["point"]):
        pt = stacked.isel(point=i)
        acc = np.asarray(pt["test_accuracy"].transpose("seed", "epoch"))
        ok = ~np.all(np.isnan(acc), axis=1)
        if not ok.any():
            continue
        label = ", ".join(f"{k}={pt[k].item()}" for k in keys) or "sweep"
        ang = np.stack([np.asarray(pt[v].transpose("seed", "epoch"))[ok] for v in angles], axis=1) if angles else \
            np.zeros((int(ok.sum()), 0, acc.shape[1]))
        groups[label] = {"epochs": np.asarray(ds["epoch"]), "accuracy": acc[ok], "angle": ang}
    if not groups:
        raise ConfigError(f"{folder / 'sweep.nc'}: no point has finished epochs yet")
    try:
        commit = json.loads(ds.attrs.get("provenance", "{}")).get("git_commit", "")
    except ValueError:
        commit = ""
    return _draw_training(groups, out or folder / "training_curves", commit)


def _draw_training(groups: dict[str, dict], out, commit: str = "") -> list[Path]:
    """groups: label -> epochs (E,), accuracy (runs, E) as a fraction, angle (runs, hidden layers, E) in
    degrees.  Colour: the setting; line style: the layer (legend of the right panel).  A setting
    whose angles are 0 by construction (BP) is said so in the legend: its lines lie on the x axis."""
    plt = pyplot()
    fig, (ax_acc, ax_ang) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    n_hidden = 0
    for i, (label, g) in enumerate(groups.items()):
        epochs, acc, ang = g["epochs"], 100 * np.asarray(g["accuracy"], dtype=float), np.asarray(g["angle"], dtype=float)
        color = OKABE_ITO[(i + 5) % len(OKABE_ITO)] if i < 3 else OKABE_ITO[i % len(OKABE_ITO)]
        mean, sd = _nan_mean_sd(acc)
        runs = acc.shape[0]
        ax_acc.plot(epochs, mean, color=color, label=label + (f" (mean +- sd, {runs} runs)" if runs > 1 else ""))
        ax_acc.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.25, lw=0)
        n_hidden = max(n_hidden, ang.shape[1])
        zero = bool(ang.size) and bool(np.all(np.nan_to_num(ang) == 0))
        for k in range(ang.shape[1]):
            mean, sd = _nan_mean_sd(ang[:, k, :])
            ax_ang.plot(epochs, mean, color=color, linestyle=_STYLES[k % 4], clip_on=False, zorder=3 if zero else 2)
            ax_ang.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
        ax_ang.plot([], [], color=color, label=f"{label}: 0 in every layer (on the x axis)" if zero else label)
    for k in range(n_hidden):
        ax_ang.plot([], [], color="0.3", linestyle=_STYLES[k % 4], label=f"layer W{k}")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Accuracy")
    ax_ang.set(xlabel="epoch", ylabel="angle to backprop delta (degrees)", title="Delta angle per hidden layer",
               ylim=(0, 95))
    ax_acc.legend(frameon=False, fontsize=7)
    ax_ang.legend(frameon=False, fontsize=7)
    stamp(fig, seeds=None, commit=commit)
    try:
        return save_figure(fig, out, FORMATS)
    finally:
        plt.close(fig)


def _nan_mean_sd(values: np.ndarray):
    """Mean and sample sd over runs (axis 0), NaN runs left out; sd 0 for one run."""
    import warnings

    v = np.asarray(values, dtype=float)
    n = np.sum(~np.isnan(v), axis=0)
    with warnings.catch_warnings():  # epochs that one run alone reached: sd 0, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(v, axis=0)
        sd = np.nanstd(v, axis=0, ddof=1) if v.shape[0] > 1 else np.zeros(v.shape[1:])
    return mean, np.where(n > 1, sd, 0.0)


def load_weights(path) -> dict[str, np.ndarray]:
    """The arrays of a results folder's ``weights.npz`` or of any weights .npz."""
    path = Path(path)
    f = path / "weights.npz" if path.is_dir() else path
    if not f.is_file():
        raise ConfigError(f"{f} not found: pass a results folder of `salspike train` or a weights .npz")
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing file problem
        raise ConfigError(f"{f} is not a readable .npz ({type(exc).__name__}); pass weights.npz of `salspike train`") \
            from None


def weight_matrices(weights: dict, layer: int, out, commit: str = "") -> list[Path]:
    """Paper Fig. 3: W W^T and H = Vbar Vbar^T of one layer with their effective rank
    (Roy & Vetterli 2007), and the singular-value spectra of W and Vbar."""
    from .metrics import effective_rank

    k = layer
    if f"W{k}" not in weights or f"Vbar{k}" not in weights:
        raise ConfigError(f"layer {k}: need W{k} and Vbar{k}; available: {sorted(weights)} (the output layer's Vbar "
                          "is the fixed I)")
    W, Vb = (np.asarray(weights[n], dtype=np.float64) for n in (f"W{k}", f"Vbar{k}"))
    for name, m in ((f"W{k}", W), (f"Vbar{k}", Vb)):
        if m.size == 0 or not np.all(np.isfinite(m)):
            raise ConfigError(f"{name} is empty or holds NaN/inf (a diverged run?); plot weights of a run that finished")
    plt = pyplot()
    mats = {"W W$^T$": W @ W.T, "H = $\\bar V \\bar V^T$": Vb @ Vb.T}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), constrained_layout=True)
    for ax, (name, m) in zip(axes[:2], mats.items()):
        lim = np.abs(m).max()
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)  # diverging, colour-blind safe
        ax.set(title=f"{name} (layer {k})\neffective rank (Roy & Vetterli 2007) {effective_rank(m):.1f}",
               xlabel="neuron", ylabel="neuron")
        fig.colorbar(im, ax=ax, shrink=0.8, label="weight product (dimensionless)")
    for name, m, color, style in (("W", W, OKABE_ITO[5], "-"), ("$\\bar V$", Vb, OKABE_ITO[6], "--")):
        s = np.linalg.svd(m, compute_uv=False)
        axes[2].semilogy(np.arange(1, len(s) + 1), s / s[0], color=color, linestyle=style, label=name)
    axes[2].set(title="singular values", xlabel="index", ylabel="s_i / s_1 (dimensionless)")
    axes[2].legend(frameon=False)
    stamp(fig, commit=commit)
    try:
        return save_figure(fig, out, FORMATS)
    finally:
        plt.close(fig)


def _kind(folder: Path) -> str | None:
    summary = folder / "summary.json"
    if summary.is_file():
        try:
            s = json.loads(summary.read_text())
            if "protocol" in s:
                return "protocol"
            if "levels" in s and "per_trial" in s:
                return "compare"
        except (OSError, ValueError):
            pass
    if (folder / "pairing_window.json").is_file():
        return "pairing"
    if (folder / "metrics.jsonl").is_file():
        return "training"
    if (folder / "sweep.nc").is_file():
        return "sweep"
    return None


def _protocol_figures(folder: Path) -> list[Path]:
    from .protocols import figure_from_folder

    return figure_from_folder(folder)


def _compare_figures(folder: Path) -> list[Path]:
    from .levelfigures import level_figures

    return level_figures(folder)


def _pairing_figure(folder: Path) -> list[Path]:
    from .protocols.pairing import figure_from_folder

    return figure_from_folder(folder)


#: kind of results folder -> the function redrawing its figures from its recorded files
_FOLDER_FIGURES = {"protocol": _protocol_figures, "compare": _compare_figures, "pairing": _pairing_figure}


def regenerate(folder) -> list[Path]:
    """Every figure of a results folder (see the module docstring); the paths written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: pass a results folder of `salspike protocol run` or "
                          "`salspike train`")
    kind = _kind(folder)
    if kind in _FOLDER_FIGURES:
        return _FOLDER_FIGURES[kind](folder)
    if kind == "training":
        return training_curves([folder], out=folder / "training_curves")
    if kind == "sweep":
        return sweep_curves(folder)
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and _kind(p))
    if not subs:
        raise ConfigError(f"{folder} holds no results (no summary.json of a protocol run, no metrics.jsonl of a "
                          "training run, in it or its subfolders)")
    out = []
    training = [p for p in subs if _kind(p) == "training"]
    for p in subs:
        if _kind(p) in _FOLDER_FIGURES:
            out += _FOLDER_FIGURES[_kind(p)](p)
    if training:
        labels = [p.name.rsplit("_seed", 1)[0] for p in training]  # run_seed0, run_seed1: one setting
        out += training_curves(training, labels, out=folder / "training_curves")
    return out
