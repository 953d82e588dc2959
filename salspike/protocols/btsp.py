"""The behavioural-timescale question (``btsp_window``, spike level only): SAL's pairing window
over seconds, beside the BTSP kernel of Bittner et al. 2017 (Science 357:1033).

In a silent network (the pairing protocol's machinery, `salspike.protocols.pairing.paired_run`),
presynaptic neuron j of h^k fires a short burst (``pre_spikes`` spikes at seeded random steps
within ``pre_ms``) starting at t_plateau - delta_j, and the stimulated neurons of hbar^{k+1}
fire a plateau-like burst (``plateau_spikes`` spikes within ``plateau_ms``) from t_plateau,
reaching the apical compartment of h^{k+1} through Vbar^k; the soma is held below threshold and
only W^k is plastic.  One pairing (BTSP is induced by a single plateau), all delays in parallel
on different presynaptic neurons, one run per seed (seeds: the initial weights and the burst
times).  delta_t = t_plateau - t_pre, as in the pairing window: positive = the presynaptic
input first.

SAL's W rule reads the apical current at each presynaptic spike (the current decays with
spike.tau_s): the closed form `pairing.apical_tag` of this seed's spike trains gives every change
(exact), and its expectation over the random burst times gives the smooth window.  A
presynaptic spike before the first top-down spike changes nothing (exactly 0); one that comes
t after the plateau's end reads exp(-t / tau_s) of it.  The BTSP curve is NOT simulated: it is the
exponential description of the kernel reported by Bittner et al. 2017, drawn from the file's
``btsp_tau_before_s`` / ``btsp_tau_after_s`` (docs/predictions.md gives the source and caveats).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..circuit import algorithm_plan
from ..errors import ConfigError
from . import schema
from .engine import Protocol, group_stats, register_protocol
from .pairing import apical_tag, paired_run

__all__ = ["BTSPWindow", "btsp_kernel", "expected_window"]

_F = (int, float)


def btsp_kernel(delta_s, tau_before_s: float, tau_after_s: float) -> np.ndarray:
    """The BTSP kernel as an asymmetric exponential (peak 1 at delta 0): exp(-delta / tau_before)
    for an input delta s before the plateau (delta >= 0), exp(delta / tau_after) after it.  A
    literature description (Bittner et al. 2017), not a model of this package."""
    d = np.asarray(delta_s, dtype=np.float64)
    return np.where(d >= 0, np.exp(-np.abs(d) / tau_before_s), np.exp(-np.abs(d) / tau_after_s))


def expected_window(delta_steps: np.ndarray, n_pre: int, pre_steps: int, n_top: int, top_steps: int,
                    q: float) -> np.ndarray:
    """Expected tag (in units of 1 / (s tau_s)) of a presynaptic burst of ``n_pre`` spikes at random
    distinct steps among its first ``pre_steps`` starting at t_plateau - delta, paired with a burst
    of ``n_top`` spikes among ``top_steps`` from t_plateau: each spike's step is uniform on its
    range, so E[sum q^lag 1(lag >= 0)] = n_pre n_top mean_{a, b} q^(a - b - delta) 1(a - b >= delta)."""
    diff = np.convolve(np.ones(pre_steps), np.ones(top_steps))  # counts of a - b = L, L = -(top_steps-1)..
    L = np.arange(diff.size) - (top_steps - 1)
    lags = L[None, :] - np.asarray(delta_steps)[:, None]
    f = np.where(lags >= 0, q ** np.maximum(lags, 0), 0.0)
    return n_pre * n_top * (f @ diff) / (pre_steps * top_steps)


def _aligned(settle_steps: int, window_steps: int, dt: float) -> int:
    """``window_steps`` made longer until the trial (settle + window) is a whole number of 100 ms
    whose ratio to dt is an exact float integer: Brian2's trial clock and its TimedArrays then tick
    on the step grid (a misaligned long trial loses its end-of-trial count)."""
    grid = max(1, round(100.0 / dt))
    total = -(-(settle_steps + window_steps) // grid) * grid
    while (total * dt * 1e-3) / (dt * 1e-3) != total:
        total += grid
    return total - settle_steps


def _extent(x: np.ndarray, y: np.ndarray, frac: float = 0.01) -> tuple[float, float]:
    """The range of x where y >= frac * max(y)."""
    on = x[y >= frac * np.max(y)]
    return float(on.min()), float(on.max())


@register_protocol("btsp_window")
class BTSPWindow(Protocol):
    SUMMARY = ("SAL's pairing window over seconds beside the BTSP kernel (Bittner et al. 2017): "
               "does a pairing 1 s apart potentiate?")
    LEVELS = ("spike",)
    LEVELS_WHY = "a timing protocol: the matrix and rate levels have no spike timing"
    KEYS = {
        "pre": (str, "h0", "presynaptic upstream population h{k}: the synapses measured are W{k}"),
        "topdown_neurons": (list, [0], "neurons of hbar{k+1} that fire the plateau-like top-down burst"),
        "delays_s": (list, None, "delta_t = t_plateau - t_pre in s (positive: the presynaptic burst first)"),
        "pre_spikes": (int, 5, "spikes of each presynaptic burst"),
        "pre_ms": (_F, 50.0, "ms, duration of a presynaptic burst (spikes at seeded random steps in it)"),
        "plateau_spikes": (int, 30, "spikes of each top-down neuron's plateau-like burst"),
        "plateau_ms": (_F, 300.0, "ms, duration of the plateau-like top-down burst"),
        "hold_soma": (bool, True, "postsynaptic soma held below threshold (no postsynaptic spikes)"),
        "t_warmup_ms": (_F, 20.0, "ms before the plasticity window"),
        "btsp_tau_before_s": (_F, 1.31, "s, literature BTSP kernel: decay for inputs before the plateau"),
        "btsp_tau_after_s": (_F, 0.69, "s, literature BTSP kernel: decay for inputs after the plateau"),
    }
    COLUMNS = {"seed": "-", "delta_t_s": "s", "order": "-", "dW": "", "dW_per_unit_topdown": "",
               "closed_form_per_unit_topdown": "", "max_abs_error": "", "expected_per_unit_topdown": "",
               "sal_relative": "", "btsp_relative": ""}

    @classmethod
    def check(cls, p, src):
        p["delays_s"] = schema.number_list(src, "delays_s", p["delays_s"])
        if len(set(p["delays_s"])) != len(p["delays_s"]):
            raise ConfigError(f"{src}: key 'delays_s' lists a delay twice")
        p["topdown_neurons"] = schema.number_list(src, "topdown_neurons", p["topdown_neurons"], lo=0, integer=True)
        for key in ("pre_spikes", "plateau_spikes"):
            if p[key] < 1:
                raise ConfigError(f"{src}: key '{key}' must be positive, got {p[key]}")
        for key in ("pre_ms", "plateau_ms", "btsp_tau_before_s", "btsp_tau_after_s"):
            if p[key] <= 0:
                raise ConfigError(f"{src}: key '{key}' must be positive, got {p[key]}")
        if p["t_warmup_ms"] < 0:
            raise ConfigError(f"{src}: key 't_warmup_ms' must be >= 0, got {p['t_warmup_ms']}")

    @classmethod
    def check_circuit(cls, p, c0) -> dict:
        """Every check of the file against the model, before anything is written; returns the run's
        geometry (layer k, delay steps, burst ranges, plateau onset, the trial's circuit)."""
        src = p["source"]
        K, d = c0.n_layers, c0.widths
        pre = p["pre"]
        if not (pre[:1] == "h" and pre[1:].isdigit() and int(pre[1:]) < K):
            raise ConfigError(f"{src}: key 'pre' = {pre!r} must be an upstream population h0..h{K - 1}")
        k = int(pre[1:])
        if c0["spike.tier"] != "poisson":
            raise ConfigError(f"{src}: btsp_window's closed form is the poisson tier's apical current; "
                              f"set spike.tier = \"poisson\" in [set] (got {c0['spike.tier']!r})")
        if not algorithm_plan(c0).learns("W"):
            raise ConfigError(f"{src}: the model's W does not learn (plastic / algorithm); this protocol measures W")
        dt, tau = c0["spike.dt"], c0["spike.tau_s"]
        top_idx = np.asarray(p["topdown_neurons"], dtype=int)
        n_top_pop = c0.downstream_widths[k + 1] if k + 1 < K else d[-1]
        if top_idx.max() >= n_top_pop:
            raise ConfigError(f"{src}: 'topdown_neurons' must index hbar{k + 1} (0..{n_top_pop - 1})")
        steps = [round(v * 1e3 / dt) for v in p["delays_s"]]
        if any(abs(n * dt - v * 1e3) > 1e-6 for n, v in zip(steps, p["delays_s"])):
            raise ConfigError(f"{src}: every delay must be a multiple of spike.dt = {dt} ms")
        n_pre, n_plat = round(p["pre_ms"] / dt), round(p["plateau_ms"] / dt)
        if p["pre_spikes"] > n_pre or p["plateau_spikes"] > n_plat:
            raise ConfigError(f"{src}: at most one spike per step: pre_spikes <= pre_ms / dt = {n_pre} and "
                              f"plateau_spikes <= plateau_ms / dt = {n_plat}")
        warm = round(p["t_warmup_ms"] / dt)
        lead = max(0, max(steps)) + 5  # steps from the earliest presynaptic burst to the plateau
        tail = max(n_plat, max(0, -min(steps)) + n_pre) + round(5 * tau / dt)
        window = _aligned(warm, lead + tail, dt) * dt
        c = c0.with_overrides({"spike.t_window": float(window), "spike.t_settle": float(warm * dt)},
                              source=f"{src} (one pairing per run)")
        return {"k": k, "steps": steps, "n_pre": n_pre, "n_plat": n_plat, "top_idx": top_idx,
                "t_plateau": (warm + lead) * dt, "window": window, "circuit": c}

    def run(self, s):
        p = self.p
        g = self.check_circuit(p, s.base)
        k, steps, n_pre, n_plat, top_idx, c = g["k"], g["steps"], g["n_pre"], g["n_plat"], g["top_idx"], g["circuit"]
        t_plateau, window = g["t_plateau"], g["window"]
        d = c.widths
        dt, tau, rate = c["spike.dt"], c["spike.tau_s"], c["spike.rate_scale"]
        s = dataclasses.replace(s, base=c)
        plan = algorithm_plan(c)
        eta, coef = plan.eta["W"], plan.decay["W"]
        T = window * 1e-3
        unit = eta / (rate * T)  # weight change per unit of tag
        per_run = d[k]
        q = math.exp(-dt / tau)
        # the expected window over the random burst times, on a 1 ms grid and at the delays
        grid_steps = np.arange(min(steps), max(steps) + 1, max(1, round(1.0 / dt)))
        norm = unit / (rate * tau * 1e-3)
        expected = lambda st: norm * expected_window(np.asarray(st), p["pre_spikes"], n_pre, p["plateau_spikes"],
                                                     n_plat, q)
        grid_exp = expected(grid_steps)
        peak = float(np.max(grid_exp))
        at_delays = expected(steps)
        rows, post_spikes = [], 0.0
        for seed in p["seeds"]:
            rng = np.random.default_rng([int(seed), 23])
            plateau = t_plateau + dt * np.sort(rng.choice(n_plat, p["plateau_spikes"], replace=False))
            trains = [t_plateau - n * dt + dt * np.sort(rng.choice(n_pre, p["pre_spikes"], replace=False))
                      for n in steps]
            for r in range(math.ceil(len(steps) / per_run)):
                chunk = list(range(r * per_run, min(len(steps), (r + 1) * per_run)))
                label = "pairing at delta_t = " + ", ".join(f"{p['delays_s'][j]:g}" for j in chunk) + " s"
                with s.level(seed, condition=label) as lv:
                    w_start = {n: np.array(v, dtype=np.float64) for n, v in lv.weights.items()}
                    dW, n_post = paired_run(lv, k, [trains[j] for j in chunk], top_idx, plateau,
                                            hold_soma=p["hold_soma"])
                post_spikes += n_post
                vbar = w_start.get(f"Vbar{k}", np.eye(d[k + 1]))
                b_top = vbar[:, top_idx].sum(axis=1)
                live = np.abs(b_top) > 1e-12
                w = w_start[f"W{k}"]
                for i, j in enumerate(chunk):
                    timing = dW[:, i] + coef * w[:, i]  # the decay (-c w, exact) taken out
                    cf = unit * apical_tag(trains[j], plateau, c)
                    delta = p["delays_s"][j]
                    order = ("presynaptic first" if trains[j].max() < plateau.min() else
                             "plateau first" if trains[j].min() >= plateau.max() else "overlapping")
                    rows.append({"seed": int(seed), "delta_t_s": delta, "order": order, "dW": float(np.mean(dW[:, i])),
                                 "dW_per_unit_topdown": float(np.mean(timing[live] / b_top[live])),
                                 "closed_form_per_unit_topdown": cf,
                                 "max_abs_error": float(np.max(np.abs(timing - cf * b_top))),
                                 "expected_per_unit_topdown": float(at_delays[j]),
                                 "sal_relative": float(np.mean(timing[live] / b_top[live]) / peak),
                                 "btsp_relative": float(btsp_kernel(delta, p["btsp_tau_before_s"],
                                                                    p["btsp_tau_after_s"]))})
        rows.sort(key=lambda row: (row["seed"], row["delta_t_s"]))
        grid_s = grid_steps * dt * 1e-3
        sal_lo, sal_hi = _extent(grid_s, grid_exp)
        # the curve as stored: every grid point where the window is not ~0 (and its neighbours), every 50th elsewhere
        live_pts = np.convolve(grid_exp > 1e-6 * peak, np.ones(3), mode="same") > 0
        keep = live_pts | (np.arange(grid_s.size) % 50 == 0) | (np.arange(grid_s.size) == grid_s.size - 1)
        fine = np.linspace(-10 * p["btsp_tau_after_s"], 10 * p["btsp_tau_before_s"], 4001)
        btsp_lo, btsp_hi = _extent(fine, btsp_kernel(fine, p["btsp_tau_before_s"], p["btsp_tau_after_s"]))
        stats = group_stats(rows, ("delta_t_s",), "sal_relative")
        one_s = {f"{v:g} s": {"sal_relative_mean": stats[(v,)][0], "sal_relative_sd": stats[(v,)][1],
                              "btsp_relative": float(btsp_kernel(v, p["btsp_tau_before_s"], p["btsp_tau_after_s"]))}
                 for v in (1.0, -1.0) if (v,) in stats}
        meta = {"synapses": f"W{k}: h{k} -> h{k + 1}", "topdown": f"hbar{k + 1}{list(map(int, top_idx))} -> Vbar{k} "
                f"-> apical of h{k + 1}", "window_s": T, "dt_ms": dt, "tau_s_ms": tau, "delay_ms": c["spike.delay"],
                "rate_scale_Hz": rate, "eta_W": eta, "decay_coefficient": coef, "hold_soma": p["hold_soma"],
                "postsynaptic_spikes": post_spikes,
                "pre_burst": f"{p['pre_spikes']} spikes in {p['pre_ms']:g} ms",
                "plateau_ms": p["plateau_ms"],
                "plateau": f"{p['plateau_spikes']} top-down spikes in {p['plateau_ms']:g} ms from t_plateau",
                "peak_expected_per_unit_topdown": peak,
                "sal_window_s": [sal_lo, sal_hi], "sal_window_width_s": sal_hi - sal_lo,
                "sal_spike_kernel_s": [-tau * math.log(100) * 1e-3, 0.0],
                "btsp_window_s": [btsp_lo, btsp_hi], "btsp_window_width_s": btsp_hi - btsp_lo,
                "btsp_tau_before_s": p["btsp_tau_before_s"], "btsp_tau_after_s": p["btsp_tau_after_s"],
                "discriminating_pairings": one_s,
                "curve_delta_s": grid_s[keep].tolist(), "curve_sal_relative": (grid_exp[keep] / peak).tolist(),
                "delta_t": "t_plateau - t_pre (s): positive = the presynaptic burst first (Bittner et al.: the "
                           "input precedes the plateau)",
                "dW_per_unit_topdown": "dW (decay taken out) divided by the summed Vbar weight of the stimulated "
                                       "hbar neurons onto each postsynaptic neuron, averaged over them",
                "closed_form": "eta_W / (s T) * sum over presynaptic spikes of the apical current they read, "
                               "sum_b q^lag / (s tau_s) over the top-down spikes b arrived by then (this seed's trains)",
                "expected": "the closed form's mean over the random burst times (the smooth window)",
                "window": "extent of delta_t where the (expected) change is >= 1% of its peak",
                "sal_spike_kernel": "the same for one presynaptic and one top-down spike: the presynaptic spike "
                                    "must follow within tau_s ln 100 (q^lag >= 1%); delta_t in s",
                "sal_relative": "dW per unit top-down weight / the expected window's peak",
                "btsp_relative": "the BTSP kernel of Bittner et al. 2017 as an asymmetric exponential, peak 1: a "
                                 "literature description, NOT simulated"}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows, meta = table["rows"], table["meta"]
        a1, a2 = fig.subplots(1, 2)
        stats = group_stats(rows, ("delta_t_s",), "sal_relative")
        ds = sorted(v[0] for v in stats)
        m = [stats[(v,)][0] for v in ds]
        sd = [stats[(v,)][1] for v in ds]
        x = np.asarray(meta["curve_delta_s"])
        y = np.asarray(meta["curve_sal_relative"])
        span = max(abs(x.min()), abs(x.max()))
        fine = np.linspace(-span, span, 2001)
        btsp = btsp_kernel(fine, meta["btsp_tau_before_s"], meta["btsp_tau_after_s"])
        for ax, lim in ((a1, (-span, span)), (a2, (-0.6, 0.2))):
            ax.plot(fine, btsp, "--", color=OKABE_ITO[1], lw=1.2,
                    label=f"BTSP, Bittner et al. 2017 (literature, not simulated; tau {meta['btsp_tau_before_s']:g} s "
                          f"before, {meta['btsp_tau_after_s']:g} s after)")
            ax.plot(x, y, "-", color=OKABE_ITO[5], lw=1, label="SAL closed form (expected)")
            ax.errorbar(ds, m, yerr=sd, fmt="o", ms=3, capsize=2, color=OKABE_ITO[6],
                        label=f"SAL spike level (mean +- sd, {len(table['seeds'])} seeds)")
            ax.axvline(0, color="0.7", lw=0.6)
            ax.set_xlim(*lim)
            ax.set(xlabel="delta t = t_plateau - t_pre (s); > 0: input first",
                   ylabel="weight change / SAL's peak (BTSP: / its peak)")
        for v in (-1.0, 1.0):
            a1.axvline(v, color="0.4", ls=":", lw=0.8)
        a1.set_title("Over seconds: the pairings at |delta t| = 1 s (dotted)", fontsize=8)
        a2.set_title(f"SAL's window (tau_s {meta['tau_s_ms']:g} ms, {meta['plateau_ms']:g} ms plateau)", fontsize=8)
        a1.legend(frameon=False, fontsize=5)
