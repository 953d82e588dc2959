"""Figure conventions shared by every salspike figure: a colour-blind-safe palette and saving
to several formats at once."""

from __future__ import annotations

from pathlib import Path

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]


def save_figure(fig, stem, formats=("pdf", "png")) -> list[Path]:
    """Write ``stem.<ext>`` for each format (creating the folder); return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in formats:
        p = stem.with_suffix(f".{ext}")
        fig.savefig(p, dpi=150)
        out.append(p)
    return out
