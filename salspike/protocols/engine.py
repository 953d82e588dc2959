"""The protocol engine: a protocol file runs its conditions on one level through
`salspike.levels.make_level` and the hook API, and writes a table, a figure and the provenance.

A protocol kind is a class registered with `register_protocol` (as a level is with
``register_level``).  It declares ``LEVELS`` (where it is meaningful), ``KEYS`` (its own file keys,
besides `schema.COMMON`), ``COLUMNS`` (the table's columns with their units) and implements
``run(session) -> (rows, meta)`` and ``plot(fig, table)``.  The engine never touches an engine
(numpy or Brian2) itself: a `Session` builds levels with `make_level` and hands them to the kind.

Written into ``--out`` (a `salspike.results.RunDir`, locked while it runs, every file atomic):
``protocol.toml`` (the file as run), ``model.toml`` (the resolved model), ``<name>.csv`` and
``<name>.json`` (rows; the JSON adds the units of every column and the meta data), the figure
``<name>.pdf/.svg/.png`` and ``summary.json`` (provenance: commit, versions, command line); at
the spike level also ``<name>.nwb``: the spike trains of every population in every run of the
protocol, with the trials' timing and conditions (`salspike.protocols.recording`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import console
from ..circuit import Circuit, circuit_layout, init_weights
from ..circuit.schema import SCHEMA, did_you_mean, flatten_tables
from ..errors import ConfigError
from ..plotting import FORMATS, pyplot, save_figure, stamp
from ..resources import bundled, bundled_path, resolve
from ..results import RunDir, atomic_write_text, provenance, to_jsonable
from ..rasters import spike_rasters
from ..sketch import draw_sketch, sketch_data
from . import schema
from .hooklog import HookLog

__all__ = ["Protocol", "PROTOCOLS", "register_protocol", "load_protocol", "run_protocol", "Session",
           "list_protocols", "figure_from_folder", "LEVEL_NAMES", "correlation"]

LEVEL_NAMES = ("matrix", "rate", "spike")
#: kind name -> Protocol subclass, filled by `register_protocol`
PROTOCOLS: dict[str, type["Protocol"]] = {}


def register_protocol(name: str):
    """Class decorator: register a protocol kind under ``name``."""
    def deco(cls):
        cls.name = name
        PROTOCOLS[name] = cls
        return cls
    return deco


class Protocol:
    """A protocol kind (see the module docstring)."""

    name = "?"
    #: one line for `salspike protocol list`
    SUMMARY = ""
    #: levels where the kind is meaningful (a file may list fewer)
    LEVELS: tuple[str, ...] = ("matrix", "rate")
    #: why the other levels are refused (a clause for the one-line error), e.g. "it needs spike timing"
    LEVELS_WHY = ""
    #: the kind's own keys: key -> (types, default (None: required), doc)
    KEYS: dict[str, tuple[Any, Any, str]] = {}
    #: the figure's size in inches (width, height)
    FIGSIZE = (7.2, 3.0)
    #: table columns -> unit ("" dimensionless, "-" a label)
    COLUMNS: dict[str, str] = {}
    #: what the table is computed from, for the protocol sketch: population names or roles (input,
    #: upstream, output, downstream, error), groups (W, Wbar, V, Vbar) or single groups (W0)
    READS: tuple[str, ...] = ()

    def __init__(self, params: dict[str, Any]):
        self.p = params

    @classmethod
    def check(cls, p: dict[str, Any], src: str) -> None:
        """Further checks of the kind's keys (ConfigError naming the key)."""

    @classmethod
    def check_circuit(cls, p: dict[str, Any], circuit: Circuit) -> Any:
        """Checks of the file against the resolved model, run before the results folder is created."""

    def run(self, s: "Session") -> tuple[list[dict], dict]:
        raise NotImplementedError

    def reads(self) -> tuple[str, ...]:
        """`READS` (a kind whose read-out depends on its keys overrides this)."""
        return self.READS

    @staticmethod
    def plot(fig, table: dict) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------- loading


def _kinds() -> dict[str, type[Protocol]]:
    from . import btsp, development, learning, modulation, synaptic, timing  # noqa: F401  (register the kinds)

    return PROTOCOLS


