"""One interface over the three levels of description, so that training, protocols and the
CLI never import a builder directly.

A level object has ``weights`` (dict in the cross-level layout), ``step(x, y, online)``
returning the activities seen before the update (``h{k}``, ``hbar{k}`` arrays, one row per
sample), ``predict(x)`` and ``check_health(where)``.
"""

from __future__ import annotations

import numpy as np

from .circuit import Circuit
from .errors import ConfigError
from .matrix.engine import MatrixNetwork

LEVELS = ("matrix", "rate", "spike")


class MatrixLevel:
    """The numpy reference (salspike.matrix)."""

    name = "matrix"

    def __init__(self, circuit: Circuit, weights=None, **options):
        if options:
            raise ConfigError(f"matrix level takes no options, got {sorted(options)}")
        self.net = MatrixNetwork(circuit, weights)
        self.circuit = circuit

    @property
    def weights(self):
        return self.net.weights

    def step(self, x, y, online=False) -> dict[str, np.ndarray]:
        return self.net.step(x, y, online=online).as_arrays()

    def predict(self, x):
        return self.net.predict(x)

    def check_health(self, where=""):
        self.net.check_health(where)

    def close(self):
        pass


class _BrianLevel:
    """Rate or spike network; evaluation uses the matrix forward pass with the same weights
    (the upstream settles to Eq. 1 in the rate limit)."""

    def __init__(self, circuit: Circuit, weights=None, **options):
        self.circuit = circuit
        self.network = self._build(circuit, weights, **options)
        self._reference = MatrixNetwork(circuit, self.network.get_weights())

    @property
    def weights(self):
        return self.network.get_weights()

    def step(self, x, y, online=True) -> dict[str, np.ndarray]:
        if not online:
            raise ConfigError(f"the {self.name} level applies updates trial by trial (online); "
                              "batch-mean updates exist only at the matrix level")
        new_weights, activities = self.network.run_trials(np.asarray(x), np.asarray(y))
        self._reference = MatrixNetwork(self.circuit, new_weights)
        return activities

    def predict(self, x):
        return self._reference.predict(x)

    def check_health(self, where=""):
        self._reference.check_health(where)

    def close(self):
        close = getattr(self.network, "close", None)
        if close:
            close()


class RateLevel(_BrianLevel):
    name = "rate"

    @staticmethod
    def _build(circuit, weights, **options):
        from .brian.rate import RateNetwork

        return RateNetwork(circuit, weights, **options)


class SpikeLevel(_BrianLevel):
    name = "spike"

    @staticmethod
    def _build(circuit, weights, **options):
        from .brian.spike import SpikeNetwork

        return SpikeNetwork(circuit, weights, **options)


def make_level(name: str, circuit: Circuit, weights=None, **options):
    """Build the named level for a resolved circuit."""
    classes = {"matrix": MatrixLevel, "rate": RateLevel, "spike": SpikeLevel}
    if name not in classes:
        raise ConfigError(f"unknown level {name!r}; choose one of {list(LEVELS)}")
    return classes[name](circuit, weights, **options)
