"""Synapse-scale protocols on one synapse group W^k (pre h^k -> post h^{k+1}), slice-like: the
presynaptic population h^k and the top-down population hbar^{k+1} are clamped (hook ``clamp``),
every other group is frozen (hook ``freeze``), and the change of W^k is compared with the
closed form of Eq. 5 over n trials with decay coefficient c:

    u = Vbar^k hbar^{k+1}   (the apical input of each postsynaptic neuron; 0 where apical is silenced)
    W_n - W_0 = ((1 - c)^n - 1) W_0 + eta_W u a^T sum_{m<n} (1 - c)^m

* ``heterosynaptic``: some presynaptic inputs stimulated (a_j > 0), the others silent (a_j = 0),
  top-down input on, some postsynaptic neurons with the apical input silenced.  Which synapses
  change: only stimulated synapses on neurons that receive top-down input; unstimulated
  synapses on the same neuron change only by the weight decay, -c w (none at gamma = 0) - unlike
  the heterosynaptic plasticity of unstimulated inputs in cortex (Chistiakova & Volgushev 2009).
* ``rate_dependence``: a grid of presynaptic activities a_j (one per presynaptic neuron) against
  apical drives u_i (one per postsynaptic neuron, set through hbar^{k+1} = pinv(Vbar^k) u) in one
  trial: dW_ij = eta a_j u_i (the product), with a Hebbian (dW = k a h_post) and a BCM-style
  (dW = k a h_post (h_post - theta)) rule fitted by least squares to the same changes beside it.

At the spike level the clamped h^k fires Poisson spikes at s a and hbar^{k+1} at s |b|; a
synapse's tag sums the apical current at its presynaptic spikes, consolidated once per trial.
Exact there: a synapse without presynaptic spikes, or onto a neuron whose apical input is
silenced, changes by exactly the decay.  Statistical: the other changes follow the closed form
within the Poisson spike noise, which `_spike_noise` predicts (column ``noise_sd``, and the sd of
the ``gain`` of the changes on the closed form, noise shared by a neuron's synapses included).
``rate_dependence`` also fits a pair-based STDP rule whose pair sums come from the run's own
spike trains (`salspike.protocols.stdp`), and with ``mirror`` runs each seed again with the
drives -u and the same spike-train seed: the same pre and post spikes (the apical current does
not reach the soma), the opposite change - which no rule of pre and post activity or spike
timing can represent.
"""

from __future__ import annotations

import numpy as np

from ..circuit import GROUPS, algorithm_plan
from ..errors import ConfigError
from . import schema, stdp
from .engine import Protocol, group_stats, register_protocol

__all__ = ["Heterosynaptic", "RateDependence"]

_KEYS = {"pre": (str, "h0", "presynaptic upstream population h{k}: the synapses measured are W{k}")}


def _reads(self) -> tuple[str, ...]:
    """The synapses measured, W{k} of ``pre``, and their postsynaptic population h{k+1}."""
    k = int(self.p["pre"][1:])
    return (f"W{k}", f"h{k + 1}")


def _layer(p, c) -> int:
    pre = p["pre"]
    K = c.n_layers
    if not (pre[:1] == "h" and pre[1:].isdigit() and int(pre[1:]) < K):
        raise ConfigError(f"{p['source']}: key 'pre' = {pre!r} must be an upstream population h0..h{K - 1}")
    return int(pre[1:])


def _clamped(s, seed: int, k: int, a: np.ndarray, b: np.ndarray, silenced: np.ndarray, n: int,
             condition: str = "") -> dict:
    """Clamp h^k = a and hbar^{k+1} = b, silence the apical input of ``silenced`` neurons of
    h^{k+1}, freeze all but W^k, run n trials.  Returns W0, W (after), u (the apical input
    Vbar b, 0 where silenced), vbar, h_post (first trial) and, at the spike level, ``spikes``:
    the spike recordings of h^k ("pre") and h^{k+1} ("post") on the level's clock."""
    c = s.base
    d = c.widths
    spiking = s.level_name == "spike"
    with s.level(seed, condition=condition) as lv:
        for g in GROUPS:
            lv.freeze(g)
        lv.unfreeze(f"W{k}")
        lv.clamp(f"h{k}", a)
        lv.clamp(f"hbar{k + 1}", b)
        if silenced.size:
            lv.silence_apical(f"h{k + 1}", silenced)
        keys = {"pre": lv.record(f"h{k}", "spikes"), "post": lv.record(f"h{k + 1}", "spikes")} if spiking else {}
        w = {name: np.array(v, dtype=np.float64) for name, v in lv.weights.items()}
        x, y = np.zeros((n, d[0])), np.zeros((n, d[-1]))
        act = s.train(lv, x, y)
        w1 = np.array(lv.weights[f"W{k}"], dtype=np.float64)
        spikes = {role: {f: np.asarray(v) for f, v in lv.recordings.get(key, {}).items()}
                  for role, key in keys.items()} if spiking else None
    vbar = w.get(f"Vbar{k}", np.eye(d[k + 1]))
    u = vbar @ b
    u[silenced] = 0.0
    return {"w0": w[f"W{k}"], "w1": w1, "u": u, "vbar": vbar, "h_post": np.asarray(act[f"h{k + 1}"])[0],
            "spikes": spikes}


