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
"""

from __future__ import annotations

import numpy as np

from ..circuit import GROUPS, algorithm_plan
from ..errors import ConfigError
from . import schema
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


def _clamped(s, seed: int, k: int, a: np.ndarray, b: np.ndarray, silenced: np.ndarray, n: int):
    """Clamp h^k = a and hbar^{k+1} = b, silence the apical input of ``silenced`` neurons of
    h^{k+1}, freeze all but W^k, run n trials.  Returns (W0, W_n, u, h_post of the first trial)."""
    c = s.base
    d = c.widths
    with s.level(seed) as lv:
        for g in GROUPS:
            lv.freeze(g)
        lv.unfreeze(f"W{k}")
        lv.clamp(f"h{k}", a)
        lv.clamp(f"hbar{k + 1}", b)
        if silenced.size:
            lv.silence_apical(f"h{k + 1}", silenced)
        w = {name: np.array(v, dtype=np.float64) for name, v in lv.weights.items()}
        x, y = np.zeros((n, d[0])), np.zeros((n, d[-1]))
        act = s.train(lv, x, y)
        w1 = np.array(lv.weights[f"W{k}"], dtype=np.float64)
    vbar = w.get(f"Vbar{k}", np.eye(d[k + 1]))
    u = vbar @ b
    u[silenced] = 0.0
    return w[f"W{k}"], w1, u, np.asarray(act[f"h{k + 1}"])[0]


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
               "decay_only": "-"}

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
            w0, w1, u, _ = _clamped(s, seed, k, a, b, sil, n)
            dw, cf = w1 - w0, _closed_form(w0, u, a, eta, coef, n)
            for label, mask in (("stimulated, apical input on", np.outer(apical, on)),
                                ("unstimulated, apical input on (same neurons)", np.outer(apical, ~on)),
                                ("stimulated, apical input silenced", np.outer(~apical, on)),
                                ("unstimulated, apical input silenced", np.outer(~apical, ~on))):
                if not mask.any():
                    continue
                decay_only = bool(np.allclose(cf[mask], ((1 - coef) ** n - 1) * w0[mask], rtol=0, atol=1e-15))
                decay = ((1 - coef) ** n - 1) * w0[mask]
                rows.append({"seed": seed, "synapses": label, "n": int(mask.sum()), "dW_mean": float(dw[mask].mean()),
                             "closed_form_mean": float(cf[mask].mean()),
                             "max_abs_error": float(np.abs(dw[mask] - cf[mask]).max()),
                             "activity_driven_abs": float(np.abs(dw[mask] - decay).mean()),
                             "closed_form_activity_driven_abs": float(np.abs(cf[mask] - decay).mean()),
                             "decay_only": "yes" if decay_only else "no"})
        meta = {"synapses": f"W{k}: h{k} -> h{k + 1}", "trials": n, "eta_W": eta, "decay_coefficient": coef,
                "clamps": f"h{k}: {self.p['pre_activity']} on {list(map(int, stim))}, 0 elsewhere; "
                          f"hbar{k + 1}: {self.p['topdown']}", "frozen": "every group but W" + str(k),
                "closed_form": "((1-c)^n - 1) W0 + eta u a^T sum_{m<n} (1-c)^m, u = Vbar hbar (0 where silenced)",
                "activity_driven_abs": "mean |dW - ((1-c)^n - 1) W0|: the change beyond the weight decay",
                "decay_only": "yes: the synapses change only by the weight decay -c w (no activity-driven change)"}
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
    SUMMARY = "change of W against presynaptic activity x apical drive (closed form: their product), Hebbian/BCM fits"
    LEVELS = ("matrix", "rate", "spike")
    KEYS = {**_KEYS,
            "pre_activities": (list, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4], "presynaptic activities, one per h{k} "
                               "neuron (at most its width)"),
            "apical_drives": (list, [-1.0, -0.6, -0.2, 0.2, 0.6, 1.0], "apical drives u = Vbar hbar, one per h{k+1} "
                              "neuron (at most its width)")}
    reads = _reads
    COLUMNS = {"seed": "-", "pre_activity": "", "apical_drive": "", "post_activity": "", "dW": "",
               "closed_form": "", "hebbian_fit": "", "bcm_fit": ""}

    @classmethod
    def check(cls, p, src):
        p["pre_activities"] = schema.number_list(src, "pre_activities", p["pre_activities"])
        p["apical_drives"] = schema.number_list(src, "apical_drives", p["apical_drives"])

    def run(self, s):
        c = s.base
        k = _layer(self.p, c)
        d, db = c.widths, c.downstream_widths
        A, U = np.asarray(self.p["pre_activities"]), np.asarray(self.p["apical_drives"])
        if A.size > d[k] or U.size > d[k + 1]:
            raise ConfigError(f"{self.p['source']}: at most {d[k]} pre_activities (width of h{k}) and {d[k + 1]} "
                              f"apical_drives (width of h{k + 1})")
        if k + 1 == c.n_layers:
            raise ConfigError(f"{self.p['source']}: the output layer's apical input is the error itself; measure a "
                              "hidden layer (pre = h0..h{K-2})")
        eta, coef = _eta_coef(s, self.p)
        n = self.p["trials"]
        a = np.zeros(d[k])
        a[:A.size] = A
        rows = []
        for seed in self.p["seeds"]:
            from ..circuit import init_weights

            vbar = init_weights(s.circuit(seed))[f"Vbar{k}"]
            target = np.zeros(d[k + 1])
            target[:U.size] = U
            b = np.linalg.lstsq(vbar, target, rcond=None)[0]  # Vbar (d x db, db >= d) b = u exactly
            w0, w1, u, h_post = _clamped(s, seed, k, a, b, np.zeros(0, dtype=int), n)
            dw, cf = w1 - w0, _closed_form(w0, u, a, eta, coef, n)
            for i in range(U.size):
                for j in range(A.size):
                    rows.append({"seed": seed, "pre_activity": float(A[j]), "apical_drive": float(u[i]),
                                 "post_activity": float(h_post[i]), "dW": float(dw[i, j]),
                                 "closed_form": float(cf[i, j]), "hebbian_fit": float("nan"), "bcm_fit": float("nan")})
        r2 = _fit_classic(rows)
        meta = {"synapses": f"W{k}: h{k} -> h{k + 1}", "trials": n, "eta_W": eta, "decay_coefficient": coef,
                "closed_form": "eta a u n at gamma = 0 (see the module docstring for the decay)",
                "hebbian": "dW = k a h_post, k fitted", "bcm": "dW = k a h_post (h_post - theta), k and theta fitted",
                "r2": r2, "post_activity": "somatic activity h{k+1} (the clamped pre drives it, the apical input does not)"}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows = table["rows"]
        a1, a2 = fig.subplots(1, 2)
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
               title="dW = eta a u (lines: closed form)")
        a1.legend(frameon=False, fontsize=5, ncol=2)
        dw = np.array([r["dW"] for r in rows])
        r2 = table["meta"]["r2"]
        for col, color, marker, name in (("closed_form", OKABE_ITO[0], "o", "SAL: eta a u"),
                                         ("hebbian_fit", OKABE_ITO[1], "s", "Hebbian fit k a h_post"),
                                         ("bcm_fit", OKABE_ITO[2], "^", "BCM fit k a h_post (h_post - theta)")):
            pred = np.array([np.nan if r[col] is None else r[col] for r in rows], dtype=float)
            a2.plot(pred, dw, marker, color=color, ms=3, mfc="none", label=f"{name}: R^2 = {r2[col]:.2f}")
        lim = np.nanmax(np.abs(dw)) * 1.1
        a2.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8)
        a2.set(xlabel="rule's prediction of dW (dimensionless)", ylabel="measured dW (dimensionless)",
               title="Fitted to the same protocol")
        a2.legend(frameon=False, fontsize=6)


def _fit_classic(rows: list[dict]) -> dict[str, float]:
    """Least-squares Hebbian and BCM fits of dW on (a, h_post), written into the rows; R^2 of each
    and of the closed form."""
    dw = np.array([r["dW"] for r in rows])
    a = np.array([r["pre_activity"] for r in rows])
    h = np.array([r["post_activity"] for r in rows])
    ss = float(np.sum((dw - dw.mean()) ** 2)) or 1.0
    heb = a * h
    k = float(heb @ dw / (heb @ heb)) if heb @ heb > 0 else 0.0
    best = (np.inf, 0.0, 0.0)
    for theta in np.linspace(h.min() - 1, h.max() + 1, 201):  # BCM: k a h (h - theta), grid over theta
        f = a * h * (h - theta)
        kk = float(f @ dw / (f @ f)) if f @ f > 0 else 0.0
        err = float(np.sum((dw - kk * f) ** 2))
        if err < best[0]:
            best = (err, kk, theta)
    for r, ai, hi in zip(rows, a, h):
        r["hebbian_fit"] = k * ai * hi
        r["bcm_fit"] = best[1] * ai * hi * (hi - best[2])
    r2 = lambda col: 1.0 - float(np.sum((dw - np.array([r[col] for r in rows])) ** 2)) / ss  # noqa: E731
    return {"closed_form": r2("closed_form"), "hebbian_fit": r2("hebbian_fit"), "bcm_fit": r2("bcm_fit"),
            "hebbian_k": k, "bcm_k": best[1], "bcm_theta": best[2]}
