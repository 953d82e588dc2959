"""Short-term modulation (``short_term_modulation``, paper Sec. 2.3; matrix level only).

After one forward/feedback cycle on an input x with target y, every upstream layer adds its
apical input, h^k <- h^k + alpha Vbar^{k-1} hbar^k (k = 1..K; Vbar^{K-1} = I, so the output adds
alpha times its own error e = hbar^K), and the modulated activity propagates upwards
(`MatrixNetwork.modulated_activities`).  The paper: Vbar hbar = -grad_h F, so modulation is one
gradient step on the activities and lowers the loss of this sample.

What the equations fix (derived here, not taken from the engine).  With m_k = Vbar^{k-1} hbar^k
and the Jacobians J_k = D_k W^{k-1} of the unmodulated pass (D_k the ReLU gate of hidden layer k,
the identity at the linear output), the modulated activity is h^k + alpha u_k with
u_k = J_k u_{k-1} + m_k (u_0 = 0) exactly as long as no ReLU switches, so

    F(alpha) = F(0) - alpha <e . u_K> + O(alpha^2),   e . u_K = sum_k delta_k . m_k,

delta_k = -dF/dh^k the backprop error of layer k (delta_K = e).  The first-order change is a
reduction iff sum_k delta_k . m_k > 0: always for the output's own term (|e|^2), for a hidden
layer only where its apical input is aligned with its backprop error (delta_k . m_k > 0; m_k =
delta_k exactly with weight transport, algorithm = "bp").  For mse the loss at the linearised
output, 1/2 <|e - alpha u_K|^2>, is exact while no ReLU switches: it falls for
0 < alpha < 2 alpha*, alpha* = <e . u_K> / <|u_K|^2>, and rises again beyond (overshoot).

Reported per seed, after each number of learning trials in ``after_trials`` (the feedback aligns
with learning), for each alpha: the probe loss after modulation relative to before (measured,
first order, linearised) and, per layer, the change of the activity along the layer's error
direction (delta_k / |delta_k|), measured and first order, with the alignment of the apical
input m_k to delta_k.  The rate and spike levels refuse: there the apical input does not reach
the soma.  Learning itself does not use modulation (Algorithm 1: the step reads the unmodulated
activities), so modulation_alpha does not change the learned weights.
"""

from __future__ import annotations

import numpy as np

from ..circuit.functions import loss_value
from ..errors import ConfigError
from . import schema
from .engine import Protocol, group_stats, register_protocol

__all__ = ["ShortTermModulation", "first_order_terms"]


def first_order_terms(weights: dict, act: dict, a: list, K: int, relu: bool) -> tuple[list, list, list]:
    """(m, u, delta) per layer 1..K (index k; index 0 unused) of a batch, from the weights and the
    unmodulated activities: m_k = Vbar^{k-1} hbar^k, u_k = J_k u_{k-1} + m_k, delta_k = J_{k+1}^T
    delta_{k+1} with delta_K = hbar^K = e (see the module docstring); ``a``: pre-activations."""
    n = act["h0"].shape[0]
    m, u, gate = [None], [np.zeros_like(act["h0"])], [None]
    for k in range(1, K + 1):
        vb = weights.get(f"Vbar{k - 1}")
        hb = act[f"hbar{k}"]
        m.append(hb if vb is None else hb @ vb.T)
        g = (a[k] > 0).astype(np.float64) if (relu and k < K) else np.ones((n, a[k].shape[1]))
        gate.append(g)
        u.append(g * (u[k - 1] @ weights[f"W{k - 1}"].T) + m[k])
    delta = [None] * (K + 1)
    delta[K] = act[f"hbar{K}"]
    for k in range(K - 1, 0, -1):
        delta[k] = (gate[k + 1] * delta[k + 1]) @ weights[f"W{k}"]
    return m, u, delta


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