def _windows(c, n: int) -> list[tuple[float, float]]:
    """The plasticity windows (ms) of n trials from the start of a spike-level run."""
    settle, window = float(c["spike.t_settle"]), float(c["spike.t_window"])
    return [(m * (settle + window) + settle, (m + 1) * (settle + window)) for m in range(n)]


def _spike_noise(c, r: dict, a: np.ndarray, b: np.ndarray, apical: np.ndarray, eta: float, coef: float,
                 n: int) -> dict:
    """The Poisson spike noise of the changes over n trials (spike level), as ``sd`` (per
    synapse), ``indep`` and ``shared`` (see `_gain`).  One trial: the tag of synapse ij sums the
    apical current I_i at the presynaptic spikes (rate r_j = s a_j) of the window T.  I, driven
    by the clamped hbar spikes (rates s |b_l|) through Vbar with filter tau_s, has mean u and,
    sampled at the network's steps dt, covariance
    C = Vbar diag(|b|) Vbar^T dt / (s tau_s^2 (1 - exp(-2 dt / tau_s))) (shot noise; the dt -> 0
    limit is Vbar diag(|b|) Vbar^T / (2 s tau_s)), independent of the presynaptic spikes.  So

        tag_ij - r_j T u_i = [sum_k I_i(t_k) - r_j int_T I_i] + r_j [int_T I_i - T u_i]

    an independent part of variance r_j T (u_i^2 + C_ii) and a part shared by the synapses of the
    network, r_j X_i, Cov(X_i, X_i') = C_ii' 2 tau_s (T - tau_s (1 - exp(-T / tau_s))); and
    dW = eta tag / (s T) - c w, over n trials the variances add with weights (1 - c)^(2m)."""
    s, T, tau, dt = c["spike.rate_scale"], c["spike.t_window"] * 1e-3, c["spike.tau_s"] * 1e-3, c["spike.dt"] * 1e-3
    vb = r["vbar"] * np.asarray(apical, dtype=float)[:, None]
    cov = vb @ (np.abs(b)[:, None] * vb.T) * dt / (s * tau ** 2 * -np.expm1(-2 * dt / tau))
    geo2 = n if coef == 0 else (1 - (1 - coef) ** (2 * n)) / (1 - (1 - coef) ** 2)
    scale2 = (eta / (s * T)) ** 2 * geo2
    rate = s * np.asarray(a, dtype=float)
    indep = scale2 * rate[None, :] * T * (r["u"] ** 2 + np.diag(cov))[:, None]
    shared = scale2 * cov * 2 * tau * (T - tau * (1 - np.exp(-T / tau)))
    sd = np.sqrt(indep + rate[None, :] ** 2 * np.diag(shared)[:, None])
    return {"sd": sd, "indep": indep, "shared": shared, "rate": rate}


def _gain(dw, cf, noise: dict | None, mask) -> tuple[float, float, float, float]:
    """Least-squares gain of the measured activity-driven changes on the closed form's over the
    synapses ``mask`` (``dw``, ``cf``: the changes beyond the decay): sum(cf dw) / sum(cf^2), 1 when
    the level follows the closed form.  Returns (numerator, denominator, variance of the
    numerator from the spike noise, gain); the variance counts the noise the synapses of one
    postsynaptic neuron, and of neurons sharing top-down spikes, have in common."""
    w = np.where(mask, cf, 0.0)
    num, den = float(np.sum(w * dw)), float(np.sum(w ** 2))
    var = 0.0
    if noise is not None:
        g = w @ noise["rate"]
        var = float(np.sum(w ** 2 * noise["indep"]) + g @ noise["shared"] @ g)
    return num, den, var, (num / den if den > 0 else float("nan"))


