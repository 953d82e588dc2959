"""Development-scale protocols: self-assembly of the inter-stream connections (paper Lemma 1) and
the four-synapse motif after learning (``motif``: corr(V^k W^kT, Wbar^k Vbar^kT), Lemma 2's
condition, and corr(Vbar^{k-1}, V^kT), in the decoder task of ``instructive_sign``).

``self_assembly``: from random V and Vbar, learn on a task and follow, for each neuron pair
(i in h^k, j in hbar^k), its ascending connection V^k_ji (h^k -> hbar^k) and its descending
connection Vbar^{k-1}_ij (hbar^k -> h^k).  Both rules are Hebbian on the same pair of activities
(Eq. 6: dV^k = eta_V hbar^k h^kT - c V^k; Eq. 8: dVbar^{k-1} = eta_Vbar h^k hbar^kT - c Vbar^{k-1}),
so with r = eta_Vbar / eta_V the difference D = Vbar^{k-1} - r (V^k)^T obeys D <- (1 - c) D:
after t trials ||D_t|| = (1 - c)^t ||D_0|| (closed form) and the correlation over pairs of
Vbar^{k-1} and (V^k)^T rises towards 1 - the anatomical prediction of reciprocal connections
of matched strength.  At the spike level the two Hebbian terms are read from spikes (V's tag samples
hbar's trace at h's spikes, Vbar's h's trace at hbar's spikes): the closed form holds in
expectation, up to spike noise.
"""

from __future__ import annotations

import numpy as np

from ..circuit import algorithm_plan
from ..errors import ConfigError
from .engine import Protocol, correlation, group_stats, register_protocol

__all__ = ["SelfAssembly", "Motif"]


@register_protocol("self_assembly")
class SelfAssembly(Protocol):
    SUMMARY = "random V and Vbar self-assemble: correlation of ascending and descending pair connections (Lemma 1)"
    LEVELS = ("matrix", "rate", "spike")
    KEYS = {"record_every": (int, 10, "trials between two snapshots of V and Vbar")}
    READS = ("V", "Vbar")
    COLUMNS = {"seed": "-", "trial": "trials", "layer": "-", "correlation": "", "residual": "",
               "residual_closed_form": ""}

    @classmethod
    def check(cls, p, src):
        if p["record_every"] < 1:
            raise ConfigError(f"{src}: key 'record_every' must be positive, got {p['record_every']}")

    def run(self, s):
        c = s.base
        K = c.n_layers
        plan = algorithm_plan(c)
        src = self.p["source"]
        if K < 2 or not (plan.learns("V") and plan.learns("Vbar")) or plan.eta["V"] <= 0:
            raise ConfigError(f"{src}: self_assembly needs a hidden layer and plastic V and Vbar with eta.V > 0 "
                              "(algorithm = \"sal\", plastic includes V and Vbar)")
        r = plan.eta["Vbar"] / plan.eta["V"]
        opt = c.rule_options
        exact = opt["v_signal"] == "post_dd" and opt["vbar_signal"] == "post_du" and plan.decay["V"] == plan.decay["Vbar"]
        coef = plan.decay["V"]
        rows = []
        for seed in self.p["seeds"]:
            x, y = s.task(seed, self.p["trials"])
            with s.level(seed) as lv:
                d0 = None
                for t in s.snapshots(lv, x, y, self.p["trials"], self.p["record_every"]):
                    w = lv.weights
                    diffs = {k: np.asarray(w[f"Vbar{k - 1}"]) - r * np.asarray(w[f"V{k}"]).T for k in range(1, K)}
                    d0 = d0 or {k: float(np.linalg.norm(v)) for k, v in diffs.items()}
                    for k in range(1, K):
                        rows.append({"seed": seed, "trial": t, "layer": f"Vbar{k - 1} vs V{k}^T",
                                     "correlation": correlation(np.asarray(w[f"Vbar{k - 1}"]), np.asarray(w[f"V{k}"]).T),
                                     "residual": float(np.linalg.norm(diffs[k])) / d0[k],
                                     "residual_closed_form": (1.0 - coef) ** t if exact else float("nan")})
        meta = {"pair": "neuron i of h^k and j of hbar^k: ascending V^k[j, i], descending Vbar^{k-1}[i, j]",
                "correlation": "Pearson correlation over all pairs of Vbar^{k-1} and (V^k)^T",
                "residual": "||Vbar^{k-1} - r V^kT||_F / its initial value, r = eta_Vbar / eta_V",
                "residual_closed_form": "(1 - c)^trial, c the decay coefficient (NaN when the rules' signals or "
                                        "decays differ: no closed form)" + (
                    "; at the spike level it holds in expectation only: V's tag samples hbar's trace at h's "
                    "spikes, Vbar's h's trace at hbar's spikes, so the two Hebbian terms differ by spike noise"
                    if s.level_name == "spike" else ""),
                "r": r, "decay_coefficient": coef, "init_gains": {g: c[f"init.{g}"] for g in ("V", "Vbar")}}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows = table["rows"]
        a1, a2 = fig.subplots(1, 2)
        layers = sorted({r["layer"] for r in rows})
        for i, layer in enumerate(layers):
            sub = [r for r in rows if r["layer"] == layer]
            color = OKABE_ITO[(5, 6, 3, 7)[i % 4]]
            for ax, col in ((a1, "correlation"), (a2, "residual")):
                st = group_stats(sub, ("trial",), col)
                t = np.array([k[0] for k in sorted(st)])
                m = np.array([st[(v,)][0] for v in t])
                sd = np.array([st[(v,)][1] for v in t])
                ax.plot(t, m, color=color, lw=1.2, label=layer + (" (mean +- sd over seeds)" if ax is a1 else ""))
                lo, hi = (m - sd, m + sd) if ax is a2 else (np.clip(m - sd, -1, 1), np.clip(m + sd, -1, 1))
                ax.fill_between(t, lo, hi, color=color, alpha=0.25, lw=0)
        cf = group_stats(rows, ("trial",), "residual_closed_form")
        if cf:
            t = np.array([k[0] for k in sorted(cf)])
            a2.plot(t, [cf[(v,)][0] for v in t], "--", color="0.2", lw=1, label="closed form (1 - c)^t")
        a1.set(xlabel="trials", ylabel="correlation of Vbar^{k-1} and (V^k)^T", title="Reciprocal connections",
               ylim=(-0.2, 1.05))
        a2.set(xlabel="trials", ylabel="||Vbar - r V^T|| / initial (dimensionless)", yscale="log",
               title="Mismatch decays")
        a1.legend(frameon=False, fontsize=6)
        a2.legend(frameon=False, fontsize=6)


