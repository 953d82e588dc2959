"""Brian2 devices for salspike: runtime, cpp_standalone and cuda_standalone.

(Finding nvcc, cuRAND and the GPU is `salspike.brian.cuda_toolchain`.)

One place that switches Brian2 between its devices, bounds the parallel compile,
finds the CUDA toolkit and cuRAND, and turns build failures into `DeviceError`s
that say what went wrong and where the build folder is.

Typical use (a builder creates the network *after* selecting the device)::

    from salspike.brian import devices
    devices.select_device("cuda_standalone", build_dir="build/cuda",
                          compile_jobs=2, cuda_options={"compute_capability": 9.0})
    net = make_network()            # Brian2 objects, created after select_device
    net.run(1 * second)             # standalone: only records the run
    info = devices.build("cuda_standalone", run=False)   # generate + compile
    info.binary                     # build/cuda/main

or in one call: ``devices.build_network("cpp_standalone", make_network,
build_dir=..., duration=1 * second, run=True)``.

Things worth knowing (all handled here, documented so nobody rediscovers them):

* Switching devices in one process: Brian2 keeps per-device state (code
  objects, arrays, ``has_been_run``). `select_device` calls ``reinit()`` on the
  device being left and on the device being entered, then ``set_device`` and
  ``activate``. Brian2 objects created under one device must not be used under
  another; the default clock is per device, so set ``defaultclock.dt`` (or the
  clocks of your objects) *after* `select_device`.
* Preferences: salspike owns the preferences listed in `MANAGED_PREFS`. On every
  `select_device` they are reset to the values they had before salspike first
  touched them, then set for the chosen device, so CUDA flags do not leak into a
  later cpp_standalone or runtime build.
* Brian2's default ``make -j`` has no job limit (one compiler per source file at
  once); salspike sets ``-j N``. brian2cuda inherits ``compile_source`` from
  cpp_standalone, so the same preference bounds its nvcc jobs.
* brian2cuda caches the detected CUDA installation and GPU selection in module
  globals (``brian2cuda.utils.gputools``); they are reset on each selection so
  new ``cuda_options`` take effect.
* brian2cuda's makefile has no dependency on the makefile or the flags: after a
  change of flags (e.g. another compute capability) the old objects would be
  linked. `build` keeps a stamp of the flags in the build folder and forces a
  clean build when it changes.
* CUDA 13 needs ``-std=c++17`` for nvcc and the host compiler (brian2cuda's
  makefile hard-codes ``-std=c++11`` before the extra flags; the later flag wins).
* brian2cuda mutates ``extra_compile_args_nvcc`` in place while generating the
  makefile (it removes ``-arch`` flags); salspike sets a fresh list every time.
* The host flags contain ``-march=native``: a binary compiled on one machine may
  not run on another CPU. Compile on the machine that runs it.

brian2cuda is GPL-3.0 and optional (``pip install salspike[cuda]``); it is
imported only when cuda_standalone is selected.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from salspike.errors import DeviceError

from .cuda_toolchain import CurandLocation, find_curand, find_nvcc, has_gpu  # re-exported

__all__ = [
    "DEVICES",
    "MANAGED_PREFS",
    "BuildInfo",
    "CurandLocation",
    "binary_path",
    "build",
    "build_network",
    "current_device",
    "default_compile_jobs",
    "find_curand",
    "find_nvcc",
    "has_gpu",
    "select_device",
]

logger = logging.getLogger(__name__)

#: Device names salspike knows.
DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")

#: Compute capability assumed when no GPU can be asked (H100/H200 are 9.0).
DEFAULT_COMPUTE_CAPABILITY = 9.0

#: Keys accepted in ``cuda_options``.
CUDA_OPTION_KEYS = ("gpu_id", "compute_capability", "detect_gpus", "cuda_path",
                    "extra_nvcc_args")


_MAKE_ARGS = "devices.cpp_standalone.extra_make_args_unix"
_GCC_ARGS = "codegen.cpp.extra_compile_args_gcc"
_INCLUDE_DIRS = "codegen.cpp.include_dirs"
_LIBRARY_DIRS = "codegen.cpp.library_dirs"
_RUNTIME_DIRS = "codegen.cpp.runtime_library_dirs"
_CUDA = "devices.cuda_standalone.cuda_backend."
_NVCC_ARGS = _CUDA + "extra_compile_args_nvcc"

#: Brian2 preferences that `select_device` sets (and resets on every call).
MANAGED_PREFS = (
    _MAKE_ARGS,
    _GCC_ARGS,
    _INCLUDE_DIRS,
    _LIBRARY_DIRS,
    _RUNTIME_DIRS,
    _NVCC_ARGS,
    _CUDA + "detect_gpus",
    _CUDA + "gpu_id",
    _CUDA + "compute_capability",
    _CUDA + "detect_cuda",
    _CUDA + "cuda_path",
    "codegen.loop_invariant_optimisations",
)

# Values of MANAGED_PREFS before salspike first changed them.
_original_prefs: dict[str, Any] = {}


@dataclass
class _State:
    name: str | None = None
    build_dir: Path | None = None
    compile_jobs: int | None = None
    clean: bool = False
    debug: bool = False
    gpu_present: bool | None = None
    cuda: dict[str, Any] = field(default_factory=dict)


_state = _State()


@dataclass
class BuildInfo:
    """What `build` did."""

    device: str
    directory: Path | None
    binary: Path | None
    compiled: bool
    ran: bool
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def default_compile_jobs() -> int:
    """Cores this process may use (scheduler affinity where available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def current_device() -> str | None:
    """Name of the device last chosen with `select_device` (None before)."""
    return _state.name


def binary_path(build_dir: str | os.PathLike) -> Path:
    """Path of the compiled program of a standalone build folder.

    Both cpp_standalone and cuda_standalone makefiles build ``PROGRAM = main``
    in the project folder (``main.exe`` on Windows, where brian2cuda does not
    work anyway). The file exists only after a successful compile.
    """
    name = "main.exe" if os.name == "nt" else "main"
    return Path(build_dir) / name


def _set_pref(prefs, name: str, value) -> None:
    if name not in _original_prefs:
        _original_prefs[name] = copy.deepcopy(prefs[name])
    prefs[name] = value


def _restore_prefs(prefs) -> None:
    for name, value in _original_prefs.items():
        try:
            prefs[name] = copy.deepcopy(value)
        except KeyError:  # a preference that is not registered (any more)
            pass


def _original(prefs, name: str):
    return copy.deepcopy(_original_prefs.get(name, prefs[name]))


def _validate_jobs(compile_jobs) -> int:
    if compile_jobs is None:
        return default_compile_jobs()
    if isinstance(compile_jobs, bool) or not isinstance(compile_jobs, int) or compile_jobs < 1:
        raise DeviceError(f"compile_jobs must be a positive integer, got {compile_jobs!r}")
    return compile_jobs


def _import_brian2cuda():
    try:
        return importlib.import_module("brian2cuda")
    except ImportError as err:
        raise DeviceError(
            "cuda_standalone needs brian2cuda (GPL-3.0, optional): install salspike[cuda] "
            f"(pip install 'salspike[cuda]'). Import failed: {err}") from err


def _cuda_settings(cuda_options: Mapping[str, Any] | None) -> dict[str, Any]:
    opts = dict(cuda_options or {})
    unknown = sorted(set(opts) - set(CUDA_OPTION_KEYS))
    if unknown:
        raise DeviceError(f"unknown cuda_options {unknown}; allowed: {list(CUDA_OPTION_KEYS)}")
    gpu_present = has_gpu()
    detect = opts.get("detect_gpus")
    if detect is None:
        detect = gpu_present
    detect = bool(detect)
    if detect and not gpu_present:
        raise DeviceError(
            "cuda_options detect_gpus=True but nvidia-smi finds no NVIDIA GPU; pass "
            "detect_gpus=False with gpu_id and compute_capability to compile without a GPU.")
    gpu_id = opts.get("gpu_id")
    cc = opts.get("compute_capability")
    if cc is not None:
        try:
            cc = float(cc)
        except (TypeError, ValueError) as err:
            raise DeviceError(f"compute_capability must be a number like 9.0, got {cc!r}") from err
    if gpu_id is not None and (isinstance(gpu_id, bool) or not isinstance(gpu_id, int) or gpu_id < 0):
        raise DeviceError(f"gpu_id must be a non-negative integer, got {gpu_id!r}")
    if not detect:
        if gpu_id is None:
            gpu_id = 0
        if cc is None:
            cc = DEFAULT_COMPUTE_CAPABILITY
            logger.warning(
                "No GPU detection (nvidia-smi finds no GPU): compiling for compute "
                "capability %.1f (H100/H200). Pass cuda_options={'compute_capability': X} "
                "for another GPU.", cc)
    extra = opts.get("extra_nvcc_args") or []
    if isinstance(extra, str) or not all(isinstance(a, str) for a in extra):
        raise DeviceError(f"extra_nvcc_args must be a list of strings, got {extra!r}")
    nvcc = find_nvcc(opts.get("cuda_path"))
    return {"gpu_present": gpu_present, "detect_gpus": detect, "gpu_id": gpu_id,
            "compute_capability": cc, "nvcc": nvcc, "cuda_path": nvcc.parent.parent,
            "extra_nvcc_args": list(extra)}


def _with_std(args: list[str], std: str) -> list[str]:
    return [a for a in args if not a.startswith("-std=")] + [std]


# --------------------------------------------------------------------------- select


def select_device(name: str, *, build_dir: str | os.PathLike | None = None,
                  compile_jobs: int | None = None,
                  cuda_options: Mapping[str, Any] | None = None,
                  clean: bool = False, debug: bool = False) -> None:
    """Make ``name`` the active Brian2 device, ready for a fresh network.

    Parameters
    ----------
    name
        ``"runtime"``, ``"cpp_standalone"`` or ``"cuda_standalone"``.
    build_dir
        Project folder of a standalone build (required for standalone devices).
    compile_jobs
        Parallel compiler jobs (``make -j N``); default: the cores this process
        may use.
    cuda_options
        ``gpu_id``, ``compute_capability`` (e.g. 9.0), ``detect_gpus``,
        ``cuda_path`` (toolkit folder holding ``bin/nvcc``), ``extra_nvcc_args``.
        Without a GPU (nvidia-smi finds none) detection is off, ``gpu_id=0`` and
        ``compute_capability`` defaults to 9.0 (with a logged note).
    clean, debug
        Passed to ``device.build`` by `build` (``make clean`` first; debug flags).

    Standalone devices are set with ``build_on_run=False``: ``run()`` only
    records the run, `build` generates/compiles (and optionally runs) it.
    Create the Brian2 objects after this call; set ``defaultclock.dt`` after it.
    """
    if name not in DEVICES:
        raise DeviceError(f"unknown Brian2 device {name!r}; allowed: {', '.join(DEVICES)}")
    standalone = name != "runtime"
    if standalone and build_dir is None:
        raise DeviceError(f"{name} needs a build_dir (the folder for the generated project)")
    jobs = _validate_jobs(compile_jobs)

    cuda = {}
    if name == "cuda_standalone":
        _import_brian2cuda()  # registers the device and its preferences
        cuda = _cuda_settings(cuda_options)
        curand = find_curand(cuda["cuda_path"])
        cuda["curand"] = curand
    elif cuda_options:
        raise DeviceError(f"cuda_options only apply to cuda_standalone, not {name}")

    import brian2
    from brian2 import prefs
    from brian2.devices.device import all_devices, get_device

    # leave the old device clean, and enter a clean new one
    try:
        get_device().reinit()
    except Exception as err:  # pragma: no cover - defensive
        logger.debug("reinit of the previous device failed: %s", err)
    target = all_devices[name]
    target.reinit()

    _restore_prefs(prefs)
    _set_pref(prefs, _MAKE_ARGS, ["-j", str(jobs)])
    if name == "cuda_standalone":
        from brian2cuda.utils import gputools

        curand: CurandLocation = cuda["curand"]
        _set_pref(prefs, _GCC_ARGS, _with_std(_original(prefs, _GCC_ARGS), "-std=c++17"))
        _set_pref(prefs, _NVCC_ARGS, _with_std(_original(prefs, _NVCC_ARGS) + cuda["extra_nvcc_args"],
                                                "-std=c++17"))
        if curand.source == "wheel":
            _set_pref(prefs, _INCLUDE_DIRS, _original(prefs, _INCLUDE_DIRS) + [str(curand.include_dir)])
            _set_pref(prefs, _LIBRARY_DIRS, _original(prefs, _LIBRARY_DIRS) + [str(curand.link_dir)])
            _set_pref(prefs, _RUNTIME_DIRS, _original(prefs, _RUNTIME_DIRS) + [str(curand.runtime_dir)])
        _set_pref(prefs, _CUDA + "cuda_path", str(cuda["cuda_path"]))
        _set_pref(prefs, _CUDA + "detect_cuda", True)  # nvcc was found above
        _set_pref(prefs, _CUDA + "detect_gpus", cuda["detect_gpus"])
        _set_pref(prefs, _CUDA + "gpu_id", cuda["gpu_id"])
        _set_pref(prefs, _CUDA + "compute_capability", cuda["compute_capability"])
        # brian2cuda 1.0a7 declares `t` twice in a reset whose hoisted scalar code and vector code
        # both read it (e.g. `n_on += win(t)` beside `u = ... stim(t, i)` of the spike network):
        # "t has already been declared in the current scope".  Without hoisting, t is declared once.
        _set_pref(prefs, "codegen.loop_invariant_optimisations", False)
        gputools.reset_cuda_installation()
        gputools.reset_gpu_selection()

    if standalone:
        brian2.set_device(name, build_on_run=False)
    else:
        brian2.set_device(name)
    # set_device pushes the previous device on a stack that is only popped by
    # reset_device; salspike never pops, so keep the stack from growing
    # (import by module path: `brian2.devices.device` as an attribute is the
    # device proxy object, not the module)
    _device_module = importlib.import_module("brian2.devices.device")
    del _device_module.previous_devices[:-1]

    _state.name = name
    _state.build_dir = Path(build_dir) if build_dir is not None else None
    _state.compile_jobs = jobs
    _state.clean = bool(clean)
    _state.debug = bool(debug)
    _state.gpu_present = cuda.get("gpu_present")
    _state.cuda = cuda


# --------------------------------------------------------------------------- build


def _log_files():
    try:
        from brian2.utils.logger import std_silent
    except ImportError:  # pragma: no cover
        return []
    files = []
    for attr in ("dest_fname_stdout", "dest_fname_stderr"):
        fname = getattr(std_silent, attr, None)
        if fname:
            files.append(fname)
    return files


def _sizes(files) -> dict[str, int]:
    out = {}
    for f in files:
        try:
            out[f] = os.path.getsize(f)
        except OSError:
            out[f] = 0
    return out


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _compiler_output(directory: Path, before: dict[str, int]) -> str:
    """Compiler output of the failed build: the new part of Brian2's redirect
    logs, or (when nothing was captured) a rerun of make that captures it."""
    chunks = []
    for fname in _log_files():
        try:
            with open(fname, errors="replace") as f:
                f.seek(before.get(fname, 0))
                chunks.append(f.read())
        except OSError:
            pass
    text = "\n".join(c for c in chunks if c.strip())
    if text.strip():
        return text
    from brian2 import prefs

    cmd = [prefs["devices.cpp_standalone.make_cmd_unix"], *prefs[_MAKE_ARGS]]
    try:
        res = subprocess.run(cmd, cwd=directory, capture_output=True, text=True, timeout=1800)
        return res.stdout + "\n" + res.stderr
    except (OSError, subprocess.SubprocessError) as err:
        return f"(could not rerun {' '.join(cmd)}: {err})"


def _flags_stamp(name: str) -> str:
    from brian2 import prefs

    payload = {"device": name, "python": sys.version.split()[0]}
    for k in MANAGED_PREFS:
        if k == _MAKE_ARGS or (k.startswith(_CUDA) and name != "cuda_standalone"):
            continue  # the job count does not change the objects
        try:
            payload[k] = repr(prefs[k])
        except KeyError:
            pass
    payload["default_float_dtype"] = repr(prefs["core.default_float_dtype"])
    return json.dumps(payload, sort_keys=True)


_STAMP = ".salspike_build_flags.json"


def build(device_name: str, *, run: bool, directory: str | os.PathLike | None = None,
          compile: bool = True, run_args=None, with_output: bool = False) -> BuildInfo:
    """Generate, compile and (if ``run``) run the recorded standalone project.

    ``device_name`` must be the device chosen with `select_device` (a guard
    against building with the wrong one); ``directory`` defaults to its
    ``build_dir``. For ``runtime`` there is nothing to build (the network ran
    during ``run()``). Running cuda_standalone needs an NVIDIA GPU; without one
    this raises before the (minutes-long) compile. Compile and run failures are
    `DeviceError`s with the tail of the compiler/program output and the folder.
    ``run_args`` are passed to ``device.build`` (standalone values set at run time).
    ``compile=False`` only generates the project (seconds, no compiler needed
    beyond locating nvcc), useful for checks.
    """
    if device_name not in DEVICES:
        raise DeviceError(f"unknown Brian2 device {device_name!r}; allowed: {', '.join(DEVICES)}")
    if run and not compile:
        raise DeviceError("build(run=True, compile=False): a project must be compiled to run")
    if device_name == "cuda_standalone" and run and not has_gpu():
        raise DeviceError("no NVIDIA GPU found: pass --compile-only, or run on a GPU machine "
                          "(build(..., run=False) compiles without a GPU)")
    if _state.name != device_name:
        raise DeviceError(f"build({device_name!r}) but the selected device is {_state.name!r}; "
                          f"call select_device({device_name!r}, ...) first and create the "
                          "network after it")
    if device_name == "runtime":
        return BuildInfo("runtime", None, None, compiled=False, ran=True)

    from brian2 import device as brian_device

    directory = Path(directory) if directory is not None else _state.build_dir
    if directory is None:
        raise DeviceError(f"{device_name} needs a build directory")
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)

    stamp = _flags_stamp(device_name)
    stamp_file = directory / _STAMP
    clean = _state.clean
    try:
        old = stamp_file.read_text()
    except OSError:
        old = None
    if old is not None and old != stamp:
        logger.info("compiler flags changed since the last build in %s: clean build", directory)
        clean = True

    before = _sizes(_log_files())
    start = time.perf_counter()
    try:
        brian_device.build(directory=str(directory), compile=compile, run=run,
                           debug=_state.debug, clean=clean, with_output=with_output,
                           run_args=run_args)
    except Exception as err:
        msg = str(err)
        if "compilation failed" in msg:
            out = _compiler_output(directory, before)
            raise DeviceError(
                f"{device_name} compilation failed in {directory}: {msg}\n"
                f"--- last lines of the compiler output ---\n{_tail(out)}") from err
        if "run failed" in msg:
            stdout_file = directory / "results" / "stdout.txt"
            out = stdout_file.read_text(errors="replace") if stdout_file.exists() else ""
            raise DeviceError(
                f"{device_name} program failed in {directory}: {msg}\n"
                f"--- last lines of its output ---\n{_tail(out)}") from err
        raise DeviceError(f"{device_name} code generation failed for {directory}: "
                          f"{type(err).__name__}: {msg}") from err
    elapsed = time.perf_counter() - start
    if compile:
        stamp_file.write_text(stamp)

    timers = getattr(brian_device, "timers", {}) or {}
    timings = {"total": elapsed}
    make_t = (timers.get("compile") or {}).get("make")
    if make_t is not None:
        timings["compile"] = float(make_t)
    if run and timers.get("run_binary") is not None:
        timings["run"] = float(timers["run_binary"])
    return BuildInfo(device_name, directory, binary_path(directory) if compile else None,
                     compiled=bool(compile), ran=bool(run), timings=timings)


def build_network(device_name: str, make_network: Callable[[], Any], *, duration,
                  run: bool, build_dir: str | os.PathLike | None = None,
                  compile_jobs: int | None = None,
                  cuda_options: Mapping[str, Any] | None = None,
                  clean: bool = False, debug: bool = False,
                  compile: bool = True, run_args=None):
    """Select the device, build a network with ``make_network()``, run it for
    ``duration`` and (standalone) generate/compile/run it.

    ``make_network`` returns a ``brian2.Network`` (or an object with a
    ``run(duration)`` method) created under the selected device. Returns
    ``(network, BuildInfo)``; after a standalone ``run=True`` the network's
    variables and monitors hold the results.
    """
    select_device(device_name, build_dir=build_dir, compile_jobs=compile_jobs,
                  cuda_options=cuda_options, clean=clean, debug=debug)
    net = make_network()
    net.run(duration)
    info = build(device_name, run=run, compile=compile, run_args=run_args)
    return net, info
