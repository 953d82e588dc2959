"""Learning-scale protocols (matrix, rate and spike levels): manipulations during learning and
what they do to W's plasticity and to activity.

At the spike level every quantity is read from spike counts in each trial's window, and the
conditions of one seed start from the same spike-train seed: where a manipulation cannot reach
a population (below a silenced area; the soma of a neuron whose apical input is silenced) that
population fires exactly the same spikes as in the control, so the one-way predictions are exact
(ratio 1, change 0), not statistical.

* ``apical_lesion``: silence the apical (top-down, Vbar) input of a seeded random fraction f of
  the neurons of some upstream populations (default h1) during learning.  W's rule (Eq. 5) is
  dW^k = eta_W (Vbar^k hbar^{k+1}) (h^k)^T - gamma W^k: with the apical factor 0 a silenced
  neuron's incoming W row does not change (gamma = 0), so the fraction of W rows that learn is
  1 - f (closed form), W onto the silenced area stops learning at f = 1, and inference (the upstream pass, Eq. 1, which
  the apical input does not enter at modulation_alpha = 0) is unchanged at every f.
* ``area_silencing``: silence one hidden area k (its upstream h^k and downstream hbar^k clamped
  at 0) and measure activity and W plasticity in every other area j.  Activity propagates one way
  upwards (h^{j} = D_u W^{j-1} h^{j-1}) and the instructive signal one way downwards
  (hbar^j = D_d Wbar^j hbar^{j+1}): above k, upstream activity and W's plasticity are 0; below
  k, upstream activity is unchanged but the apical factor Vbar hbar is 0, so W does not learn.
* ``instructive_sign``: in a decoder task (two output groups reach (cos theta, sin theta)), the
  sign of each neuron's apical input u = Vbar^{k-1} hbar^k against its causal role
  -dF/dh^k = (W^k)^T delta^{k+1} (delta^K from the target and the output alone): chance from
  random feedback, rising with learning; 1 in the output layer (u = the error) and under weight
  transport.  A second condition silences the apical input of a fraction of the hidden neurons
  during learning.  At the spike level u is the network's apical current, recorded and averaged
  over each probe trial's window, and the inputs keep their mean (rates >= 0).
"""

from __future__ import annotations

import numpy as np

from ..circuit import GROUPS
from ..errors import ConfigError
from . import schema
from .engine import Protocol, correlation, group_stats, register_protocol, relative

__all__ = ["ApicalLesion", "AreaSilencing", "InstructiveSign", "orientation_task"]


def _mse(pred, y) -> float:
    return float(np.mean((np.asarray(pred) - y) ** 2))


def _copy(weights) -> dict[str, np.ndarray]:
    return {k: np.array(v, dtype=np.float64) for k, v in weights.items()}


