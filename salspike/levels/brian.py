"""The Brian2 levels: the rate network (`salspike.brian.rate`) and the spike network
(`salspike.brian.spike`), with `build` for ``salspike build``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..circuit import Circuit
from ..errors import ConfigError, DeviceError
from ..matrix.engine import MatrixNetwork, check_health
from .base import Level, register_level

_BRIAN_OPTIONS = ("device", "build_dir", "compile_jobs", "cuda_options", "codegen_target", "profile", "models")


class BrianLevel(Level):
    """A Brian2 network: one trial (input row) per plasticity window, updates applied online.

    Evaluation (`predict`, `activities` without an update) is the upstream pass with the same
    weights and hooks through the matrix engine, i.e. the network's rate limit; `step` returns
    the activities the Brian2 network itself recorded."""

    BATCH_UPDATES = False

    def __init__(self, circuit: Circuit, weights=None, **options):
        self.circuit = circuit
        self.network = self._network_class()(circuit, weights, **options)
        self.hooks = self.network.hooks

    @staticmethod
    def _network_class():
        raise NotImplementedError

    def _reference(self) -> MatrixNetwork:
        return MatrixNetwork(self.circuit, self.network.get_weights(), hooks=self.hooks)

    @property
    def weights(self):
        return self.network.get_weights()

    @property
    def recordings(self) -> dict:
        return getattr(self.network, "recordings", {})

    def step(self, x, y, online=True) -> dict[str, np.ndarray]:
        if not online:
            raise ConfigError(f"the {self.name} level applies one update per trial (online); "
                              "batch-mean updates exist only at the matrix level (drop --batch, or use --level matrix)")
        x, y = self._check_trials(x, y)
        _, activities = self.network.run_trials(x, y)
        return activities

    def predict(self, x):
        return self._reference().predict(x)

    def activities(self, x, y) -> dict[str, np.ndarray]:
        x, y = self._check_trials(x, y)
        return self._reference().activities(x, y).as_arrays()

    def check_health(self, where=""):
        check_health(self.circuit, self.network.get_weights(), where)

    def _after_lesion(self):
        self.network.apply_lesions()

    def record(self, target: str, variable: str, dt_ms: float | None = None, indices=None) -> str:
        """Record a variable during the next steps; results in ``recordings[key]``."""
        return self.network.record(target, variable, dt_ms, indices)

    def close(self):
        close = getattr(self.network, "close", None)
        if close:
            close()

    @classmethod
    def build(cls, circuit: Circuit, *, device: str = "cpp_standalone", build_dir=None, compile_only: bool = False,
              cuda_options: dict | None = None, n_trials: int = 1) -> dict:
        """Generate and compile the network for ``device``; unless ``compile_only``, also run
        ``n_trials`` trials of zeros as a smoke test.  Returns the build folder, binary path, timings."""
        from ..brian import devices

        if not circuit.resolved:
            raise ConfigError(f"{circuit.source}: input_width/output_width are 'auto'; a build needs them fixed: "
                              "pass --dataset (e.g. digits) or --set input_width=64 --set output_width=10")
        if device not in ("cpp_standalone", "cuda_standalone"):
            raise ConfigError(f"build needs a standalone device (cpp_standalone or cuda_standalone), got {device!r}")
        if device == "cuda_standalone" and not compile_only and not devices.has_gpu():
            raise DeviceError("no NVIDIA GPU found: pass --compile-only to generate and compile only, "
                              "or run on a GPU machine")
        options = {"device": device}
        if build_dir is not None:
            options["build_dir"] = build_dir
        if cuda_options:
            options["cuda_options"] = cuda_options
        net = cls._network_class()(circuit, **options)
        t0 = time.perf_counter()
        runner = net.compile(n_trials, compile=True)
        compile_s = time.perf_counter() - t0
        out_dir = Path(getattr(runner, "build_dir", build_dir or "."))
        info = {"level": cls.name, "device": device, "build_dir": str(out_dir),
                "binary": str(devices.binary_path(out_dir)), "compile_s": round(compile_s, 2)}
        info["binary_exists"] = Path(info["binary"]).is_file()
        if not compile_only:
            t1 = time.perf_counter()
            net.run_trials(np.zeros((n_trials, circuit.widths[0])), np.zeros((n_trials, circuit.widths[-1])))
            info["run_s"] = round(time.perf_counter() - t1, 2)
        return info


@register_level("rate")
class RateLevel(BrianLevel):
    """Brian2 rate neurons; in its rate limit one trial equals one online matrix step."""

    OPTIONS = _BRIAN_OPTIONS + ("trials_per_run",)
    STEP_MODE = "rate: one update per row (trial), in order; no batch mean"

    @staticmethod
    def _network_class():
        from ..brian.rate import RateNetwork

        return RateNetwork


@register_level("spike")
class SpikeLevel(BrianLevel):
    """The closed-loop Brian2 spiking network: activities, errors and plasticity carried by spikes.

    `predict` and `activities` run the network without plasticity and read every population
    from its spike counts in each trial's window (``spike.t_window`` after ``spike.t_settle``)."""

    OPTIONS = _BRIAN_OPTIONS + ("seed", "trials_per_run")
    STEP_MODE = ("spike: one update per row (trial), consolidated at the trial's end from the tags of its "
                 "spike.t_window; no batch mean")
    INPUTS_ARE_RATES = True
    READOUT = "output ON - OFF spike counts in each trial's window, divided by spike.rate_scale x spike.t_window"

    @staticmethod
    def _network_class():
        from ..brian.spike import SpikeNetwork

        return SpikeNetwork

    def predict(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.network.readout(x)[f"h{self.circuit.n_layers}"]

    def activities(self, x, y) -> dict[str, np.ndarray]:
        x, y = self._check_trials(x, y)
        return self.network.readout(x, y)

    def readout_info(self) -> dict:
        """What a spike-level accuracy is computed from (for summary.json)."""
        c = self.circuit
        return {"level": "spike", "what": self.READOUT, "t_settle_ms": c["spike.t_settle"],
                "t_window_ms": c["spike.t_window"], "rate_scale_hz_per_unit": c["spike.rate_scale"]}
