"""Spike rasters with PSTHs of a spike-level protocol run, from its NWB file (`salspike.nwb`,
written by `salspike.protocols.recording`).

`raster_data` reads the file and picks up to ``max_trials`` trials, the first of each condition
(`pick_trials`: the control and each manipulation side by side), placed end to end: per
population the spikes (time, neuron, polarity: +1 ON, -1 OFF for the signed pairs, 0 unsigned)
and their PSTH (spike counts per bin and polarity); `raster_figure` draws it, the upstream stream
(h0 .. hK) in the left column and the downstream stream (hbar1 .. hbarK) in the right one, each
population a raster over its PSTH (Hz per neuron), ON spikes in blue and OFF in vermillion,
trial starts as grey lines and the read-out/plasticity windows' starts dotted, the conditions
numbered above the rasters and named in the title.  Written: ``NAME_raster.pdf/.svg/.png`` and
``NAME_raster.csv`` (the PSTH counts as drawn: population, polarity, trial (the NWB trials
table's row), bin start and end in ms on the protocol's clock, count).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .plotting import FORMATS, OKABE_ITO, pyplot, save_figure, stamp
from .results import atomic_write_text

__all__ = ["pick_trials", "raster_data", "raster_figure", "spike_rasters"]

#: polarity -> colour, label
POLARITY = {1: (OKABE_ITO[5], "ON"), -1: (OKABE_ITO[6], "OFF"), 0: (OKABE_ITO[0], "spikes")}
_NICE = (0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000)


def _bin_ms(span_ms: float, n: int = 60) -> float:
    return next((b for b in _NICE if b >= span_ms / n), _NICE[-1])


def pick_trials(trials: list[dict], max_trials: int) -> list[int]:
    """Indices of the trials shown: the first trials of each condition in order of appearance, as
    many per condition as ``max_trials`` allows (at least one), at most ``max_trials`` in all."""
    conditions = list(dict.fromkeys(tr["condition"] for tr in trials))
    per = max(1, max_trials // len(conditions))
    shown: list[int] = []
    for cond in conditions:
        shown += [i for i, tr in enumerate(trials) if tr["condition"] == cond][:per]
        if len(shown) >= max_trials:
            break
    return sorted(shown[:max(max_trials, 1)])


def raster_data(nwb_path, max_trials: int = 8, bin_ms: float | None = None) -> dict:
    """The spikes and PSTHs of the trials `pick_trials` shows of a protocol's NWB file, placed end
    to end (display time: a trial's own time plus the durations of the shown trials before it).

    Returns ``trials`` (NWB index, start, window start, stop in ms on the protocol's clock,
    condition, display offset), ``edges`` (per shown trial its bin edges in ms, protocol clock),
    ``bin_ms``, ``span_ms`` (display) and ``populations``: name -> {"width", "spikes": {polarity:
    (display times ms, neurons)}, "counts": {polarity: [counts per bin of each shown trial]}}."""
    from .nwb import read_nwb

    content = read_nwb(nwb_path)
    trials = content["trials"]
    if not trials or not content["spikes"]:
        raise ConfigError(f"{nwb_path} holds no trials or no spike trains: pass the NWB file of a spike-level "
                          "`salspike protocol run`")
    if max_trials < 1:
        raise ConfigError(f"max_trials must be positive, got {max_trials}")
    shown, offset = [], 0.0
    for i in pick_trials(trials, max_trials):
        tr = trials[i]
        start, stop = tr["start_s"] * 1e3, tr["stop_s"] * 1e3
        shown.append((i, start, tr.get("window_start_s", tr["start_s"]) * 1e3, stop, tr["condition"], offset))
        offset += stop - start
    bin_ms = float(bin_ms or _bin_ms(offset))
    edges = []
    for _, start, _, stop, _, _ in shown:
        e = start + bin_ms * np.arange(int(np.ceil((stop - start) / bin_ms - 1e-9)) + 1)
        e[-1] = min(e[-1], stop)
        edges.append(e)
    pops = {}
    for name, trains in content["spikes"].items():
        parts = {1: trains["on"], -1: trains["off"]} if isinstance(trains, dict) else {0: trains}
        spikes, counts = {}, {}
        for pol, per_neuron in parts.items():
            t = [np.asarray(v, dtype=np.float64) * 1e3 for v in per_neuron]
            times = np.concatenate(t) if t else np.zeros(0)
            neurons = np.concatenate([np.full(v.size, i) for i, v in enumerate(t)]) if t else np.zeros(0, int)
            shown_t, shown_n, counts[pol] = [], [], []
            for (_, start, _, stop, _, off), e in zip(shown, edges):
                keep = (times >= start) & (times < stop)
                shown_t.append(times[keep] - start + off)
                shown_n.append(neurons[keep])
                counts[pol].append(np.histogram(times[keep], bins=e)[0])
            spikes[pol] = (np.concatenate(shown_t), np.concatenate(shown_n))
        pops[name] = {"width": len(next(iter(parts.values()))), "spikes": spikes, "counts": counts}
    return {"trials": shown, "edges": edges, "bin_ms": bin_ms, "span_ms": offset, "populations": pops,
            "n_trials": len(trials)}


def _order(name: str) -> int:
    return int(name.lstrip("hbar"))


def raster_figure(data: dict, stem, title: str = "", model: str = "", seeds=None, commit: str = "") -> list[Path]:
    """Draw `raster_data` (see the module docstring) and write the PSTH table beside it."""
    from matplotlib.ticker import MaxNLocator

    pops = data["populations"]
    up = sorted((p for p in pops if not p.startswith("hbar")), key=_order, reverse=True)
    down = sorted((p for p in pops if p.startswith("hbar")), key=_order, reverse=True)
    rows = max(len(up), len(down))
    plt = pyplot()
    fig = plt.figure(figsize=(9.0, 1.45 * rows + 0.9), constrained_layout=True)
    grid = fig.add_gridspec(2 * rows, 2, height_ratios=[2, 1] * rows)
    first = None
    for col, names in enumerate((up, down)):
        for r, name in enumerate(names):
            ax_r = fig.add_subplot(grid[2 * r, col], sharex=first)
            first = first or ax_r
            ax_p = fig.add_subplot(grid[2 * r + 1, col], sharex=first)
            pop = pops[name]
            for _, start, window, _, _, off in data["trials"]:
                for ax in (ax_r, ax_p):
                    ax.axvline(off, color="0.4", lw=0.7, zorder=0)
                    ax.axvline(off + window - start, color="0.6", lw=0.6, ls=":", zorder=0)
            for pol, (t, i) in pop["spikes"].items():
                colour, label = POLARITY[pol]
                ax_r.plot(t, i + (0.2 * pol), "|", ms=3, mew=0.7, color=colour, label=label)
                for (_, start, _, _, _, off), e, c in zip(data["trials"], data["edges"], pop["counts"][pol]):
                    rate = c / (max(pop["width"], 1) * np.diff(e) * 1e-3)
                    ax_p.stairs(rate, e - start + off, color=colour, lw=1.0, baseline=None)
            ax_r.set(ylim=(-0.7, pop["width"] - 0.3), ylabel=f"{name}\nneuron (index)")
            ax_r.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
            ax_r.tick_params(labelbottom=False)
            ax_p.set(ylabel="PSTH\n(Hz/neuron)")
            if r == len(names) - 1:
                ax_p.set_xlabel("time in the trials shown, placed end to end (ms)")
            else:
                ax_p.tick_params(labelbottom=False)
            if any(pol != 0 for pol in pop["spikes"]) and r == 0:
                ax_r.legend(frameon=False, fontsize=6, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2,
                            markerscale=1.5, borderaxespad=0.1)
    first.set_xlim(0, data["span_ms"])
    conds = list(dict.fromkeys(tr[4] for tr in data["trials"]))
    for ax in fig.axes[::2][:1] + [a for a in fig.axes[::2] if a.get_subplotspec().colspan.start == 1][:1]:
        for _, _, _, _, cond, off in data["trials"]:
            ax.text(off, 1.02, f"{conds.index(cond) + 1}", transform=ax.get_xaxis_transform(), fontsize=6,
                    ha="left", va="bottom")
    fig.suptitle(f"{title}: spike rasters and PSTHs ({data['bin_ms']:g} ms bins) of {len(data['trials'])} of "
                 f"{data['n_trials']} trials; solid: trial starts, dotted: window starts\n"
                 + "; ".join(f"{n + 1}: {c}" for n, c in enumerate(conds)), fontsize=7)
    stamp(fig, model, seeds, commit)
    try:
        paths = save_figure(fig, stem, FORMATS, dpi=100)
    finally:
        plt.close(fig)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["population", "polarity", "trial", "bin_start_ms", "bin_stop_ms", "spikes"])
    for name, pop in pops.items():
        for pol, per_trial in pop["counts"].items():
            for tr, e, counts in zip(data["trials"], data["edges"], per_trial):
                for a, b, n in zip(e[:-1], e[1:], counts):
                    w.writerow([name, pol, tr[0], f"{a:.9g}", f"{b:.9g}", int(n)])
    table = Path(stem).with_suffix(".csv")
    atomic_write_text(table, buf.getvalue())
    return paths + [table]


def spike_rasters(folder, table: dict) -> list[Path]:
    """The raster figure of a protocol results folder whose run wrote ``NAME.nwb`` (none otherwise)."""
    name = table["protocol"]
    nwb = Path(folder) / f"{name}.nwb"
    if not nwb.is_file():
        return []
    return raster_figure(raster_data(nwb), Path(folder) / f"{name}_raster", f"{name} ({table['level']} level)",
                         f"{table['model']} ({table['level']} level)", table["seeds"], table.get("commit", ""))