@register_protocol("apical_lesion")
class ApicalLesion(Protocol):
    SUMMARY = "apical (top-down) input silenced in a fraction of neurons during learning: dose-response"
    LEVELS = ("matrix", "rate", "spike")
    KEYS = {
        "fractions": (list, [0.0, 0.25, 0.5, 0.75, 1.0], "fractions of h1..hK neurons whose apical input is silenced"),
        "test_trials": (int, 200, "held-out trials for the test loss"),
        "populations": (list, ["h1"], "upstream populations h{k} (k >= 1) whose apical input is silenced"),
    }
    READS = ("output", "W")
    COLUMNS = {"seed": "-", "fraction_silenced": "", "loss_before": "", "loss_after": "",
               "learning": "", "relative_learning": "", "dW_silenced_area": "", "rows_learning": "",
               "rows_learning_closed_form": "", "inference_change": ""}

    @classmethod
    def check(cls, p, src):
        p["fractions"] = schema.number_list(src, "fractions", p["fractions"], 0.0, 1.0)
        if p["test_trials"] < 1:
            raise ConfigError(f"{src}: key 'test_trials' must be positive, got {p['test_trials']}")
        pops = p["populations"]
        if not pops or not all(isinstance(v, str) and v[:1] == "h" and v[1:].isdigit() and int(v[1:]) >= 1
                                for v in pops):
            raise ConfigError(f"{src}: key 'populations' must list upstream populations h1..hK, got {pops!r}")

    def run(self, s):
        c = s.base
        K, d = c.n_layers, c.widths
        layers = sorted({int(v[1:]) for v in self.p["populations"]})
        if layers[-1] > K:
            raise ConfigError(f"{self.p['source']}: key 'populations' = {self.p['populations']}: the model's upstream "
                              f"populations with an apical compartment are h1..h{K}")
        total = sum(d[k] for k in layers)
        rows = []
        for seed in self.p["seeds"]:
            x, y = s.task(seed, self.p["trials"])
            xt, yt = s.task(seed, self.p["test_trials"], stream=1)
            order = {k: np.random.default_rng([seed, 13, k]).permutation(d[k]) for k in layers}
            control = control_dw = None
            # inference without any silencing, as the first run of its own level: at the spike level
            # the silenced conditions' first runs below draw the same random numbers (same seed),
            # so their outputs are identical spike for spike unless apical input reaches the soma
            with s.level(seed, condition="intact, inference") as ref:
                pred_off = ref.predict(xt)
            for f in self.p["fractions"]:
                silenced = {k: order[k][:int(round(f * d[k]))] for k in layers}
                silenced = {k: v for k, v in silenced.items() if v.size}
                with s.level(seed, condition=f"apical input of {f:g} of {self.p['populations']} silenced") as lv:
                    w0 = _copy(lv.weights)
                    for k, idx in silenced.items():
                        lv.silence_apical(f"h{k}", idx)
                    pred_on = lv.predict(xt)
                    s.train(lv, x, y)
                    w1 = _copy(lv.weights)
                    loss1 = _mse(lv.predict(xt), yt)
                loss0 = _mse(pred_on, yt)
                changed, dw_norm = 0, 0.0
                for k in layers:
                    dw = np.abs(w1[f"W{k - 1}"] - w0[f"W{k - 1}"])
                    changed += int(np.sum(dw.max(axis=1) > 1e-12 * max(1.0, np.abs(w0[f"W{k - 1}"]).max())))
                    dw_norm += float(np.sum(dw ** 2))
                f_actual = sum(v.size for v in silenced.values()) / total
                learning = (loss0 - loss1) / loss0
                if f_actual == 0 and control is None:
                    control, control_dw = learning, np.sqrt(dw_norm)
                rows.append({"seed": seed, "fraction_silenced": f_actual, "loss_before": loss0, "loss_after": loss1,
                             "learning": learning, "relative_learning": float("nan"),
                             "dW_silenced_area": np.sqrt(dw_norm) if control_dw is None else
                             relative(np.sqrt(dw_norm), control_dw),
                             "rows_learning": changed / total, "rows_learning_closed_form": 1.0 - f_actual,
                             "inference_change": float(np.max(np.abs(pred_on - pred_off)) / np.max(np.abs(pred_off)))})
            for r in rows:
                if r["seed"] == seed and control is not None:
                    r["relative_learning"] = relative(r["learning"], control)
        if control_dw is None:
            for r in rows:
                r["dW_silenced_area"] = float("nan")
        meta = {"silenced": f"apical (Vbar) input of a seeded random, nested subset of {self.p['populations']}",
                "dW_silenced_area": "||W change||_F onto the silenced populations / the same with nothing silenced",
                "learning": "(test loss before - after) / before, test loss = mean squared error on held-out trials",
                "relative_learning": "learning / learning with nothing silenced (same seed)",
                "rows_learning": "fraction of the silenced populations' neurons whose incoming W row changed",
                "rows_learning_closed_form": "1 - fraction silenced (Eq. 5 with gamma = 0)",
                "inference_change": "max |output with - without apical silencing| / max |output|, same weights",
                "task": f"linear teacher, {self.p['trials']} training trials, {self.p['test_trials']} test trials",
                "gamma": c["gamma"]}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows = table["rows"]
        a1, a2 = fig.subplots(1, 2)
        for col, color, marker, label in (
                ("relative_learning", OKABE_ITO[5], "o", "learning (test-loss drop) / control"),
                ("dW_silenced_area", OKABE_ITO[1], "^", "|W change| onto the silenced area / control"),
                ("rows_learning", OKABE_ITO[6], "s", "fraction of neurons whose W row changed")):
            st = group_stats(rows, ("fraction_silenced",), col)
            f = np.array([k[0] for k in sorted(st)])
            m = np.array([st[(v,)][0] for v in f])
            sd = np.array([st[(v,)][1] for v in f])
            a1.errorbar(f, m, yerr=sd, fmt=marker, color=color, ms=4, capsize=2, label=label)
        f = np.array(sorted({r["fraction_silenced"] for r in rows}))
        a1.plot(f, 1 - f, "-", color="0.4", lw=1, label="closed form 1 - f")
        a1.set(xlabel="fraction f of neurons with apical input silenced", ylabel="relative to intact (dimensionless)",
               title="Learning of W", ylim=(-0.05, 1.15))
        a1.legend(frameon=False, fontsize=6)
        st = group_stats(rows, ("fraction_silenced",), "inference_change")
        f2 = np.array([k[0] for k in sorted(st)])
        a2.errorbar(f2, [st[(v,)][0] for v in f2], yerr=[st[(v,)][1] for v in f2], fmt="o", color=OKABE_ITO[3],
                    ms=4, capsize=2, label="measured")
        a2.axhline(0, color="0.4", lw=1, label="prediction: 0 (inference spared)")
        a2.set(xlabel="fraction f of neurons with apical input silenced",
               ylabel="max |output change| / max |output|", title="Inference (same weights)")
        a2.legend(frameon=False, fontsize=6)


