"""Matrix-level engine: Algorithm 1 / Eqs. 1-8 as batched numpy, the reference of every level.

`MatrixNetwork` holds the weights of a `Circuit` in the cross-level file layout
(``W{k}``, ``Vbar{k}`` for k = 0..K-2 (Vbar^{K-1} = I is implicit), ``Wbar{k}``, ``V{k}`` for
k = 1..K-1) and applies the plasticity rules of `salspike.matrix.rules`.

The baselines of the paper's Sec. 4 / Table 2 are settings of the same machinery
(`algorithm_plan`): V = Vbar = I fixed and D_d = the Jacobian of D_u, with Wbar tied to W^T (bp),
fixed random (fa), plastic under the same rule and rate as W (kp), or learned in a
weight-mirror phase (wm).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..circuit import GROUPS, Circuit
from ..errors import DivergenceError, ShapeError
from . import rules


@dataclasses.dataclass(frozen=True)
class Plan:
    """What an algorithm setting does to the circuit."""

    plastic: frozenset
    identity_interstream: bool  # V = Vbar = I, not plastic
    wbar_mode: str  # "plastic" (Eq. 7), "fixed", "tied" (= W^T, weight transport), "mirror"
    downstream_nonlinearity: str
    eta: dict


def algorithm_plan(circuit: Circuit) -> Plan:
    """Resolve `circuit['algorithm']` into a Plan (documented in docs/algorithms.md)."""
    algo = circuit["algorithm"]
    eta = dict(circuit.eta)
    if algo == "sal":
        plastic = frozenset(circuit["plastic"])
        return Plan(plastic, False, "plastic" if "Wbar" in plastic else "fixed",
                    circuit["downstream_nonlinearity"], eta)
    if algo in ("kp", "wm"):
        eta["Wbar"] = eta["W"]  # KP: W and Wbar^T receive the same update; WM: one rate
    mode = {"bp": "tied", "fa": "fixed", "kp": "plastic", "wm": "mirror"}[algo]
    plastic = frozenset({"W", "Wbar"} if mode in ("plastic", "mirror") else {"W"})
    jacobian = "relu_jacobian" if circuit["upstream_nonlinearity"] == "relu" else "identity"
    return Plan(plastic, True, mode, jacobian, eta)


def weight_names(circuit: Circuit) -> list[str]:
    return list(circuit.shapes())


def group_of(name: str) -> tuple[str, int]:
    """'Wbar3' -> ('Wbar', 3)."""
    for g in ("Wbar", "Vbar", "W", "V"):
        if name.startswith(g) and name[len(g):].isdigit():
            return g, int(name[len(g):])
    raise KeyError(name)


def init_weights(circuit: Circuit, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Gaussian init, w ~ N(0, (gain / sqrt(fan_in))^2) per group; identity where the
    algorithm fixes V = Vbar = I; Wbar = W^T for bp."""
    rng = np.random.default_rng(circuit["seed"]) if rng is None else rng
    plan = algorithm_plan(circuit)
    out = {}
    for name, shape in circuit.shapes().items():
        group, k = group_of(name)
        if plan.identity_interstream and group in ("V", "Vbar"):
            w = np.eye(*shape)
        else:
            w = rng.standard_normal(shape) * (circuit[f"init.{group}"] / np.sqrt(shape[1]))
        out[name] = w.astype(circuit.dtype)
    if plan.wbar_mode == "tied":
        for k in range(1, circuit.n_layers):
            out[f"Wbar{k}"] = out[f"W{k}"].T.copy()
    return out


