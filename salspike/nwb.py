"""Export a run to NWB (Neurodata Without Borders, via pynwb) and read it back.

What goes where in the file:

* spike trains: the ``units`` table, one unit per neuron, with the columns ``population``
  (``h1``, ``hbar2``, ...), ``neuron`` (the index in its population) and ``polarity`` (0 for
  an unsigned population; a signed ON/OFF pair of the spike level has two units per neuron,
  +1 ON and -1 OFF);
* population rates, currents, potentials: `TimeSeries` in the processing module ``activity``
  (data time x neurons, with their unit);
* weight snapshots: `TimeSeries` in the processing module ``weights``, one per synapse group,
  data snapshot x n_post x n_pre (dimensionless), the snapshot times as timestamps;
* the stimulus/protocol timing: the ``trials`` table (start, stop, a ``condition`` column and
  any further columns the trials carry, e.g. ``window_start`` in s),
  and stimuli (input rows) as `TimeSeries` under ``stimulus``.

Times are in seconds, as NWB requires.  `read_nwb` returns the same structure as `write_nwb`
takes, so a round trip is the test of an export.
"""

from __future__ import annotations

import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .results import atomic_write_path

__all__ = ["write_nwb", "read_nwb"]


def _pynwb():
    try:
        import pynwb
    except ImportError:  # pragma: no cover - a core dependency
        raise ConfigError("NWB export needs pynwb, a dependency of salspike: pip install pynwb") from None
    return pynwb


