"""The matrix level: the numpy engine (`salspike.matrix.engine`)."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..matrix.engine import MatrixNetwork
from .base import Level, register_level


@register_level("matrix")
class MatrixLevel(Level):
    """Eqs. 1-8 / Algorithm 1 as batched linear algebra (the reference of every level)."""

    OPTIONS = ()
    BATCH_UPDATES = True
    IMPLEMENTS_MATRIX_ONLY = True
    STEP_MODE = "matrix: the batch-mean update of all rows (default), or one update per row with --online"
    UNSUPPORTED_HOOKS = ("record",)

    def __init__(self, circuit, weights=None):
        self.circuit = circuit
        self.net = MatrixNetwork(circuit, weights)
        self.hooks = self.net.hooks

    @property
    def weights(self):
        return self.net.weights

    def step(self, x, y, online=False) -> dict[str, np.ndarray]:
        x, y = self._check_trials(x, y)
        return self.net.step(x, y, online=online).as_arrays()

    def predict(self, x):
        return self.net.predict(x)

    def activities(self, x, y) -> dict[str, np.ndarray]:
        x, y = self._check_trials(x, y)
        return self.net.activities(x, y).as_arrays()

    def check_health(self, where=""):
        self.net.check_health(where)

    def _after_lesion(self):
        self.net.lesion_weights()

    def record(self, *args, **kwargs):
        raise ConfigError("the matrix level has no time: it cannot record time series; the activities of each "
                          "trial are what step() returns (use the rate or spike level to record)")
