"""The registry of levels and the interface every level adapter implements."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..circuit import MATRIX_ONLY, Circuit, Hooks, check_trials, matrix_only_settings
from ..errors import ConfigError

#: name -> adapter class, filled by `register_level`.
LEVELS: dict[str, type["Level"]] = {}


def register_level(name: str):
    """Class decorator: register a level adapter under ``name``."""
    def deco(cls):
        cls.name = name
        LEVELS[name] = cls
        return cls
    return deco


def level_names() -> list[str]:
    return list(LEVELS)


def get_level(name: str) -> type["Level"]:
    """The adapter class of a level, or a ConfigError listing the known ones."""
    if name not in LEVELS:
        raise ConfigError(f"unknown level {name!r}; choose one of {level_names()}")
    return LEVELS[name]


def make_level(name: str, circuit: Circuit, weights=None, **options) -> "Level":
    """Build the named level for a resolved circuit (options: see each level's ``OPTIONS``)."""
    cls = get_level(name)
    check_level_implements(cls, circuit)
    unknown = sorted(set(options) - set(cls.OPTIONS))
    if unknown:
        allowed = ", ".join(cls.OPTIONS) or "none"
        raise ConfigError(f"the {name} level does not take the option(s) {unknown} (allowed: {allowed})")
    return cls(circuit, weights, **options)


def check_level_implements(cls: type["Level"], circuit: Circuit) -> None:
    """A one-line ConfigError when ``circuit`` sets an option the level does not implement
    (`salspike.circuit.MATRIX_ONLY` unless the level has ``IMPLEMENTS_MATRIX_ONLY``)."""
    if cls.IMPLEMENTS_MATRIX_ONLY:
        return
    for key, value in matrix_only_settings(circuit).items():
        raise ConfigError(f"the {cls.name} level does not implement {key} = {value!r} (matrix level only): run it "
                          f"with --level matrix, or set {key} = {MATRIX_ONLY[key]!r}")


class Level:
    """Common interface of a level (see the package docstring)."""

    #: the level encodes inputs as firing rates: every input must be >= 0
    INPUTS_ARE_RATES = False

    name = "?"
    #: keyword options the adapter accepts
    OPTIONS: tuple[str, ...] = ()
    #: True when ``step(online=False)`` applies the batch-mean update
    BATCH_UPDATES = False
    #: how `step` applies updates at this level (shown by ``salspike step --help``)
    STEP_MODE = ""
    #: hooks (names of `salspike.circuit.HOOKS`) this level cannot express
    UNSUPPORTED_HOOKS: tuple[str, ...] = ()
    #: True when the level implements the matrix-only model settings (`salspike.circuit.MATRIX_ONLY`)
    IMPLEMENTS_MATRIX_ONLY = False

    circuit: Circuit
    hooks: Hooks

    # -- the engine interface (implemented by adapters) ---------------------------------
    @property
    def weights(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def step(self, x, y, online: bool = False) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def predict(self, x) -> np.ndarray:
        raise NotImplementedError

    def activities(self, x, y) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def check_health(self, where: str = "") -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _after_lesion(self) -> None:
        """Set the newly lesioned synapses to 0 in the engine's weights."""
        raise NotImplementedError

    @classmethod
    def build(cls, circuit: Circuit, **options) -> dict:
        raise ConfigError(f"the {cls.name} level has no code to generate or compile "
                          "(build works for the Brian2 levels: --level rate or spike)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- checks -----------------------------------------------------------------------
    def _check_trials(self, x, y):
        return check_trials(self.circuit, x, y, f"{self.name} level")

    def _refuse(self, hook: str) -> None:
        if hook in self.UNSUPPORTED_HOOKS:
            raise ConfigError(f"the {self.name} level does not support the hook '{hook}'")

    # -- the hook API (salspike.circuit.Hooks), the same at every level -----------------
    def stimulate(self, population: str, value) -> None:
        """Extra input to a population (scalar, (width,), or (n_trials, width)); None removes it."""
        self._refuse("stimulate")
        self.hooks.stimulate(population, value)

    def clamp(self, population: str, value, neurons: Iterable[int] | None = None) -> None:
        """Hold the activity of (some neurons of) a population at ``value``."""
        self._refuse("clamp")
        self.hooks.clamp(population, value, neurons)

    def silence(self, population: str, neurons: Iterable[int] | None = None) -> None:
        """Clamp (some neurons of) a population at 0."""
        self._refuse("clamp")
        self.hooks.silence(population, neurons)

    def unclamp(self, population: str) -> None:
        self.hooks.unclamp(population)

    def silence_apical(self, population: str, neurons: Iterable[int] | None = None) -> None:
        """No top-down (Vbar) input reaches the apical compartments of (some neurons of) h{k}."""
        self._refuse("silence_apical")
        self.hooks.silence_apical(population, neurons)

    def unsilence_apical(self, population: str) -> None:
        self.hooks.unsilence_apical(population)

    def lesion(self, group: str, fraction: float | None = None, pairs=None, seed: int = 0) -> list[str]:
        """Cut synapses of a group (all, a random fraction, or (post, pre) pairs); they stay 0."""
        self._refuse("lesion")
        names = self.hooks.lesion(group, fraction=fraction, pairs=pairs, seed=seed)
        self._after_lesion()
        return names

    def freeze(self, group: str) -> list[str]:
        """No plasticity in a group ('W' = every W{k}, or 'W1')."""
        self._refuse("freeze")
        return self.hooks.freeze(group)

    def unfreeze(self, group: str) -> list[str]:
        return self.hooks.unfreeze(group)

    def record(self, target: str, variable: str, dt_ms: float | None = None, indices=None) -> str:
        """Record a variable of a population or synapse group (time-resolved levels)."""
        self._refuse("record")
        return self.hooks.record(target, variable, dt_ms, indices)
