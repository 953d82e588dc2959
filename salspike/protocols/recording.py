"""Spike trains of a spike-level protocol run, on one timeline, written to NWB beside its table.

At the spike level the protocol engine wraps every level a kind opens (`Session.level`) in a
`RecordedLevel`: it records the spike trains of every population (``level.record(pop,
"spikes")``) and, after each ``step``/``predict``/``activities``, keeps them with the trials'
timing, the condition the kind named and the window spike counts the level itself returned (its
count monitors, ON - OFF for signed pairs).  The runs of successive levels are laid end to end
on one clock (a run starts where the previous one ended), so one NWB file holds the protocol:

* ``units``: one unit per neuron (and per polarity for the signed ON/OFF pairs: ``polarity``
  +1 ON, -1 OFF, 0 unsigned) with ``population`` and ``neuron``;
* ``trials``: each trial's start and stop, ``window_start`` (the plasticity and read-out window
  after ``spike.t_settle``), ``condition`` (the kind's label | the call: step, predict, activities);
* processing module ``activity``: ``<population>.window_counts``, the window's ON - OFF spike
  counts per trial and neuron as the run measured them (timestamps: the windows' starts).

A test recounts the units' spikes in each window and finds the run's counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..circuit import Circuit, circuit_layout

__all__ = ["SpikeRecorder", "RecordedLevel"]

#: roles of the signed ON/OFF pairs
SIGNED = ("output", "downstream", "error")


class SpikeRecorder:
    """Collects the recorded runs of a protocol (see the module docstring)."""

    def __init__(self, circuit: Circuit):
        self.circuit = circuit
        self.layout = circuit_layout(circuit)
        self.t_total = 0.0  # ms of the protocol's clock used so far
        self.runs: list[dict] = []

    def wrap(self, level, condition: str) -> "RecordedLevel":
        return RecordedLevel(level, self, condition)

    def add(self, condition: str, call: str, n: int, shift_ms: float, recordings: dict, counts: dict,
            settle_ms: float, trial_ms: float) -> None:
        t0 = self.t_total
        self.runs.append({"condition": condition, "call": call, "t0_ms": t0, "n": int(n), "shift_ms": shift_ms,
                          "recordings": recordings, "counts": counts, "settle_ms": settle_ms, "trial_ms": trial_ms})
        self.t_total += n * trial_ms

    # -------------------------------------------------------------- to NWB
    def nwb_content(self) -> dict:
        """The arguments of `salspike.nwb.write_nwb` (times in s)."""
        spikes: dict = {}
        for name, pop in self.layout.populations.items():
            signed = pop.role in SIGNED
            on = [[] for _ in range(pop.width)]
            off = [[] for _ in range(pop.width)]
            for run in self.runs:
                r = run["recordings"].get(name)
                if r is None:
                    continue
                t = (np.asarray(r["t"], dtype=np.float64) + run["shift_ms"]) * 1e-3
                i = np.asarray(r["i"], dtype=int)
                sign = np.asarray(r.get("sign", np.ones_like(t)))
                for k in range(pop.width):
                    on[k].append(t[(i == k) & (sign > 0)])
                    off[k].append(t[(i == k) & (sign < 0)])
            on = [np.concatenate(v) if v else np.zeros(0) for v in on]
            off = [np.concatenate(v) if v else np.zeros(0) for v in off]
            spikes[name] = {"on": on, "off": off} if signed else on
        trials, series = [], {}
        for run in self.runs:
            for m in range(run["n"]):
                start = run["t0_ms"] + m * run["trial_ms"]
                trials.append({"start_s": start * 1e-3, "stop_s": (start + run["trial_ms"]) * 1e-3,
                               "window_start_s": (start + run["settle_ms"]) * 1e-3,
                               "condition": f"{run['condition']} | {run['call']}"})
        for name in self.layout.populations:
            times, data = [], []
            for run in self.runs:
                c = run["counts"].get(name)
                if c is None:
                    continue
                times.append(run["t0_ms"] + run["settle_ms"] + np.arange(run["n"]) * run["trial_ms"])
                data.append(c)
            if times:
                series[f"{name}.window_counts"] = (np.concatenate(times) * 1e-3, np.concatenate(data), "spikes",
                                                   f"ON - OFF spike counts of {name} in each trial's window, "
                                                   "as the run measured them (count monitors)")
        return {"spikes": spikes, "trials": trials, "series": series}

    def write(self, path: str | Path, description: str) -> Path:
        from ..nwb import write_nwb

        c = self.circuit
        notes = (f"spike level; trial (unless the protocol sets its own) = spike.t_settle {c['spike.t_settle']} ms + spike.t_window "
                 f"{c['spike.t_window']} ms; spike.rate_scale {c['spike.rate_scale']} Hz per unit; "
                 f"spike.tau_s {c['spike.tau_s']} ms; spike.delay {c['spike.delay']} ms; spike.dt {c['spike.dt']} ms")
        return write_nwb(path, description=description, notes=notes, **self.nwb_content())


class RecordedLevel:
    """A level whose runs are recorded into a `SpikeRecorder` (everything else is the level's)."""

    def __init__(self, level, recorder: SpikeRecorder, condition: str):
        self._lv, self._rec, self._cond = level, recorder, condition
        self._elapsed = 0.0  # ms this level has run
        self._keys = {name: level.record(name, "spikes") for name in recorder.layout.populations}
        # the sign a signed pair's spike carries is set in its reset, after the spike monitor has read
        # it (it records the previous spike's sign): read it from the state at each step's end instead
        self._sgn = {name: level.record(name, "sgn") for name, pop in recorder.layout.populations.items()
                     if pop.role in SIGNED}

    def __getattr__(self, name):
        return getattr(self._lv, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._lv.close()

    def _collect(self, call: str, n: int, acts: dict) -> None:
        c = self._lv.circuit  # a kind may run its own trial clock (e.g. short trials as time bins)
        settle, trial = float(c["spike.t_settle"]), float(c["spike.t_settle"]) + float(c["spike.t_window"])
        per = c["spike.rate_scale"] * c["spike.t_window"] * 1e-3
        recs = {pop: {f: np.asarray(v) for f, v in self._lv.recordings.get(key, {}).items()}
                for pop, key in self._keys.items()}
        dt = c["spike.dt"]
        for pop, key in self._sgn.items():
            r, s = recs[pop], self._lv.recordings.get(key)
            if s is None or not len(r.get("t", ())):
                continue
            steps = np.rint(np.asarray(s["t"]) / dt).astype(int)
            row = np.searchsorted(steps, np.rint(r["t"] / dt).astype(int))
            r["sign"] = np.asarray(s["values"])[np.minimum(row, len(steps) - 1), r["i"].astype(int)]
        counts = {pop: np.rint(np.asarray(a, dtype=np.float64) * per) for pop, a in acts.items()}
        # the level's recordings run on its own clock (which started at 0): move them to the protocol's
        self._rec.add(self._cond, call, n, self._rec.t_total - self._elapsed, recs, counts, settle, trial)
        self._elapsed += n * trial

    def step(self, x, y, online: bool = False):
        acts = self._lv.step(x, y, online=online)
        self._collect("step", np.asarray(x).shape[0], acts)
        return acts

    def predict(self, x):
        out = self._lv.predict(x)
        self._collect("predict", np.asarray(x).shape[0], {f"h{self._rec.layout.K}": out})
        return out

    def activities(self, x, y):
        acts = self._lv.activities(x, y)
        self._collect("activities", np.asarray(x).shape[0], acts)
        return acts
