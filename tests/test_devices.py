"""Tests of salspike.brian.devices: device selection, nvcc/cuRAND discovery,
bounded compiles, error messages, and standalone builds of a toy network.

The toy network (10 rate neurons, one Synapses group with a summed variable and
a plastic clock-driven weight) has closed-form-free but deterministic dynamics,
so the cpp_standalone results are compared with the runtime device's.
The tests run in the order runtime -> cpp_standalone -> cuda_standalone ->
runtime inside one process, which is the device switching salspike relies on
(conftest.py selects the runtime device again after every test).

brian2 is a hard dependency and is imported plainly (a broken install fails).  brian2cuda,
nvcc and cuRAND come with the optional ``cuda`` extra: the ``brian2cuda`` and
``cuda_toolchain`` fixtures of conftest.py skip without them, but fail under CI (CI=true).
Tests that run the C++ compiler are marked ``slow``.
"""

from __future__ import annotations

import os
import sys
import time

import brian2
import numpy as np
import pytest

from salspike.brian import cuda_toolchain, devices
from salspike.errors import DeviceError

N = 10
DURATION_MS = 10.0


def make_toy_network():
    """10 -> 10 rate network: summed input, plastic weight, a StateMonitor."""
    from brian2 import Network, NeuronGroup, StateMonitor, Synapses

    pre = NeuronGroup(N, "r : 1", name="toy_pre")
    pre.r = "0.5 + 0.1*i"
    post = NeuronGroup(N, """dv/dt = (I_ff - v) / (5*ms) : 1
                             I_ff : 1""", method="euler", name="toy_post")
    syn = Synapses(pre, post, """dw/dt = (0.1*r_pre*v_post - 0.5*w) / (20*ms) : 1 (clock-driven)
                                 I_ff_post = w * r_pre : 1 (summed)""",
                   method="euler", name="toy_syn")
    syn.connect()
    syn.w = "0.01*(i + 2*j)"
    mon = StateMonitor(post, "v", record=True, name="toy_mon")
    net = Network(pre, post, syn, mon)
    net.toy = {"pre": pre, "post": post, "syn": syn, "mon": mon}
    return net


def _results(net):
    toy = net.toy
    return {"v": np.array(toy["mon"].v[:]), "w": np.array(toy["syn"].w[:]),
            "I_ff": np.array(toy["post"].I_ff[:])}


@pytest.fixture
def numpy_runtime(monkeypatch):
    # the runtime reference need not compile Cython code
    monkeypatch.setitem(brian2.prefs, "codegen.target", "numpy")


@pytest.fixture(scope="module")
def runtime_reference():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(brian2.prefs, "codegen.target", "numpy")
        net, info = devices.build_network("runtime", make_toy_network,
                                          duration=DURATION_MS * brian2.ms, run=True)
        assert info.device == "runtime" and info.binary is None
        res = _results(net)
    devices.select_device("runtime")
    return res


# ----------------------------------------------------------------- fast tests


def test_unknown_device_name_lists_allowed():
    with pytest.raises(DeviceError) as exc:
        devices.select_device("gpu_magic", build_dir="x")
    msg = str(exc.value)
    assert "gpu_magic" in msg
    for name in ("runtime", "cpp_standalone", "cuda_standalone"):
        assert name in msg
    with pytest.raises(DeviceError, match="allowed"):
        devices.build("gpu_magic", run=False)


def test_standalone_needs_build_dir():
    with pytest.raises(DeviceError, match="build_dir"):
        devices.select_device("cpp_standalone")


def test_compile_jobs_sets_bounded_make_args(tmp_path):
    devices.select_device("cpp_standalone", build_dir=tmp_path, compile_jobs=3)
    assert brian2.prefs["devices.cpp_standalone.extra_make_args_unix"] == ["-j", "3"]
    devices.select_device("cpp_standalone", build_dir=tmp_path)
    assert brian2.prefs["devices.cpp_standalone.extra_make_args_unix"] == [
        "-j", str(devices.default_compile_jobs())]
    with pytest.raises(DeviceError, match="compile_jobs"):
        devices.select_device("cpp_standalone", build_dir=tmp_path, compile_jobs=0)


