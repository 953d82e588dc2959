"""`salspike build`: the rate and spike networks as standalone projects.

The one slow CUDA test, `test_cuda_standalone_compiles_rate_and_spike_networks`, generates and
compiles (does not run: no GPU here) both networks of models/small_circuit.toml, cut to one hidden
layer, with brian2cuda and checks the binaries exist (the closed-loop spike network of the full
small circuit took about 10 minutes of nvcc on 2 cores; one hidden layer has every kind of
population and synapse group with fewer code objects).  Without brian2cuda, nvcc or cuRAND
it skips, except under CI (CI=true) where it fails (the ``cuda_toolchain`` fixture of
conftest.py).  Tests that compile C++ are marked ``slow``.
"""

import json
import os
import sys
import time

import pytest

from salspike.brian import devices
from salspike.cli import main


@pytest.mark.slow  # compiles the cpp_standalone project
def test_build_rate_cpp_standalone_runs(tmp_path, capsys, small_circuit_path):
    assert main(["build", "--level", "rate", "--device", "cpp_standalone", "--model", str(small_circuit_path),
                 "--build-dir", str(tmp_path / "rate")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["binary_exists"] and "run_s" in info
    assert devices.binary_path(tmp_path / "rate").is_file()


def test_build_needs_fixed_widths_and_gpu(tmp_path, capsys, monkeypatch, small_circuit_path):
    """A model with 'auto' widths gets them from --dataset (tests/test_cli_errors.py); a dataset
    that cannot supply them is a one-line error; running CUDA code needs a GPU."""
    assert main(["build", "--level", "rate", "--model", "paper_mlp", "--dataset", "mnist"]) == 2
    assert "mnist" in capsys.readouterr().err
    monkeypatch.setattr(devices, "has_gpu", lambda *a, **k: False)
    assert main(["build", "--level", "rate", "--device", "cuda_standalone", "--model", str(small_circuit_path)]) == 2
    assert "no NVIDIA GPU found: pass --compile-only" in capsys.readouterr().err


def test_running_cuda_without_a_gpu_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch,
                                                                           small_circuit_path):
    """`salspike train --device cuda_standalone` on a machine without a GPU stops with one line at
    once: no run folder and no nvcc compile of several minutes (was: the compile ran, then the run
    failed)."""
    monkeypatch.setattr(devices, "has_gpu", lambda *a, **k: False)
    out = tmp_path / "run"
    assert main(["train", "--level", "spike", "--device", "cuda_standalone", "--model", str(small_circuit_path),
                 "--n-train", "20", "--epochs", "1", "--out", str(out)]) == 2
    assert "no NVIDIA GPU found" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.cuda_compile
def test_cuda_standalone_compiles_rate_and_spike_networks(tmp_path, capsys, cuda_toolchain, small_circuit_path):
    for level in ("rate", "spike"):
        t0 = time.perf_counter()
        # one hidden layer (8-6-3): every kind of population and synapse group of the network, the
        # fewest code objects (a deeper circuit only repeats them); nvcc is the suite's slowest part
        code = main(["build", "--level", level, "--device", "cuda_standalone", "--model", str(small_circuit_path),
                     "--set", "hidden=[6]", "--compile-only", "--compute-capability", "9.0",
                     "--build-dir", str(tmp_path / level)])
        out = capsys.readouterr()
        assert code == 0, out.err
        info = json.loads(out.out)
        binary = devices.binary_path(tmp_path / level)
        assert info["binary_exists"] and binary.is_file() and os.access(binary, os.X_OK)
        assert "run_s" not in info  # compile only
        sys.stderr.write(f"{level}: cuda_standalone generate+compile {time.perf_counter() - t0:.0f} s\n")
