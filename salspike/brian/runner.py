"""Runs an assembled network on runtime / cpp_standalone / cuda_standalone, repeatedly.

A standalone project is compiled once (build folders cached under ``$SALSPIKE_CACHE_DIR/brian``
or ``./.salspike_cache/brian``, keyed by a hash of the network's structure) and rerun with new
values through ``run_args``; `shared_runner` keeps one runner per build folder in a process.

Several processes (e.g. the workers of a sweep) may share one build folder: generating and
compiling holds an exclusive OS lock (`build_lock`, ``fcntl.flock`` on ``<build folder>.lock``),
running the binary a shared one, and each process writes its results to its own
``results-<pid>`` folder, so no process compiles into a folder another one compiles into or runs.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import DeviceError, ShapeError
from ..console import note
from . import devices
from .assembly import NetworkAssembly, using_codegen_target

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: build folders are not locked
    fcntl = None

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


def lock_path(build_dir: str | os.PathLike) -> Path:
    """The lock file of a build folder: ``<build folder>.lock`` next to it."""
    build_dir = Path(build_dir)
    return build_dir.with_name(build_dir.name + ".lock")


class BuildLock:
    """An OS lock (``fcntl.flock``) on :func:`lock_path` of a build folder, taken on entering.

    ``shared=False`` (generate/compile): exclusive, waits for every other holder.  ``shared=True``
    (run the binary): held together with other runners, excludes a compile.  Waiting is said once
    on stderr.  The OS drops the lock when the process dies.  `try_exclusive` converts a shared
    lock to an exclusive one if nobody else holds it (non-blocking), e.g. to delete shared files.
    """

    def __init__(self, build_dir: str | os.PathLike, *, shared: bool = False, what: str = "compiling"):
        self.path, self.shared, self.what, self.fd = lock_path(build_dir), shared, what, None

    def __enter__(self) -> "BuildLock":
        if fcntl is None:  # pragma: no cover
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            note(f"waiting for another process {self.what} in {self.path.with_suffix('')} (lock {self.path})")
            fcntl.flock(self.fd, mode)
        except OSError:  # a file system without locks: go on unlocked, as before
            os.close(self.fd)
            self.fd = None
        return self

    def try_exclusive(self) -> bool:
        """Make the lock exclusive if no other process holds it; False (lock kept shared) otherwise."""
        if self.fd is None:
            return fcntl is None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            try:  # the conversion may have dropped the lock first: take the shared one back
                fcntl.flock(self.fd, fcntl.LOCK_SH)
            except OSError:
                pass
            return False

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


def build_lock(build_dir: str | os.PathLike, *, shared: bool = False) -> BuildLock:
    """The exclusive (compile) or shared (run) :class:`BuildLock` of a build folder."""
    return BuildLock(build_dir, shared=shared, what="compiling" if not shared else "running")

#: Typical compile times on a 2-core machine (s), used until this machine has measured its own.
_TYPICAL_COMPILE_S = {"cpp_standalone": 30.0, "cuda_standalone": 300.0, "runtime": 0.0}


def _compile_times_file() -> Path:
    return cache_root() / "compile_times.json"


def compile_estimate_s(device: str, build_dir: Path | None = None) -> float:
    """Seconds the next compile will take: a few when the build folder already holds a binary
    (make recompiles only what changed), else the last full compile measured on this machine,
    else a typical value."""
    if build_dir is not None and devices.binary_path(build_dir).is_file():
        return 5.0
    try:
        return float(json.loads(_compile_times_file().read_text())[device])
    except (OSError, ValueError, KeyError, TypeError):
        return _TYPICAL_COMPILE_S.get(device, 30.0)


def _record_compile_time(device: str, seconds: float) -> None:
    if seconds <= 1.0:
        return
    path = _compile_times_file()
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[device] = round(float(seconds), 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


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
        with build_lock(self.build_dir):  # no other process generates, compiles or runs here meanwhile
            before = self.binary_mtime()
            self.build_dir.mkdir(parents=True, exist_ok=True)
            if compile:
                note(f"compiling Brian2 code for {self.device} in {self.build_dir} "
                     f"(about {compile_estimate_s(self.device, self.build_dir):.0f} s; reused when unchanged)")
            info = devices.build(self.device, run=False, compile=compile, directory=self.build_dir)
            after = self.binary_mtime()
        if compile and after != before:
            self.n_compiles += 1
            _record_compile_time(self.device, info.timings.get("total", 0.0))
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
        if self.device == "cuda_standalone" and not devices.has_gpu():  # before minutes of nvcc, not after
            raise DeviceError("no NVIDIA GPU found: cuda_standalone can be compiled here (RateNetwork.compile()) "
                              "but runs only on a GPU machine")
        self.compile(template if template is not None else values, duration_ms)
        if not self.compiled:
            raise DeviceError(f"{self.device}: the project in {self.build_dir} was generated without compiling")
        run_args = self._run_args(values)
        dev = brian2.get_device()
        t0 = time.perf_counter()
        results = f"results-{os.getpid()}"  # this process's own results: other processes may run this binary
        with build_lock(self.build_dir, shared=True) as lock:
            try:
                dev.run(directory=str(self.build_dir), results_directory=results, with_output=False,
                        run_args=run_args)
            except Exception as err:
                out = self.build_dir / results / "stdout.txt"
                tail = out.read_text(errors="replace")[-3000:] if out.exists() else ""
                raise DeviceError(f"{self.device} run failed in {self.build_dir}: {err}\n{tail}") from err
            finally:
                if lock.try_exclusive():  # the value files may be shared by runs of other processes
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