@register_protocol("motif")
class Motif(Protocol):
    SUMMARY = "the four-synapse motif after learning: V W^T against Wbar Vbar^T, and Vbar against V^T (Lemmas 1-2)"
    LEVELS = ("matrix", "rate", "spike")
    KEYS = {"record_every": (int, 250, "trials between two snapshots of the weights"),
            "test_trials": (int, 100, "held-out trials for the loss")}
    READS = ("W", "Wbar", "V", "Vbar", "output")
    COLUMNS = {"seed": "-", "trial": "trials", "layer": "-", "motif_correlation": "", "reciprocity": "",
               "loss": ""}

    @classmethod
    def check(cls, p, src):
        for key in ("record_every", "test_trials"):
            if p[key] < 1:
                raise ConfigError(f"{src}: key '{key}' must be positive, got {p[key]}")

    def run(self, s):
        from .learning import orientation_task

        c = s.base
        K, d = c.n_layers, c.widths
        if K < 2 or d[-1] != 2:
            raise ConfigError(f"{self.p['source']}: motif needs a hidden layer and the two-group decoder task "
                              "(output_width = 2 in [set])")
        rows = []
        for seed in self.p["seeds"]:
            x, y = orientation_task(seed, self.p["trials"], d[0], rates=s.rates)
            xt, yt = orientation_task(seed, self.p["test_trials"], d[0], stream=1, rates=s.rates)
            with s.level(seed) as lv:
                for t in s.snapshots(lv, x, y, self.p["trials"], self.p["record_every"]):
                    w = {k: np.asarray(v, dtype=np.float64) for k, v in lv.weights.items()}
                    loss = float(np.mean((np.asarray(lv.predict(xt)) - yt) ** 2))
                    for k in range(1, K):
                        vbar_k = w.get(f"Vbar{k}", np.eye(d[k + 1]))  # Vbar^{K-1}: the fixed identity
                        rows.append({"seed": seed, "trial": t, "layer": k,
                                     "motif_correlation": correlation(w[f"V{k}"] @ w[f"W{k}"].T, w[f"Wbar{k}"] @ vbar_k.T),
                                     "reciprocity": correlation(w[f"Vbar{k - 1}"], w[f"V{k}"].T), "loss": loss})
        meta = {"motif": "synapses of the loop h^k -W^k-> h^{k+1}, h^k -V^k-> hbar^k <-Wbar^k- hbar^{k+1} -Vbar^k-> "
                         "h^{k+1}",
                "motif_correlation": "Pearson correlation over entries of V^k (W^k)^T and Wbar^k (Vbar^k)^T "
                                     "(dbar_k x d_{k+1}; their proportionality is the condition of the paper's Lemma 2)",
                "reciprocity": "correlation of Vbar^{k-1} and (V^k)^T (Lemma 1)",
                "loss": f"mean squared error on {self.p['test_trials']} held-out trials"
                        + (" (output ON - OFF spike counts)" if s.level_name == "spike" else ""),
                "task": "the decoder task of instructive_sign" + (" (inputs keep their mean: rates >= 0)"
                                                                  if s.rates else "")}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows = table["rows"]
        a1, a2 = fig.subplots(1, 2)
        for i, layer in enumerate(sorted({r["layer"] for r in rows})):
            sub = [r for r in rows if r["layer"] == layer]
            for ax, col, what in ((a1, "motif_correlation", "V W^T vs Wbar Vbar^T"),
                                  (a2, "reciprocity", "Vbar^{k-1} vs (V^k)^T")):
                color = OKABE_ITO[(5, 6, 3, 7)[i % 4]]
                st = group_stats(sub, ("trial",), col)
                t = np.array([key[0] for key in sorted(st)])
                m = np.array([st[(v,)][0] for v in t])
                sd = np.array([st[(v,)][1] for v in t])
                ax.plot(t, m, "o-", ms=3, color=color, label=f"k = {layer}")
                ax.fill_between(t, np.clip(m - sd, -1, 1), np.clip(m + sd, -1, 1), color=color, alpha=0.25, lw=0)
                ax.set(xlabel="trials", ylabel=f"correlation, {what}", ylim=(-0.5, 1.05))
        a1.set_title("Four-synapse motif (mean +- sd over seeds)")
        a2.set_title("Reciprocal inter-stream connections")
        a1.legend(frameon=False, fontsize=6)
