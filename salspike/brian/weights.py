"""Weights and hooks held by a Brian2 network (rate or spike), in the cross-level layout.

`BrianWeights` is the mixin both builders share: the network keeps its weights as matrices
(``self.weights``) and the level-independent `salspike.circuit.Hooks` (``self.hooks``); what a
run passes to Brian2 are the *effective* weights (silent synapses at 0) and per-synapse
plasticity flags (see `Hooks.silent_mask`, `Hooks.plasticity_mask`).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..circuit import check_trials, check_weights


class BrianWeights:
    """Weights and trial checks shared by the rate and spike networks (which provide
    ``self.circuit``, ``self.layout`` and ``self.hooks``)."""

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Replace the weights (checked against the circuit; lesioned synapses set to 0)."""
        check_weights(self.circuit, dict(weights))
        self.weights = {k: np.array(weights[k], dtype=np.float64) for k in self.circuit.shapes()}
        self.apply_lesions()

    def apply_lesions(self) -> None:
        """Lesioned synapses of `hooks` are 0 in the stored weights (and stay 0)."""
        for name, mask in self.hooks.lesions.items():
            if name in self.weights:
                self.weights[name][mask] = 0.0

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.weights.items()}

    def clear_recordings(self) -> None:
        self.hooks.clear_recordings()
        self.recordings = {}

    def _run_size(self, n: int) -> int:
        """Trials per Brian2 run for a call of ``n`` trials: ``trials_per_run`` (standalone: fixed by
        the first call, the compiled trial count), else all ``n`` at the runtime device."""
        if self.device == "runtime":
            return self.trials_per_run or n
        if self.trials_per_run is None:
            self.trials_per_run = n
        return self.trials_per_run

    def _run_slices(self, n: int, chunk: int):
        """(start, stop, pad) of each run: standalone runs are padded to the compiled count."""
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            yield start, stop, (chunk - (stop - start) if self.device != "runtime" else 0)

    def _trial_arrays(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (n, d_0) and targets (n, d_K) of n >= 1 trials as float64, or a ShapeError."""
        return check_trials(self.circuit, x, y, "run_trials")