def _gain_sd(den: float, var: float) -> float:
    return float(np.sqrt(var) / den) if den > 0 else float("nan")


def _rms_z(dw, cf, sd) -> float:
    """rms of (dW - closed form) / sd over the synapses with a predicted noise (NaN if none)."""
    keep = sd > 0
    return float(np.sqrt(np.mean(((dw[keep] - cf[keep]) / sd[keep]) ** 2))) if keep.any() else float("nan")


def _closed_form(w0, u, a, eta, coef, n):
    """Eq. 5 over n trials with clamped factors: ((1-c)^n - 1) W0 + eta u a^T sum_{m<n} (1-c)^m."""
    geo = n if coef == 0 else (1 - (1 - coef) ** n) / coef
    return ((1 - coef) ** n - 1) * w0 + eta * np.outer(u, a) * geo


def _eta_coef(s, p):
    plan = algorithm_plan(s.base)
    if not plan.learns("W"):
        raise ConfigError(f"{p['source']}: the model's W does not learn (plastic / algorithm); this protocol measures W")
    return plan.eta["W"], plan.decay["W"]


@register_protocol("heterosynaptic")
class Heterosynaptic(Protocol):
    SUMMARY = "which synapses of a neuron change: stimulated vs unstimulated inputs, apical input on vs off"
    LEVELS = ("matrix", "rate", "spike")
    KEYS = {**_KEYS,
            "stimulated": (list, [0, 1, 2, 3], "indices of the stimulated presynaptic neurons of h{k}"),
            "pre_activity": ((int, float), 1.0, "activity of the stimulated inputs (the others at 0)"),
            "topdown": ((int, float), 1.0, "activity of every hbar{k+1} neuron (the top-down input)"),
            "apical_silenced": (list, [0], "postsynaptic neurons of h{k+1} with the apical input silenced")}
    reads = _reads
    COLUMNS = {"seed": "-", "synapses": "-", "n": "synapses", "dW_mean": "", "closed_form_mean": "",
               "max_abs_error": "", "activity_driven_abs": "", "closed_form_activity_driven_abs": "",
               "decay_only": "-", "noise_sd": "", "rms_z": "", "gain": "", "gain_sd": ""}

    @classmethod
    def check(cls, p, src):
        for key in ("stimulated", "apical_silenced"):
            if p[key]:
                p[key] = schema.number_list(src, key, p[key], lo=0, integer=True)

    def run(self, s):
        c = s.base
        k = _layer(self.p, c)
        d, db = c.widths, c.downstream_widths
        stim, sil = np.asarray(self.p["stimulated"], dtype=int), np.asarray(self.p["apical_silenced"], dtype=int)
        if stim.size and stim.max() >= d[k] or sil.size and sil.max() >= d[k + 1]:
            raise ConfigError(f"{self.p['source']}: 'stimulated' must index h{k} (0..{d[k] - 1}) and "
                              f"'apical_silenced' h{k + 1} (0..{d[k + 1] - 1})")
        eta, coef = _eta_coef(s, self.p)
        n = self.p["trials"]
        a = np.zeros(d[k])
        a[stim] = self.p["pre_activity"]
        b = np.full(db[k + 1] if k + 1 < c.n_layers else d[-1], float(self.p["topdown"]))
        on = np.zeros(d[k], dtype=bool)
        on[stim] = True
        apical = np.ones(d[k + 1], dtype=bool)
        apical[sil] = False
        rows = []
        for seed in self.p["seeds"]:
            r = _clamped(s, seed, k, a, b, sil, n)
            w0, w1, u = r["w0"], r["w1"], r["u"]
            dw, cf = w1 - w0, _closed_form(w0, u, a, eta, coef, n)
            noise = _spike_noise(c, r, a, b, apical, eta, coef, n) if s.level_name == "spike" else None
            sd = noise["sd"] if noise else np.zeros_like(dw)
            for label, mask in (("stimulated, apical input on", np.outer(apical, on)),
                                ("unstimulated, apical input on (same neurons)", np.outer(apical, ~on)),
                                ("stimulated, apical input silenced", np.outer(~apical, on)),
                                ("unstimulated, apical input silenced", np.outer(~apical, ~on))):
                if not mask.any():
                    continue
                decay_only = bool(np.allclose(cf[mask], ((1 - coef) ** n - 1) * w0[mask], rtol=0, atol=1e-15))
                decay = ((1 - coef) ** n - 1) * w0[mask]
                _, den, var, gain = _gain(dw - ((1 - coef) ** n - 1) * w0, cf - ((1 - coef) ** n - 1) * w0, noise,
                                          mask)
                rows.append({"seed": seed, "synapses": label, "n": int(mask.sum()), "dW_mean": float(dw[mask].mean()),
                             "closed_form_mean": float(cf[mask].mean()),
                             "max_abs_error": float(np.abs(dw[mask] - cf[mask]).max()),
                             "activity_driven_abs": float(np.abs(dw[mask] - decay).mean()),
                             "closed_form_activity_driven_abs": float(np.abs(cf[mask] - decay).mean()),
                             "decay_only": "yes" if decay_only else "no",
                             "noise_sd": float(sd[mask].mean()), "rms_z": _rms_z(dw[mask], cf[mask], sd[mask]),
                             "gain": gain, "gain_sd": _gain_sd(den, var)})
        meta = {"synapses": f"W{k}: h{k} -> h{k + 1}", "trials": n, "eta_W": eta, "decay_coefficient": coef,
                "clamps": f"h{k}: {self.p['pre_activity']} on {list(map(int, stim))}, 0 elsewhere; "
                          f"hbar{k + 1}: {self.p['topdown']}", "frozen": "every group but W" + str(k),
                "closed_form": "((1-c)^n - 1) W0 + eta u a^T sum_{m<n} (1-c)^m, u = Vbar hbar (0 where silenced)",
                "activity_driven_abs": "mean |dW - ((1-c)^n - 1) W0|: the change beyond the weight decay",
                "decay_only": "yes: the synapses change only by the weight decay -c w (no activity-driven change)",
                "noise_sd": "mean predicted sd of a synapse's change from the spike trains' Poisson noise (spike "
                            "level; 0 at the matrix and rate levels, which have no spike noise)",
                "rms_z": "rms over the synapses of (dW - closed form) / noise_sd (about 1 when the spike level "
                         "follows the closed form within its spike noise; NaN where no noise is predicted)",
                "gain": "sum(cf dW) / sum(cf^2) over the synapses, cf and dW beyond the decay: 1 when the change "
                        "follows the closed form in size and sign (NaN where the closed form predicts none)",
                "gain_sd": "sd of gain from the spike noise, shared noise included (0 at the matrix and rate levels)"}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows = table["rows"]
        ax = fig.subplots(1, 1)
        labels = list(dict.fromkeys(r["synapses"] for r in rows))
        y = np.arange(len(labels))[::-1]
        for col, color, marker, off, name in (
                ("activity_driven_abs", OKABE_ITO[5], "o", 0.12, "measured"),
                ("closed_form_activity_driven_abs", OKABE_ITO[6], "D", -0.12, "closed form (Eq. 5)")):
            st = group_stats(rows, ("synapses",), col)
            ax.errorbar([st[(lab,)][0] for lab in labels], y + off, xerr=[st[(lab,)][1] for lab in labels], fmt=marker,
                        color=color, ms=5, mfc="none" if marker == "D" else color, capsize=2, label=name)
        ax.set_yticks(y, labels)
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set(xlabel="mean |dW beyond the weight decay| per synapse (dimensionless)", title=f"Which synapses change ({table['meta']['synapses']})")
        ax.legend(frameon=False, fontsize=6)


