"""The figures of a level comparison folder (`salspike compare`), drawn from its recorded files.

* ``compare.*``: per-trial update cosine and size, level B against A, and the weights' norms
  (`salspike.compare.compare_figure`; from ``summary.json`` and ``trajectories.csv``);
* ``weight_changes.*``: per synapse group (W, Wbar, V, Vbar; all layers pooled) the cumulative
  change of every synapse at level B against its change at level A, from the same initial
  weights, with the identity line and the cosine (from ``weights.npz``);
* ``rates.*`` (when one level is the spike level): per population h1..hK and hbar1..hbarK the
  spike network's measured window rate of every neuron in every trial against the matched rate
  model's prediction (``spike.matched_transfer = "lnp"`` on the same weights and input), in Hz,
  with the identity line, the rms difference and the mean of each (from ``rates.npz``).

`salspike figures DIR` and `salspike compare` call `level_figures`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .circuit import GROUPS, group_of
from .errors import ConfigError
from .plotting import FORMATS, OKABE_ITO, pyplot, save_figure, stamp
from .sketch import GROUP_COLOURS

__all__ = ["level_figures", "weight_changes", "rate_scatter", "read_npz"]


def read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ConfigError(f"{path} not found: rerun `salspike compare` (older versions did not write it)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing file problem
        raise ConfigError(f"{path} is not a readable .npz ({type(exc).__name__}); rerun `salspike compare`") from None


def _summary(folder: Path) -> dict:
    try:
        s = json.loads((folder / "summary.json").read_text())
        s["levels"], s["per_trial"]
        return s
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{folder / 'summary.json'} is not a summary of `salspike compare` (levels, per_trial)") \
            from None


def level_figures(folder) -> list[Path]:
    """Every figure of a `salspike compare` folder (see the module docstring); the paths written."""
    from .compare import compare_figure

    folder = Path(folder)
    s = _summary(folder)
    A, B = s["levels"]
    prov = s.get("provenance", {})
    model, seed, commit = s.get("circuit", {}).get("name", "?"), s.get("circuit", {}).get("seed"), \
        prov.get("git_commit", "")
    with open(folder / "trajectories.csv", newline="") as f:
        traj = [{"level": r["level"], "trial": int(r["trial"]), "group": r["group"],
                 "frobenius_norm": float(r["frobenius_norm"])} for r in csv.DictReader(f)]
    groups = [g for g in GROUPS if any(r["group"] == g for r in s["per_trial"])]
    out = compare_figure(folder, A, B, groups, s["per_trial"], traj, model, seed, s.get("dataset", ""), commit)
    out += weight_changes(read_npz(folder / "weights.npz"), A, B, folder / "weight_changes", model, seed, commit)
    if "spike" in (A, B):
        out += rate_scatter(read_npz(folder / "rates.npz"), folder / "rates", model, seed, commit)
    return out


def changes(weights: dict[str, np.ndarray], level: str) -> dict[str, np.ndarray]:
    """group -> the cumulative change of every synapse of the group at ``level`` (layers pooled, in
    the order of the weight names), from ``weights.npz``'s ``initial.*`` and ``level.*`` arrays."""
    names = sorted(k.split(".", 1)[1] for k in weights if k.startswith("initial."))
    out: dict[str, list] = {}
    for n in names:
        if f"{level}.{n}" not in weights:
            raise ConfigError(f"weights.npz has initial.{n} but no {level}.{n}: rerun `salspike compare`")
        out.setdefault(group_of(n)[0], []).append((weights[f"{level}.{n}"] - weights[f"initial.{n}"]).ravel())
    return {g: np.concatenate(v) for g, v in out.items()}


