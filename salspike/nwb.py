"""Export a run to NWB (Neurodata Without Borders, via pynwb) and read it back.

What goes where in the file:

* spike trains: the ``units`` table, one unit per neuron, with the columns ``population``
  (``h1``, ``hbar2``, ...) and ``neuron`` (the index in its population);
* population rates, currents, potentials: `TimeSeries` in the processing module ``activity``
  (data time x neurons, with their unit);
* weight snapshots: `TimeSeries` in the processing module ``weights``, one per synapse group,
  data snapshot x n_post x n_pre (dimensionless), the snapshot times as timestamps;
* the stimulus/protocol timing: the ``trials`` table (start, stop and a ``condition`` column),
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


def write_nwb(path, *, spikes: dict[str, list] | None = None, series: dict[str, tuple] | None = None,
              weights: dict[str, tuple] | None = None, trials: list[dict] | None = None,
              stimuli: dict[str, tuple] | None = None, description: str = "salspike run",
              session_id: str = "", notes: str = "") -> Path:
    """Write an NWB file atomically.

    ``spikes``: population -> list (one entry per neuron) of spike-time arrays in s;
    ``series``: name -> (times s, data (T, n), unit[, description]) (rates in Hz, currents in A, ...);
    ``weights``: group -> (snapshot times s, data (S, n_post, n_pre));
    ``trials``: dicts with ``start_s``, ``stop_s`` and ``condition`` (str);
    ``stimuli``: name -> (times s, data (T, n), unit)."""
    pynwb = _pynwb()
    nwb = pynwb.NWBFile(session_description=description, identifier=str(uuid.uuid4()),
                        session_start_time=datetime.now(timezone.utc), session_id=session_id or None,
                        notes=notes or None, source_script="salspike", source_script_file_name="salspike.nwb")
    if spikes:
        nwb.add_unit_column("population", "population of the circuit (h{k} upstream, hbar{k} downstream)")
        nwb.add_unit_column("neuron", "index of the neuron in its population")
        for pop, trains in spikes.items():
            for i, t in enumerate(trains):
                t = np.sort(np.asarray(t, dtype=np.float64).ravel())
                if t.size and not np.all(np.isfinite(t)):
                    raise ConfigError(f"NWB spikes of {pop}[{i}]: spike times must be finite (s)")
                nwb.add_unit(spike_times=t, population=pop, neuron=i)
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
        for tr in trials:
            if not tr["stop_s"] >= tr["start_s"]:
                raise ConfigError(f"NWB trial {tr}: stop_s must be >= start_s")
            nwb.add_trial(start_time=float(tr["start_s"]), stop_time=float(tr["stop_s"]),
                          condition=str(tr.get("condition", "")))

    def produce(tmp):
        with warnings.catch_warnings():  # the temporary name does not end in .nwb; the final one does
            warnings.filterwarnings("ignore", message="The file path provided", category=UserWarning)
            with pynwb.NWBHDF5IO(tmp, "w") as io:
                io.write(nwb)

    atomic_write_path(path, produce)
    return Path(path)


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
            for i in range(len(nwb.units)):
                trains = out["spikes"].setdefault(str(pops[i]), {})
                trains[int(neurons[i])] = np.asarray(nwb.units["spike_times"][i], dtype=np.float64)
            out["spikes"] = {pop: [d[i] for i in sorted(d)] for pop, d in out["spikes"].items()}
        for mod_name, key in (("activity", "series"), ("weights", "weights")):
            if mod_name in nwb.processing:
                for name, ts in nwb.processing[mod_name].data_interfaces.items():
                    t, data = np.asarray(ts.timestamps[:]), np.asarray(ts.data[:])
                    out[key][name] = (t, data, ts.unit) if key == "series" else (t, data)
        for name, ts in nwb.stimulus.items():
            out["stimuli"][name] = (np.asarray(ts.timestamps[:]), np.asarray(ts.data[:]), ts.unit)
        if nwb.trials is not None:
            tr = nwb.trials
            out["trials"] = [{"start_s": float(tr["start_time"][i]), "stop_s": float(tr["stop_time"][i]),
                              "condition": str(tr["condition"][i])} for i in range(len(tr))]
    return out
