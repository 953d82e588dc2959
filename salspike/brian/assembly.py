"""Brian2 objects of one network, assembled from model strings, with handles by name.

* Connectivity: a synapse group is connected with explicit index arrays, so Brian2's ``w``
  array is ordered as given; `dense_indices` orders synapse ``s = pre * n_post + post``, i.e.
  ``w == M.T.ravel()`` for the matrix ``M`` (n_post x n_pre) of the cross-level layout.
  `matrix_to_w` / `w_to_matrix` convert for any (i, j) order (Brian2's ``i`` = presynaptic,
  ``j`` = postsynaptic index, i.e. ``M[j, i] = w``).
* `NetworkAssembly`: creates NeuronGroups, Synapses, TimedArrays and monitors, keeps handles by
  name and fixes the schedule inside a time step (`SCHEDULE`).

Scheduling (set explicitly for every object, because Brian2 breaks ties of ``when``/``order``
by object name): in each time step, all monitors read first (``when='start'``), then in the
``groups`` slot every summed-variable updater (order 0..), then every synaptic state updater
(plasticity ODEs, order 1000..), then every neuron state updater (order 2000..).  A step is
therefore a synchronous (Jacobi) update: inputs, weight changes and activity changes all use
the state at the start of the step.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import numpy as np

from ..circuit import Projection
from ..errors import ConfigError, ShapeError

#: ``when``/``order`` of each kind of object inside one time step (see module docstring).
SCHEDULE = {
    "monitor": ("start", 0),
    "summed": ("groups", 0),
    "synapse_state": ("groups", 1000),
    "neuron_state": ("groups", 2000),
}


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
