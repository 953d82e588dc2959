"""The one registry of levels of description, and their common interface.

A level adapter is a class registered with `register_level` (as nengo's ``Builder.register``);
it imports its engine (the numpy matrix engine, or a Brian2 builder) and exposes:

* ``weights`` (dict in the cross-level layout), ``step(x, y, online)`` returning the activities
  each trial (one input row) saw before its update, ``predict(x)``, ``activities(x, y)``
  (no update), ``check_health(where)``, ``close()``;
* the hook API of `salspike.circuit.Hooks` (``stimulate``, ``clamp``, ``silence``,
  ``silence_apical``, ``lesion``, ``freeze``, ``unfreeze``, ``record``) with the same meaning at
  every level; a level that cannot express a hook refuses it with a ConfigError;
* ``build(circuit, ...)``: generate and compile its code (`salspike build`).

Training, protocols, compare and the CLI reach every engine through `make_level`; nothing in the
engine layer imports this package.
"""

from __future__ import annotations

from .base import LEVELS, Level, check_level_implements, get_level, level_names, make_level, register_level
from . import matrix as _matrix  # noqa: F401  (registers "matrix")
from . import brian as _brian  # noqa: F401  (registers "rate" and "spike")

__all__ = ["LEVELS", "Level", "check_level_implements", "get_level", "level_names", "make_level", "register_level"]
