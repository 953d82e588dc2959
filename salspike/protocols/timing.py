"""Timing protocols of the closed-loop spike level: when the error arrives in each layer, and how
long a stimulus must last for W to change (``presentation_time``, spike level only).

Both run the spike level with short trials used as time bins (``spike.t_settle = 0``,
``spike.t_window = bin_ms``): the level's per-trial window counts are then a PSTH, and W, whose
tags are consolidated at each trial's end, is recorded at every bin.  Nothing outside the level
and its hooks is used.

* **Error latency per layer.**  Input x0 on throughout; the target y0 switched on and off in
  alternating episodes of ``on_ms`` and ``off_ms``; no plasticity.  The downstream populations
  are linear (identity D_d) ON/OFF pairs, so their mean signed rate follows the target change
  through a chain of first-order filters: hbar^K (the error y - yhat) steps at the onset, and each
  Wbar synapse below adds one filter of spike.tau_s and one spike.delay.  The response of
  hbar^k, normalised to go from 0 to 1, is the gamma CDF P(n, (t - n d) / tau_s) with n = K - k
  (closed form); the layer's error latency is its mean arrival time (the area above the
  normalised response), n (tau_s + d) in closed form (its half-rise time: n d + tau_s q_n, q_n
  the median of Gamma(n, 1): 0, 0.693, 1.678, 2.674 for n = 0..3, in the figure).
* **Minimum presentation time.**  From rest, input x0 and target y0 together for D ms, then
  nothing for ``gap_ms`` (``repeats`` times, one run per duration, each from rest); W plastic
  (Wbar, V, Vbar frozen).  W^0's tags need a presynaptic h^0
  spike (only while the stimulus lasts, arriving one delay later) to meet a non-zero apical
  current of h^1, which the error reaches after K delays (the output's error, then K - 1 Wbar
  synapses, then Vbar): W^0 cannot change at all when D <= (K - 1) d (exact lower bound), and its
  change grows with D beyond it.  Reported: ||dW^k|| per presentation (mean over repeats), relative
  to the longest presentation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..circuit import GROUPS
from ..errors import ConfigError
from . import schema
from .engine import Protocol, register_protocol

__all__ = ["PresentationTime", "gamma_step_response", "half_rise"]


def gamma_step_response(t_ms: np.ndarray, n: int, tau_ms: float, delay_ms: float) -> np.ndarray:
    """Step response of n first-order filters (tau) each after a delay: P(n, (t - n d) / tau); n = 0: a step."""
    from scipy.special import gammainc

    t = np.asarray(t_ms, dtype=np.float64) - n * delay_ms
    if n == 0:
        return (t >= 0).astype(float)
    return np.where(t > 0, gammainc(n, np.clip(t, 0, None) / tau_ms), 0.0)


def binned_closed_form(n_bins: int, bin_ms: float, n: int, tau_ms: float, delay_ms: float,
                       offset_ms: float = 0.0) -> np.ndarray:
    """The mean of the closed form over each bin [b bin + offset, (b + 1) bin + offset) (what binned
    counts measure)."""
    sub = 20
    t = (np.arange(n_bins * sub) + 0.5) * bin_ms / sub + offset_ms
    return gamma_step_response(t, n, tau_ms, delay_ms).reshape(n_bins, sub).mean(axis=1)


def mean_latency(g: np.ndarray, bin_ms: float) -> float:
    """Mean arrival time (ms) of a binned step response g (0 -> 1): the area above it,
    sum_b (1 - g_b) bin_ms (for n filters each after a delay: n (tau + delay), exactly, in
    the continuous limit).  Linear in the data, so spike noise averages out."""
    return float(np.sum(1.0 - np.asarray(g, dtype=np.float64)) * bin_ms)


def half_rise(g: np.ndarray, bin_ms: float) -> float:
    """Time (ms) at which a binned response g (0 -> 1) first crosses 0.5, interpolated between bin
    centres; 0 when the first bin is already above it."""
    g = np.asarray(g, dtype=np.float64)
    above = np.nonzero(g >= 0.5)[0]
    if not above.size:
        return float("nan")
    b = int(above[0])
    if b == 0:
        return 0.0
    frac = (0.5 - g[b - 1]) / (g[b] - g[b - 1])
    return float((b - 0.5 + frac) * bin_ms)


@register_protocol("presentation_time")
class PresentationTime(Protocol):
    SUMMARY = "error latency per layer after a target onset, and the minimum presentation time for W to change"
    LEVELS = ("spike",)
    KEYS = {
        "bin_ms": (float, 2.0, "ms, one trial = one time bin (spike.t_window; spike.t_settle = 0)"),
        "pairs": (int, 20, "target on/off episodes for the error latency"),
        "on_ms": (float, 150.0, "ms, target on per episode (input on throughout)"),
        "off_ms": (float, 150.0, "ms, target off per episode"),
        "target_amplitude": (float, 1.0, "rms of the target y0 (activity units)"),
        "durations": (list, [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0], "ms, stimulus presentation durations"),
        "repeats": (int, 3, "presentations of each duration"),
        "gap_ms": (float, 150.0, "ms of nothing after each presentation (back to rest)"),
    }
    READS = ("downstream", "error", "W")
    COLUMNS = {"seed": "-", "measure": "-", "target": "-", "latency_ms": "ms", "latency_closed_form_ms": "ms",
               "filters": "", "presentation_ms": "ms", "dW": "", "dW_from_rest": "", "dW_relative": "",
               "lower_bound_ms": "ms"}

    @classmethod
    def check(cls, p, src):
        for key in ("bin_ms", "on_ms", "off_ms", "gap_ms", "target_amplitude"):
            if p[key] <= 0:
                raise ConfigError(f"{src}: key '{key}' must be positive, got {p[key]}")
        for key in ("pairs", "repeats"):
            if p[key] < 1:
                raise ConfigError(f"{src}: key '{key}' must be positive, got {p[key]}")
        p["durations"] = schema.number_list(src, "durations", p["durations"], lo=0.0)
        for key, v in [("on_ms", p["on_ms"]), ("off_ms", p["off_ms"]), ("gap_ms", p["gap_ms"])] + \
                [("durations", d) for d in p["durations"]]:
            if abs(v / p["bin_ms"] - round(v / p["bin_ms"])) > 1e-9 or v <= 0:
                raise ConfigError(f"{src}: key '{key}' = {v}: every time must be a positive multiple of bin_ms = "
                                  f"{p['bin_ms']} ms")

    def run(self, s):
        p = self.p
        c0 = s.base
        if c0["downstream_nonlinearity"] != "identity" or c0["loss"] != "mse":
            raise ConfigError(f"{p['source']}: presentation_time needs downstream_nonlinearity = 'identity' and "
                              "loss = 'mse' (the closed form is a linear filter chain); set them in [set]")
        bin_ms = p["bin_ms"]
        s = dataclasses.replace(s, base=c0.with_overrides({"spike.t_settle": 0.0, "spike.t_window": bin_ms},
                                                          source=f"{p['source']} (trials as time bins)"))
        K = c0.n_layers
        tau, delay, scale = c0["spike.tau_s"], c0["spike.delay"], c0["spike.rate_scale"]
        n_on, n_off = int(round(p["on_ms"] / bin_ms)), int(round(p["off_ms"] / bin_ms))
        if n_on < 3 or n_off < n_on:
            raise ConfigError(f"{p['source']}: on_ms must be at least 3 bins and off_ms >= on_ms (the offset response "
                              "mirrors the onset's)")
        rows, responses = [], {}
        for seed in p["seeds"]:
            x, y = s.task(seed, 1)
            x0, y0 = x[0], y[0] * p["target_amplitude"] / np.sqrt(np.mean(y[0] ** 2))
            # -- error latency: x0 throughout, target toggled, nothing plastic
            n = n_off + p["pairs"] * (n_on + n_off)
            on = np.zeros(n, dtype=bool)
            starts_on = [n_off + e * (n_on + n_off) for e in range(p["pairs"])]
            for a in starts_on:
                on[a:a + n_on] = True
            with s.level(seed, condition="error latency: target toggled") as lv:
                for g in GROUPS:
                    lv.freeze(g)
                acts = s.train(lv, np.repeat(x0[None], n, 0), np.where(on[:, None], y0[None], 0.0))
                weights = {k: np.asarray(v) for k, v in lv.weights.items()}
            # the steady-state change of each error population, from the weights alone (linear chain,
            # identity D_d): du^K = y0, du^k = Wbar^k du^{k+1}; projecting the spike response on it
            # normalises without the bias a noisy steady-state estimate would bring
            du = {K: y0}
            for k in range(K - 1, 0, -1):
                du[k] = weights[f"Wbar{k}"] @ du[k + 1]
            for k in range(K, 0, -1):
                a = np.asarray(acts[f"hbar{k}"])
                r_on = np.mean([a[b:b + n_on] for b in starts_on], axis=0)
                r_off = np.mean([a[b + n_on:b + 2 * n_on] for b in starts_on], axis=0)
                # with spike.t_settle = 0 a trial's count covers its steps 1..n and the next trial's
                # first step (the counter is read and cleared at the end of that step): bin b is
                # (b bin, (b + 1) bin] + one step, and the phase's last bin holds the next phase's first step
                D = (r_on - r_off)[:-1]  # = du (2 g(t) - 1): onset minus offset response, baseline-free
                g = 0.5 * (1 + D @ du[k] / (du[k] @ du[k]))
                nf = K - k
                closed = binned_closed_form(n_on - 1, bin_ms, nf, tau, delay, offset_ms=c0["spike.dt"])
                lat, lat_cf = mean_latency(g, bin_ms), mean_latency(closed, bin_ms)
                responses.setdefault(f"hbar{k}", []).append(g)
                responses.setdefault(f"hbar{k}.closed_form", [closed])
                rows.append({"seed": seed, "measure": "error_latency", "target": f"hbar{k}", "latency_ms": lat,
                             "latency_closed_form_ms": lat_cf, "filters": nf, "presentation_ms": float("nan"),
                             "dW": float("nan"), "dW_from_rest": float("nan"), "dW_relative": float("nan"),
                             "lower_bound_ms": float("nan")})
            # -- minimum presentation time: from rest, x0 and y0 for D ms, then nothing; W plastic.
            # One level (run) per duration, each starting from rest, all of the same length (one
            # compiled binary): repeats slots of (longest duration + gap) bins
            n_gap = int(round(p["gap_ms"] / bin_ms))
            m_max = int(round(max(p["durations"]) / bin_ms))
            slot = m_max + n_gap
            per: dict[int, dict[float, list[float]]] = {k: {} for k in range(K)}
            for D in p["durations"]:
                m = int(round(D / bin_ms))
                on = np.zeros(p["repeats"] * slot + 1, dtype=bool)  # + one bin: W after the last slot
                for r in range(p["repeats"]):
                    on[r * slot:r * slot + m] = True
                X, Y = np.where(on[:, None], x0[None], 0.0), np.where(on[:, None], y0[None], 0.0)
                with s.level(seed, condition=f"presentation: stimulus for {D:g} ms, then rest") as lv:
                    for g in ("Wbar", "V", "Vbar"):
                        lv.freeze(g)
                    keys = {k: lv.record(f"W{k}", "w", bin_ms) for k in range(K)}
                    s.train(lv, X, Y)
                    snaps = {k: np.asarray(lv.recordings[key]["values"]) for k, key in keys.items()}
                for k in range(K):
                    w = snaps[k]
                    if w.shape[0] < len(X):
                        raise ConfigError(f"{p['source']}: W{k} was recorded {w.shape[0]} times for {len(X)} bins")
                    per[k][D] = [float(np.linalg.norm(w[(r + 1) * slot] - w[r * slot])) for r in range(p["repeats"])]
            for k in range(K):
                ref = np.mean(per[k][max(per[k])])
                bound = (K - 1) * delay if k == 0 else float("nan")
                for D in p["durations"]:
                    dw = float(np.mean(per[k][D]))
                    rows.append({"seed": seed, "measure": "presentation", "target": f"W{k}", "latency_ms": float("nan"),
                                 "latency_closed_form_ms": float("nan"), "filters": float("nan"),
                                 "presentation_ms": D, "dW": dw, "dW_from_rest": per[k][D][0],
                                 "dW_relative": dw / ref if ref > 0 else float("nan"), "lower_bound_ms": bound})
        meta = {"bin_ms": bin_ms, "dt_ms": c0["spike.dt"], "tau_s_ms": tau, "delay_ms": delay, "rate_scale_Hz": scale,
                "tau_readout_ms": c0["spike.tau_readout"],
                "response": {k: np.mean(v, axis=0).tolist() for k, v in responses.items()},
                "latency": "mean arrival time (area above the normalised response) of hbar^k's signed (ON - OFF) "
                           "rate after a target onset: the mean onset-minus-offset response D projected on the "
                           "steady-state change du^k = Wbar^k ... Wbar^{K-1} y0 (from the weights), "
                           "g = (1 + D.du / du.du) / 2 (input on throughout)",
                "latency_closed_form": "the same of the binned closed form P(n, (t - n delay) / tau_s), "
                                       "n = K - k filters (Wbar synapses) below the error",
                "dW": "||W^k after - before|| per presentation (mean over repeats, each followed by gap_ms of rest; "
                      "the next starts from the residue of the previous, < exp(-gap / tau_s)); Wbar, V, Vbar frozen",
                "dW_from_rest": "the same for the first presentation, from rest (a fresh run)",
                "dW_relative": "dW / dW of the longest presentation",
                "lower_bound": "from rest, W^0 cannot change when the presentation lasts <= (K - 1) spike.delay"}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows, meta = table["rows"], table["meta"]
        a1, a2 = fig.subplots(1, 2)
        bin_ms = meta["bin_ms"]
        pops = sorted(k for k in meta["response"] if not k.endswith("closed_form"))[::-1]
        for i, pop in enumerate(pops):
            color = OKABE_ITO[(5, 6, 3, 7, 1)[i % 5]]
            g = np.asarray(meta["response"][pop])
            t = (np.arange(g.size) + 0.5) * bin_ms + meta.get("dt_ms", 0.0)
            a1.plot(t, g, ".", ms=2, color=color, label=f"{pop} (spikes)")
            a1.plot(t, meta["response"][f"{pop}.closed_form"], "-", lw=1, color=color, label=f"{pop} closed form")
        a1.axhline(0.5, color="0.6", lw=0.6, ls=":")
        a1.set(xlabel="time after target onset (ms)", ylabel="normalised error response (0 -> 1)",
               title=f"Error arrival per layer (tau_s {meta['tau_s_ms']:g} ms, delay {meta['delay_ms']:g} ms)")
        a1.legend(frameon=False, fontsize=5)
        pres = [r for r in rows if r["measure"] == "presentation"]
        for i, w in enumerate(sorted({r["target"] for r in pres})):
            sub = [r for r in pres if r["target"] == w]
            Ds = sorted({r["presentation_ms"] for r in sub})
            m = [np.mean([r["dW_relative"] for r in sub if r["presentation_ms"] == D]) for D in Ds]
            sd = [np.std([r["dW_relative"] for r in sub if r["presentation_ms"] == D]) for D in Ds]
            a2.errorbar(Ds, m, yerr=sd, fmt="o-", ms=3, capsize=2, color=OKABE_ITO[(5, 6, 3, 7)[i % 4]], label=w)
        bound = [r["lower_bound_ms"] for r in pres if r["target"] == "W0"]
        if bound and bound[0] == bound[0] and bound[0] > 0:
            a2.axvline(bound[0], color="0.4", ls="--", lw=0.8, label="W0 lower bound (K-1) delay")
        a2.set_xscale("log")
        a2.set(xlabel="stimulus presentation (ms)", ylabel="|W change| / longest presentation's",
               title="Minimum presentation time")
        a2.legend(frameon=False, fontsize=6)
