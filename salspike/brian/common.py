"""Parts of the Brian2 builders that the rate and the spike level share.

* `circuit_layout`: the populations and synapse groups of a `Circuit`, named in the cross-level
  vocabulary (populations ``h0..hK`` upstream, ``hbar1..hbarK`` downstream, ``hbarK`` being the
  error module; synapse groups ``W{k}``, ``Wbar{k}``, ``V{k}``, ``Vbar{k}`` and ``pred``).
* Weight layout: a synapse group is connected with explicit index arrays, so Brian2's ``w``
  array is ordered as given; `dense_indices` orders synapse ``s = pre * n_post + post``, i.e.
  ``w == M.T.ravel()`` for the matrix ``M`` (n_post x n_pre) of the cross-level layout.
  `matrix_to_w` / `w_to_matrix` convert for any (i, j) order (Brian2's ``i`` = presynaptic,
  ``j`` = postsynaptic index, i.e. ``M[j, i] = w``).
* `TrialSchedule`: phases of a trial (forward settle, feedback settle, plasticity window) as
  step counts and the gates of N trials as arrays, fed to TimedArrays so that N trials run in
  ONE ``run()`` with no Python in between.  The plasticity ODEs run on their own clock (every
  step, or once per trial for one-shot updates).
* `Protocol`: the protocol hooks (stimulate, clamp, freeze, lesion, record).
* `NetworkAssembly`: creates NeuronGroups, Synapses, TimedArrays and monitors from model strings,
  keeps handles by name and fixes the schedule inside a time step (`SCHEDULE`).
* `BrianRunner`: runs an assembly on runtime / cpp_standalone / cuda_standalone through
  `salspike.brian.devices`; a standalone project is compiled once (build folders cached under
  ``.salspike_cache/brian/<hash>``) and rerun with new values through ``run_args``.

Scheduling (set explicitly for every object, because Brian2 breaks ties of ``when``/``order``
by object name): in each time step, all monitors read first (``when='start'``), then in the
``groups`` slot every summed-variable updater (order 0..), then every synaptic state updater
(plasticity ODEs, order 1000..), then every neuron state updater (order 2000..).  A step is
therefore a synchronous (Jacobi) update: inputs, weight changes and activity changes all use
the state at the start of the step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..circuit import GROUPS, Circuit
from ..errors import ConfigError, DeviceError, ShapeError
from . import devices

__all__ = [
    "SCHEDULE", "Population", "Projection", "Layout", "circuit_layout", "dense_indices",
    "one_to_one_indices", "matrix_to_w", "w_to_matrix", "TrialSchedule", "RecordingSpec",
    "Protocol", "WeightsAndHooks", "NetworkAssembly", "shared_runner", "BrianRunner", "cache_root", "structure_hash",
]

#: ``when``/``order`` of each kind of object inside one time step (see module docstring).
SCHEDULE = {
    "monitor": ("start", 0),
    "summed": ("groups", 0),
    "synapse_state": ("groups", 1000),
    "neuron_state": ("groups", 2000),
}


# --------------------------------------------------------------------------- layout


@dataclasses.dataclass(frozen=True)
class Population:
    """A population of the circuit: ``h{k}`` (upstream) or ``hbar{k}`` (downstream)."""

    name: str
    stream: str  # "up" or "down"
    layer: int
    width: int
    role: str  # "input", "upstream", "output", "downstream", "error"

    @property
    def brian_name(self) -> str:
        return f"pop_{self.name}"


@dataclasses.dataclass(frozen=True)
class Projection:
    """A synapse group: weight matrix ``shape = (n_post, n_pre)`` in the cross-level layout."""

    name: str  # "W0", "Wbar1", ..., "pred"
    group: str  # "W", "Wbar", "V", "Vbar", "pred"
    layer: int
    pre: str
    post: str
    shape: tuple[int, int]
    target: str  # the summed variable it writes on `post`
    connect: str  # "dense" or "one_to_one" (or "all_to_all" for pred with a loss needing it)
    stored: bool  # part of the weights dict (False: fixed identity / readout)

    @property
    def brian_name(self) -> str:
        return f"syn_{self.name}"


@dataclasses.dataclass(frozen=True)
class Layout:
    K: int
    populations: dict[str, Population]
    projections: dict[str, Projection]

    def population(self, name: str) -> Population:
        if name not in self.populations:
            raise ConfigError(f"unknown population {name!r}; populations: {', '.join(self.populations)} "
                              "(h{k} upstream, hbar{k} downstream, hbarK is the error module)")
        return self.populations[name]

    def projection(self, name: str) -> Projection:
        if name not in self.projections:
            raise ConfigError(f"unknown synapse group {name!r}; groups: {', '.join(self.projections)}")
        return self.projections[name]

    def groups_named(self, name: str) -> list[Projection]:
        """'W' -> every W{k}; 'W1' -> [W1]; the same for Wbar, V, Vbar."""
        if name in GROUPS:
            return [p for p in self.projections.values() if p.group == name]
        return [self.projection(name)]


def circuit_layout(circuit: Circuit, pred_connect: str = "one_to_one") -> Layout:
    """Populations and synapse groups of a circuit (shapes as in `Circuit.shapes`).

    Upstream h0 (input), h1..h{K-1} (hidden), hK (output); downstream hbar1..hbar{K-1}, hbarK
    (the error module, -dF/dy_hat).  W{k}: h{k} -> h{k+1} (I_ff), Vbar{k}: hbar{k+1} -> h{k+1}
    (I_apical; Vbar{K-1} the fixed identity from the error module), Wbar{k}: hbar{k+1} ->
    hbar{k} (I_fb), V{k}: h{k} -> hbar{k} (I_lat), pred: hK -> hbarK (I_pred, the error
    module's view of the output).
    """
    d, db, K = circuit.widths, circuit.downstream_widths, circuit.n_layers
    pops: dict[str, Population] = {}
    for k in range(K + 1):
        role = "input" if k == 0 else ("output" if k == K else "upstream")
        pops[f"h{k}"] = Population(f"h{k}", "up", k, d[k], role)
    for k in range(1, K + 1):
        pops[f"hbar{k}"] = Population(f"hbar{k}", "down", k, db[k], "error" if k == K else "downstream")
    proj: dict[str, Projection] = {}
    for k in range(K):
        proj[f"W{k}"] = Projection(f"W{k}", "W", k, f"h{k}", f"h{k + 1}", (d[k + 1], d[k]), "I_ff", "dense", True)
    for k in range(1, K):
        proj[f"Wbar{k}"] = Projection(f"Wbar{k}", "Wbar", k, f"hbar{k + 1}", f"hbar{k}", (db[k], db[k + 1]),
                                      "I_fb", "dense", True)
        proj[f"V{k}"] = Projection(f"V{k}", "V", k, f"h{k}", f"hbar{k}", (db[k], d[k]), "I_lat", "dense", True)
    for k in range(K):
        fixed = k == K - 1
        proj[f"Vbar{k}"] = Projection(f"Vbar{k}", "Vbar", k, f"hbar{k + 1}", f"h{k + 1}", (d[k + 1], db[k + 1]),
                                      "I_apical", "one_to_one" if fixed else "dense", not fixed)
    proj["pred"] = Projection("pred", "pred", K, f"h{K}", f"hbar{K}", (d[K], d[K]), "I_pred", pred_connect, False)
    return Layout(K, pops, proj)


# --------------------------------------------------------------------------- weights


def dense_indices(n_post: int, n_pre: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of all-to-all synapses, presynaptic-major: synapse ``s = pre * n_post + post``,
    so ``w == M.T.ravel()`` (= ``M.ravel(order="F")``) for M[post, pre].

    Presynaptic-major order makes consecutive synapses of the summed-variable loop add into
    different postsynaptic targets; post-major order (``w == M.ravel()``) chains every add
    on the same target through memory and ran 2-3x slower in cpp_standalone."""
    pre, post = np.divmod(np.arange(n_post * n_pre, dtype=np.int64), n_post)
    return pre.astype(np.int32), post.astype(np.int32)


def one_to_one_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(n, dtype=np.int32)
    return idx, idx.copy()


def connection_indices(proj: Projection) -> tuple[np.ndarray, np.ndarray]:
    n_post, n_pre = proj.shape
    if proj.connect in ("dense", "all_to_all"):
        return dense_indices(n_post, n_pre)
    if proj.connect == "one_to_one":
        if n_post != n_pre:
            raise ShapeError(f"{proj.name}: one_to_one needs a square shape, got {proj.shape}")
        return one_to_one_indices(n_post)
    raise ConfigError(f"{proj.name}: unknown connect {proj.connect!r} (dense, all_to_all, one_to_one)")


def matrix_to_w(M: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Synaptic weights for a matrix M[post, pre] and synapses (i = pre, j = post)."""
    return np.ascontiguousarray(np.asarray(M, dtype=np.float64)[np.asarray(j), np.asarray(i)])


def w_to_matrix(w: np.ndarray, i: np.ndarray, j: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Matrix M[post, pre] (zero where there is no synapse) from Brian2's ``w``, ``i``, ``j``."""
    M = np.zeros(shape, dtype=np.float64)
    M[np.asarray(j), np.asarray(i)] = np.asarray(w, dtype=np.float64)
    return M


# --------------------------------------------------------------------------- schedule


def _steps(length_ms: float, dt_ms: float, what: str) -> int:
    n = int(round(length_ms / dt_ms))
    if n < 1 or abs(n * dt_ms - length_ms) > 1e-9 * max(length_ms, dt_ms):
        raise ConfigError(f"{what} = {length_ms} ms is not a positive integer multiple of rate.dt = {dt_ms} ms")
    return n


@dataclasses.dataclass(frozen=True)
class TrialSchedule:
    """One trial = forward settle, feedback settle, plasticity window (lengths in steps of dt).

    N trials run for ``N * t_trial + dt`` (`run_duration_ms`): the extra step at the end lets
    the last trial's one-shot update and snapshot happen inside the run.  Gates (arrays for
    TimedArrays, see `gates`):

    * ``gate_fb`` (per step): 1 from the start of the feedback phase to the end of the trial;
    * ``gate_rec`` (per step): 1 on the first step of the window, whose Euler update copies the
      activity reached at the end of the feedback phase into the snapshot ``*_rec`` (read by a
      monitor every t_trial, at the start of the next trial);
    * ``gate_p``, the plasticity gate.  one_shot: per trial (a TimedArray with dt = t_trial, the
      plasticity ODEs on a clock of period t_trial, T_p = t_trial): entry n + 1 gates the update
      made at t = (n + 1) t_trial from the settled state at the end of trial n's window, i.e.
      exactly one update ``eta*signal - c*w`` per trial (entry 0 is 0: no update at t = 0).
      The synapses skip the per-step plasticity pass, which halves the cost of a step.
      continuous: per step, 1 over the whole window (plasticity ODEs every step,
      T_p = t_plasticity).
    """

    dt_ms: float
    n_forward: int
    n_feedback: int
    n_plasticity: int

    @classmethod
    def from_circuit(cls, circuit: Circuit) -> "TrialSchedule":
        dt = circuit["rate.dt"]
        return cls(dt, _steps(circuit["rate.t_forward"], dt, "rate.t_forward"),
                   _steps(circuit["rate.t_feedback"], dt, "rate.t_feedback"),
                   _steps(circuit["rate.t_plasticity"], dt, "rate.t_plasticity"))

    @property
    def steps_per_trial(self) -> int:
        return self.n_forward + self.n_feedback + self.n_plasticity

    @property
    def t_trial_ms(self) -> float:
        return self.steps_per_trial * self.dt_ms

    @property
    def record_step(self) -> int:
        """Step (within a trial) whose update copies the end-of-feedback activity."""
        return self.n_forward + self.n_feedback

    def run_steps(self, n_trials: int) -> int:
        return n_trials * self.steps_per_trial + 1

    def run_duration_ms(self, n_trials: int) -> float:
        """N trials plus one step (see the class docstring)."""
        return self.run_steps(n_trials) * self.dt_ms

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in ("one_shot", "continuous"):
            raise ConfigError(f"rate.plasticity = {mode!r}; choose one_shot or continuous")

    def plasticity_clock_ms(self, mode: str) -> float:
        """Period of the plasticity ODEs' clock: t_trial (one_shot) or dt (continuous)."""
        self._check_mode(mode)
        return self.t_trial_ms if mode == "one_shot" else self.dt_ms

    def plasticity_time_ms(self, mode: str) -> float:
        """T_p of the plasticity ODE dw/dt = gate_p (eta*signal - c*w) / T_p: t_trial for one_shot
        (one Euler step of its clock), the window length for continuous."""
        self._check_mode(mode)
        return self.t_trial_ms if mode == "one_shot" else self.n_plasticity * self.dt_ms

    def gates(self, n_trials: int, mode: str, plastic_trials: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """gate_fb, gate_rec (length run_steps) and gate_p (length n_trials + 1 for one_shot,
        run_steps for continuous); plastic_trials (0/1 per trial) masks the plasticity."""
        self._check_mode(mode)
        S = self.steps_per_trial
        mask = np.ones(n_trials) if plastic_trials is None else np.asarray(plastic_trials, dtype=float)
        fb = np.zeros(S)
        fb[self.n_forward:] = 1.0
        rec = np.zeros(S)
        rec[self.record_step] = 1.0
        out = {"gate_fb": np.append(np.tile(fb, n_trials), 0.0),
               "gate_rec": np.append(np.tile(rec, n_trials), 0.0)}
        if mode == "one_shot":
            out["gate_p"] = np.concatenate([[0.0], mask])
        else:
            p = np.zeros(S)
            p[self.record_step:] = 1.0
            out["gate_p"] = np.append((mask[:, None] * p[None, :]).ravel(), 0.0)
        return out


# --------------------------------------------------------------------------- protocol hooks


@dataclasses.dataclass(frozen=True)
class RecordingSpec:
    key: str
    target: str  # population or synapse-group name
    variable: str
    dt_ms: float | None  # None: every step
    indices: tuple[int, ...] | None  # None: all


@dataclasses.dataclass
class Protocol:
    """Protocol hooks on a circuit's populations and synapse groups.

    Value hooks (stimulus, clamp, freeze, lesion) become run-time values (no recompile);
    recordings add monitors, i.e. change the compiled network.
    """

    layout: Layout
    stim: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    clamps: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    frozen: set[str] = dataclasses.field(default_factory=set)
    lesioned: set[str] = dataclasses.field(default_factory=set)
    recordings: dict[str, RecordingSpec] = dataclasses.field(default_factory=dict)

    def _vector(self, value, width: int, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 0:
            return np.full(width, float(arr))
        if arr.shape != (width,):
            raise ShapeError(f"{what}: expected a scalar or shape ({width},), got {arr.shape}")
        return arr.copy()

    def stimulate(self, population: str, value) -> None:
        """Extra input to a population: a scalar, a vector (width,) for every trial, or an array
        (n_trials, width) with one row per trial of the next run.  None or 0 removes it."""
        pop = self.layout.population(population)
        if value is None:
            self.stim.pop(population, None)
            return
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 2:
            if arr.shape[1] != pop.width:
                raise ShapeError(f"stimulate({population!r}): expected (n_trials, {pop.width}), got {arr.shape}")
            self.stim[population] = arr.copy()
        else:
            self.stim[population] = self._vector(arr, pop.width, f"stimulate({population!r})")

    def stimulus(self, population: str, n_trials: int) -> np.ndarray:
        width = self.layout.population(population).width
        s = self.stim.get(population)
        if s is None:
            return np.zeros((n_trials, width))
        if s.ndim == 1:
            return np.tile(s, (n_trials, 1))
        if s.shape[0] != n_trials:
            raise ShapeError(f"stimulus of {population!r} has {s.shape[0]} trials but the run has {n_trials}")
        return s

    def clamp(self, population: str, value, neurons: Iterable[int] | None = None) -> None:
        """Hold the activity of (some neurons of) a population at `value`: a scalar, or one value
        per clamped neuron.  Clamps accumulate until `unclamp`."""
        pop = self.layout.population(population)
        on, val = (a.copy() for a in self.clamps.get(population, (np.zeros(pop.width), np.zeros(pop.width))))
        idx = np.arange(pop.width) if neurons is None else np.asarray(list(neurons), dtype=int)
        if idx.size and (idx.min() < 0 or idx.max() >= pop.width):
            raise ShapeError(f"clamp({population!r}): neuron indices must be in 0..{pop.width - 1}")
        v = np.asarray(value, dtype=np.float64)
        if v.ndim != 0 and v.shape != idx.shape:
            raise ShapeError(f"clamp({population!r}): expected a scalar or {idx.size} values, got shape {v.shape}")
        on[idx] = 1.0
        val[idx] = v
        self.clamps[population] = (on, val)

    def unclamp(self, population: str) -> None:
        self.layout.population(population)
        self.clamps.pop(population, None)

    def clamp_values(self, population: str) -> tuple[np.ndarray, np.ndarray]:
        width = self.layout.population(population).width
        return self.clamps.get(population, (np.zeros(width), np.zeros(width)))

    def freeze(self, group: str) -> list[str]:
        names = [p.name for p in self.layout.groups_named(group)]
        self.frozen.update(names)
        return names

    def unfreeze(self, group: str) -> list[str]:
        names = [p.name for p in self.layout.groups_named(group)]
        self.frozen.difference_update(names)
        return names

    def lesion(self, group: str) -> list[str]:
        names = [p.name for p in self.layout.groups_named(group)]
        self.lesioned.update(names)
        return names

    def record(self, target: str, variable: str, dt_ms: float | None = None,
               indices: Iterable[int] | None = None, key: str | None = None) -> str:
        if target in self.layout.populations:
            width = self.layout.populations[target].width
        elif target in self.layout.projections:
            width = connection_indices(self.layout.projections[target])[0].size  # synapses
        else:
            raise ConfigError(f"record: unknown target {target!r}; populations: {', '.join(self.layout.populations)}; "
                              f"synapse groups: {', '.join(self.layout.projections)}")
        idx = None if indices is None else tuple(int(v) for v in indices)
        if idx is not None and (min(idx) < 0 or max(idx) >= width):
            raise ShapeError(f"record({target!r}): indices must be in 0..{width - 1}")
        if dt_ms is not None and dt_ms <= 0:
            raise ConfigError(f"record: dt must be > 0 ms, got {dt_ms}")
        key = key or f"{target}.{variable}"
        self.recordings[key] = RecordingSpec(key, target, variable, dt_ms, idx)
        return key

    def sorted_recordings(self) -> list[RecordingSpec]:
        """Recordings in a fixed order (monitor k of the compiled network is entry k)."""
        return [self.recordings[k] for k in sorted(self.recordings)]


# --------------------------------------------------------------------------- assembly


@contextlib.contextmanager
def using_codegen_target(target: str | None):
    from brian2 import prefs

    if target is None:
        yield
        return
    old = prefs["codegen.target"]
    prefs["codegen.target"] = target
    try:
        yield
    finally:
        prefs["codegen.target"] = old



class WeightsAndHooks:
    """Weights in the cross-level layout and the protocol hooks, shared by the rate and spike
    networks (which provide ``self.circuit`` and ``self.protocol``)."""

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        from ..matrix.engine import check_weights

        check_weights(self.circuit, dict(weights))
        self.weights = {k: np.array(weights[k], dtype=np.float64) for k in self.circuit.shapes()}
        for name in self.protocol.lesioned:
            if name in self.weights:
                self.weights[name][...] = 0.0

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.weights.items()}

    def stimulate(self, population: str, value) -> None:
        """Extra input to population ``h{k}``/``hbar{k}``: scalar, (width,), or (n_trials, width)
        per trial of the next `run_trials`; None removes it."""
        self.protocol.stimulate(population, value)

    def clamp(self, population: str, value, neurons: Iterable[int] | None = None) -> None:
        """Hold the activity of a population (or some of its neurons) at ``value``."""
        self.protocol.clamp(population, value, neurons)

    def unclamp(self, population: str) -> None:
        self.protocol.unclamp(population)

    def freeze(self, group: str) -> list[str]:
        """No plasticity in a synapse group ('W' = every W{k}, or 'W1')."""
        return self.protocol.freeze(group)

    def unfreeze(self, group: str) -> list[str]:
        return self.protocol.unfreeze(group)

    def lesion(self, group: str) -> list[str]:
        """Weights of the group(s) set to zero and kept there (no plasticity)."""
        names = self.protocol.lesion(group)
        for n in names:
            if n in self.weights:
                self.weights[n][...] = 0.0
        return names

    def clear_recordings(self) -> None:
        self.protocol.recordings.clear()
        self.recordings = {}

    def _trial_arrays(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (n, d_0) and targets (n, d_K) of n >= 1 trials as float64, or a ShapeError."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        d = self.circuit.widths
        if x.ndim != 2 or x.shape[1] != d[0]:
            raise ShapeError(f"inputs x have shape {x.shape}, expected (n, {d[0]})")
        if y.shape != (x.shape[0], d[-1]):
            raise ShapeError(f"targets y have shape {y.shape}, expected ({x.shape[0]}, {d[-1]})")
        if x.shape[0] == 0:
            raise ShapeError("run_trials needs at least one trial")
        return x, y

def _stable_clock(dt_ms: float, name: str):
    """A Brian2 Clock whose hash depends on its name only.

    Standalone devices write the clock initialisation of a run into main.cpp in the iteration
    order of a *set* of clocks (``net._clocks``), i.e. in the order of their default id-based
    hashes: two assemblies of the same network could produce two main.cpp files and a needless
    recompile.  A hash from the name (crc32, not Python's salted str hash) makes the order the
    same in every assembly and every process.  Equality stays identity."""
    import zlib

    import brian2

    key = zlib.crc32(name.encode())  # fixed before Brian2 first hashes the object (in __new__)
    # Brian2 groups only let class attributes of the object's own class override their
    # variables mechanism: copy Clock's properties (dt, dt_, ...) into the subclass
    props = {k: v for k, v in vars(brian2.Clock).items() if isinstance(v, property)}
    cls = type("StableClock", (brian2.Clock,), {**props, "__hash__": lambda self: key,
                                                 "__eq__": lambda self, other: self is other})
    return cls(dt=dt_ms * brian2.ms, name=name)


class NetworkAssembly:
    """Brian2 objects of one network, created from model strings, with handles by name.

    Handles (`handle`): ``"<brian name>.<variable>"`` for a state variable and
    ``"<timed array name>.values"`` for a TimedArray, the same keys as Brian2's ``run_args``.
    """

    def __init__(self, name: str, dt_ms: float):
        import brian2

        self.b2 = brian2
        self.name = name
        self.dt_ms = float(dt_ms)
        self.clock = _stable_clock(self.dt_ms, f"{name}_clock")
        self._clocks: dict[float, Any] = {}
        self.neurons: dict[str, Any] = {}
        self.synapses: dict[str, Any] = {}
        self.timed_arrays: dict[str, Any] = {}
        self.monitors: dict[str, Any] = {}
        self.others: list = []
        self._net = None

    def clock_for(self, dt_ms: float | None):
        if dt_ms is None or abs(dt_ms - self.dt_ms) < 1e-12:
            return self.clock
        n = int(round(dt_ms / self.dt_ms))
        if n < 1 or abs(n * self.dt_ms - dt_ms) > 1e-9 * dt_ms:
            raise ConfigError(f"a recording interval of {dt_ms} ms is not an integer multiple of dt = {self.dt_ms} ms")
        if n not in self._clocks:
            # clocks of period n*dt tick on the steps k*n of the base clock
            self._clocks[n] = _stable_clock(n * self.dt_ms, f"{self.name}_clock_x{n}")
        return self._clocks[n]

    def timed_array(self, name: str, values: np.ndarray, dt_ms: float):
        ta = self.b2.TimedArray(np.asarray(values, dtype=np.float64), dt=dt_ms * self.b2.ms, name=name)
        self.timed_arrays[name] = ta
        return ta

    def neuron_group(self, name: str, n: int, equations: str, namespace: Mapping[str, Any], method: str):
        g = self.b2.NeuronGroup(n, equations, method=method, name=name, namespace=dict(namespace),
                                clock=self.clock)
        self.neurons[name] = g
        return g

    def synapse_group(self, name: str, pre, post, model: str, i: np.ndarray, j: np.ndarray,
                      namespace: Mapping[str, Any], method: str, clock_ms: float | None = None):
        """Synapses connected as (i, j).  ``clock_ms``: period of the group's own state updater
        (plasticity ODEs; default every step); summed variables always run on the target's clock."""
        s = self.b2.Synapses(pre, post, model, method=method, name=name, namespace=dict(namespace),
                             clock=self.clock_for(clock_ms))
        s.connect(i=np.asarray(i), j=np.asarray(j))
        self.synapses[name] = s
        return s

    def state_monitor(self, name: str, source, variables, dt_ms: float | None, record=True, when="start"):
        m = self.b2.StateMonitor(source, variables, record=record, clock=self.clock_for(dt_ms),
                                 when=when, order=0, name=name)
        self.monitors[name] = m
        return m

    def handle(self, key: str):
        """The object a ``run_args`` key refers to: a VariableView or a TimedArray."""
        obj, _, var = key.rpartition(".")
        if var == "values" and obj in self.timed_arrays:
            return self.timed_arrays[obj]
        owner = self.neurons.get(obj) or self.synapses.get(obj)
        if owner is None:
            raise KeyError(f"no Brian2 object named {obj!r} in {self.name}")
        return getattr(owner, var)

    def network(self):
        """Assign when/order explicitly (see SCHEDULE) and return the Network."""
        if self._net is not None:
            return self._net
        b2 = self.b2
        n_summed = n_syn = n_neu = 0
        for s in self.synapses.values():
            for upd in s.summed_updaters.values():
                upd.when, upd.order = SCHEDULE["summed"][0], SCHEDULE["summed"][1] + n_summed
                n_summed += 1
        for s in self.synapses.values():
            if s.state_updater is not None:
                s.state_updater.when = SCHEDULE["synapse_state"][0]
                s.state_updater.order = SCHEDULE["synapse_state"][1] + n_syn
                n_syn += 1
        for g in self.neurons.values():
            g.state_updater.when = SCHEDULE["neuron_state"][0]
            g.state_updater.order = SCHEDULE["neuron_state"][1] + n_neu
            n_neu += 1
        for n, m in enumerate(self.monitors.values()):
            m.when, m.order = SCHEDULE["monitor"][0], SCHEDULE["monitor"][1] + n
        anchor = []
        if type(b2.get_device()).__name__ == "CUDAStandaloneDevice":
            # brian2cuda's synaptic-effect template reads `defaultclock.timestep` even when no object
            # runs on the default clock, and fails to compile ("identifier defaultclock is
            # undefined"); an empty group on the default clock makes it part of the project.
            b2.defaultclock.dt = self.dt_ms * b2.ms
            anchor.append(b2.NeuronGroup(1, "", clock=b2.defaultclock, name=f"{self.name}_defaultclock_anchor"))
        self._net = b2.Network(*self.neurons.values(), *self.synapses.values(), *self.monitors.values(),
                               *self.others, *anchor, name=f"{self.name}_network")
        return self._net

    def schedule_table(self) -> list[tuple[str, str, int]]:
        """(object, when, order) of every code-running object, in execution order."""
        from brian2.groups.group import CodeRunner

        net = self.network()
        return [(o.name, o.when, o.order) for o in net.sorted_objects if isinstance(o, CodeRunner)]


# --------------------------------------------------------------------------- runner


def cache_root() -> Path:
    """Root of cached Brian2 build folders: $SALSPIKE_CACHE_DIR/brian, else ./.salspike_cache/brian."""
    env = os.environ.get("SALSPIKE_CACHE_DIR")
    base = Path(env).expanduser() if env else Path.cwd() / ".salspike_cache"
    return base / "brian"


def structure_hash(structure: Any) -> str:
    import brian2

    payload = json.dumps({"structure": structure, "brian2": brian2.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


_ACTIVE: dict[str, Any] = {"runner": None}


def _timed_values(key: str, timed_array, value) -> np.ndarray:
    """New values for a TimedArray, which must keep the shape it was built with."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != timed_array.values.shape:
        raise ShapeError(f"{key}: shape {arr.shape} differs from the network's {timed_array.values.shape}")
    return arr


_RUNNERS: dict[str, "BrianRunner"] = {}


def shared_runner(runner: "BrianRunner") -> "BrianRunner":
    """The one runner per (structure hash, build folder) in this process, so that a compiled
    project is reused instead of regenerated."""
    return _RUNNERS.setdefault(f"{runner.hash}:{runner.build_dir}", runner)


class BrianRunner:
    """Runs the network that `make` assembles on one Brian2 device, repeatedly, with new values.

    ``make(template)`` creates the Brian2 objects (under the selected device) and returns a
    `NetworkAssembly`; ``template`` maps handle keys to arrays that fix shapes (e.g. TimedArray
    sizes).  `run(values, duration_ms, collect)` sets ``values`` (handle key -> value, plain
    numbers in Brian2 base units) and runs for ``duration_ms``, then calls ``collect(assembly)``.

    runtime: the network is assembled anew for each run with the values as initial values.
    cpp_standalone / cuda_standalone: assembled and compiled once into ``build_dir`` (default
    ``cache_root()/<kind>-<device>-<hash of structure>``); every run passes the values as
    ``run_args`` to the compiled binary.  Only one standalone network can live in a Brian2
    process: when another runner (or builder) selected a device since, this one re-assembles
    (code generation, seconds; make finds nothing to recompile when nothing changed).
    """

    def __init__(self, device: str, make: Callable[[Mapping[str, np.ndarray]], NetworkAssembly],
                 structure: Any, *, kind: str = "net", build_dir: str | os.PathLike | None = None,
                 compile_jobs: int | None = None, cuda_options: Mapping[str, Any] | None = None,
                 codegen_target: str | None = "numpy", profile: bool = False):
        if device not in devices.DEVICES:
            raise DeviceError(f"unknown Brian2 device {device!r}; allowed: {', '.join(devices.DEVICES)}")
        self.device = device
        self.make = make
        self.structure = structure
        self.profile = bool(profile)
        self.hash = structure_hash({"device": device, "structure": structure, "profile": self.profile})
        self.build_dir = (Path(build_dir) if build_dir is not None
                          else cache_root() / f"{kind}-{device}-{self.hash}").resolve()
        self.compile_jobs = compile_jobs
        self.cuda_options = cuda_options
        self.codegen_target = codegen_target
        self.assembly: NetworkAssembly | None = None
        self.compiled = False
        self.n_compiles = 0
        self.timings: dict[str, float] = {}
        self._template_key = None

    @property
    def standalone(self) -> bool:
        return self.device != "runtime"

    @property
    def binary(self) -> Path:
        return devices.binary_path(self.build_dir)

    def binary_mtime(self) -> float | None:
        try:
            return self.binary.stat().st_mtime_ns
        except OSError:
            return None

    def _active(self) -> bool:
        return (_ACTIVE["runner"] is self and devices.current_device() == self.device)

    def _select(self) -> None:
        # Brian2 makes code-object names unique against every live object: stale objects of an
        # earlier assembly (this runner's or another's) would rename the new code objects
        # (``..._codeobject_1``) and force a recompile of an unchanged network.  Drop them first.
        prev = _ACTIVE["runner"]
        if prev is not None and prev is not self:
            prev.assembly = None
        self.assembly = None
        gc.collect()
        devices.select_device(self.device, build_dir=self.build_dir if self.standalone else None,
                              compile_jobs=self.compile_jobs,
                              cuda_options=self.cuda_options if self.device == "cuda_standalone" else None)
        _ACTIVE["runner"] = self

    @staticmethod
    def _check_names(asm: NetworkAssembly) -> None:
        for name, obj in {**asm.neurons, **asm.synapses, **asm.monitors, **asm.timed_arrays}.items():
            if obj.name != name:
                raise DeviceError(f"Brian2 renamed {name!r} to {obj.name!r} (another live object has that name); "
                                  "the compiled project would not match its cache")

    def compile(self, template: Mapping[str, np.ndarray], duration_ms: float, *, compile: bool = True) -> None:
        """Standalone: assemble, record the run and build the project (no run)."""
        import brian2

        if not self.standalone:
            return
        key = (float(duration_ms), tuple(sorted((k, np.shape(v)) for k, v in template.items())))
        if self._active() and self.compiled and self._template_key == key:
            return
        self._select()
        t0 = time.perf_counter()
        self.assembly = self.make(template)
        self._check_names(self.assembly)
        net = self.assembly.network()
        net.run(duration_ms * brian2.ms, namespace={}, profile=self.profile)
        t1 = time.perf_counter()
        before = self.binary_mtime()
        self.build_dir.mkdir(parents=True, exist_ok=True)
        info = devices.build(self.device, run=False, compile=compile, directory=self.build_dir)
        after = self.binary_mtime()
        if compile and after != before:
            self.n_compiles += 1
        self.timings.update({"assemble_s": t1 - t0, "build_s": info.timings.get("total", 0.0)})
        self.compiled = compile
        self._template_key = key

    def run(self, values: Mapping[str, Any], duration_ms: float, collect: Callable[[NetworkAssembly], Any],
            template: Mapping[str, np.ndarray] | None = None):
        import brian2

        if not self.standalone:
            self._select()
            with using_codegen_target(self.codegen_target):
                self.assembly = self.make(template if template is not None else values)
                net = self.assembly.network()
                self._apply_runtime(values)
                t0 = time.perf_counter()
                net.run(duration_ms * brian2.ms, namespace={}, profile=self.profile)
                self.timings["run_s"] = time.perf_counter() - t0
            try:
                return collect(self.assembly)
            finally:
                if not self.profile:
                    self.assembly = None  # free the Brian2 objects (and their names)
        self.compile(template if template is not None else values, duration_ms)
        if not self.compiled:
            raise DeviceError(f"{self.device}: the project in {self.build_dir} was generated without compiling")
        if self.device == "cuda_standalone" and not devices.has_gpu():
            raise DeviceError("no NVIDIA GPU found: cuda_standalone can be compiled here (RateNetwork.compile()) "
                              "but runs only on a GPU machine")
        run_args = self._run_args(values)
        dev = brian2.get_device()
        t0 = time.perf_counter()
        try:
            dev.run(directory=str(self.build_dir), with_output=False, run_args=run_args)
        except Exception as err:
            out = self.build_dir / "results" / "stdout.txt"
            tail = out.read_text(errors="replace")[-3000:] if out.exists() else ""
            raise DeviceError(f"{self.device} run failed in {self.build_dir}: {err}\n{tail}") from err
        finally:
            self._remove_run_arg_files(dev)
        self.timings["run_s"] = time.perf_counter() - t0
        self.timings["binary_s"] = float(getattr(dev, "timers", {}).get("run_binary") or 0.0)
        return collect(self.assembly)

    def profiling_info(self) -> dict[str, float]:
        """Seconds per code object in the last run (needs ``profile=True``)."""
        if not self.profile or self.assembly is None:
            raise DeviceError("profiling_info needs a runner created with profile=True that has run")
        return {name: float(t) for name, t in self.assembly.network().profiling_info}

    # -- values ------------------------------------------------------------------
    def _as_quantity(self, handle, value):
        from brian2 import Quantity

        dim = handle.dim
        arr = np.asarray(value, dtype=np.float64)
        return Quantity(arr, dim=dim) if dim is not None and not getattr(dim, "is_dimensionless", True) else arr

    def _run_args(self, values: Mapping[str, Any]) -> dict:
        asm = self.assembly
        args = {}
        for key, value in values.items():
            h = asm.handle(key)
            if isinstance(h, asm.b2.TimedArray):
                args[h] = _timed_values(key, h, value)
            else:
                arr = np.asarray(value, dtype=np.float64)
                n = len(h.group) if not h.variable.scalar else 1
                if arr.size not in (1, n):
                    raise ShapeError(f"{key}: {arr.size} values for {n} elements")
                args[h] = self._as_quantity(h, arr if arr.size > 1 else arr.reshape(()))
        return args

    def _apply_runtime(self, values: Mapping[str, Any]) -> None:
        asm = self.assembly
        for key, value in values.items():
            h = asm.handle(key)
            if isinstance(h, asm.b2.TimedArray):
                h.values[...] = _timed_values(key, h, value)
            else:
                obj, _, var = key.rpartition(".")
                owner = asm.neurons.get(obj) or asm.synapses.get(obj)
                setattr(owner, var, self._as_quantity(h, value))

    def _remove_run_arg_files(self, dev) -> None:
        for fname in list(getattr(dev, "run_args_arrays", [])):
            for f in (self.build_dir / "static_arrays" / fname,
                      self.build_dir / "static_arrays" / (fname + ".lock")):
                try:
                    f.unlink()
                except OSError:
                    pass