@register_protocol("area_silencing")
class AreaSilencing(Protocol):
    SUMMARY = "silence a lower or a higher area: activity and W plasticity in the others (one-way propagation)"
    LEVELS = ("matrix", "rate", "spike")
    KEYS = {
        "areas": (list, [1, 2], "hidden areas k to silence, one condition each (h{k} and hbar{k} clamped at 0)"),
        "probe_trials": (int, 20, "trials (plasticity frozen) on which activity is measured"),
    }
    READS = ("upstream", "downstream", "output", "W")
    COLUMNS = {"seed": "-", "silenced_area": "-", "area": "-", "position": "-", "activity_up": "",
               "activity_down": "", "plasticity_W": "", "activity_up_closed_form": "",
               "plasticity_W_closed_form": ""}

    @classmethod
    def check(cls, p, src):
        p["areas"] = schema.number_list(src, "areas", p["areas"], lo=1, integer=True)
        if p["probe_trials"] < 1:
            raise ConfigError(f"{src}: key 'probe_trials' must be positive, got {p['probe_trials']}")

    def _measure(self, s, seed, area, probe, train):
        """(mean |h_j|, mean |hbar_j|, ||dW^{j-1}||_F) for j = 1..K with area k silenced (None: control).
        The probe is each level's first run: at the spike level, with the same seed, the areas
        below k fire exactly the same spikes as in the control unless something flows down."""
        K = s.base.n_layers
        with s.level(seed, condition="control" if area is None else f"area {area} silenced") as lv:
            if area is not None:
                lv.silence(f"h{area}")
                lv.silence(f"hbar{area}")
            for g in GROUPS:
                lv.freeze(g)
            act = s.train(lv, *probe)  # frozen: the activities of the initial weights, as the level runs them
            for g in GROUPS:
                lv.unfreeze(g)
            w0 = _copy(lv.weights)
            s.train(lv, *train)
            w1 = _copy(lv.weights)
        return {j: (float(np.mean(np.abs(act[f"h{j}"]))), float(np.mean(np.abs(act[f"hbar{j}"]))),
                    float(np.linalg.norm(w1[f"W{j - 1}"] - w0[f"W{j - 1}"]))) for j in range(1, K + 1)}

    def run(self, s):
        K = s.base.n_layers
        bad = [k for k in self.p["areas"] if not 1 <= k <= K - 1]
        if bad:
            raise ConfigError(f"{self.p['source']}: key 'areas' = {bad}: the model's hidden areas are 1..{K - 1}")
        if s.base["gamma"] != 0 or s.base["modulation_alpha"] != 0:
            raise ConfigError(f"{self.p['source']}: area_silencing needs gamma = 0 and modulation_alpha = 0 "
                              "(set them in [set]): the closed forms assume no weight decay and no modulation")
        rows = []
        for seed in self.p["seeds"]:
            probe = s.task(seed, self.p["probe_trials"], stream=2)
            train = s.task(seed, self.p["trials"])
            ctrl = self._measure(s, seed, None, probe, train)
            for k in self.p["areas"]:
                res = self._measure(s, seed, k, probe, train)
                for j in range(1, K + 1):
                    if j == k:
                        continue
                    above = j > k
                    rows.append({"seed": seed, "silenced_area": k, "area": j, "position": "above" if above else "below",
                                 "activity_up": relative(res[j][0], ctrl[j][0]),
                                 "activity_down": relative(res[j][1], ctrl[j][1]),
                                 "plasticity_W": relative(res[j][2], ctrl[j][2]),
                                 "activity_up_closed_form": 0.0 if above else 1.0,
                                 "plasticity_W_closed_form": 0.0})
        meta = {"silencing": "area k: h{k} and hbar{k} clamped at 0 during the probe and the learning trials",
                "activity_up": "mean |h_j| on the probe trials (plasticity frozen) / the same without silencing",
                "activity_down": "mean |hbar_j| on the probe trials / the same without silencing",
                "plasticity_W": "||W^{j-1}(after) - W^{j-1}(before)||_F over the learning trials / control",
                "closed_form": "above k: h_j = D_u W h_{j-1} = 0, so activity 0 and dW^{j-1} = 0; below k: h_j "
                               "unchanged (one-way upstream), hbar_j = 0 so W's apical factor is 0: dW^{j-1} = 0"}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows = table["rows"]
        areas = sorted({r["silenced_area"] for r in rows})
        axes = np.atleast_1d(fig.subplots(1, len(areas), sharey=True))
        cols = (("activity_up", "upstream activity |h|", OKABE_ITO[5]),
                ("activity_down", "downstream activity |hbar|", OKABE_ITO[1]),
                ("plasticity_W", "plasticity of W onto the area", OKABE_ITO[6]))
        for ax, k in zip(axes, areas):
            sub = [r for r in rows if r["silenced_area"] == k]
            others = sorted({r["area"] for r in sub})
            x = np.arange(len(others))
            for i, (col, label, color) in enumerate(cols):
                st = group_stats(sub, ("area",), col)
                m = [st.get((j,), (np.nan, 0, 0))[0] for j in others]
                sd = [st.get((j,), (np.nan, 0, 0))[1] for j in others]
                ax.bar(x + (i - 1) * 0.27, m, 0.25, yerr=sd, color=color, capsize=2, label=label)
                for xi, mi in zip(x + (i - 1) * 0.27, m):
                    if mi == 0:  # an exact zero has no bar: say it
                        ax.text(xi, 0.01, "0", ha="center", va="bottom", fontsize=6, color=color)
            ax.axhline(1.0, color="0.4", lw=0.8, ls=":")
            ax.set_xticks(x, [f"area {j}\n({'above' if j > k else 'below'})" for j in others])
            ax.set(title=f"area {k} silenced", ylabel="relative to no silencing (dimensionless)")
        axes[0].legend(frameon=False, fontsize=6)


