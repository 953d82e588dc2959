"""Classic pair-based STDP computed from the spike trains of a spike-level run, for fitting to
measured weight changes (protocol ``rate_dependence``).

The rule (all-to-all pairs, additive; Song, Miller & Abbott 2000, Nat Neurosci 3:919-926):

    dW_ij = A+ sum_{t_post > t_pre} exp(-(t_post - t_pre) / tau+) - A- sum_{t_post < t_pre} exp(-(t_pre - t_post) / tau-)

over the pairs of presynaptic (neuron j) and postsynaptic (neuron i) spikes inside the same
plasticity window.  Time constants from the fit to Bi & Poo's pairing data (Bi GQ, Poo MM 1998,
J Neurosci 18:10464-10472; tau+ = 16.8 ms, tau- = 33.7 ms in Bi GQ, Poo MM 2001, Annu Rev
Neurosci 24:139-166).  `pair_sums` gives the two sums per synapse (F+, F-); `fit_stdp` the
amplitudes A+, A- by least squares to measured changes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TAU_PLUS_MS", "TAU_MINUS_MS", "window_spikes", "pair_sums", "fit_stdp"]

TAU_PLUS_MS = 16.8
TAU_MINUS_MS = 33.7


def window_spikes(rec: dict, width: int, windows: list[tuple[float, float]]) -> list[list[np.ndarray]]:
    """Spike times (ms) of each neuron inside each window: ``[window][neuron] -> times``.
    ``rec``: a spike recording ``{"t": ms, "i": neuron}``."""
    t, i = np.asarray(rec.get("t", ()), dtype=float), np.asarray(rec.get("i", ()), dtype=int)
    out = []
    for t0, t1 in windows:
        inside = (t >= t0 - 1e-9) & (t < t1 - 1e-9)
        out.append([t[inside & (i == n)] for n in range(width)])
    return out


def pair_sums(pre: list[list[np.ndarray]], post: list[list[np.ndarray]], tau_plus_ms: float = TAU_PLUS_MS,
              tau_minus_ms: float = TAU_MINUS_MS) -> tuple[np.ndarray, np.ndarray]:
    """(F+, F-), each (post neurons, pre neurons): the sums over the pairs of one window (summed
    over windows) of exp(-dt / tau+) with the postsynaptic spike after the presynaptic one
    (dt = t_post - t_pre > 0) and exp(dt / tau-) with it before (dt < 0); simultaneous spikes count
    in neither."""
    n_post, n_pre = len(post[0]), len(pre[0])
    fp, fm = np.zeros((n_post, n_pre)), np.zeros((n_post, n_pre))
    for pre_w, post_w in zip(pre, post):
        for i, q in enumerate(post_w):
            if not q.size:
                continue
            for j, p in enumerate(pre_w):
                if not p.size:
                    continue
                d = q[:, None] - p[None, :]
                fp[i, j] += float(np.exp(-d[d > 0] / tau_plus_ms).sum())
                fm[i, j] += float(np.exp(d[d < 0] / tau_minus_ms).sum())
    return fp, fm


def fit_stdp(dw: np.ndarray, fp: np.ndarray, fm: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares amplitudes of dW = A+ F+ - A- F- (no intercept): (A+, A-, the fitted dW).
    The amplitudes are not constrained in sign (a classic window has A+, A- > 0)."""
    dw, fp, fm = (np.asarray(v, dtype=float).ravel() for v in (dw, fp, fm))
    X = np.stack([fp, -fm], axis=1)
    if not np.any(X):
        return 0.0, 0.0, np.zeros_like(dw)
    coef = np.linalg.lstsq(X, dw, rcond=None)[0]
    return float(coef[0]), float(coef[1]), X @ coef