@register_protocol("rate_dependence")
class RateDependence(Protocol):
    SUMMARY = ("change of W against presynaptic activity x apical drive (closed form: their product), "
               "Hebbian/BCM fits; STDP fit at the spike level")
    LEVELS = ("matrix", "rate", "spike")
    KEYS = {**_KEYS,
            "pre_activities": (list, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4], "presynaptic activities, one per h{k} "
                               "neuron (at most its width)"),
            "apical_drives": (list, [-1.0, -0.6, -0.2, 0.2, 0.6, 1.0], "apical drives u = Vbar hbar, one per h{k+1} "
                              "neuron (at most its width)"),
            "mirror": (bool, False, "also run every seed with the apical drives mirrored (-u), same spike-train "
                                    "seed: the same pre and post activity, the opposite drive"),
            "stdp_tau_plus_ms": ((int, float), stdp.TAU_PLUS_MS, "ms, STDP fit (spike level): time constant of "
                                 "potentiation, post after pre (Bi & Poo)"),
            "stdp_tau_minus_ms": ((int, float), stdp.TAU_MINUS_MS, "ms, STDP fit (spike level): time constant of "
                                  "depression, post before pre (Bi & Poo)")}
    FIGSIZE = (10.0, 3.4)
    reads = _reads
    COLUMNS = {"seed": "-", "drives": "-", "pre_activity": "", "apical_drive": "", "post_activity": "", "dW": "",
               "closed_form": "", "noise_sd": "", "hebbian_fit": "", "bcm_fit": "", "stdp_fit": ""}

    @classmethod
    def check(cls, p, src):
        p["pre_activities"] = schema.number_list(src, "pre_activities", p["pre_activities"])
        p["apical_drives"] = schema.number_list(src, "apical_drives", p["apical_drives"])
        for key in ("stdp_tau_plus_ms", "stdp_tau_minus_ms"):
            if p[key] <= 0:
                raise ConfigError(f"{src}: key '{key}' must be > 0 ms, got {p[key]}")

    def run(self, s):
        c = s.base
        k = _layer(self.p, c)
        d = c.widths
        A, U = np.asarray(self.p["pre_activities"]), np.asarray(self.p["apical_drives"])
        if A.size > d[k] or U.size > d[k + 1]:
            raise ConfigError(f"{self.p['source']}: at most {d[k]} pre_activities (width of h{k}) and {d[k + 1]} "
                              f"apical_drives (width of h{k + 1})")
        if k + 1 == c.n_layers:
            raise ConfigError(f"{self.p['source']}: the output layer's apical input is the error itself; measure a "
                              "hidden layer (pre = h0..h{K-2})")
        if s.level_name == "spike" and np.any(A < 0):
            raise ConfigError(f"{self.p['source']}: at the spike level pre_activities are firing rates and must be "
                              f">= 0, got {A.min():g}")
        spiking = s.level_name == "spike"
        eta, coef = _eta_coef(s, self.p)
        n = self.p["trials"]
        a = np.zeros(d[k])
        a[:A.size] = A
        rows, fp, fm = [], [], []
        acc = np.zeros(3)  # gain on the drives u, summed over seeds: numerator, denominator, variance
        for seed in self.p["seeds"]:
            from ..circuit import init_weights

            vbar = init_weights(s.circuit(seed))[f"Vbar{k}"]
            target = np.zeros(d[k + 1])
            target[:U.size] = U
            b = np.linalg.lstsq(vbar, target, rcond=None)[0]  # Vbar (d x db, db >= d) b = u exactly
            for label, sign in (("u", 1.0), ("-u", -1.0))[:2 if self.p["mirror"] else 1]:
                r = _clamped(s, seed, k, a, sign * b, np.zeros(0, dtype=int), n, condition=f"apical drives {label}")
                u, w0 = r["u"], r["w0"]
                dw, cf = r["w1"] - w0, _closed_form(w0, u, a, eta, coef, n)
                noise = _spike_noise(c, r, a, sign * b, np.ones(d[k + 1]), eta, coef, n) if spiking else None
                sd = noise["sd"] if noise else np.zeros_like(dw)
                if sign > 0:
                    decay = ((1 - coef) ** n - 1) * w0
                    sub = np.zeros_like(dw, dtype=bool)
                    sub[:U.size, :A.size] = True
                    acc += _gain(dw - decay, cf - decay, noise, sub)[:3]
                if spiking:
                    win = _windows(c, n)
                    f_plus, f_minus = stdp.pair_sums(stdp.window_spikes(r["spikes"]["pre"], d[k], win),
                                                     stdp.window_spikes(r["spikes"]["post"], d[k + 1], win),
                                                     self.p["stdp_tau_plus_ms"], self.p["stdp_tau_minus_ms"])
                for i in range(U.size):
                    for j in range(A.size):
                        rows.append({"seed": seed, "drives": label, "pre_activity": float(A[j]),
                                     "apical_drive": float(u[i]), "post_activity": float(r["h_post"][i]),
                                     "dW": float(dw[i, j]), "closed_form": float(cf[i, j]),
                                     "noise_sd": float(sd[i, j]), "hebbian_fit": float("nan"),
                                     "bcm_fit": float("nan"), "stdp_fit": float("nan")})
                        if spiking:
                            fp.append(f_plus[i, j])
                            fm.append(f_minus[i, j])
        pairs = (np.asarray(fp), np.asarray(fm)) if spiking else None
        first = [m for m, row in enumerate(rows) if row["drives"] == "u"]
        r2 = _fit_classic(rows, pairs, fit=first)
        meta = {"synapses": f"W{k}: h{k} -> h{k + 1}", "trials": n, "eta_W": eta, "decay_coefficient": coef,
                "closed_form": "eta a u n at gamma = 0 (see the module docstring for the decay)",
                "hebbian": "dW = k a h_post, k fitted", "bcm": "dW = k a h_post (h_post - theta), k and theta fitted",
                "r2": r2, "post_activity": "somatic activity h{k+1} (the clamped pre drives it, the apical input does not)",
                "noise_sd": "predicted sd of dW from the spike trains' Poisson noise (0 at the matrix and rate levels)",
                "gain": acc[0] / acc[1] if acc[1] > 0 else float("nan"), "gain_sd": _gain_sd(acc[1], acc[2]),
                "gain_what": "sum(cf dW) / sum(cf^2) over the drives-u synapses and seeds (beyond the decay): 1 when "
                             "dW follows eta a u in size and sign; gain_sd from the spike noise"}
        if self.p["mirror"]:
            meta["r2_mirrored"] = _fit_classic([dict(row) for row in rows], pairs)
            meta["mirror"] = ("drives -u: the same seed with hbar clamped at -b (the top-down spikes at the same "
                              "times with the opposite sign).  The fits (columns, r2) are fitted to the drives u "
                              "and predict the rows -u from their own pre/post activity and spikes; r2_mirrored: "
                              "each rule refitted to both together")
        if spiking:
            meta["stdp"] = (f"dW = A+ F+ - A- F-, F+- the sums over pre/post spike pairs in each plasticity window of "
                            f"exp(-|dt| / tau+-), post after (+) or before (-) pre, tau+ {self.p['stdp_tau_plus_ms']} ms, "
                            f"tau- {self.p['stdp_tau_minus_ms']} ms (Bi & Poo 1998, 2001); A+ and A- fitted "
                            "(Song, Miller & Abbott 2000)")
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        every = table["rows"]
        rows = [r for r in every if r.get("drives", "u") == "u"]
        mirrored = [r for r in every if r.get("drives") == "-u"]
        axes = fig.subplots(1, 3 if mirrored else 2)
        a1, a2 = axes[0], axes[1]
        drives = sorted({round(r["apical_drive"], 9) for r in rows})
        cmap = [OKABE_ITO[i] for i in (5, 2, 3, 1, 6, 7, 0, 4)]
        for i, u in enumerate(drives):
            sub = [r for r in rows if round(r["apical_drive"], 9) == u]
            st = group_stats(sub, ("pre_activity",), "dW")
            cf = group_stats(sub, ("pre_activity",), "closed_form")
            x = [key[0] for key in sorted(st)]
            a1.plot(x, [cf[(v,)][0] for v in x], "-", color=cmap[i % 8], lw=1)
            a1.errorbar(x, [st[(v,)][0] for v in x], yerr=[st[(v,)][1] for v in x], fmt="o", ms=3,
                        color=cmap[i % 8], label=f"apical drive u = {u:+.1f}")
        a1.set(xlabel="presynaptic activity a (dimensionless)", ylabel="weight change dW (dimensionless)",
               title="dW = eta a u (lines)")
        a1.legend(frameon=False, fontsize=5, ncol=2)
        dw = np.array([r["dW"] for r in rows])
        r2 = table["meta"]["r2"]
        rules = (("closed_form", OKABE_ITO[0], "o", "SAL: eta a u"),
                 ("hebbian_fit", OKABE_ITO[1], "s", "Hebbian: k a h"),
                 ("bcm_fit", OKABE_ITO[2], "^", "BCM: k a h (h - theta)"),
                 ("stdp_fit", OKABE_ITO[4], "v", "STDP: A+ F+ - A- F-"))
        for col, color, marker, name in rules:
            pred = np.array([np.nan if r.get(col) is None else r[col] for r in rows], dtype=float)
            if col not in r2 or not np.any(np.isfinite(pred)):
                continue
            a2.plot(pred, dw, marker, color=color, ms=3, mfc="none", label=f"{name}: R^2 = {r2[col]:.2f}")
        lim = np.nanmax(np.abs(dw)) * 1.1
        a2.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8)
        a2.set(xlabel="rule's prediction of dW (dimensionless)", ylabel="measured dW (dimensionless)",
               title="Rules fitted to dW")
        a2.legend(frameon=False, fontsize=5)
        if mirrored:  # the same synapse, same spike trains, apical drive u vs -u
            a3 = axes[2]
            x = np.array([r["dW"] for r in rows])
            a3.plot(x, [r["dW"] for r in mirrored], "o", color=OKABE_ITO[0], ms=3, mfc="none",
                    label="measured dW (SAL)")
            for col, color, marker, name in rules[1:]:
                p_u = np.array([np.nan if r.get(col) is None else r[col] for r in rows], dtype=float)
                p_m = np.array([np.nan if r.get(col) is None else r[col] for r in mirrored], dtype=float)
                if np.any(np.isfinite(p_u)):
                    a3.plot(p_u, p_m, marker, color=color, ms=3, mfc="none", label=f"{name.split(':')[0]} fit (same spikes)")
            a3.plot([-lim, lim], [lim, -lim], color="0.6", lw=0.8)
            a3.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8, ls=":")
            a3.set(xlabel="dW with apical drive u (dimensionless)", ylabel="dW with drive -u (dimensionless)",
                   title="Same spikes, drive -u")
            a3.legend(frameon=False, fontsize=5)