def orientation_task(seed: int, n: int, d_in: int, stream: int = 0, kappa: float = 2.0, rates: bool = False):
    """A decoder task: a random orientation theta per trial, encoded by d_in input neurons with
    von Mises tuning exp(kappa (cos(theta - phi_j) - 1)) (preferred phi_j evenly spaced, population
    mean removed, or kept with ``rates``: inputs that are firing rates, >= 0), and the target to
    reach y = (cos theta, sin theta) for the two output groups."""
    theta = np.random.default_rng([int(seed), 17, stream]).uniform(0, 2 * np.pi, n)
    phi = np.linspace(0, 2 * np.pi, d_in, endpoint=False)
    x = np.exp(kappa * (np.cos(theta[:, None] - phi[None, :]) - 1))
    if not rates:
        x -= x.mean(axis=1, keepdims=True)
    return x / np.sqrt(d_in) * 2, np.stack([np.cos(theta), np.sin(theta)], axis=1)


def window_means(recording: dict, n: int, settle_ms: float, trial_ms: float) -> np.ndarray:
    """(n, width) mean of a recorded state variable over each trial's window, from a level's
    recording of one call of n trials (``t`` in ms, its first sample the call's start; ``values``
    (samples, width)); the window is [settle, trial) of each trial, as for the spike counts."""
    t, v = np.asarray(recording["t"], dtype=np.float64), np.asarray(recording["values"], dtype=np.float64)
    rel = t - t[0]
    m = np.floor(rel / trial_ms + 1e-9).astype(int)
    inside = (rel - m * trial_ms >= settle_ms - 1e-9) & (m < n)
    out = np.zeros((n, v.shape[1]))
    counts = np.bincount(m[inside], minlength=n)
    if np.any(counts == 0):
        raise ValueError(f"window_means: a trial's window holds no samples ({n} trials, {t.size} samples)")
    np.add.at(out, m[inside], v[inside])
    return out / counts[:, None]


