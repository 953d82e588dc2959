"""Figure conventions shared by every salspike figure: a colour-blind-safe palette, embedded
TrueType fonts (pdf.fonttype 42), a small provenance stamp and saving to several formats at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]
#: The formats `salspike figures` and the protocol engine write.
FORMATS = ("pdf", "svg", "png")
#: rcParams of every salspike figure: fonts embedded as TrueType (editable in Illustrator/Inkscape).
RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "font.size": 8,
      "axes.spines.top": False, "axes.spines.right": False}


def pyplot():
    """matplotlib.pyplot on the Agg backend with `RC` applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(RC)
    return plt


def stamp(fig, model: str = "", seeds=None, commit: str = "") -> None:
    """A small grey line at the bottom right: model, seed(s), commit (the figure's provenance)."""
    parts = []
    if model:
        parts.append(f"model {model}")
    if seeds is not None:
        seeds = list(np.atleast_1d(seeds))
        parts.append(f"seed{'s' if len(seeds) > 1 else ''} {','.join(str(int(s)) for s in seeds)}")
    if commit:
        parts.append(f"commit {commit[:10]}")
    if parts:
        engine = fig.get_layout_engine()
        if engine is not None and hasattr(engine, "set") and "rect" in getattr(engine, "get", lambda: {})():
            engine.set(rect=(0, 0.035, 1, 0.965))  # keep the stamp's strip free of axes and labels
        fig.text(0.995, 0.003, "  ".join(parts), ha="right", va="bottom", fontsize=5, color="0.5")


def mean_sd(values, axis: int = 0):
    """(mean, sample sd) along ``axis``; the sd is 0 for a single sample (no band)."""
    v = np.asarray(values, dtype=np.float64)
    sd = v.std(axis=axis, ddof=1) if v.shape[axis] > 1 else np.zeros(np.delete(v.shape, axis))
    return v.mean(axis=axis), sd


def save_figure(fig, stem, formats=("pdf", "png"), dpi: int = 150) -> list[Path]:
    """Write ``stem.<ext>`` for each format atomically (creating the folder); return the paths.
    ``dpi``: of the PNG (a dense figure, e.g. a raster, uses less to stay a small file)."""
    from .results import atomic_write_path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in formats:
        p = stem.with_suffix(f".{ext}")
        atomic_write_path(p, lambda tmp, ext=ext: fig.savefig(tmp, dpi=dpi, format=ext))
        out.append(p)
    return out