def load_protocol(path: str | Path) -> dict[str, Any]:
    """Read and validate a protocol file: every key with its value or default, plus ``source``.
    The pairing window keeps its own schema (`salspike.protocols.pairing`)."""
    src = str(path)
    data = schema.read_protocol_data(path)
    kind = data.get("protocol")
    kinds = _kinds()
    if kind == "pairing_window":
        from .pairing import load_protocol as load_pairing

        return load_pairing(path)
    if not isinstance(kind, str) or kind not in kinds:
        raise ConfigError(f"{src}: key 'protocol' = {kind!r} is not allowed; choose one of "
                          f"{sorted([*kinds, 'pairing_window'])}")
    cls = kinds[kind]
    keys = {**schema.COMMON, **cls.KEYS}
    p = schema.validate(data, keys, src)
    bad = [lv for lv in p["levels"] if lv not in cls.LEVELS]
    if not p["levels"] or bad:
        why = f" ({cls.LEVELS_WHY})" if cls.LEVELS_WHY else ""
        raise ConfigError(f"{src}: key 'levels' = {p['levels']!r}: protocol {kind} is meaningful at "
                          f"{list(cls.LEVELS)} only{why}")
    p["at"] = schema.level_overrides(p["at"], keys, LEVEL_NAMES, src)
    for level, over in p["at"].items():  # each level's version must be valid as a whole
        _finish(cls, _at_level(p, over), src)
    _finish(cls, p, src)
    p["source"] = src
    return p


def _at_level(p: dict, over: dict) -> dict:
    """The protocol as run at one level: its [at.LEVEL] keys replace the file's; model keys of
    [at.LEVEL.set] are added to (or replace single keys of) the file's [set]."""
    merged = {**p, **over, "at": {}}
    merged["set"] = {**flatten_tables(p["set"]), **flatten_tables(over.get("set", {}))}
    return merged


def _finish(cls, p: dict, src: str) -> None:
    """The checks of the common keys that need more than a type, then the kind's own."""
    p["seeds"] = schema.number_list(src, "seeds", p["seeds"], lo=0, integer=True)
    for key in flatten_tables(p["set"]):
        if key not in SCHEMA:
            raise ConfigError(f"{src} [set]: unknown key '{key}'.{did_you_mean(key)} `salspike model show` lists "
                              "every model key")
    if p["trials"] < 1:
        raise ConfigError(f"{src}: key 'trials' must be positive, got {p['trials']}")
    cls.check(p, src)


def protocol_levels(p: dict) -> list[str]:
    return ["spike"] if p["protocol"] == "pairing_window" else list(p["levels"])


def list_protocols() -> list[tuple[str, str, list[str], str]]:
    """(name, kind, levels, description) of every bundled protocol."""
    out = []
    for name in bundled("protocol"):
        p = load_protocol(bundled_path("protocol", name))
        out.append((name, p["protocol"], protocol_levels(p), p["description"]))
    return out


# ----------------------------------------------------------------- a run