def _series(pynwb, name, times, data, unit, description=""):
    times = np.asarray(times, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    if data.shape[0] != times.shape[0]:
        raise ConfigError(f"NWB series {name!r}: {data.shape[0]} samples but {times.shape[0]} times")
    return pynwb.TimeSeries(name=name, data=data, unit=unit or "n.a.", timestamps=times, description=description
                            or "no description")


def _column(key: str) -> str:
    return key[:-2] if key.endswith("_s") else key


def write_nwb(path, *, spikes: dict[str, list] | None = None, series: dict[str, tuple] | None = None,
              weights: dict[str, tuple] | None = None, trials: list[dict] | None = None,
              stimuli: dict[str, tuple] | None = None, description: str = "salspike run",
              session_id: str = "", notes: str = "") -> Path:
    """Write an NWB file atomically.

    ``spikes``: population -> list (one entry per neuron) of spike-time arrays in s, or, for a
    signed ON/OFF population, ``{"on": list, "off": list}``;
    ``series``: name -> (times s, data (T, n), unit[, description]) (rates in Hz, currents in A, ...);
    ``weights``: group -> (snapshot times s, data (S, n_post, n_pre));
    ``trials``: dicts with ``start_s``, ``stop_s``, ``condition`` (str) and optional further keys
    (the same in every trial; ``*_s`` keys are times in s, stored without the suffix);
    ``stimuli``: name -> (times s, data (T, n), unit)."""
    pynwb = _pynwb()
    nwb = pynwb.NWBFile(session_description=description, identifier=str(uuid.uuid4()),
                        session_start_time=datetime.now(timezone.utc), session_id=session_id or None,
                        notes=notes or None, source_script="salspike", source_script_file_name="salspike.nwb")
    if spikes:
        nwb.add_unit_column("population", "population of the circuit (h{k} upstream, hbar{k} downstream)")
        nwb.add_unit_column("neuron", "index of the neuron in its population")
        nwb.add_unit_column("polarity", "0: unsigned population; +1 ON, -1 OFF unit of a signed ON/OFF pair")
        for pop, trains in spikes.items():
            if isinstance(trains, dict):
                if set(trains) != {"on", "off"} or len(trains["on"]) != len(trains["off"]):
                    raise ConfigError(f"NWB spikes of {pop}: a signed population is {{'on': [...], 'off': [...]}} "
                                      "with one train per neuron in each")
                parts = [(trains["on"], 1), (trains["off"], -1)]
            else:
                parts = [(trains, 0)]
            for part, polarity in parts:
                for i, t in enumerate(part):
                    t = np.sort(np.asarray(t, dtype=np.float64).ravel())
                    if t.size and not np.all(np.isfinite(t)):
                        raise ConfigError(f"NWB spikes of {pop}[{i}]: spike times must be finite (s)")
                    nwb.add_unit(spike_times=t, population=pop, neuron=i, polarity=polarity)
    if series:
        mod = nwb.create_processing_module("activity", "population rates, currents and potentials")
        for name, (times, data, unit, *desc) in series.items():
            mod.add(_series(pynwb, name, times, data, unit, desc[0] if desc else ""))
    if weights:
        mod = nwb.create_processing_module("weights", "weight snapshots per synapse group (n_post x n_pre)")
        for name, (times, data) in weights.items():
            data = np.asarray(data, dtype=np.float64)
            if data.ndim != 3:
                raise ConfigError(f"NWB weights {name!r}: expected (snapshots, n_post, n_pre), got shape {data.shape}")
            mod.add(_series(pynwb, name, times, data, "dimensionless", f"synapse group {name}, post x pre"))
    if stimuli:
        for name, (times, data, unit) in stimuli.items():
            nwb.add_stimulus(_series(pynwb, name, times, data, unit, "stimulus (input rows)"))
    if trials:
        nwb.add_trial_column("condition", "protocol condition of the trial")
        extra = [k for k in trials[0] if k not in ("start_s", "stop_s", "condition")]
        for k in extra:
            nwb.add_trial_column(_column(k), f"{k[:-2]} (s)" if k.endswith("_s") else k)
        for tr in trials:
            if not tr["stop_s"] >= tr["start_s"]:
                raise ConfigError(f"NWB trial {tr}: stop_s must be >= start_s")
            if sorted(k for k in tr if k not in ("start_s", "stop_s", "condition")) != sorted(extra):
                raise ConfigError(f"NWB trial {tr}: every trial needs the keys {sorted(extra)}")
            nwb.add_trial(start_time=float(tr["start_s"]), stop_time=float(tr["stop_s"]),
                          condition=str(tr.get("condition", "")), **{_column(k): tr[k] for k in extra})

    def produce(tmp):
        with warnings.catch_warnings():  # the temporary name does not end in .nwb; the final one does
            warnings.filterwarnings("ignore", message="The file path provided", category=UserWarning)
            with pynwb.NWBHDF5IO(tmp, "w") as io:
                io.write(nwb)

    atomic_write_path(path, produce)
    return Path(path)


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def read_nwb(path) -> dict[str, Any]:
    """The contents of a file written by `write_nwb`, in the structure it takes (plus
    ``description``)."""
    pynwb = _pynwb()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"NWB file {p} does not exist")
    out: dict[str, Any] = {"spikes": {}, "series": {}, "weights": {}, "trials": [], "stimuli": {}}
    with pynwb.NWBHDF5IO(str(p), "r") as io:
        nwb = io.read()
        out["description"] = nwb.session_description
        if nwb.units is not None:
            pops = nwb.units["population"][:]
            neurons = nwb.units["neuron"][:]
            cols = nwb.units.colnames
            polarity = nwb.units["polarity"][:] if "polarity" in cols else np.zeros(len(nwb.units), dtype=int)
            for i in range(len(nwb.units)):
                trains = out["spikes"].setdefault(str(pops[i]), {})
                trains[(int(polarity[i]), int(neurons[i]))] = np.asarray(nwb.units["spike_times"][i], dtype=np.float64)
            spikes = {}
            for pop, d in out["spikes"].items():
                def part(p, d=d):
                    return [d[key] for key in sorted(key for key in d if key[0] == p)]
                spikes[pop] = part(0) if all(key[0] == 0 for key in d) else {"on": part(1), "off": part(-1)}
            out["spikes"] = spikes
        for mod_name, key in (("activity", "series"), ("weights", "weights")):
            if mod_name in nwb.processing:
                for name, ts in nwb.processing[mod_name].data_interfaces.items():
                    t, data = np.asarray(ts.timestamps[:]), np.asarray(ts.data[:])
                    out[key][name] = (t, data, ts.unit) if key == "series" else (t, data)
        for name, ts in nwb.stimulus.items():
            out["stimuli"][name] = (np.asarray(ts.timestamps[:]), np.asarray(ts.data[:]), ts.unit)
        if nwb.trials is not None:
            tr = nwb.trials
            extra = [c for c in tr.colnames if c not in ("start_time", "stop_time", "condition")]
            out["trials"] = [{"start_s": float(tr["start_time"][i]), "stop_s": float(tr["stop_time"][i]),
                              "condition": str(tr["condition"][i]),
                              **{f"{c}_s" if c.endswith("start") or c.endswith("stop") else c: _plain(tr[c][i])
                                 for c in extra}} for i in range(len(tr))]
    return out
