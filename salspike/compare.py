"""Run the same trials at two levels of description and write a side-by-side comparison.

``salspike compare --levels rate,spike --model FILE --out DIR [--dataset NAME | --protocol FILE]``

Both levels start from the same initial weights (`init_weights(circuit)`) and see the same input
rows in the same order, one online update per row (a "trial").  Written to DIR:

* ``table.csv`` / ``table.json``: per synapse group (W, Wbar, V, Vbar, all layers pooled) the
  cosine and relative norm of the per-trial updates (level B against level A, each on its own
  trajectory), their mean and minimum over trials, and the cosine / relative norm of the
  cumulative change after the last trial;
* ``trials.csv``: the same per trial; ``trajectories.csv``: the Frobenius norm of every group's
  weights after every trial, per level;
* ``weights.npz``: the initial weights (``initial.W0``, ...) and each level's final weights
  (``rate.W0``, ``spike.W0``, ...): the per-synapse change scatter (`salspike.levelfigures`);
* ``rates.npz`` where one level is the spike level: per trial and population (h1..hK, hbar1..hbarK)
  the spike network's measured window rates (``measured.h1``, rate units: spike.rate_scale Hz per
  unit; ON - OFF for the signed pairs) and the matched rate model's prediction for the same trial
  (``predicted.h1``: the matrix level with ``spike.matched_transfer = "lnp"`` on the spike
  network's weights before that trial, the same input and target), and ``rate_scale``;
* ``accuracy.json`` where the data set has labels (classification accuracy of the final weights on
  the data set's test split, per level, and of the initial weights);
* ``compare.pdf`` / ``.svg`` / ``.png``: the figure (Okabe-Ito palette, labelled units; a curve equal to
  another, e.g. V and Vbar, which Lemma 1 makes move together, is drawn under it with open markers and
  said so in the legend); ``weight_changes.*`` (per-synapse cumulative change, level B against A,
  per group) and, with the spike level, ``rates.*`` (measured vs matched-model rates per layer),
  both drawn from the files above by `salspike.levelfigures` (``salspike figures DIR`` redraws all);
* ``summary.json``: all of the above plus the resolved circuit and provenance.

With ``protocol``, the protocol file runs through `salspike.protocols` instead (its own table and
figure; the rate level's prediction is the time-averaged rule).
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .circuit import GROUPS, Circuit
from .errors import ConfigError
from .circuit import group_of, init_weights
from .console import progress

__all__ = ["compare_levels", "compare_figure"]

from .plotting import save_figure
from .sketch import GROUP_COLOURS  # noqa: E402  (the groups' colours in every figure)

logger = logging.getLogger(__name__)



def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """||b|| / ||a||."""
    na = np.linalg.norm(a)
    return float(np.linalg.norm(b) / na) if na > 0 else float("nan")


def _pooled(weights: dict[str, np.ndarray], group: str) -> np.ndarray:
    parts = [weights[k].ravel() for k in sorted(weights) if group_of(k)[0] == group]
    return np.concatenate(parts) if parts else np.zeros(0)


def _data(circuit: Circuit, dataset: str | None, trials: int):
    """Rows for the trials, the resolved circuit and (if labelled) a test split."""
    if dataset is not None:
        from .datasets import load_dataset

        data = load_dataset(dataset, seed=circuit["seed"])
        circuit = circuit.with_io_widths(data.input_width, data.output_width)
        if trials > len(data.x_train):
            raise ConfigError(f"--trials {trials} exceeds the {len(data.x_train)} training rows of {dataset}")
        test = (data.x_test, data.labels_test) if data.n_classes else None
        return circuit, data.x_train[:trials], data.y_train[:trials], test, data.name
    if not circuit.resolved:
        raise ConfigError(f"{circuit.source}: input/output widths are 'auto'; pass --dataset, or set input_width "
                          "and output_width (e.g. --set input_width=8 --set output_width=3) for synthetic trials")
    rng = np.random.default_rng([circuit["seed"], 7])
    d0, dK = circuit.widths[0], circuit.widths[-1]
    x = rng.uniform(0.0, 1.0, (trials, d0))  # rates >= 0: the spike level encodes inputs as firing rates
    teacher = rng.standard_normal((dK, d0)) / np.sqrt(d0)
    y = np.tanh((x - 0.5) @ teacher.T)
    return circuit, x, y, None, "synthetic (uniform [0, 1] inputs, tanh teacher)"


def _make(name: str, circuit: Circuit, weights, device: str, options: dict):
    from .levels import make_level

    opts = dict(options.get(name, {}))
    if name != "matrix":
        opts.setdefault("device", device)
    return make_level(name, circuit, weights, **opts)


def compare_levels(circuit: Circuit, levels: Sequence[str] = ("rate", "spike"), out: str | Path = "compare",
                   dataset: str | None = None, protocol: str | Path | None = None, trials: int = 20,
                   device: str = "runtime", *, level_options: dict | None = None,
                   weights: dict | None = None) -> dict[str, Any]:
    """Run ``trials`` rows at two levels from the same initial weights; write tables and a figure.

    ``levels``: two of matrix, rate, spike (A, B: B is compared with A).  If the rate level cannot
    be imported, the matrix level stands in for it (its rate limit) and the result says so.
    ``level_options``: per-level keyword arguments (e.g. ``{"spike": {"trials": 5}}``).
    Returns a dict with ``table`` (text), ``rows`` (the table's rows), ``accuracy``, ``files``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if protocol is not None:
        from .protocols.pairing import run_pairing_file

        return run_pairing_file(protocol, circuit, out, device=device, levels=levels)
    levels = [str(l).strip() for l in levels]
    if len(levels) != 2:
        raise ConfigError(f"--levels needs two levels (e.g. rate,spike), got {levels}")
    if trials < 1:
        raise ConfigError(f"--trials must be positive, got {trials}")
    notes = []
    circuit, x, y, test, data_name = _data(circuit, dataset, trials)
    w0 = init_weights(circuit) if weights is None else {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    options = level_options or {}

    history: dict[str, list[dict[str, np.ndarray]]] = {}
    measured: dict[str, list[dict[str, np.ndarray]]] = {}
    accuracy: dict[str, Any] = {}
    for name in levels:
        level = _make(name, circuit, {k: v.copy() for k, v in w0.items()}, device, options)
        try:
            if test is not None and "initial" not in accuracy:
                accuracy["initial"] = float(np.mean(np.argmax(level.predict(test[0]), axis=1) == test[1]))
            traj = [{k: np.array(v, dtype=np.float64) for k, v in level.weights.items()}]
            acts = measured.setdefault(name, [])
            with progress(trials, f"compare: {name} level", unit="trial") as bar:
                for n in range(trials):
                    acts.append(level.step(x[n:n + 1], y[n:n + 1], online=True))
                    traj.append({k: np.array(v, dtype=np.float64) for k, v in level.weights.items()})
                    bar.update()
            level.check_health(f" ({name} level)")
            if test is not None:
                accuracy[name] = float(np.mean(np.argmax(level.predict(test[0]), axis=1) == test[1]))
        finally:
            level.close()
        history[name] = traj

    A, B = levels
    groups = [g for g in GROUPS if _pooled(w0, g).size]
    per_trial = []
    for n in range(trials):
        for g in groups:
            da = _pooled(history[A][n + 1], g) - _pooled(history[A][n], g)
            db = _pooled(history[B][n + 1], g) - _pooled(history[B][n], g)
            per_trial.append({"trial": n + 1, "group": g, "cosine": _cos(da, db), "relative_norm": _rel(da, db),
                              f"norm_update_{A}": float(np.linalg.norm(da)),
                              f"norm_update_{B}": float(np.linalg.norm(db))})
    rows = []
    for g in groups:
        pt = [r for r in per_trial if r["group"] == g]
        ca = _pooled(history[A][-1], g) - _pooled(w0, g)
        cb = _pooled(history[B][-1], g) - _pooled(w0, g)
        cosines = np.array([r["cosine"] for r in pt])
        rels = np.array([r["relative_norm"] for r in pt])
        rows.append({"group": g, "update_cosine_mean": float(np.nanmean(cosines)),
                     "update_cosine_min": float(np.nanmin(cosines)),
                     "update_relative_norm_mean": float(np.nanmean(rels)),
                     "cumulative_cosine": _cos(ca, cb), "cumulative_relative_norm": _rel(ca, cb)})
    traj_rows = []
    for name in levels:
        for n, w in enumerate(history[name]):
            for g in groups:
                traj_rows.append({"level": name, "trial": n, "group": g,
                                  "frobenius_norm": float(np.linalg.norm(_pooled(w, g)))})

    files = []
    np.savez(out / "weights.npz", **{f"initial.{k}": v for k, v in w0.items()},
             **{f"{name}.{k}": v for name in levels for k, v in history[name][-1].items()})
    files.append(out / "weights.npz")
    if "spike" in levels:
        files.append(_write_rates(out / "rates.npz", circuit, x, y, history["spike"], measured["spike"]))
    files.append(_write_csv(out / "table.csv", rows))
    files.append(_write_csv(out / "trials.csv", per_trial))
    files.append(_write_csv(out / "trajectories.csv", traj_rows))
    (out / "table.json").write_text(json.dumps({"levels": levels, "rows": rows}, indent=1))
    files.append(out / "table.json")
    if accuracy:
        (out / "accuracy.json").write_text(json.dumps(accuracy, indent=1))
        files.append(out / "accuracy.json")
    table = _format_table(A, B, rows, accuracy, data_name, trials, circuit, notes)
    from .results import provenance

    prov = provenance()
    summary = {"levels": levels, "dataset": data_name, "trials": trials, "device": device, "rows": rows,
               "per_trial": per_trial, "accuracy": accuracy, "notes": notes, "circuit": circuit.to_dict(),
               "provenance": prov}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    files.append(out / "summary.json")
    from .levelfigures import level_figures

    files += level_figures(out)
    return {"table": table, "rows": rows, "per_trial": per_trial, "accuracy": accuracy, "levels": levels,
            "notes": notes, "files": [str(f) for f in files]}


def _write_rates(path: Path, circuit: Circuit, x, y, weights: list[dict], measured: list[dict]) -> Path:
    """The spike network's window rates per trial and the matched rate model's prediction of them
    (the matrix level with spike.matched_transfer = "lnp" on the weights the network had)."""
    from .matrix.engine import MatrixNetwork

    matched = circuit.with_overrides({"spike.matched_transfer": "lnp"})
    predicted = [MatrixNetwork(matched, w).activities(x[n:n + 1], y[n:n + 1]).as_arrays()
                 for n, w in enumerate(weights[:len(measured)])]
    pops = [p for p in measured[0] if p != "h0" and p in predicted[0]]
    np.savez(path, rate_scale=float(circuit["spike.rate_scale"]),
             **{f"measured.{p}": np.concatenate([np.atleast_2d(m[p]) for m in measured]) for p in pops},
             **{f"predicted.{p}": np.concatenate([np.atleast_2d(m[p]) for m in predicted]) for p in pops})
    return path


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


def _format_table(A, B, rows, accuracy, data_name, trials, circuit, notes) -> str:
    lines = [f"{B} level vs {A} level: {trials} trials ({data_name}), the same initial weights",
             f"{'group':6s} {'update cos (mean/min)':>22s} {'update |dB|/|dA|':>17s} "
             f"{'cumulative cos':>15s} {'cumulative |dB|/|dA|':>21s}"]
    for r in rows:
        lines.append(f"{r['group']:6s} {r['update_cosine_mean']:>12.4f} / {r['update_cosine_min']:<7.4f} "
                     f"{r['update_relative_norm_mean']:>17.3f} {r['cumulative_cosine']:>15.4f} "
                     f"{r['cumulative_relative_norm']:>21.3f}")
    if accuracy:
        lines.append("test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    if "spike" in (A, B):
        lines.append(f"spike level: closed loop, tier {circuit['spike.tier']}, s = {circuit['spike.rate_scale']:g} "
                     f"Hz/unit, tau_s = {circuit['spike.tau_s']:g} ms, {circuit['spike.t_settle']:g} ms settling + "
                     f"{circuit['spike.t_window']:g} ms window per trial; its rate model is spike.matched_transfer = "
                     "'lnp' at the matrix level")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def _coincident(series: dict[str, list[float]]) -> dict[str, str]:
    """group -> the earlier group whose curve it equals to 1e-9 relative (it would hide under it)."""
    out, seen = {}, []
    for g, v in series.items():
        a = np.asarray(v, dtype=np.float64)
        for h, b in seen:
            if a.shape == b.shape and a.size and np.allclose(a, b, rtol=1e-9, atol=1e-12):
                out[g] = h
                break
        seen.append((g, a))
    return out


def compare_figure(out: Path, A, B, groups, per_trial, traj_rows, model: str, seed, data_name,
                   commit: str = "") -> list[Path]:
    """The comparison's figure (``compare.*``): per-trial update cosine and size, B against A, and
    the weights' norms (see the module docstring)."""
    from .plotting import FORMATS, pyplot, stamp

    plt = pyplot()
    markers = {"W": "o", "Wbar": "s", "V": "^", "Vbar": "v"}
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), constrained_layout=True)
    panels = {0: "cosine", 1: "relative_norm"}
    for i, col_name in panels.items():
        series = {g: [r[col_name] for r in per_trial if r["group"] == g] for g in groups}
        same = _coincident(series)
        for g in groups:
            t = [r["trial"] for r in per_trial if r["group"] == g]
            under = g in same  # drawn first, larger and open, so that the curve on top leaves it visible
            axes[i].plot(t, series[g], "-", marker=markers.get(g, "o"), color=GROUP_COLOURS[g],
                         ms=7 if under else 3, mfc="none" if under else GROUP_COLOURS[g], lw=2.5 if under else 1,
                         alpha=0.6 if under else 1, zorder=1 if under else 2,
                         label=f"{g} (equal to {same[g]}: the open markers under it)" if under else g)
    traj = {f"{g} ({name})": [r["frobenius_norm"] for r in traj_rows if r["group"] == g and r["level"] == name]
            for g in groups for name in (A, B)}
    same = _coincident({k: v for k, v in traj.items()})
    for g in groups:
        for name, ls in ((A, "-"), (B, "--")):
            key = f"{g} ({name})"
            tr = [r for r in traj_rows if r["group"] == g and r["level"] == name]
            under = key in same and not same[key].startswith(g + " ")
            axes[2].plot([r["trial"] for r in tr], traj[key], ls, color=GROUP_COLOURS[g], lw=2.5 if under else 1.2,
                         alpha=0.6 if under else 1, label=f"{key} = {same[key]}" if under else key)
    axes[0].axhline(1.0, color="0.6", lw=0.8)
    axes[1].axhline(1.0, color="0.6", lw=0.8)
    axes[0].set(xlabel="trial (input row)", ylabel=f"cosine of updates, {B} vs {A} (1)",
                title="Per-trial update direction")
    axes[1].set(xlabel="trial (input row)", ylabel=f"|update {B}| / |update {A}| (1)", title="Per-trial update size")
    axes[2].set(xlabel="trial (input row)", ylabel="Frobenius norm of the weights (dimensionless)",
                title=f"Weights ({A} solid, {B} dashed)")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(frameon=False, fontsize=7)
    axes[1].legend(frameon=False, fontsize=7)
    axes[2].legend(frameon=False, fontsize=6, ncol=2)
    fig.suptitle(f"{B} vs {A}, {data_name}", fontsize=10)
    stamp(fig, model, seed, commit)
    paths = save_figure(fig, out / "compare", FORMATS, dpi=110)
    plt.close(fig)
    return paths