def weight_changes(weights: dict[str, np.ndarray], A: str, B: str, stem, model: str = "", seed=None,
                   commit: str = "") -> list[Path]:
    """Per group, every synapse's cumulative change at level B against level A (identity line;
    the cosine of the two change vectors in the title)."""
    ca, cb = changes(weights, A), changes(weights, B)
    groups = [g for g in GROUPS if g in ca]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(2.6 * len(groups) + 0.4, 3.0), constrained_layout=True,
                             squeeze=False)
    for ax, g in zip(axes[0], groups):
        a, b = ca[g], cb[g]
        lim = float(max(np.abs(a).max(initial=0), np.abs(b).max(initial=0))) * 1.05 or 1.0
        ax.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8, label="identity")
        ax.plot(a, b, "o", ms=2.5, color=GROUP_COLOURS[g], alpha=0.7, mew=0, label=f"{a.size} synapses")
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=f"{g}: cosine {cos:.3f}",
               xlabel=f"{A} level: change (dimensionless)", ylabel=f"{B} level: change (dimensionless)")
        ax.ticklabel_format(style="sci", scilimits=(-2, 3), useOffset=False)
        ax.legend(frameon=False, fontsize=6, loc="upper left")
    fig.suptitle(f"Cumulative weight change per synapse, {B} vs {A} level (same initial weights and trials)",
                 fontsize=9)
    stamp(fig, model, seed, commit)
    try:
        return save_figure(fig, stem, FORMATS)
    finally:
        plt.close(fig)


def rate_pairs(rates: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """population -> (measured, predicted) rates in Hz (trials x neurons), from ``rates.npz``."""
    s = float(rates["rate_scale"])
    pops = [k.split(".", 1)[1] for k in rates if k.startswith("measured.")]
    out = {}
    for p in pops:
        m, q = np.asarray(rates[f"measured.{p}"]) * s, np.asarray(rates.get(f"predicted.{p}")) * s
        if m.shape != q.shape:
            raise ConfigError(f"rates.npz: measured.{p} has shape {m.shape} but predicted.{p} {q.shape}")
        out[p] = (m, q)
    if not out:
        raise ConfigError("rates.npz holds no measured rates: rerun `salspike compare` with the spike level")
    return out


def _order(pop: str) -> tuple[int, int]:
    return (1 if pop.startswith("hbar") else 0, int(pop.lstrip("hbar")))


def rate_scatter(rates: dict[str, np.ndarray], stem, model: str = "", seed=None, commit: str = "") -> list[Path]:
    """Per population, each neuron's measured spike rate in each trial against the matched rate
    model's prediction (Hz; ON - OFF for the signed pairs), identity line, rms difference and means."""
    pairs = rate_pairs(rates)
    pops = sorted(pairs, key=_order)
    up = [p for p in pops if not p.startswith("hbar")]
    down = [p for p in pops if p.startswith("hbar")]
    ncol = max(len(up), len(down))
    plt = pyplot()
    fig, axes = plt.subplots(2 if down and up else 1, ncol, figsize=(2.5 * ncol + 0.4, 5.4 if down and up else 2.9),
                             constrained_layout=True, squeeze=False)
    for row, names in enumerate([r for r in (up, down) if r]):
        for col in range(ncol):
            ax = axes[row][col]
            if col >= len(names):
                ax.axis("off")
                continue
            p = names[col]
            m, q = pairs[p]
            colour = OKABE_ITO[5] if row == 0 and up else OKABE_ITO[6]
            lo = float(min(m.min(), q.min(), 0.0))
            hi = float(max(m.max(), q.max())) or 1.0
            pad = 0.05 * (hi - lo)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=0.8, label="identity")
            ax.plot(q.ravel(), m.ravel(), "o", ms=2.5, mew=0, alpha=0.7, color=colour,
                    label=f"{m.shape[1]} neurons x {m.shape[0]} trials")
            rms = float(np.sqrt(np.mean((m - q) ** 2)))
            ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), aspect="equal",
                   title=f"{p}: rms diff {rms:.2g} Hz\nmean {m.mean():.3g} (spikes) vs {q.mean():.3g} Hz (model)",
                   xlabel="matched rate model (Hz)", ylabel="spiking network (Hz)")
            ax.title.set_fontsize(7)
            ax.legend(frameon=False, fontsize=6, loc="upper left")
    fig.suptitle("Window rates of the spiking network vs its matched rate model (spike.matched_transfer = lnp); "
                 "signed pairs ON - OFF", fontsize=8)
    stamp(fig, f"{model} (spike level)", seed, commit)
    try:
        return save_figure(fig, stem, FORMATS, dpi=110)
    finally:
        plt.close(fig)