def _r2(dw: np.ndarray, pred: np.ndarray) -> float:
    ss = float(np.sum((dw - dw.mean()) ** 2)) or 1.0
    return 1.0 - float(np.sum((dw - pred) ** 2)) / ss


def _fit_classic(rows: list[dict], stdp_pairs: tuple[np.ndarray, np.ndarray] | None = None,
                 fit: list[int] | None = None) -> dict[str, float]:
    """Least-squares Hebbian and BCM fits of dW on (a, h_post), and with ``stdp_pairs`` (F+, F-
    per row, from the spike trains) the pair-based STDP fit, fitted to the rows ``fit`` (indices;
    default all) and their predictions written into every row; R^2 of each and of the closed form
    over the fitted rows."""
    fit = list(range(len(rows))) if fit is None else list(fit)
    dw_all = np.array([r["dW"] for r in rows])
    a_all = np.array([r["pre_activity"] for r in rows])
    h_all = np.array([r["post_activity"] for r in rows])
    dw, a, h = dw_all[fit], a_all[fit], h_all[fit]
    heb = a * h
    k = float(heb @ dw / (heb @ heb)) if heb @ heb > 0 else 0.0
    best = (np.inf, 0.0, 0.0)
    for theta in np.linspace(h.min() - 1, h.max() + 1, 201):  # BCM: k a h (h - theta), grid over theta
        f = a * h * (h - theta)
        kk = float(f @ dw / (f @ f)) if f @ f > 0 else 0.0
        err = float(np.sum((dw - kk * f) ** 2))
        if err < best[0]:
            best = (err, kk, theta)
    for r, ai, hi in zip(rows, a_all, h_all):
        r["hebbian_fit"] = k * ai * hi
        r["bcm_fit"] = best[1] * ai * hi * (hi - best[2])
    col = lambda name: np.array([rows[m][name] for m in fit])  # noqa: E731
    out = {"closed_form": _r2(dw, col("closed_form")), "hebbian_fit": _r2(dw, col("hebbian_fit")),
           "bcm_fit": _r2(dw, col("bcm_fit")), "hebbian_k": k, "bcm_k": best[1], "bcm_theta": best[2]}
    if stdp_pairs is not None:
        fp, fm = (np.asarray(v, dtype=float) for v in stdp_pairs)
        a_plus, a_minus, _ = stdp.fit_stdp(dw, fp[fit], fm[fit])
        for r, v in zip(rows, a_plus * fp - a_minus * fm):
            r["stdp_fit"] = float(v)
        out.update({"stdp_fit": _r2(dw, col("stdp_fit")), "stdp_a_plus": a_plus, "stdp_a_minus": a_minus})
    return out
