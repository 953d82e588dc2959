"""Spike statistics through Neo/Elephant (the optional extra ``stats``), against closed forms:
a regular train (rate n/T, CV 0, Fano 0 in bins of its period), a Poisson train (CV and Fano
about 1), a copy delayed by 20 ms (the cross-correlogram peaks at +20 ms).

Catches: seconds and milliseconds confused; the correlogram's lag sign flipped; Fano factor of
the wrong counts."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from salspike.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:The 'copy' argument in Quantity is deprecated")


def test_statistics_against_closed_forms(spikestats):
    stats = spikestats
    regular = [np.arange(0.05, 1.0, 0.1)]
    rng = np.random.default_rng(0)
    poisson = [np.sort(rng.uniform(0, 100.0, 2000))]
    assert stats.rates(regular, 1.0)[0] == pytest.approx(10.0)
    assert stats.cv(regular, 1.0)[0] == pytest.approx(0.0, abs=1e-9)
    assert stats.fano(regular, 1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert stats.cv(poisson, 100.0)[0] == pytest.approx(1.0, abs=0.06)
    assert stats.fano(poisson, 100.0, 0.5) == pytest.approx(1.0, abs=0.15)
    a = np.sort(rng.uniform(0, 10.0, 200))
    b = a + 0.02
    lags, counts = stats.cross_correlogram(a, b[b < 10.0], 10.0, 0.005, 0.05)
    assert lags[np.argmax(counts)] == pytest.approx(0.02)


def test_missing_extra_is_one_clear_error(monkeypatch):
    from salspike import spikestats

    monkeypatch.setitem(sys.modules, "elephant", None)
    with pytest.raises(ConfigError, match=r"pip install 'salspike\[stats\]'"):
        spikestats.rates([np.array([0.1])], 1.0)