def check_weights(circuit: Circuit, weights: dict[str, np.ndarray], source: str = "weights") -> None:
    """Every expected key present with its shape (Vbar{K-1} may be given as the identity)."""
    shapes = circuit.shapes()
    for name, shape in shapes.items():
        if name not in weights:
            raise ShapeError(f"{source}: missing key '{name}' (expected shape {shape}); expected keys: "
                             f"{', '.join(shapes)}")
        if tuple(weights[name].shape) != tuple(shape):
            raise ShapeError(f"{source}: '{name}' has shape {tuple(weights[name].shape)}, expected {shape} "
                             f"(widths d = {circuit.widths}, dbar = {circuit.downstream_widths[1:]})")
    K = circuit.n_layers
    for name in weights:
        if name in shapes or name.startswith(("h", "hbar")):
            continue
        if name == f"Vbar{K - 1}":
            if not np.array_equal(weights[name], np.eye(*weights[name].shape)):
                raise ShapeError(f"{source}: '{name}' is the fixed output identity; it must be I or omitted")
            continue
        raise ShapeError(f"{source}: unexpected key '{name}'; expected keys: {', '.join(shapes)}")


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
    """The circuit's weights plus the step that updates them."""

    def __init__(self, circuit: Circuit, weights: dict[str, np.ndarray] | None = None):
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

    def predict(self, x: np.ndarray) -> np.ndarray:
        return rules.forward(self.W, self._cast(x), self.circuit["upstream_nonlinearity"])[0][-1]

    def activities(self, x: np.ndarray, y: np.ndarray) -> Activities:
        """Eq. 1 upstream, then hbar^K = -grad F, then Eq. 2 downstream."""
        x, y = self._cast(x), self._cast(y)
        if x.ndim != 2 or x.shape[1] != self.circuit.widths[0]:
            raise ShapeError(f"inputs x have shape {x.shape}, expected (n, {self.circuit.widths[0]})")
        if y.shape != (x.shape[0], self.circuit.widths[-1]):
            raise ShapeError(f"targets y have shape {y.shape}, expected ({x.shape[0]}, {self.circuit.widths[-1]})")
        h, a = rules.forward(self.W, x, self.circuit["upstream_nonlinearity"])
        top = rules.error_signal(h[-1], y, self.circuit["loss"])
        hbar, drive = rules.downstream(self.Wbar, self.V, h, top, self.plan.downstream_nonlinearity)
        return Activities(h, a, hbar, drive)

    def _factors(self, act: Activities) -> dict[str, tuple]:
        """name -> (post, pre, eta, decay coefficient) of every plastic weight's rule
        (Eqs. 5-8, or Algorithm 1 per `rule_options`), all from the pre-step state."""
        eta, gamma, opt, plan = self.plan.eta, self.circuit["gamma"], self.options, self.plan
        h, a, hbar, drive = act.h, act.a, act.hbar, act.drive
        V, Vbar = self.V, self.Vbar

        def c(group):
            return rules.decay_coefficient(eta[group], gamma, opt["decay"])

        out = {}
        for k in range(self.K):
            if "W" in plan.plastic:
                out[f"W{k}"] = (*rules.W_factors(Vbar[k], hbar[k + 1], h[k]), eta["W"], c("W"))
            if k >= 1 and "V" in plan.plastic:
                signal = hbar[k] if opt["v_signal"] == "post_dd" else drive[k]
                out[f"V{k}"] = (*rules.V_factors(signal, h[k]), eta["V"], c("V"))
            if k >= 1 and "Wbar" in plan.plastic and plan.wbar_mode == "plastic":
                out[f"Wbar{k}"] = (*rules.Wbar_factors(V[k], h[k], hbar[k + 1]), eta["Wbar"], c("Wbar"))
            if k < self.K - 1 and "Vbar" in plan.plastic:
                signal = h[k + 1] if opt["vbar_signal"] == "post_du" else a[k + 1]
                out[f"Vbar{k}"] = (*rules.Vbar_factors(signal, hbar[k + 1]), eta["Vbar"], c("Vbar"))
        return out

    def updates(self, act: Activities) -> dict[str, np.ndarray]:
        """The update dw of every plastic weight (not applied)."""
        return {name: rules.hebbian_update(post, pre, self.weights[name], eta, c)
                for name, (post, pre, eta, c) in self._factors(act).items()}

    def mirror_updates(self) -> dict[str, np.ndarray]:
        """Weight mirror (Akrout et al. 2019) as the Wbar rule (Eq. 7) in a mirror phase: noise
        xi ~ N(0, s^2) drives upstream layer k, downstream layer k+1 is driven by W^k xi, so
        dWbar^k = eta (xi (W^k xi)^T - s^2 Wbar^k); its fixed point in expectation is W^k^T."""
        s, n = self.circuit["wm.noise_std"], self.circuit["wm.batch"]
        out = {}
        for k in range(1, self.K):
            xi = self._cast(self.rng.standard_normal((n, self.W[k].shape[1])) * s)
            out[f"Wbar{k}"] = rules.hebbian_update(xi, xi @ self.W[k].T, self.Wbar[k], self.plan.eta["Wbar"],
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
        for name, (post, pre, eta, c) in self._factors(act).items():
            rules.accumulate_update(self.weights[name], post, pre, eta, c)
        self._tie()
        if self.plan.wbar_mode == "mirror":
            self.apply(self.mirror_updates())
        return act

    def modulated_output(self, x: np.ndarray, y: np.ndarray, alpha: float | None = None) -> np.ndarray:
        """Short-term modulation (Sec. 2.3): after one forward/feedback cycle, each upstream
        layer adds alpha Vbar^{k-1} hbar^k, h^k <- h^k + alpha Vbar^{k-1} hbar^k (k = 1..K), and
        the modulated activity is propagated upwards.  Returns the modulated output h^K."""
        alpha = self.circuit["modulation_alpha"] if alpha is None else alpha
        act = self.activities(x, y)
        h = act.h[0]
        for k in range(self.K):
            pre = h @ self.W[k].T
            h = rules.relu(pre) if (k < self.K - 1 and self.circuit["upstream_nonlinearity"] == "relu") else pre
            Vb = self.Vbar[k]
            h = h + alpha * (act.hbar[k + 1] if Vb is None else act.hbar[k + 1] @ Vb.T)
        return h

    # ----- health ---------------------------------------------------------------
    def check_health(self, where: str = "") -> None:
        """Raise DivergenceError naming the layer and group of the first weight that is not
        finite or whose Frobenius norm exceeds `divergence_limit`."""
        limit = self.circuit["divergence_limit"]
        for name, w in self.weights.items():
            group, k = group_of(name)
            if group not in self.plan.plastic and not (group == "Wbar" and self.plan.wbar_mode == "tied"):
                continue
            norm = float(np.sqrt(np.sum(np.square(w, dtype=np.float64))))
            if not np.isfinite(norm) or norm > limit:
                what = "NaN/inf" if not np.isfinite(norm) else f"norm {norm:.3g} > divergence_limit {limit:g}"
                raise DivergenceError(f"diverged{where}: group {group}, layer {k} ({name}): {what}. "
                                      "Lower the learning rates (eta.*) - the ratios matter, see docs/training.md")

    def copy_weights(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.weights.items()}


__all__ = ["MatrixNetwork", "Plan", "algorithm_plan", "init_weights", "check_weights", "GROUPS"]
