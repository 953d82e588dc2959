"""Spike statistics through Neo and Elephant (the optional extra ``stats``:
``pip install salspike[stats]``), not hand-written code.

Spike trains are plain arrays of spike times in seconds (one per neuron, as `salspike.nwb`
reads them); each function converts them to `neo.SpikeTrain` and calls Elephant:

* `rates`: mean firing rate n / (t_stop - t_start) per train (Hz);
* `cv`: coefficient of variation of the inter-spike intervals per train (NaN with < 2 intervals);
* `fano`: Fano factor var/mean of the spike counts in bins of ``bin_s``, over the trains;
* `cross_correlogram`: the cross-correlogram of two trains binned at ``bin_s``, lags within
  ``max_lag_s``: (lags in s, counts).
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

__all__ = ["rates", "cv", "fano", "cross_correlogram"]


def _libs():
    try:
        import elephant.conversion
        import elephant.spike_train_correlation
        import elephant.statistics
        import neo
        import quantities as pq
    except ImportError as exc:
        raise ConfigError(f"spike statistics need Neo and Elephant ({exc.name} is missing): "
                          "pip install 'salspike[stats]'") from None
    return neo, pq, elephant


def _trains(trains, t_start: float, t_stop: float):
    neo, pq, _ = _libs()
    if not t_stop > t_start:
        raise ConfigError(f"spike statistics: t_stop ({t_stop} s) must be after t_start ({t_start} s)")
    out = []
    for i, t in enumerate(trains):
        t = np.sort(np.asarray(t, dtype=np.float64).ravel())
        if t.size and (t[0] < t_start or t[-1] > t_stop):
            raise ConfigError(f"spike statistics: train {i} has spikes outside [{t_start}, {t_stop}] s")
        out.append(neo.SpikeTrain(t * pq.s, t_start=t_start * pq.s, t_stop=t_stop * pq.s))
    return out


def rates(trains, t_stop: float, t_start: float = 0.0) -> np.ndarray:
    """Mean rate of each train in Hz (`elephant.statistics.mean_firing_rate`)."""
    _, pq, el = _libs()
    return np.array([float(el.statistics.mean_firing_rate(st).rescale(pq.Hz).magnitude)
                     for st in _trains(trains, t_start, t_stop)])


def cv(trains, t_stop: float, t_start: float = 0.0) -> np.ndarray:
    """CV of the inter-spike intervals of each train (`elephant.statistics.isi`, `cv`)."""
    _, _, el = _libs()
    out = []
    for st in _trains(trains, t_start, t_stop):
        isi = el.statistics.isi(st)
        out.append(float(el.statistics.cv(isi.magnitude)) if len(isi) >= 2 else float("nan"))
    return np.array(out)


def fano(trains, t_stop: float, bin_s: float, t_start: float = 0.0) -> float:
    """Fano factor of the spike counts in bins of ``bin_s`` s, all trains' bins pooled
    (`elephant.statistics.fanofactor` on the binned segments)."""
    _, pq, el = _libs()
    sts = _trains(trains, t_start, t_stop)
    binned = el.conversion.BinnedSpikeTrain(sts, bin_size=bin_s * pq.s).to_array()
    counts = binned.ravel()
    return float(el.statistics.fanofactor([np.arange(int(c)) for c in counts])) if counts.size else float("nan")


def cross_correlogram(a, b, t_stop: float, bin_s: float, max_lag_s: float, t_start: float = 0.0):
    """(lags in s, counts) of the cross-correlogram of trains a and b
    (`elephant.spike_train_correlation.cross_correlation_histogram`); positive lag: b after a."""
    _, pq, el = _libs()
    sa, sb = _trains([a, b], t_start, t_stop)
    ba = el.conversion.BinnedSpikeTrain(sa, bin_size=bin_s * pq.s)
    bb = el.conversion.BinnedSpikeTrain(sb, bin_size=bin_s * pq.s)
    n = int(round(max_lag_s / bin_s))
    cch, lags = el.spike_train_correlation.cross_correlation_histogram(ba, bb, window=[-n, n])
    return np.asarray(lags) * bin_s, np.asarray(cch.magnitude).ravel()