@register_protocol("short_term_modulation")
class ShortTermModulation(Protocol):
    SUMMARY = "short-term modulation h <- h + alpha Vbar hbar (Sec. 2.3): the loss of the same input, per alpha"
    LEVELS = ("matrix",)
    LEVELS_WHY = ("the apical input would drive the soma, which closes a loop the rate and spike levels do not "
                  "run (they refuse modulation_alpha != 0)")
    KEYS = {
        "alphas": (list, [0.0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0], "modulation strengths alpha"),
        "after_trials": (list, [0, 100, 1000], "learning trials (online, the common 'trials' ignored) before each "
                                               "measurement"),
        "probe_trials": (int, 50, "inputs on which the modulation is measured (plasticity off)"),
    }
    COLUMNS = {"seed": "-", "trials": "trials", "alpha": "", "measure": "-", "target": "-", "measured": "",
               "first_order": "", "linearised": "", "alignment": "", "loss": ""}

    @classmethod
    def check(cls, p, src):
        p["alphas"] = schema.number_list(src, "alphas", p["alphas"], lo=0.0)
        if 0.0 not in p["alphas"]:
            raise ConfigError(f"{src}: key 'alphas' must include 0 (the unmodulated reference)")
        p["after_trials"] = sorted(schema.number_list(src, "after_trials", p["after_trials"], lo=0, integer=True))
        if p["probe_trials"] < 1:
            raise ConfigError(f"{src}: key 'probe_trials' must be positive, got {p['probe_trials']}")

    def run(self, s):
        p, src = self.p, self.p["source"]
        c = s.base
        if c["upstream_nonlinearity"] not in ("relu", "identity"):
            raise ConfigError(f"{src}: short_term_modulation needs upstream_nonlinearity relu or identity")
        K = c.n_layers
        relu = c["upstream_nonlinearity"] == "relu"
        rows, meta_snap = [], {}
        for seed in p["seeds"]:
            xp, yp = s.task(seed, p["probe_trials"], stream=1)
            xt, yt = s.task(seed, max(p["after_trials"]), stream=0)
            with s.level(seed) as lv:
                net = lv.net
                done = 0
                for t in p["after_trials"]:
                    if t > done:
                        s.train(lv, xt[done:t], yt[done:t])
                        done = t
                    act = net.activities(xp, yp)
                    m, u, delta = first_order_terms(net.weights, act.as_arrays(), act.a, K, relu)
                    e = act.hbar[K]
                    f0 = loss_value(act.h[K], yp, c["loss"])
                    g = float(np.mean(np.sum(e * u[K], axis=1)))  # <e . u_K> = <sum_k delta_k . m_k>
                    terms = [float(np.mean(np.sum(delta[k] * m[k], axis=1))) for k in range(1, K + 1)]
                    meta_snap.setdefault(t, []).append({
                        "seed": int(seed), "loss": f0, "slope": g, "alpha_star": g / float(np.mean(np.sum(u[K] ** 2, 1))),
                        "terms": terms, "reducing_fraction": float(np.mean(np.sum(e * u[K], axis=1) > 0))})
                    dirs = {k: _unit(delta[k]) for k in range(1, K + 1)}
                    align = {k: float(np.mean(np.sum(_unit(m[k]) * dirs[k], axis=1))) for k in range(1, K + 1)}
                    for alpha in p["alphas"]:
                        hs = net.modulated_activities(xp, yp, alpha)
                        f = loss_value(hs[K], yp, c["loss"])
                        lin = loss_value(act.h[K] + alpha * u[K], yp, c["loss"])
                        rows.append({"seed": int(seed), "trials": t, "alpha": alpha, "measure": "loss",
                                     "target": f"h{K} (output)", "measured": f / f0, "first_order": 1 - alpha * g / f0,
                                     "linearised": lin / f0,
                                     "alignment": float(np.mean(np.sum(e * u[K], axis=1) > 0)), "loss": f})
                        for k in range(1, K + 1):
                            dh = hs[k] - act.h[k]
                            rows.append({"seed": int(seed), "trials": t, "alpha": alpha, "measure": "activity",
                                         "target": f"h{k}", "measured": float(np.mean(np.sum(dh * dirs[k], axis=1))),
                                         "first_order": float(alpha * np.mean(np.sum(u[k] * dirs[k], axis=1))),
                                         "linearised": float("nan"), "alignment": align[k], "loss": float("nan")})
        meta = {"probe_trials": p["probe_trials"], "loss": c["loss"], "eta": {g: c[f"eta.{g}"] for g in
                                                                            ("W", "Wbar", "V", "Vbar")},
                "algorithm": c["algorithm"],
                "snapshots": {str(t): v for t, v in meta_snap.items()},
                "measured (loss)": "probe loss after modulation / before (same weights, same inputs)",
                "first_order (loss)": "1 - alpha <e . u_K> / F(0): the derivative at alpha = 0 from the weights and "
                                      "the unmodulated activities, <e . u_K> = <sum_k delta_k . m_k>",
                "linearised (loss)": "F at the linearised output h^K + alpha u_K / F(0) (exact for mse while no "
                                     "ReLU switches)",
                "alignment (loss)": "fraction of probe inputs whose first-order change is a reduction (e . u_K > 0)",
                "measured (activity)": "<(h^k modulated - h^k) . delta_k / |delta_k|>: the change of layer k along "
                                       "its backprop error direction",
                "first_order (activity)": "alpha <u_k . delta_k / |delta_k|> (exact while no ReLU switches)",
                "alignment (activity)": "<cos(m_k, delta_k)>: the apical input Vbar hbar against the backprop error",
                "snapshot fields": "loss F(0); slope <e . u_K> (> 0: small alpha reduces the loss); alpha_star = "
                                   "<e . u_K> / <|u_K|^2> (the linearised optimum; the loss rises again beyond "
                                   "2 alpha_star); terms: <delta_k . m_k>, k = 1..K (their sum is the slope)",
                "learning": "unchanged by modulation: the step reads the unmodulated activities (Algorithm 1)"}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows = table["rows"]
        a1, a2 = fig.subplots(1, 2)
        colors = [OKABE_ITO[i] for i in (5, 6, 1, 3, 7)]
        snaps = sorted({r["trials"] for r in rows})
        loss = [r for r in rows if r["measure"] == "loss"]
        for i, t in enumerate(snaps):
            sub = [r for r in loss if r["trials"] == t]
            st = group_stats(sub, ("alpha",), "measured")
            fo = group_stats(sub, ("alpha",), "first_order")
            al = sorted(v[0] for v in st)
            col = colors[i % len(colors)]
            a1.errorbar(al, [st[(v,)][0] for v in al], yerr=[st[(v,)][1] for v in al], fmt="o-", ms=3, capsize=2,
                        color=col, label=f"measured, after {t} trials")
            first = np.array([fo[(v,)][0] for v in al])
            a1.plot(np.array(al)[first > 0], first[first > 0], ":", color=col, lw=1,
                    label=f"first order, after {t} trials")
        a1.axhline(1.0, color="0.6", lw=0.6)
        a1.set_xscale("symlog", linthresh=0.01)
        a1.set_yscale("log")
        a1.set_xlim(left=0)
        a1.set(xlabel="modulation strength alpha (dimensionless)", ylabel="probe loss after / before modulation",
               title="Loss of the same input after modulation")
        a1.title.set_fontsize(8)
        a1.legend(frameon=False, fontsize=5)
        act = [r for r in rows if r["measure"] == "activity"]
        layers = sorted({r["target"] for r in act})
        width = 0.8 / max(1, len(snaps))
        for i, t in enumerate(snaps):
            st = group_stats([r for r in act if r["trials"] == t], ("target",), "alignment")
            a2.bar(np.arange(len(layers)) + i * width, [st[(lay,)][0] for lay in layers], width,
                   yerr=[st[(lay,)][1] for lay in layers], color=colors[i % len(colors)], capsize=2,
                   label=f"after {t} trials")
        a2.axhline(0.0, color="0.6", lw=0.6)
        a2.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers)
        a2.set(xlabel="layer", ylabel="cos(Vbar hbar, backprop error) (dimensionless)",
               title="Apical input Vbar hbar vs backprop error, per layer")
        a2.title.set_fontsize(8)
        a2.legend(frameon=False, fontsize=6)