def test_runtime_device_is_active_after_selection():
    devices.select_device("runtime")
    assert type(brian2.get_device()).__name__ == "RuntimeDevice"
    assert devices.current_device() == "runtime"


def test_run_cuda_without_gpu_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "has_gpu", lambda *a, **k: False)
    with pytest.raises(DeviceError) as exc:
        devices.build("cuda_standalone", run=True, directory=tmp_path)
    assert "no NVIDIA GPU found: pass --compile-only, or run on a GPU machine" in str(exc.value)


def test_missing_nvcc_names_nvcc(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(cuda_toolchain, "DEFAULT_CUDA_DIRS", (str(empty),))
    with pytest.raises(DeviceError, match="nvcc"):
        devices.find_nvcc()
    with pytest.raises(DeviceError, match="nvcc") as exc:
        devices.find_nvcc(empty)
    assert str(empty) in str(exc.value)


def test_missing_nvcc_via_select_device(tmp_path, monkeypatch, brian2cuda):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    with pytest.raises(DeviceError, match="nvcc"):
        devices.select_device("cuda_standalone", build_dir=tmp_path / "b",
                              cuda_options={"cuda_path": str(empty)})


def test_missing_brian2cuda_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "brian2cuda", None)  # import raises ImportError
    with pytest.raises(DeviceError, match=r"salspike\[cuda\]"):
        devices.select_device("cuda_standalone", build_dir=tmp_path)


def test_unknown_cuda_option(tmp_path, brian2cuda):
    with pytest.raises(DeviceError, match="gpu_idx"):
        devices.select_device("cuda_standalone", build_dir=tmp_path,
                              cuda_options={"gpu_idx": 1})


def test_binary_path():
    assert devices.binary_path("/tmp/some/build").name == "main"


def test_find_curand_gives_linkable_library(cuda_toolchain):
    loc = cuda_toolchain
    assert (loc.include_dir / "curand.h").is_file()
    assert (loc.link_dir / "libcurand.so").exists()
    assert (loc.link_dir / "libcurand.so").resolve() == loc.library.resolve()
    assert loc.library.name.startswith("libcurand.so")
    if loc.source == "wheel":
        # the linker link is in salspike's cache, not in site-packages
        assert "site-packages" not in str(loc.link_dir)


def test_cuda_prefs_are_set_and_do_not_leak(tmp_path, monkeypatch, cuda_toolchain):
    loc = cuda_toolchain
    monkeypatch.setattr(devices, "has_gpu", lambda *a, **k: False)
    prefs = brian2.prefs
    devices.select_device("cpp_standalone", build_dir=tmp_path / "cpp")
    gcc_before = list(prefs["codegen.cpp.extra_compile_args_gcc"])
    inc_before = list(prefs["codegen.cpp.include_dirs"])

    devices.select_device("cuda_standalone", build_dir=tmp_path / "cuda", compile_jobs=2)
    cb = "devices.cuda_standalone.cuda_backend."
    assert prefs["devices.cpp_standalone.extra_make_args_unix"] == ["-j", "2"]
    assert "-std=c++17" in prefs[cb + "extra_compile_args_nvcc"]
    assert prefs["codegen.cpp.extra_compile_args_gcc"][-1] == "-std=c++17"
    assert "-std=c++11" not in prefs["codegen.cpp.extra_compile_args_gcc"]
    assert prefs[cb + "detect_gpus"] is False
    assert prefs[cb + "gpu_id"] == 0
    assert prefs[cb + "compute_capability"] == 9.0
    assert os.path.isfile(os.path.join(prefs[cb + "cuda_path"], "bin", "nvcc"))
    if loc.source == "wheel":
        assert str(loc.include_dir) in prefs["codegen.cpp.include_dirs"]
        assert str(loc.link_dir) in prefs["codegen.cpp.library_dirs"]
        assert str(loc.runtime_dir) in prefs["codegen.cpp.runtime_library_dirs"]

    devices.select_device("cuda_standalone", build_dir=tmp_path / "cuda",
                          cuda_options={"compute_capability": 8.0, "gpu_id": 1})
    assert prefs[cb + "compute_capability"] == 8.0 and prefs[cb + "gpu_id"] == 1

    devices.select_device("cpp_standalone", build_dir=tmp_path / "cpp")
    assert prefs["codegen.cpp.extra_compile_args_gcc"] == gcc_before
    assert prefs["codegen.cpp.include_dirs"] == inc_before


