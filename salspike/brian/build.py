"""`salspike build`: generate and compile the Brian2 code of a level without training.

The rate and spike networks both expose ``compile(n_trials, compile=True)`` (standalone devices)
and ``run_trials(x, y)``; this module only picks the builder and reports where the binary is.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..circuit import Circuit
from ..errors import ConfigError, DeviceError
from . import devices


def _network(level: str, circuit: Circuit, **options):
    if level == "rate":
        from .rate import RateNetwork

        return RateNetwork(circuit, **options)
    if level == "spike":
        from .spike import SpikeNetwork

        return SpikeNetwork(circuit, **options)
    raise ConfigError(f"unknown level {level!r} for build; choose rate or spike")


def build_level(level: str, circuit: Circuit, *, device: str = "cpp_standalone", build_dir=None,
                compile_only: bool = False, cuda_options: dict | None = None, n_trials: int = 1) -> dict:
    """Generate and compile ``level`` for ``device``; unless ``compile_only``, also run one
    trial of zeros as a smoke test.  Returns the build folder, binary path and timings."""
    if not circuit.resolved:
        raise ConfigError(f"{circuit.source}: input_width/output_width are 'auto'; a build needs them fixed, "
                          "e.g. --set input_width=64 --set output_width=10 (or use models/small_circuit.toml)")
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
    net = _network(level, circuit, **options)
    t0 = time.perf_counter()
    runner = net.compile(n_trials, compile=True)
    compile_s = time.perf_counter() - t0
    out_dir = Path(getattr(runner, "build_dir", build_dir or "."))
    info = {"level": level, "device": device, "build_dir": str(out_dir),
            "binary": str(devices.binary_path(out_dir)), "compile_s": round(compile_s, 2)}
    info["binary_exists"] = Path(info["binary"]).is_file()
    if not compile_only:
        t1 = time.perf_counter()
        x = np.zeros((n_trials, circuit.widths[0]))
        y = np.zeros((n_trials, circuit.widths[-1]))
        net.run_trials(x, y)
        info["run_s"] = round(time.perf_counter() - t1, 2)
    return info
