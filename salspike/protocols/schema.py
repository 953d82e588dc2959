"""Protocol files (``protocols/*.toml``) as validated data, like model files.

Every protocol file names its kind (``protocol = "apical_lesion"``); the kind (a module of this
package, see `engine.register_protocol`) declares its own keys.  The keys every kind shares:

=============  ==========================================================================
key            meaning
=============  ==========================================================================
protocol       the kind (``salspike protocol list``)
description    free text (one line: ``salspike protocol list`` shows it)
model          model file or bundled model name the protocol runs on
levels         the levels where the protocol is meaningful (a subset of the kind's)
seeds          seeds of the initial weights and the stimuli; rows are per seed
trials         trials (input rows, one update each) of the learning phase
[set]          model-file overrides (validated by the model schema)
[at.LEVEL]     keys that differ at one level (e.g. ``[at.spike] trials = 20``; its ``set``
               adds model keys to the file's [set]); the spike level's shorter versions
=============  ==========================================================================

An unknown key, a wrong type or an impossible value is a one-line `ConfigError` naming the file,
the key and (for a typo) the closest known keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..circuit import read_toml_file
from ..circuit.schema import did_you_mean
from ..errors import ConfigError

_F = (int, float)
#: key -> (types, default (None: required), doc) of the keys every kind shares
COMMON: dict[str, tuple[Any, Any, str]] = {
    "protocol": (str, None, "the kind of protocol (salspike protocol list)"),
    "description": (str, "", "free text, one line"),
    "model": (str, "small_circuit", "model file or bundled model name"),
    "levels": (list, None, "levels where the protocol is meaningful: matrix, rate, spike"),
    "seeds": (list, [0], "seeds of the initial weights and stimuli (rows are per seed)"),
    "trials": (int, 100, "trials of the learning phase (one update each)"),
    "set": (dict, {}, "model-file overrides, e.g. gamma = 0.0"),
    "at": (dict, {}, "per-level overrides of these keys, e.g. [at.spike] trials = 20"),
}
#: keys an [at.LEVEL] table may not change
FIXED = ("protocol", "description", "levels", "at")


def _check(src: str, key: str, value, spec) -> Any:
    types, _, doc = spec
    types = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise ConfigError(f"{src}: key '{key}' must be {'/'.join(t.__name__ for t in types)}, got {value!r} ({doc})")
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def validate(data: dict, keys: dict[str, tuple[Any, Any, str]], src: str) -> dict[str, Any]:
    """Every key of ``keys`` with its value or default; unknown/missing/mistyped keys are errors."""
    out = {}
    for key, value in data.items():
        if key not in keys:
            raise ConfigError(f"{src}: unknown key '{key}'.{did_you_mean(key, keys)} Allowed keys: {', '.join(keys)}")
        out[key] = _check(src, key, value, keys[key])
    for key, (_, default, doc) in keys.items():
        if key not in out:
            if default is None:
                raise ConfigError(f"{src}: missing key '{key}' ({doc})")
            out[key] = list(default) if isinstance(default, list) else (dict(default) if isinstance(default, dict)
                                                                       else default)
    return out


def level_overrides(data: dict, keys: dict[str, tuple[Any, Any, str]], levels, src: str) -> dict[str, dict]:
    """The [at.LEVEL] tables: level -> {key: value}, each key checked like the file's own."""
    out = {}
    for level, table in data.items():
        if level not in levels:
            raise ConfigError(f"{src}: [at.{level}]: unknown level; choose one of {list(levels)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{src}: 'at.{level}' must be a table of protocol keys, e.g. [at.{level}] trials = 20")
        out[level] = replaceable(table, keys, f"{src} [at.{level}]")
    return out


def replaceable(table: dict, keys: dict[str, tuple[Any, Any, str]], src: str) -> dict[str, Any]:
    """Keys that replace a file's own (an [at.LEVEL] table, or `run_protocol`'s ``overrides``),
    each checked like the file's; the keys of `FIXED` cannot be replaced."""
    allowed = [k for k in keys if k not in FIXED]
    out = {}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{src}: unknown key '{key}'.{did_you_mean(key, allowed)} Allowed keys: "
                              f"{', '.join(allowed)}")
        out[key] = _check(src, key, value, keys[key])
    return out


def number_list(src: str, key: str, values, lo: float | None = None, hi: float | None = None,
                integer: bool = False) -> list:
    """A non-empty list of numbers (integers) in [lo, hi]."""
    kind = int if integer else (int, float)
    if not values or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{src}: key '{key}' must be a non-empty list of {'integers' if integer else 'numbers'}, "
                          f"got {values!r}")
    bad = [v for v in values if (lo is not None and v < lo) or (hi is not None and v > hi)]
    if bad:
        raise ConfigError(f"{src}: key '{key}' has values {bad} outside [{lo}, {hi}]")
    return [int(v) if integer else float(v) for v in values]


def read_protocol_data(path: str | Path) -> dict:
    """The raw TOML of a protocol file (a ConfigError naming it when missing or invalid)."""
    return read_toml_file(path, "protocol", "protocols/apical_lesion.toml")
