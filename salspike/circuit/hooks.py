"""The hook API: the manipulations a protocol makes on a circuit, as level-independent data.

`Hooks` is the one contract between protocols and levels.  A protocol (or a user) says what to
do to the circuit in its cross-level vocabulary (populations ``h{k}``/``hbar{k}``, synapse
groups ``W``/``W1``/...); every level applies the same `Hooks` object to its own engine:

==================  ========================================================================
hook                meaning (identical at every level that supports it)
==================  ========================================================================
stimulate           extra input added to a population's drive (h0: x + s; upstream: the
                    potential W h + s before D_u; downstream: D_d Wbar hbar + s; error: e + s)
clamp / silence     hold the activity (upstream: the potential, so h = D_u(value)) of some or
                    all neurons of a population; ``silence`` is a clamp at 0
silence_apical      the apical compartment of upstream neurons receives no top-down input
                    (their incoming Vbar synapses transmit nothing and do not learn); the
                    synapses keep their weights, W's heterosynaptic factor there is 0
lesion              cut synapses of a group, all or a random fraction or given (post, pre)
                    pairs: their weights are set to 0 and stay 0 (no plasticity)
freeze              no plasticity in a group (weights transmit as they are)
record              a time series of a variable (time-resolved levels only)
==================  ========================================================================

Value hooks become run-time values at the Brian2 levels (no recompile); recordings add monitors.
A level that cannot express a hook refuses it with a `ConfigError` naming the level and the hook.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from ..errors import ConfigError, ShapeError
from .layout import Layout

__all__ = ["Hooks", "RecordingSpec", "HOOKS"]

#: The hook names of the API (what `Hooks.active` reports).
HOOKS = ("stimulate", "clamp", "silence_apical", "lesion", "freeze", "record")


@dataclasses.dataclass(frozen=True)
class RecordingSpec:
    key: str
    target: str  # population or synapse-group name
    variable: str
    dt_ms: float | None  # None: every step
    indices: tuple[int, ...] | None  # None: all


@dataclasses.dataclass
class Hooks:
    """Manipulations of one circuit (see the module docstring).  All state is plain arrays."""

    layout: Layout
    stim: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    clamps: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    frozen: set[str] = dataclasses.field(default_factory=set)
    lesions: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # name -> bool, True = cut
    apical_silenced: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # pop -> bool
    recordings: dict[str, RecordingSpec] = dataclasses.field(default_factory=dict)

    # -- helpers ----------------------------------------------------------------
    def _neurons(self, population: str, neurons: Iterable[int] | None, what: str) -> np.ndarray:
        width = self.layout.population(population).width
        idx = np.arange(width) if neurons is None else np.asarray(list(neurons), dtype=int)
        if idx.size and (idx.min() < 0 or idx.max() >= width):
            raise ShapeError(f"{what}({population!r}): neuron indices must be in 0..{width - 1}")
        return idx

    def active(self) -> list[str]:
        """The hooks in use (names from `HOOKS`)."""
        used = {"stimulate": bool(self.stim), "clamp": bool(self.clamps),
                "silence_apical": bool(self.apical_silenced), "lesion": bool(self.lesions),
                "freeze": bool(self.frozen), "record": bool(self.recordings)}
        return [h for h in HOOKS if used[h]]

    # -- stimulate ----------------------------------------------------------------
    def stimulate(self, population: str, value) -> None:
        """Extra input to a population: a scalar, a vector (width,) for every trial, or an array
        (n_trials, width) with one row per trial of the next run.  None removes it."""
        pop = self.layout.population(population)
        if value is None:
            self.stim.pop(population, None)
            return
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ShapeError(f"stimulate({population!r}): the stimulus holds NaN/inf")
        if arr.ndim == 2:
            if arr.shape[1] != pop.width:
                raise ShapeError(f"stimulate({population!r}): expected (n_trials, {pop.width}), got {arr.shape}")
            self.stim[population] = arr.copy()
        elif arr.ndim == 0:
            self.stim[population] = np.full(pop.width, float(arr))
        elif arr.shape == (pop.width,):
            self.stim[population] = arr.copy()
        else:
            raise ShapeError(f"stimulate({population!r}): expected a scalar, ({pop.width},) or (n_trials, "
                             f"{pop.width}), got shape {arr.shape}")

    def stimulus(self, population: str, n_trials: int) -> np.ndarray:
        """(n_trials, width) extra input of a population for a run of n_trials trials."""
        width = self.layout.population(population).width
        s = self.stim.get(population)
        if s is None:
            return np.zeros((n_trials, width))
        if s.ndim == 1:
            return np.tile(s, (n_trials, 1))
        if s.shape[0] != n_trials:
            raise ShapeError(f"stimulus of {population!r} has {s.shape[0]} trials but the run has {n_trials}")
        return s

    # -- clamp / silence ------------------------------------------------------------
    def clamp(self, population: str, value, neurons: Iterable[int] | None = None) -> None:
        """Hold the activity of (some neurons of) a population at `value`: a scalar, or one value
        per clamped neuron.  Clamps accumulate until `unclamp`."""
        pop = self.layout.population(population)
        on, val = (a.copy() for a in self.clamps.get(population, (np.zeros(pop.width), np.zeros(pop.width))))
        idx = self._neurons(population, neurons, "clamp")
        v = np.asarray(value, dtype=np.float64)
        if v.ndim != 0 and v.shape != idx.shape:
            raise ShapeError(f"clamp({population!r}): expected a scalar or {idx.size} values, got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ShapeError(f"clamp({population!r}): the value holds NaN/inf")
        on[idx] = 1.0
        val[idx] = v
        self.clamps[population] = (on, val)

    def silence(self, population: str, neurons: Iterable[int] | None = None) -> None:
        """Clamp (some neurons of) a population at 0: no activity propagates from them."""
        self.clamp(population, 0.0, neurons)

    def unclamp(self, population: str) -> None:
        self.layout.population(population)
        self.clamps.pop(population, None)

    def clamp_values(self, population: str) -> tuple[np.ndarray, np.ndarray]:
        """(on, value) arrays of a population's clamp (zeros when none)."""
        width = self.layout.population(population).width
        return self.clamps.get(population, (np.zeros(width), np.zeros(width)))

    # -- apical silencing ------------------------------------------------------------
    def silence_apical(self, population: str, neurons: Iterable[int] | None = None) -> None:
        """The apical compartments of upstream neurons h{k} (k >= 1) receive no top-down input."""
        pop = self.layout.population(population)
        if pop.stream != "up" or pop.layer == 0:
            raise ConfigError(f"silence_apical({population!r}): only upstream populations h1..h{self.layout.K} "
                              "have an apical compartment")
        mask = self.apical_silenced.get(population, np.zeros(pop.width, dtype=bool)).copy()
        mask[self._neurons(population, neurons, "silence_apical")] = True
        self.apical_silenced[population] = mask

    def unsilence_apical(self, population: str) -> None:
        self.layout.population(population)
        self.apical_silenced.pop(population, None)

    # -- lesion / freeze ---------------------------------------------------------------
    def lesion(self, group: str, fraction: float | None = None, pairs: Iterable | None = None,
               seed: int = 0) -> list[str]:
        """Cut synapses of a group ('W' = every W{k}, or 'W1'): all of them (default), a random
        ``fraction`` of each matrix (seeded), or the given (post, pre) index ``pairs`` (one named
        matrix only).  Cuts accumulate."""
        projections = self.layout.groups_named(group)
        if fraction is not None and pairs is not None:
            raise ConfigError("lesion: give a fraction or pairs, not both")
        if fraction is not None and not (0.0 <= float(fraction) <= 1.0):
            raise ConfigError(f"lesion({group!r}): fraction must be in [0, 1], got {fraction}")
        if pairs is not None and len(projections) != 1:
            raise ConfigError(f"lesion({group!r}): pairs need one synapse group such as '{group}1', not all of "
                              f"{[p.name for p in projections]}")
        rng = np.random.default_rng(seed)
        names = []
        for pr in projections:
            mask = self.lesions.get(pr.name, np.zeros(pr.shape, dtype=bool)).copy()
            if pairs is not None:
                idx = np.asarray(list(pairs), dtype=int).reshape(-1, 2)
                if idx.size and (idx[:, 0].min() < 0 or idx[:, 0].max() >= pr.shape[0]
                                 or idx[:, 1].min() < 0 or idx[:, 1].max() >= pr.shape[1]):
                    raise ShapeError(f"lesion({pr.name!r}): (post, pre) pairs must lie in {pr.shape}")
                mask[idx[:, 0], idx[:, 1]] = True
            elif fraction is not None:
                n = int(round(float(fraction) * mask.size))
                mask.flat[rng.permutation(mask.size)[:n]] = True
            else:
                mask[...] = True
            self.lesions[pr.name] = mask
            names.append(pr.name)
        return names

    @property
    def lesioned(self) -> set[str]:
        """Names of synapse groups that are cut entirely."""
        return {n for n, m in self.lesions.items() if m.all()}

    def freeze(self, group: str) -> list[str]:
        """No plasticity in a group ('W' = every W{k}, or 'W1')."""
        names = [p.name for p in self.layout.groups_named(group)]
        self.frozen.update(names)
        return names

    def unfreeze(self, group: str) -> list[str]:
        names = [p.name for p in self.layout.groups_named(group)]
        self.frozen.difference_update(names)
        return names

    # -- what a level applies ------------------------------------------------------------
    def silent_mask(self, name: str) -> np.ndarray | None:
        """Bool (n_post, n_pre) of the synapses of group ``name`` that transmit nothing and do not
        learn in the next run (lesioned, or Vbar onto a silenced apical compartment); None if none."""
        pr = self.layout.projection(name)
        mask = self.lesions.get(name)
        mask = np.zeros(pr.shape, dtype=bool) if mask is None else mask.copy()
        if pr.group == "Vbar" and pr.post in self.apical_silenced:
            mask[self.apical_silenced[pr.post], :] = True
        return mask if mask.any() else None

    def effective(self, name: str, w: np.ndarray) -> np.ndarray:
        """The weights of group ``name`` as they act in the next run (silent synapses at 0)."""
        mask = self.silent_mask(name)
        if mask is None:
            return w
        return np.where(mask, 0.0, w).astype(np.asarray(w).dtype)

    def plasticity_mask(self, name: str) -> np.ndarray | None:
        """Float (n_post, n_pre), 1 where a synapse of ``name`` may learn, 0 where frozen, lesioned
        or silenced; None when every synapse may learn."""
        pr = self.layout.projection(name)
        if name in self.frozen:
            return np.zeros(pr.shape)
        mask = self.silent_mask(name)
        return None if mask is None else (~mask).astype(np.float64)

    # -- record ------------------------------------------------------------------------
    def record(self, target: str, variable: str, dt_ms: float | None = None,
               indices: Iterable[int] | None = None, key: str | None = None) -> str:
        """Record ``variable`` of a population or synapse group every ``dt_ms`` (default every step)."""
        if target in self.layout.populations:
            width = self.layout.populations[target].width
        elif target in self.layout.projections:
            n_post, n_pre = self.layout.projections[target].shape
            width = n_post * n_pre if self.layout.projections[target].connect != "one_to_one" else n_post
        else:
            raise ConfigError(f"record: unknown target {target!r}; populations: {', '.join(self.layout.populations)}; "
                              f"synapse groups: {', '.join(self.layout.projections)}")
        idx = None if indices is None else tuple(int(v) for v in indices)
        if idx is not None and (not idx or min(idx) < 0 or max(idx) >= width):
            raise ShapeError(f"record({target!r}): indices must be in 0..{width - 1}")
        if dt_ms is not None and dt_ms <= 0:
            raise ConfigError(f"record: dt must be > 0 ms, got {dt_ms}")
        key = key or f"{target}.{variable}"
        self.recordings[key] = RecordingSpec(key, target, variable, dt_ms, idx)
        return key

    def sorted_recordings(self) -> list[RecordingSpec]:
        """Recordings in a fixed order (monitor k of a compiled network is entry k)."""
        return [self.recordings[k] for k in sorted(self.recordings)]

    def clear_recordings(self) -> None:
        self.recordings.clear()