@dataclasses.dataclass
class Session:
    """What a protocol kind uses to run its conditions on one level.

    ``circuit(seed)``: the protocol's model with its [set] overrides and ``seed``;
    ``level(seed, weights, condition)``: `make_level` of that circuit (initial weights by default;
    at the spike level seeded with ``seed`` and, when the session records, wrapped so that its
    spike trains go to the protocol's NWB file under the label ``condition``);
    ``task(seed, n)``: n trials (x, y) of a seeded linear teacher, x_i ~ N(0, 1/d_0), y = T x, T_ij ~ N(0, 1)
    (at the spike level, where inputs are rates, x_i ~ |N(0, 1/d_0)|);
    ``train(level, x, y)``: one update per trial (online, the mode every level shares)."""

    level_name: str
    base: Circuit
    options: dict
    params: dict
    recorder: Any = None
    hooklog: Any = None

    def circuit(self, seed: int) -> Circuit:
        return self.base.with_overrides({"seed": int(seed)}, source=self.params["source"])

    def level(self, seed: int, weights: dict | None = None, condition: str = ""):
        from ..levels import make_level

        c = self.circuit(seed)
        w = init_weights(c) if weights is None else weights
        options = dict(self.options)
        if self.level_name == "spike":
            options["seed"] = int(seed)  # the same seed: the same spike trains where the hooks allow
        lv = make_level(self.level_name, c, {k: np.array(v, dtype=np.float64) for k, v in w.items()}, **options)
        if self.recorder is not None:
            lv = self.recorder.wrap(lv, f"seed {seed}" + (f", {condition}" if condition else ""))
        return self.hooklog.wrap(lv, condition) if self.hooklog is not None else lv

    def task(self, seed: int, n: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
        d = self.base.widths
        teacher = np.random.default_rng([int(seed), 7]).standard_normal((d[-1], d[0]))
        x = np.random.default_rng([int(seed), 11, stream]).standard_normal((n, d[0])) / np.sqrt(d[0])
        if self.rates:
            x = np.abs(x)
        return x, x @ teacher.T

    @property
    def rates(self) -> bool:
        """True when the session's level encodes inputs as firing rates (every input >= 0)."""
        from ..levels import get_level

        return get_level(self.level_name).INPUTS_ARE_RATES

    @staticmethod
    def train(level, x, y) -> dict[str, np.ndarray]:
        return level.step(x, y, online=True)

    def snapshots(self, level, x, y, trials: int, every: int):
        """Yield t = 0, every, 2 every, ..., trials (the trials learned so far), learning the rows
        x[t:t + every] online between two yields: the caller measures the circuit at each t."""
        t = 0
        while True:
            yield t
            if t >= trials:
                return
            n = min(every, trials - t)
            self.train(level, x[t:t + n], y[t:t + n])
            t += n


def _circuit(p: dict, model: str | None) -> Circuit:
    path = resolve("model", model or p["model"])
    c = Circuit.load(path)
    if p["set"]:
        c = c.with_overrides(flatten_tables(p["set"]), source=f"{p['source']} [set]")
    if not c.resolved:
        raise ConfigError(f"{p['source']}: model {path} leaves its widths 'auto'; set input_width and output_width "
                          "in [set] or use a model with fixed widths (e.g. small_circuit)")
    return c


def _check_level(p: dict, level: str) -> None:
    if level not in LEVEL_NAMES:
        raise ConfigError(f"unknown level {level!r}; choose one of {list(LEVEL_NAMES)}")
    allowed = protocol_levels(p)
    if level not in allowed:
        reason = "it needs spike timing" if p["protocol"] == "pairing_window" else PROTOCOLS[p["protocol"]].LEVELS_WHY
        why = f" ({reason})" if reason else ""
        raise ConfigError(f"{p['source']}: protocol {p['protocol']} is meaningful at the {', '.join(allowed)} "
                          f"level{'s' if len(allowed) > 1 else ''} only{why}; run it with --level {allowed[0]}")


def run_protocol(name_or_path: str | Path, level: str, out: str | Path, *, device: str | None = None,
                 model: str | None = None, seeds: list[int] | None = None,
                 overrides: dict[str, Any] | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a protocol file (or bundled name) at one level and write its results folder ``out``.

    ``overrides``: protocol keys that replace the file's (and its ``[at.LEVEL]`` table's) for this
    run, checked like the file's, e.g. ``{"trials": 3, "areas": [2]}``; its ``set`` adds model keys
    to the file's ``[set]`` (``{"set": {"spike.t_window": 60.0}}``).  They are recorded in
    ``summary.json``.  Returns ``table`` (text), ``rows``, ``meta``, ``files``."""
    path = resolve("protocol", name_or_path)
    p = load_protocol(path)
    _check_level(p, level)
    over = p.get("at", {}).get(level, {})
    if over:  # the [at.LEVEL] table (validated with the file)
        p = _at_level(p, over)
        PROTOCOLS[p["protocol"]].check(p, p["source"])
    if overrides:
        if p["protocol"] == "pairing_window":
            raise ConfigError(f"{path}: the pairing window takes no overrides; edit a copy of its file")
        kind_cls, src = PROTOCOLS[p["protocol"]], f"{p['source']} overrides"
        p = _at_level(p, schema.replaceable(overrides, {**schema.COMMON, **kind_cls.KEYS}, src))
        _finish(kind_cls, p, src)
        p["source"] = src  # the protocol as run: what later messages name
    if level == "matrix" and device is not None:
        raise ConfigError("--device applies to the Brian2 levels only (rate, spike); drop it at the matrix level")
    if p["protocol"] == "pairing_window":
        from .pairing import run_pairing_file

        circuit = Circuit.load(resolve("model", model or "small_circuit"))
        return run_pairing_file(path, circuit, Path(out), device=device or "runtime", levels=[level])
    if seeds is not None:
        p["seeds"] = schema.number_list("--seeds", "seeds", list(seeds), lo=0, integer=True)
    if (Path(out) / RunDir.SUMMARY).is_file():
        raise ConfigError(f"--out {out} already holds a finished run: pick another folder (or delete it)")
    circuit = _circuit(p, model)
    options = {} if level == "matrix" else {"device": device or circuit["rate.device"]}
    PROTOCOLS[p["protocol"]].check_circuit(p, circuit)
    kind = PROTOCOLS[p["protocol"]](p)
    name = path.stem
    recorder = None
    if level == "spike" and getattr(kind, "RECORD_SPIKES", True):
        from .recording import SpikeRecorder

        recorder = SpikeRecorder(circuit)
    with RunDir(out) as run:
        atomic_write_text(run.file("protocol.toml"), path.read_text())
        atomic_write_text(run.file("model.toml"), circuit.to_toml())
        console.note(f"protocol {name}: {p['protocol']} at the {level} level, seeds {p['seeds']}")
        hooklog = HookLog()
        rows, meta = kind.run(Session(level, circuit, options, p, recorder, hooklog))
        prov = provenance()
        table = {"protocol": name, "kind": p["protocol"], "level": level, "model": circuit["name"],
                 "seeds": p["seeds"], "columns": dict(kind.COLUMNS), "rows": rows, "meta": meta,
                 "commit": prov["git_commit"],
                 "sketch": sketch_data(circuit_layout(circuit), hooklog.summary(), kind.reads())}
        files = [_write_csv(run.file(f"{name}.csv"), rows, kind.COLUMNS)]
        files.append(run.write_json(name, table))
        files += write_figure(table, Path(run.file(name)))
        if recorder is not None and recorder.runs:
            files.append(str(recorder.write(run.file(f"{name}.nwb"),
                                            f"salspike protocol {name} ({p['protocol']}) at the spike level, "
                                            f"model {circuit['name']}, seeds {p['seeds']}")))
            files += spike_rasters(Path(files[-1]).parent, table)
        run.finish({"protocol": name, "kind": p["protocol"], "level": level, "files": [Path(f).name for f in files],
                    "overrides": to_jsonable(overrides or {}), "provenance": prov})
    text = format_table(table)
    if log:
        log(text)
    return {"table": text, "rows": rows, "meta": meta, "files": [str(f) for f in files]}


def _write_csv(path: str, rows: list[dict], columns: dict[str, str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    w.writeheader()
    w.writerows(to_jsonable(rows))
    atomic_write_text(path, buf.getvalue())
    return path


def format_table(table: dict) -> str:
    cols = list(table["columns"])
    head = [f"{c} [{u}]" if u and u != "-" else c for c, u in table["columns"].items()]
    cells = [[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols] for r in table["rows"]]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(head)]
    lines = [f"{table['protocol']} ({table['kind']}, {table['level']} level, model {table['model']})",
             "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def write_figure(table: dict, stem: Path) -> list[Path]:
    """The kind's figure of a table (as written in ``<name>.json``), stamped, in `FORMATS`; with the
    protocol sketch (`salspike.sketch`) as a panel on the left where the table has one."""
    plt = pyplot()
    kind = _kinds().get(table["kind"])
    if kind is None:
        raise ConfigError(f"{stem}: unknown protocol kind {table['kind']!r}; this salspike knows "
                          f"{sorted(PROTOCOLS)}")
    sketch = table.get("sketch")
    width, height = kind.FIGSIZE
    fig = plt.figure(figsize=(width + 2.4 if sketch else width, height), constrained_layout=True)
    try:
        panel = fig
        if sketch:
            left, panel = fig.subfigures(1, 2, width_ratios=(2.4, width))
            draw_sketch(left.subplots(), sketch, title=f"{table['protocol']}: the circuit")
        kind.plot(panel, table)
        stamp(fig, f"{table['model']} ({table['level']} level)", table["seeds"], table.get("commit", ""))
        # about the same pixels whatever the width (a wide figure at full dpi is a large PNG)
        return save_figure(fig, stem, FORMATS, dpi=int(130 * 9.6 / (width + 2.4)) if sketch else int(150 * 7.2 / width))
    finally:
        plt.close(fig)


def figure_from_folder(folder: str | Path) -> list[Path]:
    """Regenerate the figure of a protocol results folder from its table (``<name>.json``)."""
    folder = Path(folder)
    summary = folder / RunDir.SUMMARY
    if not summary.is_file():
        raise ConfigError(f"{folder} holds no finished protocol run ({RunDir.SUMMARY} missing)")
    name = json.loads(summary.read_text())["protocol"]
    table = json.loads((folder / f"{name}.json").read_text())
    return write_figure(table, folder / name) + spike_rasters(folder, table)


def group_stats(rows: list[dict], by: tuple[str, ...], column: str) -> dict[tuple, tuple[float, float, int]]:
    """(mean, sample sd, n) of ``column`` over the rows sharing the values of ``by`` (e.g. over seeds);
    NaN (JSON null) values are left out."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        v = r[column]
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            continue
        groups.setdefault(tuple(r[b] for b in by), []).append(float(v))
    out = {}
    for key, vals in groups.items():
        a = np.asarray(vals)
        out[key] = (float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size))
    return out


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays over their entries (NaN when one of them is constant)."""
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    norm = (a @ a) * (b @ b)
    return float(a @ b / np.sqrt(norm)) if norm > 0 else float("nan")


def relative(value: float, control: float) -> float:
    """value / control, NaN when the control is 0."""
    return float(value / control) if control != 0 else float("nan")