@pytest.mark.slow  # runs the C++ compiler (make) on a cpp_standalone project
def test_compile_failure_is_wrapped_with_output_and_folder(tmp_path, monkeypatch):
    devices.select_device("cpp_standalone", build_dir=tmp_path / "bad", compile_jobs=1)
    # (Brian2 silently drops unknown compiler flags; a missing header fails for sure)
    monkeypatch.setitem(brian2.prefs, "codegen.cpp.headers", ['"salspike_missing_header.h"'])
    net = make_toy_network()
    net.run(1 * brian2.ms)
    with pytest.raises(DeviceError) as exc:
        devices.build("cpp_standalone", run=False)
    msg = str(exc.value)
    assert "compilation failed" in msg
    assert str((tmp_path / "bad").resolve()) in msg
    assert "salspike_missing_header.h" in msg  # the compiler's complaint


def test_build_refuses_wrong_device(tmp_path):
    devices.select_device("cpp_standalone", build_dir=tmp_path)
    with pytest.raises(DeviceError, match="select_device"):
        devices.build("runtime", run=True)


# ----------------------------------------------------------------- builds
# order in this file: runtime -> cpp_standalone -> cuda_standalone -> runtime


def test_runtime_toy_network(runtime_reference):
    v = runtime_reference["v"]
    assert v.shape == (N, int(round(DURATION_MS / 0.1)))
    assert np.all(np.isfinite(v)) and v[:, -1].max() > 0
    # the weight is plastic: it moved away from its initial value
    w0 = 0.01 * (np.repeat(np.arange(N), N) + 2 * np.tile(np.arange(N), N))
    assert not np.allclose(runtime_reference["w"], w0)


@pytest.mark.slow
def test_cpp_standalone_compiles_and_runs_toy_network(tmp_path, runtime_reference):
    t0 = time.perf_counter()
    net, info = devices.build_network("cpp_standalone", make_toy_network,
                                      build_dir=tmp_path / "cpp",
                                      duration=DURATION_MS * brian2.ms, run=True,
                                      compile_jobs=2)
    elapsed = time.perf_counter() - t0
    assert info.binary == devices.binary_path(tmp_path / "cpp").resolve()
    assert info.binary.is_file() and info.compiled and info.ran
    res = _results(net)
    for key in ("v", "w", "I_ff"):
        np.testing.assert_allclose(res[key], runtime_reference[key], rtol=1e-9, atol=1e-12)
    assert (tmp_path / "cpp" / "results").is_dir()
    print(f"\ncpp_standalone toy build+run: {elapsed:.1f} s "
          f"(make {info.timings.get('compile', float('nan')):.1f} s)")


def test_cuda_standalone_generates_toy_network(tmp_path, monkeypatch, cuda_toolchain):
    """Code generation only (seconds): the device switch works without nvcc compiling."""
    monkeypatch.setattr(devices, "has_gpu", lambda *a, **k: False)
    _, info = devices.build_network("cuda_standalone", make_toy_network,
                                    build_dir=tmp_path / "gen",
                                    duration=DURATION_MS * brian2.ms, run=False,
                                    compile=False)
    makefile = (tmp_path / "gen" / "makefile").read_text()
    assert "-arch=sm_90" in makefile and "-std=c++17" in makefile
    assert "-lcurand" in makefile
    assert not info.compiled and info.binary is None


def test_runtime_after_standalone_devices(runtime_reference, numpy_runtime):
    net, _ = devices.build_network("runtime", make_toy_network,
                                   duration=DURATION_MS * brian2.ms, run=True)
    res = _results(net)
    np.testing.assert_allclose(res["v"], runtime_reference["v"])
    assert type(brian2.get_device()).__name__ == "RuntimeDevice"
