"""What long work says while it runs: one-line notes and progress bars on stderr.

``salspike --quiet`` (or `set_quiet`) silences both.  Notes go to stderr so that stdout stays
the command's result (tables, JSON).
"""

from __future__ import annotations

import sys

_STATE = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _STATE["quiet"] = bool(quiet)


def quiet() -> bool:
    return _STATE["quiet"]


def note(message: str) -> None:
    """Print one line to stderr unless quiet."""
    if not _STATE["quiet"]:
        print(message, file=sys.stderr, flush=True)


class _NullBar:
    def update(self, n=1): ...
    def set_postfix(self, **kw): ...
    def set_description(self, *a, **kw): ...
    def close(self): ...
    def __enter__(self): return self
    def __exit__(self, *exc): self.close()


def progress(total: int, desc: str, unit: str = "it", enabled: bool | None = None, initial: int = 0):
    """A tqdm bar on stderr (or a no-op when quiet, disabled, or tqdm is missing)."""
    if enabled is None:
        enabled = not _STATE["quiet"]
    if not enabled or _STATE["quiet"]:
        return _NullBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NullBar()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, file=sys.stderr,
                dynamic_ncols=True)
