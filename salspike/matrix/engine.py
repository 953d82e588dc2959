"""Matrix-level engine: Algorithm 1 / Eqs. 1-8 as batched numpy, the reference of every level.

`MatrixNetwork` holds the weights of a `Circuit` in the cross-level layout
(`salspike.circuit.weights`) and applies the plasticity rules of `salspike.matrix.rules` as
the circuit's plan says (`salspike.circuit.plan.algorithm_plan`: which groups learn, rates,
decay; the baselines BP, FA, KP, WM are settings of that plan).  The hook API
(`salspike.circuit.Hooks`: stimulate, clamp/silence, silence_apical, lesion, freeze) applies here
with the same meaning as at the Brian2 levels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..circuit import Circuit, Hooks, algorithm_plan, check_weights, circuit_layout, group_of, init_weights
from ..circuit.functions import (CalibratedTransfer, error_signal, filtered_intensity_variance, input_variance, lnp_rate, positive_probability,
                                 relu, shot_noise_third_cumulant)
from ..errors import ConfigError, DivergenceError, ShapeError
from . import rules


@dataclasses.dataclass
class Activities:
    h: list  # h[0..K]
    a: list  # pre-activations a[1..K]
    hbar: list  # hbar[1..K]
    drive: list  # Wbar^k hbar^{k+1}, k = 1..K-1

    def as_arrays(self) -> dict[str, np.ndarray]:
        out = {f"h{k}": v for k, v in enumerate(self.h)}
        out.update({f"hbar{k}": v for k, v in enumerate(self.hbar) if v is not None})
        return out


class MatrixNetwork:
    """The circuit's weights plus the step that updates them.

    ``hooks``: a `salspike.circuit.Hooks` on this circuit's layout (default: none active);
    `hooks` can also be set later through the attribute."""

    def __init__(self, circuit: Circuit, weights: dict[str, np.ndarray] | None = None, hooks: Hooks | None = None):
        self.circuit = circuit
        self.plan = algorithm_plan(circuit)
        self.options = circuit.rule_options
        self.K = circuit.n_layers
        self.rng = np.random.default_rng([circuit["seed"], 1])  # noise (weight mirror)
        if weights is None:
            weights = init_weights(circuit)
        else:
            check_weights(circuit, weights)
            weights = {k: np.array(v, dtype=circuit.dtype) for k, v in weights.items()
                       if k in circuit.shapes()}
        self.weights = weights
        self.hooks = hooks if hooks is not None else Hooks(circuit_layout(circuit))

    # ----- views --------------------------------------------------------------
    def _list(self, group: str, start: int, stop: int) -> list:
        return [self.weights.get(f"{group}{k}") if start <= k < stop else None for k in range(self.K)]

    @property
    def W(self):
        return self._list("W", 0, self.K)

    @property
    def Wbar(self):
        return self._list("Wbar", 1, self.K)

    @property
    def V(self):
        return self._list("V", 1, self.K)

    @property
    def Vbar(self):
        """Vbar[k] for k = 0..K-1; Vbar[K-1] is None and means the fixed identity."""
        return self._list("Vbar", 0, self.K - 1)

    # ----- passes -------------------------------------------------------------
    def _cast(self, x):
        return np.asarray(x, dtype=self.circuit.dtype)

    def _hooked(self) -> bool:
        """True when the general (slower) pass is needed: hooks, or the spike level's rate model."""
        return bool(self.hooks.stim or self.hooks.clamps or self.hooks.lesions or self.hooks.apical_silenced
                    or self.matched)

    @property
    def matched(self) -> bool:
        """The spike level's matched rate model (``spike.matched_transfer`` lnp or calibrated) is in use."""
        return self.circuit["spike.matched_transfer"] != "relu"

    def _transfer(self, mu: np.ndarray, sigma: np.ndarray, kappa3: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(mean activity, linear-response gain) of a hidden neuron of the matched rate model."""
        if self.circuit["spike.matched_transfer"] == "lnp":
            return lnp_rate(mu, sigma, kappa3), positive_probability(mu, sigma)
        if getattr(self, "_table", None) is None:
            cal = self.circuit["spike.calibration"]
            if cal is None:
                raise ConfigError(f"{self.circuit.source}: spike.matched_transfer = 'calibrated' needs "
                                  "spike.calibration; run `salspike calibrate --model FILE` first")
            self._table = CalibratedTransfer(cal, self.circuit["spike.rate_scale"], f"{self.circuit.source}: "
                                             "spike.calibration")
        return self._table(mu, sigma), self._table.gain(mu, sigma)

    def _calibrated_excess_variance(self, mu, sigma, mean, gain) -> np.ndarray:
        """What a calibrated (two_compartment) neuron's filtered output adds to the next layer's
        input variance beyond Poisson shot noise (`input_variance`'s var_pre): the measured
        filtered_var(mu, sigma) - |a| / (2 s tau_s) (negative for a regular LIF train); a table
        without the measured moments: linear response (gain sigma)^2 / 2."""
        table = self._table
        if not table.has_moments:
            return 0.5 * (gain * sigma) ** 2
        c = self.circuit
        poisson = np.abs(mean) / (2 * c["spike.rate_scale"] * c["spike.tau_s"] * 1e-3)
        return table.filtered_variance(mu, sigma) - poisson

    def _sigma(self, W: np.ndarray, a_pre: np.ndarray, var_pre: np.ndarray | None = None) -> np.ndarray:
        c = self.circuit
        return np.sqrt(np.maximum(input_variance(W, a_pre, c["spike.rate_scale"], c["spike.tau_s"], var_pre), 0.0))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The output h^K of the upstream pass (Eq. 1), with the hooks that act on it."""
        x = self._cast(x)
        if not self._hooked():
            return rules.forward(self.W, x, self.circuit["upstream_nonlinearity"])[0][-1]
        return self._hooked_upstream(x)[0][-1]

    def activities(self, x: np.ndarray, y: np.ndarray) -> Activities:
        """Eq. 1 upstream, then hbar^K = -grad F, then Eq. 2 downstream."""
        x, y = self._cast(x), self._cast(y)
        if x.ndim != 2 or x.shape[1] != self.circuit.widths[0]:
            raise ShapeError(f"inputs x have shape {x.shape}, expected (n, {self.circuit.widths[0]})")
        if y.shape != (x.shape[0], self.circuit.widths[-1]):
            raise ShapeError(f"targets y have shape {y.shape}, expected ({x.shape[0]}, {self.circuit.widths[-1]})")
        if self._hooked():
            return self._hooked_activities(x, y)
        h, a = rules.forward(self.W, x, self.circuit["upstream_nonlinearity"])
        top = error_signal(h[-1], y, self.circuit["loss"])
        hbar, drive = rules.downstream(self.Wbar, self.V, h, top, self.plan.downstream_nonlinearity)
        return Activities(h, a, hbar, drive)

    # ----- hooks (the same semantics as the rate equations' stim/clamp terms) ------------
    def _stim_clamp(self, name: str, drive: np.ndarray) -> np.ndarray:
        """drive + stimulus, then clamped neurons set to their clamp value."""
        n = drive.shape[0]
        if name in self.hooks.stim:
            drive = drive + self._cast(self.hooks.stimulus(name, n))
        if name in self.hooks.clamps:
            on, value = self.hooks.clamp_values(name)
            drive = np.where(on.astype(bool), self._cast(value), drive)
        return drive

    def _w(self, name: str):
        w = self.weights.get(name)
        return None if w is None else self.hooks.effective(name, w)

    def _hooked_upstream(self, x):
        """Eq. 1 with hooks; with the matched rate model, hidden layers are the LNP mean rate
        with the input variance of `input_variance` (shot noise plus the presynaptic intensity
        fluctuations, `filtered_intensity_variance`, carried layer to layer)."""
        h, a = [self._stim_clamp("h0", x)], [None]
        relu_hidden = self.circuit["upstream_nonlinearity"] == "relu"
        var_pre = None  # intensity variance of h^k (0 for the input's fixed rates)
        for k in range(self.K):
            W = self._w(f"W{k}")
            pre = self._stim_clamp(f"h{k + 1}", h[k] @ W.T)
            a.append(pre)
            if k == self.K - 1 or not relu_hidden:
                h.append(pre)
            elif self.matched:
                sigma = self._sigma(W, h[k], var_pre)
                c = self.circuit
                kappa3 = shot_noise_third_cumulant(W, h[k], c["spike.rate_scale"], c["spike.tau_s"])
                mean, gain = self._transfer(pre, sigma, kappa3)
                h.append(mean)
                var_pre = (filtered_intensity_variance(pre, sigma) if c["spike.matched_transfer"] == "lnp"
                           else self._calibrated_excess_variance(pre, sigma, mean, gain))
            else:
                h.append(relu(pre))
        return h, a

    def matched_statistics(self, x: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Per upstream layer h^k (k >= 1) of the matched rate model: its input current's mean
        ``mu``, sd ``sigma`` and zero-frequency power ``input_power`` S_I(0), and the layer's
        spike-train power ``power`` S(0) (activity units^2 s; a window T's activity estimate
        count / (s T) has variance S(0) / T), propagated layer by layer (docs/spike_network.md):
        S(h^0) = |x| / s (Poisson inputs); S_I = sum_j W_ij^2 S_j (filters keep S(0)); an LNP
        neuron `spike_train_power`; a calibrated neuron the measured power0(mu, sigma) (its response
        to an OU input, S_I = 2 tau_s sigma^2) + gain^2 (S_I - 2 tau_s sigma^2); the output ON/OFF
        pair `spike_train_power(signed=True)`.  ``h0`` has only ``power``.  Needs the matched model."""
        if not self.matched:
            raise ConfigError("matched_statistics needs the matched rate model (spike.matched_transfer lnp or "
                              "calibrated)")
        from ..circuit.functions import spike_train_power

        c = self.circuit
        s, tau = c["spike.rate_scale"], c["spike.tau_s"]
        h, _ = self._hooked_upstream(self._cast(x))
        out = {"h0": {"power": np.abs(h[0]) / s}}
        var_pre = None
        for k in range(self.K):
            W = self._w(f"W{k}")
            mu = h[k] @ W.T
            sigma = self._sigma(W, h[k], var_pre)
            p_in = out[f"h{k}"]["power"] @ (W ** 2).T
            if k == self.K - 1:
                power = spike_train_power(mu, sigma, s, tau, signed=True, input_power=p_in)
            elif c["spike.matched_transfer"] == "lnp":
                power = spike_train_power(mu, sigma, s, tau, input_power=p_in)
                var_pre = filtered_intensity_variance(mu, sigma)
            else:
                mean, gain = self._transfer(mu, sigma)
                own = self._table.power(mu, sigma)
                ou = 2 * tau * 1e-3 * sigma ** 2
                power = (np.abs(mean) / s if own is None else own - gain ** 2 * ou) + gain ** 2 * p_in
                var_pre = self._calibrated_excess_variance(mu, sigma, mean, gain)
            out[f"h{k + 1}"] = {"mu": mu, "sigma": sigma, "input_power": p_in, "power": power}
        return out

    def window_power(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """S(0) of every upstream layer's spike trains (``matched_statistics``' ``power``)."""
        return {name: stats["power"] for name, stats in self.matched_statistics(x).items()}

    def _hooked_activities(self, x, y) -> Activities:
        h, a = self._hooked_upstream(x)
        K = self.K
        hbar, drive = [None] * (K + 1), [None] * (K + 1)
        hbar[K] = self._stim_clamp(f"hbar{K}", error_signal(h[K], y, self.circuit["loss"]))
        for k in range(K - 1, 0, -1):
            u = hbar[k + 1] @ self._w(f"Wbar{k}").T
            drive[k] = u
            kind = self.plan.downstream_nonlinearity
            if self.matched and kind == "relu_jacobian":  # the mean of the spiking gate 1[I_lat > 0]
                V = self._w(f"V{k}")
                out = u * positive_probability(h[k] @ V.T, self._sigma(V, h[k]))
            elif self.matched and kind == "relu":
                out = lnp_rate(u, self._sigma(self._w(f"Wbar{k}"), hbar[k + 1]))
            else:
                gate = rules.downstream_gate(kind, h[k], self._w(f"V{k}"), u)
                out = u if gate is None else u * gate
            hbar[k] = self._stim_clamp(f"hbar{k}", out)
        return Activities(h, a, hbar, drive)

    # ----- plasticity -------------------------------------------------------------
    def _factors(self, act: Activities) -> dict[str, tuple]:
        """name -> (post, pre, eta, decay coefficient) of every plastic weight's rule
        (Eqs. 5-8, or Algorithm 1 per `rule_options`), all from the pre-step state."""
        plan, opt = self.plan, self.options
        eta, c = plan.eta, plan.decay
        h, a, hbar, drive = act.h, act.a, act.hbar, act.drive
        out = {}
        for k in range(self.K):
            if plan.learns("W"):
                Vbar_k = self._w(f"Vbar{k}") if k < self.K - 1 else None
                post, pre = rules.W_factors(Vbar_k, hbar[k + 1], h[k])
                if k == self.K - 1 and f"h{self.K}" in self.hooks.apical_silenced:
                    post = post * ~self.hooks.apical_silenced[f"h{self.K}"]  # the fixed identity Vbar^{K-1}
                out[f"W{k}"] = (post, pre, eta["W"], c["W"])
            if k >= 1 and plan.learns("V"):
                signal = hbar[k] if opt["v_signal"] == "post_dd" else drive[k]
                out[f"V{k}"] = (*rules.V_factors(signal, h[k]), eta["V"], self._interstream_decay(signal, eta["V"], c["V"]))
            if k >= 1 and plan.learns("Wbar"):
                out[f"Wbar{k}"] = (*rules.Wbar_factors(self._w(f"V{k}"), h[k], hbar[k + 1]), eta["Wbar"], c["Wbar"])
            if k < self.K - 1 and plan.learns("Vbar"):
                signal = h[k + 1] if opt["vbar_signal"] == "post_du" else a[k + 1]
                out[f"Vbar{k}"] = (*rules.Vbar_factors(signal, hbar[k + 1]), eta["Vbar"],
                                   self._interstream_decay(signal, eta["Vbar"], c["Vbar"]))
        return out

    def _interstream_decay(self, post, eta, c):
        """The decay coefficient of a V or Vbar rule: c, plus Oja's per-row eta <post^2> when
        ``interstream_rule = "oja"`` (the rule's postsynaptic factor is ``post``)."""
        if self.circuit["interstream_rule"] == "oja":
            return c + rules.oja_coefficient(post, eta)
        return c

    def updates(self, act: Activities) -> dict[str, np.ndarray]:
        """The update dw of every plastic weight (not applied), hooks' plasticity masks included."""
        out = {}
        for name, (post, pre, eta, c) in self._factors(act).items():
            dw = rules.rule_update(post, pre, self.weights[name], eta, c)
            mask = self.hooks.plasticity_mask(name)
            out[name] = dw if mask is None else dw * self._cast(mask)
        return out

    def mirror_updates(self) -> dict[str, np.ndarray]:
        """Weight mirror (Akrout et al. 2019) as the Wbar rule (Eq. 7) in a mirror phase: noise
        xi ~ N(0, s^2) drives upstream layer k, downstream layer k+1 is driven by W^k xi, so
        dWbar^k = eta (xi (W^k xi)^T - s^2 Wbar^k); its fixed point in expectation is W^k^T."""
        s, n = self.circuit["wm.noise_std"], self.circuit["wm.batch"]
        out = {}
        for k in range(1, self.K):
            xi = self._cast(self.rng.standard_normal((n, self.W[k].shape[1])) * s)
            out[f"Wbar{k}"] = rules.rule_update(xi, xi @ self.W[k].T, self.Wbar[k], self.plan.eta["Wbar"],
                                                self.plan.eta["Wbar"] * s * s)
        return out

    def apply(self, deltas: dict[str, np.ndarray]) -> None:
        for name, d in deltas.items():
            self.weights[name] += d
        self._tie()

    def _tie(self) -> None:
        """bp: Wbar^k = (W^k)^T (weight transport)."""
        if self.plan.wbar_mode == "tied":
            for k in range(1, self.K):
                self.weights[f"Wbar{k}"] = self.weights[f"W{k}"].T.copy()

    def step(self, x: np.ndarray, y: np.ndarray, online: bool = False) -> Activities:
        """One batch-mean update, or (online) one update per row in order.  Returns the
        activities each row saw before its update (for online, row i before update i)."""
        x, y = self._cast(x), self._cast(y)
        if online:
            acts = [self.step(x[i:i + 1], y[i:i + 1]) for i in range(x.shape[0])]
            if not acts:
                return self.activities(x, y)
            stack = lambda seq: [None if v[0] is None else np.concatenate(v) for v in zip(*seq)]
            return Activities(stack([a.h for a in acts]), stack([a.a for a in acts]),
                              stack([a.hbar for a in acts]), stack([a.drive for a in acts]))
        act = self.activities(x, y)
        if self.matched and self.circuit["spike.matched_count_noise"]:
            act = self._count_noise(act)
        if self._hooked() or self.hooks.frozen:
            self.apply(self.updates(act))
        else:
            for name, (post, pre, eta, c) in self._factors(act).items():
                rules.accumulate_update(self.weights[name], post, pre, eta, c)
            self._tie()
        if self.plan.wbar_mode == "mirror":
            self.apply(self.mirror_updates())
        return act

    def _count_noise(self, act: Activities) -> Activities:
        """The activities as the spike level measures them in one window: each plus Gaussian
        noise of the spike-count variance |a| / (s T_window) (Poisson counts)."""
        c = self.circuit
        scale = 1.0 / (c["spike.rate_scale"] * c["spike.t_window"] * 1e-3)

        def noisy(v):
            return None if v is None else v + self.rng.standard_normal(v.shape) * np.sqrt(np.abs(v) * scale)

        return Activities([noisy(v) for v in act.h], act.a, [noisy(v) for v in act.hbar], act.drive)

    def lesion_weights(self) -> None:
        """Set the lesioned synapses of `hooks` to 0 (they stay 0: no plasticity there)."""
        for name, mask in self.hooks.lesions.items():
            if name in self.weights:
                self.weights[name][mask] = 0.0

    def modulated_output(self, x: np.ndarray, y: np.ndarray, alpha: float | None = None) -> np.ndarray:
        """Short-term modulation (Sec. 2.3): the modulated output h^K (`modulated_activities`)."""
        return self.modulated_activities(x, y, alpha)[-1]

    def modulated_activities(self, x: np.ndarray, y: np.ndarray, alpha: float | None = None) -> list:
        """Short-term modulation (Sec. 2.3): after one forward/feedback cycle, each upstream
        layer adds alpha Vbar^{k-1} hbar^k, h^k <- h^k + alpha Vbar^{k-1} hbar^k (k = 1..K), and
        the modulated activity is propagated upwards.  Returns the modulated h^0..h^K."""
        alpha = self.circuit["modulation_alpha"] if alpha is None else alpha
        act = self.activities(x, y)
        h = act.h[0]
        out = [h]
        for k in range(self.K):
            pre = h @ self.W[k].T
            h = relu(pre) if (k < self.K - 1 and self.circuit["upstream_nonlinearity"] == "relu") else pre
            Vb = self.Vbar[k]
            h = h + alpha * (act.hbar[k + 1] if Vb is None else act.hbar[k + 1] @ Vb.T)
            out.append(h)
        return out

    # ----- health ---------------------------------------------------------------
    def check_health(self, where: str = "") -> None:
        """Raise DivergenceError naming the layer and group of the first weight that is not
        finite or whose Frobenius norm exceeds `divergence_limit`."""
        check_health(self.circuit, self.weights, where)

    def copy_weights(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.weights.items()}


def check_health(circuit: Circuit, weights: dict[str, np.ndarray], where: str = "") -> None:
    """DivergenceError naming the layer and group of the first weight that is not finite or whose
    Frobenius norm exceeds the circuit's ``divergence_limit`` (groups that cannot change are skipped)."""
    plan = algorithm_plan(circuit)
    limit = circuit["divergence_limit"]
    for name, w in weights.items():
        group, k = group_of(name)
        if group not in plan.plastic and not (group == "Wbar" and plan.wbar_mode == "tied"):
            continue
        norm = float(np.sqrt(np.sum(np.square(w, dtype=np.float64))))
        if not np.isfinite(norm) or norm > limit:
            what = "NaN/inf" if not np.isfinite(norm) else f"norm {norm:.3g} > divergence_limit {limit:g}"
            raise DivergenceError(f"diverged{where}: group {group}, layer {k} ({name}): {what}. "
                                  "Lower the learning rates (eta.*) - the ratios matter, see docs/training.md")


__all__ = ["MatrixNetwork", "Activities", "check_health"]
