"""Fixtures shared by the salspike test suite.

* ``repo_root``: the repository root, so that the suite runs from any working directory
  (model, protocol and figure files are opened as ``repo_root / "models" / ...``).
* ``SALSPIKE_CACHE_DIR``: unless the user set it, a session temporary folder, so that Brian2
  standalone builds do not create ``.salspike_cache`` in the working directory.
* After every test the Brian2 device is back to ``runtime`` (a standalone device selected by one
  test must not leak into the next).
* ``digits``: the scikit-learn digits with the default split (session scope).
* ``small_circuit_path`` / ``small_circuit``: ``models/small_circuit.toml``; ``paper_model_path``:
  ``models/paper_mlp.toml``.
* ``assert_updates_close``: compares two runs' weight UPDATES (new - initial) matrix by matrix,
  with a tolerance relative to the reference update (a weight-level tolerance passes when a group
  with small updates does not learn at all).
* ``spikestats``: `salspike.spikestats` with the optional ``stats`` extra (neo, elephant),
  missing: skipped, except under CI, where it fails.
* ``brian2cuda`` / ``cuda_toolchain``: the optional ``cuda`` extra.  Missing, it skips the test,
  except under CI (environment variable ``CI`` set, e.g. ``CI=true``), where it fails it.
  brian2 itself is a hard dependency and is imported plainly by the tests that need it: a broken
  install fails the suite instead of turning it into skips.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    """True when the environment variable CI is set (to anything but an empty/false value)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_optional(reason: str):
    """Skip a test whose optional CUDA extra is missing, or fail it under CI."""
    if in_ci():
        pytest.fail(f"CI machines have the CUDA extra (pip install salspike[cuda]), nvcc and cuRAND: {reason}")
    pytest.skip(reason)


def updates_close(new: dict, ref: dict, w0: dict, tol: float, scale: dict | None = None) -> None:
    """Assert that every weight matrix's update new[k] - w0[k] equals ref[k] - w0[k] within
    ``tol`` times the norm of ``scale[k]`` (default: the reference update ref[k] - w0[k]).
    A matrix whose reference update is exactly zero (frozen, lesioned, fixed) must not move."""
    assert set(new) == set(ref), (sorted(new), sorted(ref))
    errors = {}
    for k in ref:
        new_k, ref_k, w0_k = (np.asarray(d[k], dtype=np.float64) for d in (new, ref, w0))
        norm = np.linalg.norm(ref_k - w0_k if scale is None else scale[k])
        if norm == 0:
            assert np.array_equal(new_k, w0_k), f"{k} moved, but its reference update is zero"
            continue
        errors[k] = np.linalg.norm((new_k - w0_k) - (ref_k - w0_k)) / norm
    assert errors, "no weight matrix changed in the reference"
    bad = {k: f"{e:.2e}" for k, e in errors.items() if not e <= tol}
    assert not bad, f"updates off by more than {tol:g} (relative to the reference update): {bad}"


@pytest.fixture(scope="session")
def assert_updates_close():
    return updates_close


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session", autouse=True)
def _salspike_cache_dir(tmp_path_factory):
    """Brian2 build caches go to a session temp folder unless SALSPIKE_CACHE_DIR is set."""
    if os.environ.get("SALSPIKE_CACHE_DIR"):
        yield Path(os.environ["SALSPIKE_CACHE_DIR"])
        return
    path = tmp_path_factory.mktemp("salspike_cache")
    os.environ["SALSPIKE_CACHE_DIR"] = str(path)
    try:
        yield path
    finally:
        os.environ.pop("SALSPIKE_CACHE_DIR", None)


@pytest.fixture(autouse=True)
def _runtime_device_after_each_test():
    """Back to the Brian2 runtime device after each test (only if salspike's Brian2 device
    module is loaded at all: pure numpy tests do not import brian2)."""
    yield
    devices = sys.modules.get("salspike.brian.devices")
    if devices is not None:
        devices.select_device("runtime")


@pytest.fixture(scope="session")
def digits():
    from salspike.datasets import load_dataset

    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def small_circuit_path(repo_root) -> Path:
    return repo_root / "models" / "small_circuit.toml"


@pytest.fixture(scope="session")
def small_circuit(small_circuit_path):
    from salspike.circuit import Circuit

    return Circuit.load(small_circuit_path)


@pytest.fixture(scope="session")
def paper_model_path(repo_root) -> Path:
    return repo_root / "models" / "paper_mlp.toml"


@pytest.fixture
def brian2cuda():
    """The optional brian2cuda package (extra ``cuda``)."""
    try:
        import brian2cuda as module
    except ImportError as err:
        missing_optional(f"brian2cuda is not installed: {err}")
    return module


@pytest.fixture
def spikestats():
    """salspike.spikestats with the optional ``stats`` extra (neo, elephant)."""
    try:
        import elephant  # noqa: F401
        import neo  # noqa: F401
    except ImportError as err:
        missing_optional(f"the stats extra (neo, elephant) is not installed: {err}")
    from salspike import spikestats as module

    return module


@pytest.fixture
def cuda_toolchain(brian2cuda):
    """brian2cuda, nvcc and cuRAND; returns the cuRAND location."""
    from salspike.brian import devices
    from salspike.errors import DeviceError

    try:
        devices.find_nvcc()
        return devices.find_curand()
    except DeviceError as err:
        missing_optional(f"no CUDA toolchain here: {err}")
