"""The BLAS-thread rule of training (`salspike.training.blas_threads`): decisions only, no timing."""

import pytest

from salspike import training
from salspike.circuit import Circuit
from salspike.training import BLAS_THREADS_MIN_MACS, blas_threads

MODEL = "models/paper_mlp.toml"


def paper(**over):
    return Circuit.load(MODEL, over).with_io_widths(64, 10)


@pytest.fixture
def cores(monkeypatch):
    """Pretend the process may run on `n` cores."""
    def set_cores(n):
        monkeypatch.setattr(training.os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
    return set_cores


@pytest.mark.parametrize("n_cores", [1, 2, 16])
@pytest.mark.parametrize("ratio", [1.0, 5.0, 10.0])
def test_auto_is_single_threaded_for_the_paper_mlp(cores, n_cores, ratio):
    # batch 32: the largest product (32 x 2000 x 2000 at ratio 10) is far below the threshold
    cores(n_cores)
    assert blas_threads(paper(downstream_ratio=ratio)) == 1


def test_auto_uses_all_available_cores_for_large_products(cores):
    cores(4)
    big = paper(hidden=[2000, 2000], downstream_ratio=1.0, **{"training.batch_size": 256})
    assert 256 * 2000 * 2000 >= BLAS_THREADS_MIN_MACS
    assert blas_threads(big) == 4
    cores(1)
    assert blas_threads(big) == 1
    # online training multiplies one sample at a time: thin products again
    cores(4)
    assert blas_threads(big.with_overrides({"training.online": True})) == 1


@pytest.mark.parametrize("requested, n_cores, expected", [(1, 2, 1), (2, 2, 2), (3, 4, 3), (2, 16, 2)])
def test_explicit_setting_is_honoured(cores, requested, n_cores, expected):
    cores(n_cores)
    assert blas_threads(paper(downstream_ratio=5.0, **{"training.blas_threads": requested})) == expected


@pytest.mark.parametrize("requested", [0, 1, 2, 8, 64])
@pytest.mark.parametrize("n_cores", [1, 2, 3])
def test_never_more_threads_than_available_cores(cores, requested, n_cores):
    cores(n_cores)
    for c in (paper(**{"training.blas_threads": requested}),
              paper(hidden=[4000, 4000], **{"training.blas_threads": requested, "training.batch_size": 512})):
        assert 1 <= blas_threads(c) <= n_cores


def test_real_affinity_bounds_the_choice():
    import os

    n = len(os.sched_getaffinity(0))
    assert blas_threads(paper(**{"training.blas_threads": n + 5})) == n