def output_error(loss: str, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """-dF/dh^K, the output's causal role, from the target and the output activity alone:
    y - h^K (mean squared error) or y - softmax(h^K) (cross-entropy)."""
    out = np.asarray(out, dtype=np.float64)
    if loss == "cross_entropy":
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return y - e / e.sum(axis=1, keepdims=True)
    return y - out


@register_protocol("instructive_sign")
class InstructiveSign(Protocol):
    SUMMARY = "sign of each neuron's apical input vs its causal role in the output (Francioni et al. 2026 analogue)"
    LEVELS = ("matrix", "rate", "spike")
    KEYS = {"record_every": (int, 50, "trials between two measurements"),
            "probe_trials": (int, 50, "trials (plasticity frozen) on which the signs are measured"),
            "perturbed_fraction": (float, 0.0, "a second condition: the apical input of this seeded random "
                                               "fraction of every hidden area silenced during learning (0: none)")}
    READS = ("Vbar", "output")
    COLUMNS = {"seed": "-", "apical_silenced": "", "trial": "trials", "population": "-", "sign_agreement": "",
               "correlation": "", "test_loss": ""}

    @classmethod
    def check(cls, p, src):
        for key in ("record_every", "probe_trials"):
            if p[key] < 1:
                raise ConfigError(f"{src}: key '{key}' must be positive, got {p[key]}")
        if not 0.0 <= p["perturbed_fraction"] <= 1.0:
            raise ConfigError(f"{src}: key 'perturbed_fraction' must be in [0, 1], got {p['perturbed_fraction']}")

    @staticmethod
    def _apical_inputs(s, lv, keys, act, w, n) -> dict[int, np.ndarray]:
        """u^k of every h^k, (n, d_k): at the spike level the network's apical current averaged
        over each probe trial's window; elsewhere Vbar^{k-1} hbar^k (hbar^K at the output)."""
        c = s.base
        if keys:
            settle = float(c["spike.t_settle"])
            return {k: window_means(lv.recordings[key], n, settle, settle + float(c["spike.t_window"]))
                    for k, key in keys.items()}
        K = c.n_layers
        return {k: np.asarray(act[f"hbar{k}"]) if k == K else np.asarray(act[f"hbar{k}"]) @ w[f"Vbar{k - 1}"].T
                for k in range(1, K + 1)}

    def run(self, s):
        from ..metrics import bp_deltas

        c = s.base
        K, d = c.n_layers, c.widths
        if d[-1] != 2:
            raise ConfigError(f"{self.p['source']}: the decoder task has two output groups: set output_width = 2 in [set]")
        fractions = [0.0] + ([self.p["perturbed_fraction"]] if self.p["perturbed_fraction"] > 0 else [])
        rows = []
        for seed in self.p["seeds"]:
            x, y = orientation_task(seed, self.p["trials"], d[0], rates=s.rates)
            xp, yp = orientation_task(seed, self.p["probe_trials"], d[0], stream=1, rates=s.rates)
            order = {k: np.random.default_rng([seed, 13, k]).permutation(d[k]) for k in range(1, K)}
            for f in fractions:
                silenced = {k: order[k][:int(round(f * d[k]))] for k in range(1, K)}
                label = "intact" if f == 0 else f"apical input of {f:g} of every hidden area silenced"
                with s.level(seed, condition=label) as lv:
                    for k, idx in silenced.items():
                        if idx.size:
                            lv.silence_apical(f"h{k}", idx)
                    keys = ({k: lv.record(f"h{k}", "apical") for k in range(1, K + 1)}
                            if s.level_name == "spike" else {})
                    for t in s.snapshots(lv, x, y, self.p["trials"], self.p["record_every"]):
                        for g in GROUPS:
                            lv.freeze(g)
                        act = s.train(lv, xp, yp)  # the activities the level itself runs, no plasticity
                        for g in GROUPS:
                            lv.unfreeze(g)
                        w = _copy(lv.weights)
                        loss = _mse(act[f"h{K}"], yp)
                        # the causal role from the target and the output alone (not from the error module)
                        delta = bp_deltas(w, {**act, f"hbar{K}": output_error(c["loss"], yp, act[f"h{K}"])},
                                          c["upstream_nonlinearity"])
                        apical = self._apical_inputs(s, lv, keys, act, w, len(xp))
                        for k in range(1, K + 1):
                            u = apical[k].copy()
                            if k < K:
                                u[:, silenced[k]] = 0.0  # no apical input reaches them
                            role = delta[K] if k == K else delta[k + 1] @ w[f"W{k}"]  # -dF/dh^k: causal role
                            live = (np.abs(role) > 1e-12) & (np.abs(u) > 1e-12)
                            agree = (float(np.mean(np.sign(u[live]) == np.sign(role[live]))) if live.any()
                                     else float("nan"))
                            corr = correlation(u[live], role[live]) if live.sum() > 1 else float("nan")
                            rows.append({"seed": seed, "apical_silenced": f, "trial": t, "population": f"h{k}",
                                         "sign_agreement": agree, "correlation": corr, "test_loss": loss})
        meta = {"task": "decoder: von Mises population code of an orientation theta in h0 (mean removed; at the "
                        "spike level kept: rates >= 0); the two output groups must reach (cos theta, sin theta)",
                "apical_input": ("the apical current I_ap of each neuron of h^k, averaged over each probe trial's "
                                 "window (recorded from the network)" if s.level_name == "spike" else
                                 "u = Vbar^{k-1} hbar^k of each neuron of h^k (the output's: the error itself)"),
                "causal_role": "-dF/dh^k = (W^k)^T delta^{k+1}, delta^K = y - h^K from the target and the output "
                               "(at the spike level: output ON - OFF counts): how raising the neuron's activity moves "
                               "the output towards the target",
                "sign_agreement": "fraction of (probe trial, neuron) pairs where sign(u) = sign(causal role), over "
                                  "pairs where both are non-zero; 0.5: chance",
                "correlation": "Pearson correlation of u and the causal role over the same pairs",
                "apical_silenced": "fraction of every hidden area whose apical input is silenced during learning "
                                   "and probes (seeded random subset; their pairs are left out of the agreement)",
                "test_loss": "mean squared error of the output on the probe trials"}
        return rows, meta

    @staticmethod
    def plot(fig, table):
        from ..plotting import OKABE_ITO

        rows = table["rows"]
        a1, a2 = fig.subplots(1, 2)
        intact = [r for r in rows if not r.get("apical_silenced")]  # tables before the perturbation: intact only
        pops = sorted({r["population"] for r in intact})
        for i, pop in enumerate(pops):
            sub = [r for r in intact if r["population"] == pop]
            color = OKABE_ITO[(5, 6, 3, 7)[i % 4]]
            st = group_stats(sub, ("trial",), "sign_agreement")
            t = np.array([key[0] for key in sorted(st)])
            m = np.array([st[(v,)][0] for v in t])
            sd = np.array([st[(v,)][1] for v in t])
            a1.plot(t, m, color=color, label=f"{pop}" + (" (output: the error itself)" if i == len(pops) - 1 else ""))
            a1.fill_between(t, np.clip(m - sd, 0, 1), np.clip(m + sd, 0, 1), color=color, alpha=0.25, lw=0)
        a1.axhline(0.5, color="0.5", ls=":", lw=0.8, label="chance")
        a1.set(xlabel="trials", ylabel="sign agreement: apical input vs causal role", ylim=(0.3, 1.02),
               title="Instructive signal sign, intact (mean +- sd over seeds)")
        a1.legend(frameon=False, fontsize=6)
        for j, f in enumerate(sorted({r.get("apical_silenced") or 0.0 for r in rows})):
            sub = [r for r in rows if (r.get("apical_silenced") or 0.0) == f and r["population"] == pops[0]]
            st = group_stats(sub, ("trial",), "test_loss")
            t = np.array([key[0] for key in sorted(st)])
            a2.errorbar(t, [st[(v,)][0] for v in t], yerr=[st[(v,)][1] for v in t], fmt="os"[j % 2] + "-",
                        color=OKABE_ITO[(0, 6)[j % 2]], ms=3, capsize=2,
                        label="intact" if f == 0 else "apical input of " + ("every hidden neuron" if f == 1 else
                                                                    f"{f:.0%} of the hidden neurons") + " silenced")
        a2.set(xlabel="trials", ylabel="probe loss (mean squared error)", title="Learning the decoder")
        a2.legend(frameon=False, fontsize=6)
